package rwsplit_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/policy"
)

// slowRow is one row of the table BenchmarkSlowReplica reads.
type slowRow struct{ ID int64 }

func (slowRow) TableName() string { return "slow_bench_t" }

const (
	slowRows    = 1000                  // rows in slow_bench_t
	slowLatency = 20 * time.Millisecond // added to replica2 in the slow case
	slowMark    = 10 * time.Millisecond // a read slower than this counts in pct>10ms
)

// slowOpener installs a read/write-splitting plugin on a GORM database
// over primary, with replicas named replica1 and replica2.
type slowOpener func(b *testing.B, primary *sql.DB, replicas [2]*sql.DB) *gorm.DB

// BenchmarkSlowReplica measures what one slow replica costs the readers,
// per policy: two real PostgreSQL replicas, the second reached through a
// TCP proxy that adds 20ms to each client-to-server chunk in the "slow"
// case and nothing in the "baseline" case (same proxy, same process, run
// back to back, so the pair differs only in the latency). "dbresolver" is
// plain gorm.io/plugin/dbresolver with its default random policy over the
// same replicas, for comparison, and "direct" is plain GORM reading from
// replica1 alone, without any plugin: the floor that a policy which never
// sends a read to replica2 can reach on this machine, and a control for
// the noise (its "slow" case does not touch replica2).
//
// b.N primary-key reads (GORM First) are shared by exactly <readers>
// goroutines, each timing its own reads. Before the timer starts, each
// replica's pool holds readers+1 open connections on which pgx has already
// prepared the read (through the slow proxy too), and the plugin has served
// 50 reads per reader, so P2C's statistics are warm. The driver records
// which node ran each read; the benchmark fails if any read missed the
// replicas.
//
// Metrics: pct>10ms (share of reads slower than 10ms), mean-ms, p50-ms,
// p99-ms (nearest rank over all b.N reads), reads/s (b.N over wall time)
// and pct-slow (share of reads that replica2 ran). Run it with a fixed
// number of reads so percentiles have samples, e.g.
//
//	go test -run '^$' -bench BenchmarkSlowReplica -benchtime=3000x -count=3 .
//
// P2C re-measures an avoided replica at most once per P2CConfig.ProbeInterval (1s),
// and the warm-up has just measured it, so a run shorter than that may
// contain no probe at all; measure P2C's steady state over several seconds:
//
//	go test -run '^$' -bench 'BenchmarkSlowReplica/p2c/' -benchtime=60000x -count=3 .
//
// The proxy runs in the test process and allocates a 32 KiB buffer per
// chunk it forwards, so B/op counts about 16 KiB more for a read that
// replica2 serves: compare B/op only between rows with the same pct-slow.
func BenchmarkSlowReplica(b *testing.B) {
	pg := dbtest.Postgres(b, 2)
	createSlowTable(b, pg)
	proxy := dbtest.Proxy(b, pg.Replicas[1].Addr())

	policies := []struct {
		name string
		open slowOpener
	}{
		{"random", rwsplitOpener(policy.Random)},
		{"roundrobin", rwsplitOpener(policy.RoundRobin)},
		{"weighted", rwsplitOpener(policy.Weighted)},
		{"leastinflight", rwsplitOpener(policy.LeastInFlight)},
		{"p2c", rwsplitOpener(func() policy.Policy { p, _ := policy.P2C(policy.P2CConfig{}); return p })},
		{"dbresolver", openDBResolver},
		{"direct", openDirect},
	}
	cases := []struct {
		name    string
		latency time.Duration
	}{
		{"baseline", 0},
		{"slow", slowLatency},
	}
	for _, pol := range policies {
		b.Run(pol.name, func(b *testing.B) {
			for _, readers := range []int{1, 8} {
				b.Run(strconv.Itoa(readers), func(b *testing.B) {
					for _, tc := range cases {
						b.Run(tc.name, func(b *testing.B) {
							proxy.SetLatency(tc.latency)
							defer proxy.SetLatency(0)
							benchSlowReplica(b, pg, proxy, pol.open, readers)
						})
					}
				})
			}
		})
	}
}

// createSlowTable creates slow_bench_t on the primary, fills it, and waits
// until both replicas have it.
func createSlowTable(b *testing.B, pg *testdb.PGCluster) {
	b.Helper()
	db := pg.Primary.OpenDB(nil)
	defer db.Close()
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS slow_bench_t (id bigint PRIMARY KEY)`,
		fmt.Sprintf(`INSERT INTO slow_bench_t SELECT g FROM generate_series(1, %d) g ON CONFLICT DO NOTHING`, slowRows),
	} {
		if _, err := db.ExecContext(b.Context(), q); err != nil {
			b.Fatal(err)
		}
	}
	dbtest.Within(b, 10*time.Second, pg.WaitCaughtUp)
}

func rwsplitOpener(pol func() policy.Policy) slowOpener {
	return func(b *testing.B, primary *sql.DB, replicas [2]*sql.DB) *gorm.DB {
		db := openSlowGorm(b, primary)
		p := rwsplit.New(rwsplit.Config{
			Replicas: []rwsplit.Replica{
				{Name: "replica1", Dialector: postgres.New(postgres.Config{Conn: replicas[0]})},
				{Name: "replica2", Dialector: postgres.New(postgres.Config{Conn: replicas[1]})},
			},
			Policy: pol(),
		})
		if err := db.Use(p); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { p.Close() })
		return db
	}
}

func openDBResolver(b *testing.B, primary *sql.DB, replicas [2]*sql.DB) *gorm.DB {
	db := openSlowGorm(b, primary)
	err := db.Use(dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{
		postgres.New(postgres.Config{Conn: replicas[0]}),
		postgres.New(postgres.Config{Conn: replicas[1]}),
	}}))
	if err != nil {
		b.Fatal(err)
	}
	return db
}

// openDirect is plain GORM on replica1 alone.
func openDirect(b *testing.B, _ *sql.DB, replicas [2]*sql.DB) *gorm.DB {
	return openSlowGorm(b, replicas[0])
}

func openSlowGorm(b *testing.B, primary *sql.DB) *gorm.DB {
	db, err := gorm.Open(postgres.New(postgres.Config{Conn: primary}), &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
	if err != nil {
		b.Fatal(err)
	}
	return db
}

// openViaProxy opens node through proxy, with the driver settings
// PGNode.OpenDB uses, recorded by rec under the node's name.
func openViaProxy(b testing.TB, node *testdb.PGNode, proxy *testdb.Proxy, rec *testdb.Recorder) *sql.DB {
	b.Helper()
	dsn := strings.Replace(node.DSN(), fmt.Sprintf("port=%d", node.Port), fmt.Sprintf("port=%d", proxy.Port()), 1)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		b.Fatal(err)
	}
	return sql.OpenDB(rec.Connector(node.Name, stdlib.GetConnector(*cfg)))
}

func benchSlowReplica(b *testing.B, pg *testdb.PGCluster, proxy *testdb.Proxy, open slowOpener, readers int) {
	rec := &testdb.Recorder{}
	primary := pg.Primary.OpenDB(rec)
	replicas := [2]*sql.DB{pg.Replicas[0].OpenDB(rec), openViaProxy(b, pg.Replicas[1], proxy, rec)}
	for _, d := range []*sql.DB{primary, replicas[0], replicas[1]} {
		// database/sql keeps 2 idle connections by default: with more
		// readers, it would close and reopen connections while measuring.
		d.SetMaxIdleConns(readers + 1)
		b.Cleanup(func() { d.Close() })
	}
	db := open(b, primary, replicas)

	// Warm up: open the connections and let pgx prepare the read on each,
	// then let the policy learn the replicas.
	dry := db.Session(&gorm.Session{DryRun: true}).First(&slowRow{}, 1).Statement
	for _, r := range replicas {
		warmPool(b, r, readers+1, dry.SQL.String(), dry.Vars)
	}
	if err := slowReads(db, readers, 50*readers, nil); err != nil {
		b.Fatal(err)
	}

	lat := make([]time.Duration, b.N)
	mark := rec.Mark()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	err := slowReads(db, readers, b.N, lat)
	elapsed := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}

	served := map[string]int{}
	for _, e := range rec.Since(mark) {
		if strings.Contains(e.SQL, "slow_bench_t") {
			served[e.Node]++
		}
	}
	if served["replica1"]+served["replica2"] != b.N || len(served) > 2 {
		b.Fatalf("%d reads ran on %v, want each once on replica1 or replica2", b.N, served)
	}

	s := summarize(lat)
	b.ReportMetric(s.pctSlow, "pct>10ms")
	b.ReportMetric(slowMs(s.mean), "mean-ms")
	b.ReportMetric(slowMs(s.p50), "p50-ms")
	b.ReportMetric(slowMs(s.p99), "p99-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "reads/s")
	b.ReportMetric(100*float64(served["replica2"])/float64(b.N), "pct-slow")
}

// warmPool holds n connections of db at once and runs query on each, so the
// pool keeps n open connections with the statement prepared.
func warmPool(b *testing.B, db *sql.DB, n int, query string, args []any) {
	b.Helper()
	ctx := b.Context()
	conns := make([]*sql.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := db.Conn(ctx)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, c := range conns {
		wg.Go(func() {
			rows, err := c.QueryContext(ctx, query, args...)
			if err == nil {
				for rows.Next() {
				}
				err = errors.Join(rows.Err(), rows.Close())
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
}

// slowReads runs n primary-key reads on db from exactly readers goroutines.
// If lat is not nil, lat[i] receives the latency of read i.
func slowReads(db *gorm.DB, readers, n int, lat []time.Duration) error {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		errs = make([]error, readers)
	)
	ctx := context.Background()
	for w := range readers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				var row slowRow // new each time: First adds a set primary key to the WHERE
				start := time.Now()
				err := db.WithContext(ctx).First(&row, i%slowRows+1).Error
				if lat != nil {
					lat[i] = time.Since(start)
				}
				if err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

type latencySummary struct {
	pctSlow        float64 // percentage of samples above slowMark
	mean, p50, p99 time.Duration
}

// summarize sorts lat and returns its statistics; percentiles are nearest
// rank, so they are samples, and defined for any non-empty lat.
func summarize(lat []time.Duration) latencySummary {
	var s latencySummary
	if len(lat) == 0 {
		return s
	}
	slices.Sort(lat)
	var sum time.Duration
	slow := 0
	for _, d := range lat {
		sum += d
		if d > slowMark {
			slow++
		}
	}
	rank := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(lat)))) - 1
		return lat[min(max(i, 0), len(lat)-1)]
	}
	s.pctSlow = 100 * float64(slow) / float64(len(lat))
	s.mean = sum / time.Duration(len(lat))
	s.p50 = rank(0.50)
	s.p99 = rank(0.99)
	return s
}

func slowMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
