package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/fakedb"
	"github.com/rwsplit/rwsplit/lagcheck"
)

// The per-read overhead: GORM's First over internal/fakedb, which answers
// from memory, so that the differences are the plugins' own CPU. This is
// bench_test.go's BenchmarkRead, run as repeated rounds.

type fakeUser struct {
	ID        uint
	Name      string
	CreatedAt time.Time
}

func fakeDialector() gorm.Dialector {
	c := &fakedb.Connector{Columns: []string{"id", "name", "created_at"}, Row: []driver.Value{int64(1), "ada", time.Unix(0, 0)}}
	return postgres.New(postgres.Config{Conn: sql.OpenDB(c)})
}

func openFakeGorm() (*gorm.DB, error) {
	return gorm.Open(fakeDialector(), &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
}

// freshProbe reports every replica caught up: fakedb has no replication.
type freshProbe struct{}

func (freshProbe) Primary(context.Context, lagcheck.DB) (lagcheck.Position, error) {
	return lagcheck.Position{}, nil
}

func (freshProbe) Replica(context.Context, lagcheck.DB, lagcheck.Position) (lagcheck.Replay, error) {
	return lagcheck.Replay{LagAtMostKnown: true}, nil
}

var overheadConfigs = []string{"plain GORM", "dbresolver", "rwsplit"}

// defaultLag returns lagcheck's defaults as it applies them (New runs no
// query).
func defaultLag() (lagcheck.Config, error) {
	db := sql.OpenDB(&fakedb.Connector{})
	defer db.Close()
	c, err := lagcheck.New(lagcheck.Config{}, "postgres", db, nil)
	if err != nil {
		return lagcheck.Config{}, err
	}
	defer c.Close()
	return c.Config(), nil
}

// openFakeConfig opens one configuration over fakedb: plain GORM, or a
// plugin over two fakedb replicas with its defaults (rwsplit: every
// default on; its checker's rounds every interval, 0 for the default).
func openFakeConfig(name string, interval time.Duration) (*gorm.DB, func(), error) {
	db, err := openFakeGorm()
	if err != nil {
		return nil, nil, err
	}
	switch name {
	case "plain GORM":
		return db, func() {}, nil
	case "dbresolver":
		err := db.Use(dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{fakeDialector(), fakeDialector()}}))
		return db, func() {}, err
	case "rwsplit":
		lag := lagcheck.Config{Probe: freshProbe{}}
		if interval > 0 {
			lag.Interval, lag.MaxLag = interval, 2*interval
		}
		p := rwsplit.New(rwsplit.Config{
			Replicas: []rwsplit.Replica{{Name: "r1", Dialector: fakeDialector()}, {Name: "r2", Dialector: fakeDialector()}},
			Lag:      lag,
		})
		if err := db.Use(p); err != nil {
			return nil, nil, err
		}
		return db, func() { p.Close() }, nil
	}
	return nil, nil, fmt.Errorf("unknown configuration %q", name)
}

func runOverhead(ctx context.Context, b *bench, w *sectionWriter) error {
	o := b.o
	lagDefaults, err := defaultLag()
	if err != nil {
		return err
	}
	rounds, perRound := 15, 20000
	if o.quick {
		rounds, perRound = 5, 10000
	}
	dbs := make([]*gorm.DB, len(overheadConfigs))
	for i, name := range overheadConfigs {
		db, closeFn, err := openFakeConfig(name, 0)
		if err != nil {
			return err
		}
		defer closeFn()
		dbs[i] = db
	}
	first := func(db *gorm.DB) error {
		var u fakeUser
		return db.First(&u, 1).Error
	}
	// Warm up.
	for range 2000 {
		for _, db := range dbs {
			if err := first(db); err != nil {
				return err
			}
		}
	}
	perRead := make([][]float64, len(dbs)) // [config][round] ns per read
	over := make([][]float64, len(dbs))    // [config][round] ns over plain GORM
	for r := range rounds {
		if err := ctx.Err(); err != nil {
			return err
		}
		var took [3]time.Duration
		for i := range perRound {
			for k := range dbs {
				j := (i + k) % len(dbs)
				start := time.Now()
				if err := first(dbs[j]); err != nil {
					return err
				}
				took[j] += time.Since(start)
			}
		}
		for j := range dbs {
			perRead[j] = append(perRead[j], float64(took[j].Nanoseconds())/float64(perRound))
			over[j] = append(over[j], float64((took[j]-took[0]).Nanoseconds())/float64(perRound))
		}
		log.Printf("overhead round %d: %.0f / %.0f / %.0f ns", r+1, perRead[0][r], perRead[1][r], perRead[2][r])
	}
	allocs := make([]float64, len(dbs))
	for j, db := range dbs {
		allocs[j] = allocsPerRun(2000, func() { _ = first(db) })
	}

	w.p("`db.First(&u, 1)` over `internal/fakedb`, a database/sql driver that answers from memory: no network, no server, so what differs is the CPU each plugin spends per read. "+
		"dbresolver and rwsplit each have two fakedb replicas; rwsplit runs with every default on (lag bound, read-your-writes lookup, P2C, its checker every %v on a probe that reports the replicas caught up). "+
		"Paired as in `bench_test.go`'s `BenchmarkRead`: each iteration reads once through each configuration in a rotating order and times each read, so drift on this noisy machine hits all three alike. "+
		"%d rounds of %d iterations; the table gives the median over rounds (and the range). *Over plain GORM* is the median of the per-round differences.", lagDefaults.Interval, rounds, perRound)

	var instr map[string]float64
	var instrErr error
	if o.callgrind {
		n1, n2 := 2000, 12000
		if o.quick {
			n1, n2 = 500, 3000
		}
		instr, instrErr = callgrindCounts(ctx, n1, n2)
	}
	header := []string{"configuration", "ns per read", "over plain GORM (ns)", "over plain GORM (%)", "allocs per read"}
	if instr != nil {
		header = append(header, "instructions per read (callgrind)", "over plain GORM (instructions)")
	}
	var rows [][]string
	for j, name := range overheadConfigs {
		row := []string{name, spread(perRead[j], "%.0f"), "—", "—", fmt.Sprintf("%.1f", allocs[j])}
		if j > 0 {
			row[2] = spread(over[j], "%+.0f")
			row[3] = fmt.Sprintf("%+.1f%%", 100*median(over[j])/median(perRead[0]))
		}
		if instr != nil {
			row = append(row, fmt.Sprintf("%.0f", instr[name]), "—")
			if j > 0 {
				row[6] = fmt.Sprintf("%+.0f", instr[name]-instr[overheadConfigs[0]])
			}
		}
		rows = append(rows, row)
	}
	w.table(header, rows)
	if d, r := median(over[1]), median(over[2]); d > 0 {
		w.p("On the wall clock, rwsplit's overhead is %.1f× dbresolver's in this run (medians of the paired differences: %+.0f ns against %+.0f ns).", r/d, r, d)
	} else {
		w.p("On the wall clock, the medians of the paired differences are %+.0f ns for dbresolver and %+.0f ns for rwsplit: within this run's noise of plain GORM.", d, r)
	}
	switch {
	case instr != nil:
		w.p("Instructions are counted by `valgrind --tool=callgrind` over a child process that makes N reads through one configuration "+
			"(`GODEBUG=asyncpreemptoff=1 GOMAXPROCS=1 GOGC=off`, the checker's interval set to an hour so that it does not run): "+
			"(count at %d reads − count at %d reads) / %d. The count is the same run to run whatever else the machine does; "+
			"it weighs a clock read or an atomic as one instruction each, which on this machine cost about 60–120 ns and 25 ns (shared/REPLICATION.md), so the wall-clock column is the one that shows their cost.",
			cgN[1], cgN[0], cgN[1]-cgN[0])
	case instrErr != nil:
		w.p("No instruction counts: %v.", instrErr)
	}
	if err := plotBars(w.plotPath("overhead.png"), "Per-read overhead over plain GORM (no I/O, median of paired rounds)", "ns per read",
		overheadConfigs[1:], []float64{median(over[1]), median(over[2])}); err != nil {
		return err
	}
	w.image("per-read overhead over plain GORM, dbresolver and rwsplit", "overhead.png")
	if instr != nil {
		if err := plotBars(w.plotPath("overhead-instructions.png"), "Per-read overhead over plain GORM (instructions, callgrind)", "instructions per read",
			overheadConfigs[1:], []float64{instr["dbresolver"] - instr["plain GORM"], instr["rwsplit"] - instr["plain GORM"]}); err != nil {
			return err
		}
		w.image("per-read overhead in instructions", "overhead-instructions.png")
	}
	return nil
}

// allocsPerRun is testing.AllocsPerRun without the testing package.
func allocsPerRun(n int, f func()) float64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	f()
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	for range n {
		f()
	}
	runtime.ReadMemStats(&b)
	return float64(b.Mallocs-a.Mallocs) / float64(n)
}

// cgN is the two read counts of the last callgrindCounts.
var cgN [2]int

// callgrindCounts runs this binary under callgrind for each configuration
// at n1 and n2 reads and returns instructions per read.
func callgrindCounts(ctx context.Context, n1, n2 int) (map[string]float64, error) {
	cgN = [2]int{n1, n2}
	vg, err := exec.LookPath("valgrind")
	if err != nil {
		return nil, fmt.Errorf("valgrind is not installed (apt-get install valgrind)")
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rwsplit-bench-callgrind-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := map[string]float64{}
	for _, name := range overheadConfigs {
		var counts [2]int64
		for k, n := range cgN {
			file := filepath.Join(dir, fmt.Sprintf("cg.%d.%d", len(out), n))
			cmd := exec.CommandContext(ctx, vg, "--tool=callgrind", "--callgrind-out-file="+file, self, "-callgrind-child", name, "-n", strconv.Itoa(n))
			cmd.Env = append(os.Environ(), "GODEBUG=asyncpreemptoff=1", "GOMAXPROCS=1", "GOGC=off")
			if b, err := cmd.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("callgrind %s: %w: %s", name, err, lastLines(string(b), 5))
			}
			c, err := callgrindTotal(file)
			if err != nil {
				return nil, err
			}
			counts[k] = c
		}
		out[name] = float64(counts[1]-counts[0]) / float64(n2-n1)
		log.Printf("callgrind %s: %.0f instructions per read", name, out[name])
	}
	return out, nil
}

var totalsRE = regexp.MustCompile(`(?m)^(?:summary|totals):\s+(\d+)`)

func callgrindTotal(file string) (int64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	m := totalsRE.FindSubmatch(b)
	if m == nil {
		return 0, fmt.Errorf("no totals in %s", file)
	}
	return strconv.ParseInt(string(m[1]), 10, 64)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// callgrindChild makes n reads through one configuration, for the count.
func callgrindChild(name string, n int) error {
	db, closeFn, err := openFakeConfig(name, time.Hour)
	if err != nil {
		return err
	}
	defer closeFn()
	var u fakeUser
	for range 200 + n {
		if err := db.First(&u, 1).Error; err != nil {
			return err
		}
	}
	return nil
}
