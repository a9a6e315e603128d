package main

import (
	"bufio"
	"context"
	"database/sql"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
)

// benchRow is the table the read workloads read by primary key.
type benchRow struct {
	ID int64
	V  int64
}

func (benchRow) TableName() string { return "bench_rows" }

const benchRows = 10000

// portRow is what a read returns: the row and the port of the server that
// served it, which tells the node apart at the server, whatever the
// plugins believe.
type portRow struct {
	ID   int64
	V    int64
	Port int
}

// readRow reads row id by primary key through db, and returns the value
// and the server's port.
func readRow(ctx context.Context, db *gorm.DB, f flavor, id int64) (portRow, error) {
	var out portRow
	err := db.WithContext(ctx).Model(&benchRow{}).Select("id, v, "+f.portExpr+" AS port").Where("id = ?", id).Take(&out).Error
	return out, err
}

// createRows creates and fills bench_rows on the primary.
func createRows(ctx context.Context, db *gorm.DB) error {
	if err := db.WithContext(ctx).Migrator().DropTable(&benchRow{}); err != nil {
		return err
	}
	if err := db.WithContext(ctx).AutoMigrate(&benchRow{}); err != nil {
		return err
	}
	rows := make([]benchRow, benchRows)
	for i := range rows {
		rows[i] = benchRow{ID: int64(i + 1)}
	}
	return db.WithContext(ctx).CreateInBatches(rows, 1000).Error
}

// read is one read of a timed workload.
type read struct {
	at    time.Duration // when it started, since the workload's origin
	took  time.Duration
	port  int
	v     int64
	err   error
	stale time.Duration // how long before it started its value had been superseded
}

// loadRun runs readers goroutines that call fn in a loop, recording the
// reads made while recording is on.
type loadRun struct {
	origin    time.Time
	recording atomic.Bool
	stop      atomic.Bool
	mu        sync.Mutex
	reads     []read
	wg        sync.WaitGroup
}

func startLoad(readers int, fn func(ctx context.Context, r *read), ctx context.Context) *loadRun {
	l := &loadRun{origin: time.Now()}
	for range readers {
		l.wg.Go(func() {
			var local []read
			for !l.stop.Load() && ctx.Err() == nil {
				rec := l.recording.Load()
				start := time.Now()
				r := read{at: start.Sub(l.origin)}
				fn(ctx, &r)
				r.took = time.Since(start)
				if rec && l.recording.Load() {
					local = append(local, r)
					if len(local) == 256 {
						l.flush(local)
						local = local[:0]
					}
				}
			}
			l.flush(local)
		})
	}
	return l
}

func (l *loadRun) flush(rs []read) {
	l.mu.Lock()
	l.reads = append(l.reads, rs...)
	l.mu.Unlock()
}

// record turns recording on and returns the time since the origin.
func (l *loadRun) record() time.Duration {
	l.recording.Store(true)
	return time.Since(l.origin)
}

// pause turns recording off.
func (l *loadRun) pause() time.Duration {
	l.recording.Store(false)
	return time.Since(l.origin)
}

func (l *loadRun) finish() []read {
	l.stop.Store(true)
	l.wg.Wait()
	return l.reads
}

// randomID returns a row id of bench_rows.
func randomID() int64 { return rand.Int64N(benchRows) + 1 }

// cpuIdle reads the machine's idle and total CPU ticks from /proc/stat.
func cpuIdle() (idle, total int64) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0
	}
	fields := strings.Fields(sc.Text())
	for i, v := range fields[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i < 8 { // user nice system idle iowait irq softirq steal
			total += n
		}
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return idle, total
}

// capPool caps a pool's open connections and keeps them all idle between
// uses.
func capPool(db *sql.DB, n int) {
	if db != nil {
		db.SetMaxOpenConns(n)
		db.SetMaxIdleConns(n)
	}
}
