package rwsplit_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/stickiness"
)

// The PgBouncer tests run Debian's PgBouncer 1.18 in transaction pooling
// mode (testdb.Bouncer). It has no protocol-level prepared statements:
// pgx's default query mode and GORM's PrepareStmt prepare named
// statements on whichever server connection a transaction got, and the
// next transaction may get another. docs/topologies.md says what to set.

// simpleProtocol is the DSN setting that makes pgx send no named
// prepared statement.
const simpleProtocol = "default_query_exec_mode=simple_protocol"

// bouncerNode opens connections through a Bouncer with params, recorded
// under the Bouncer's name.
type bouncerNode struct {
	b      *testdb.Bouncer
	params string
}

func (n bouncerNode) OpenDB(r *testdb.Recorder) *sql.DB { return n.b.OpenDB(r, n.params) }

// serverOf returns the cluster_name of the server that ran a raw SELECT
// through db: "primary", "replica1", ...
func serverOf(t *testing.T, db *gorm.DB) string {
	t.Helper()
	var name string
	noErr(t, db.Raw("SELECT current_setting('cluster_name')").Scan(&name).Error)
	return name
}

// preparedErrors runs 4 goroutines of 50 parameterized reads each through
// db, and returns how many failed, and how many of those with anything but
// PgBouncer's prepared-statement errors: 42P05 (the statement name
// already exists on the server connection this transaction got) and 26000
// (it does not exist on it).
func preparedErrors(db *gorm.DB) (failed, other int, sample error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range 50 {
				var n int
				err := db.Raw("SELECT ?::int + 1", i).Scan(&n).Error
				if err == nil {
					continue
				}
				var pe *pgconn.PgError
				mu.Lock()
				failed++
				if !errors.As(err, &pe) || pe.Code != "42P05" && pe.Code != "26000" {
					other++
				}
				if sample == nil {
					sample = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed, other, sample
}

// TestPgBouncerTransactionMode: the primary and one replica, each behind
// its own PgBouncer in transaction mode. With a setting that sends no named
// prepared statement, routing, the checker's probes (lag, health,
// eviction), causal stickiness and read-your-writes work; pgx's default
// mode, and GORM's PrepareStmt with any mode, fail with PgBouncer's
// prepared-statement errors.
func TestPgBouncerTransactionMode(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	dbtest.Within(t, 10*time.Second, pg.WaitCaughtUp)
	bp := dbtest.PgBouncer(t, pg.Primary)
	br := dbtest.PgBouncer(t, pg.Replicas[0])
	r1 := pg.Replicas[0]

	working := []struct {
		name             string
		primary, replica func() gorm.Dialector
	}{
		{name: "PreferSimpleProtocol, replica inherits it",
			primary: func() gorm.Dialector {
				return postgres.New(postgres.Config{DSN: bp.DSN(), PreferSimpleProtocol: true})
			},
			replica: func() gorm.Dialector { return postgres.Open(br.DSN()) }},
		{name: "DSN default_query_exec_mode=simple_protocol",
			primary: func() gorm.Dialector { return postgres.Open(bp.DSN() + " " + simpleProtocol) },
			replica: func() gorm.Dialector { return postgres.Open(br.DSN() + " " + simpleProtocol) }},
		{name: "DSN default_query_exec_mode=exec",
			primary: func() gorm.Dialector { return postgres.Open(bp.DSN() + " default_query_exec_mode=exec") },
			replica: func() gorm.Dialector { return postgres.Open(br.DSN() + " default_query_exec_mode=exec") }},
	}
	for _, w := range working {
		t.Run(w.name, func(t *testing.T) {
			log := newStateLog()
			cfg := healthConfig(log, healthLag)
			var last atomic.Value
			cfg.OnRoute = func(ctx context.Context, r rwsplit.Route) {
				last.Store(r)
				if v, ok := ctx.Value(nodeKey{}).(*atomic.Value); ok {
					v.Store(r.Node)
				}
			}
			c := &cluster{t: t, rec: &testdb.Recorder{}}
			c.open(w.primary(), []rwsplit.Replica{{Name: "replica1", Dialector: w.replica()}}, clusterOpts{config: cfg})

			// Routing, asserted at the server that ran each statement.
			if got := serverOf(t, c.DB); got != "replica1" {
				t.Errorf("a read ran on %s, want replica1 (through its PgBouncer)", got)
			}
			if got := serverOf(t, c.DB.Clauses(rwsplit.Primary)); got != "primary" {
				t.Errorf("a read with rwsplit.Primary ran on %s", got)
			}
			noErr(t, c.DB.Exec("CREATE TABLE IF NOT EXISTS bouncer_writes (id bigserial PRIMARY KEY, node text NOT NULL)").Error)
			noErr(t, c.DB.Exec("INSERT INTO bouncer_writes (node) VALUES (current_setting('cluster_name'))").Error)
			var wrote string
			noErr(t, c.DB.Clauses(rwsplit.Primary).Raw("SELECT node FROM bouncer_writes ORDER BY id DESC LIMIT 1").Scan(&wrote).Error)
			if wrote != "primary" {
				t.Errorf("a write ran on %s", wrote)
			}

			// Probes: through PgBouncer, the checker measures replica1,
			// finds it healthy, and sees the server behind it. (A cluster
			// just started may still be catching up: wait for it.)
			var h lagcheck.Status
			deadline := time.Now().Add(5 * time.Second)
			for h = c.Plugin.Stats().Replicas[0].Health; h.State != lagcheck.Healthy || !h.LagKnown || h.Server.IsZero(); h = c.Plugin.Stats().Replicas[0].Health {
				if time.Now().After(deadline) {
					t.Fatalf("replica1 not healthy with a lag measured through PgBouncer after 5s: %+v", h)
				}
				time.Sleep(time.Millisecond)
			}
			if h.State != lagcheck.Healthy || h.LastErr != nil || h.Lag > healthLag.MaxLag ||
				h.Server.Addr != fmt.Sprintf("127.0.0.1:%d", r1.Port) || h.Servers != nil {
				t.Errorf("replica1's health: %+v; want healthy, lag known under MaxLag, served by 127.0.0.1:%d alone", h, r1.Port)
			}

			// Causal stickiness: read-your-writes, and the writer's reads
			// back on the replica once a probe sees it has the write.
			setupPosts(t, c, pg.WaitCaughtUp)
			if misses := readYourWrites(t, c.DB, 200); misses != 0 {
				t.Errorf("%d of 200 reads missed the user's own write", misses)
			}
			backToReplicas(t, c, &last, 10, healthLag.Interval)

			// Eviction: replica1 stops replaying behind its PgBouncer.
			k := startCounter(t, c, pg.WaitCaughtUp)
			run := runFault(t, c, k, log, fault{
				replica: "replica1", readers: 2, pace: 2 * time.Millisecond,
				inject: r1.PauseReplay, heal: r1.ResumeReplay, readmit: true,
				before: 300 * time.Millisecond, hold: 500 * time.Millisecond, after: 200 * time.Millisecond,
			})
			n, errs, maxStale, nodes := summarizeReads(run.reads, time.Time{}, time.Now())
			t.Logf("health %s lag %v; pause: evicted %v after, readmitted %v after resume; %d reads, %d errors, max staleness %v, by node %v",
				h.Server, h.Lag.Round(time.Microsecond), run.evicted.Sub(run.injected).Round(time.Millisecond),
				run.readmitted.Sub(run.healing).Round(time.Millisecond), n, errs, maxStale, nodes)
			// MaxLag + 2 Intervals + Timeout, as TestPauseReplay, plus a
			// second: PgBouncer is one more process on the 2 loaded cores.
			if d := run.evicted.Sub(run.injected); d > healthLag.MaxLag+2*healthLag.Interval+healthLag.Timeout+time.Second {
				t.Errorf("evicted %v after the pause", d)
			}
			if errs > 0 || maxStale > healthLag.MaxLag || nodes["replica1"] == 0 {
				t.Errorf("%d errors, max staleness %v (MaxLag %v), by node %v", errs, maxStale, healthLag.MaxLag, nodes)
			}
		})
	}

	// The failing settings get PgBouncers of their own, whose server
	// connections no statement has been prepared on yet.
	t.Run("pgx default mode fails: 42P05/26000", func(t *testing.T) {
		bp, br := dbtest.PgBouncer(t, pg.Primary), dbtest.PgBouncer(t, r1)
		c := &cluster{t: t, rec: &testdb.Recorder{}}
		c.open(postgres.Open(bp.DSN()), []rwsplit.Replica{{Name: "replica1", Dialector: postgres.Open(br.DSN())}}, clusterOpts{})
		// Two connections of the replica's pool take turns with one
		// query: pgx prepares it once per connection, under a name that
		// depends on the SQL alone, on whichever server connection
		// PgBouncer lends for that transaction.
		pool := c.Plugin.ReplicaDB("replica1")
		var conns [2]*sql.Conn
		for i := range conns {
			conn, err := pool.Conn(t.Context())
			noErr(t, err)
			defer conn.Close()
			conns[i] = conn
		}
		var err error
		turns := 0
		for ; turns < 20 && err == nil; turns++ {
			var n int
			err = conns[turns%2].QueryRowContext(t.Context(), "SELECT $1::int + 1", turns).Scan(&n)
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42P05" && pe.Code != "26000" {
			t.Fatalf("after %d turns: %v; want PgBouncer's prepared-statement error, SQLSTATE 42P05 or 26000", turns, err)
		}
		failed, other, sample := preparedErrors(c.DB)
		t.Logf("two connections taking turns: query %d failed: %v; through GORM, %d of 200 concurrent reads failed (%d otherwise), e.g. %v; replica1's health: %v, last error %v",
			turns, err, failed, other, sample, c.Plugin.Stats().Replicas[0].Health.State, c.Plugin.Stats().Replicas[0].Health.LastErr)
		if other > 0 {
			t.Errorf("%d reads failed with another error than 42P05/26000: %v", other, sample)
		}
	})

	t.Run("PrepareStmt fails even with the simple protocol: 42P05/26000", func(t *testing.T) {
		bp, br := dbtest.PgBouncer(t, pg.Primary), dbtest.PgBouncer(t, r1)
		c := &cluster{t: t, rec: &testdb.Recorder{}}
		c.open(postgres.New(postgres.Config{DSN: bp.DSN(), PreferSimpleProtocol: true}),
			[]rwsplit.Replica{{Name: "replica1", Dialector: postgres.Open(br.DSN())}},
			clusterOpts{gorm: gorm.Config{PrepareStmt: true}})
		// pgx's stdlib driver prepares a named statement for every
		// database/sql Prepare, whatever the query mode. Concurrent reads
		// open several connections, each preparing it on a server
		// connection another may hold it on already.
		var failed, other, rounds int
		var sample error
		for rounds = 1; rounds <= 5 && failed == 0; rounds++ {
			failed, other, sample = preparedErrors(c.DB)
		}
		t.Logf("%d of 200 concurrent reads failed (round %d), e.g. %v", failed, rounds-1, sample)
		if failed == 0 || other > 0 {
			t.Errorf("%d of 200 reads failed, %d with another error (%v); want PgBouncer's prepared-statement errors", failed, other, sample)
		}
	})
}

// TestPgBouncerSeveralStandbys: both standbys behind one PgBouncer, given
// to rwsplit as ONE replica. rwsplit detects it (Stats, one log record);
// meanwhile causal reads go to the primary, and with one standby paused
// the replica's lag is the paused one's: no read older than MaxLag is
// served, and the replica is evicted.
func TestPgBouncerSeveralStandbys(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	b := dbtest.PgBouncer(t, pg.Replicas...)
	var logs logBuffer
	log := newStateLog()
	cfg := withNodeHook(healthConfig(log, healthLag))
	var evictions []lagcheck.Reading // the readings that evicted replica1
	var evMu sync.Mutex
	cfg.Lag.OnStateChange = func(ch lagcheck.Change) {
		if ch.To == lagcheck.Evicted {
			evMu.Lock()
			evictions = append(evictions, ch.Reading)
			evMu.Unlock()
		}
		log.record(ch)
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.Stickiness = stickiness.Config{Mode: stickiness.ModeCausal}
	newDialector := func(db *sql.DB) gorm.Dialector { return postgres.New(postgres.Config{Conn: db}) }
	start := time.Now()
	c := openOn(t, newDialector, pg.Primary, []node{bouncerNode{b, simpleProtocol}}, clusterOpts{config: cfg})
	setupPosts(t, c, pg.WaitCaughtUp)

	// Detected once PgBouncer's second server connection serves a probe;
	// the log record follows from the checker's callback goroutine.
	const msg = "rwsplit: one replica address, several servers: lag is the worst of theirs, causal reads go to the primary; give each server its own Replica"
	var h lagcheck.Status
	for h = c.Plugin.Stats().Replicas[0].Health; len(h.Servers) < 2 || len(logs.records(t, msg)) == 0; h = c.Plugin.Stats().Replicas[0].Health {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("two standbys behind one address not detected and logged within 10s: %+v", h)
		}
		time.Sleep(time.Millisecond)
	}
	detected := time.Since(start)
	recs := logs.records(t, msg)
	if len(recs) != 1 {
		t.Fatalf("%d %q records, want 1", len(recs), msg)
	}
	if s, _ := recs[0]["servers"].([]any); recs[0]["replica"] != "replica1" || len(s) != 2 {
		t.Errorf("record %v: want replica1 and both servers", recs[0])
	}

	// Causal reads go to the primary while detected; reads without a user
	// still go to the replica.
	before := c.Plugin.Stats().Routes
	misses := readYourWrites(t, c.DB, 200)
	after := c.Plugin.Stats().Routes
	causal, sticky := after[rwsplit.ReasonCausal]-before[rwsplit.ReasonCausal], after[rwsplit.ReasonSticky]-before[rwsplit.ReasonSticky]
	if misses != 0 || causal != 0 || sticky < 200 {
		t.Errorf("%d misses; sticky reads %d on a replica, %d on the primary; want 0, 0, >= 200", misses, causal, sticky)
	}

	// One standby stops replaying.
	k := startCounter(t, c, pg.WaitCaughtUp)
	run := runFault(t, c, k, log, fault{
		replica: "replica1", readers: 4, pace: time.Millisecond,
		inject: pg.Replicas[1].PauseReplay, heal: pg.Replicas[1].ResumeReplay, readmit: true,
		before: 300 * time.Millisecond, hold: time.Second, after: 300 * time.Millisecond,
	})
	n, errs, maxStale, nodes := summarizeReads(run.reads, time.Time{}, time.Now())
	nOut, _, _, nodesOut := summarizeReads(run.reads, run.evicted, run.healing)
	t.Logf("detected within %v of db.Use; servers %v; evicted %v after pausing replica2; readmitted %v after resume",
		detected.Round(time.Millisecond), h.Servers, run.evicted.Sub(run.injected).Round(time.Millisecond), run.readmitted.Sub(run.healing).Round(time.Millisecond))
	t.Logf("%d reads, %d errors, max staleness %v (MaxLag %v), by node %v; while evicted %d reads by node %v; causal reads while detected: %d on a replica, %d on the primary",
		n, errs, maxStale, healthLag.MaxLag, nodes, nOut, nodesOut, causal, sticky)
	if errs > 0 || maxStale > healthLag.MaxLag {
		t.Errorf("%d errors, max staleness %v, want 0 and <= MaxLag %v", errs, maxStale, healthLag.MaxLag)
	}
	if nodes["replica1"] == 0 || nodesOut["replica1"] > 0 {
		t.Errorf("reads by node %v, while evicted %v: want some on replica1 before, none while evicted", nodes, nodesOut)
	}
	// As TestPauseReplay's bound, plus an Interval: the paused standby
	// answers every other probe. Plus a second for PgBouncer on the 2
	// loaded cores.
	if d := run.evicted.Sub(run.injected); d > healthLag.MaxLag+3*healthLag.Interval+healthLag.Timeout+time.Second {
		t.Errorf("evicted %v after the pause", d)
	}
	evMu.Lock()
	defer evMu.Unlock()
	for _, rd := range evictions {
		t.Logf("evicting reading: lag %v known %v, err %v, by %v", rd.Lag.Round(time.Millisecond), rd.LagKnown, rd.Err, rd.Server)
		if rd.Err != nil || !rd.LagKnown || rd.Lag <= healthLag.MaxLag {
			t.Errorf("replica1 evicted by a reading with lag %v (known %v), error %v; want the paused standby's lag above MaxLag", rd.Lag, rd.LagKnown, rd.Err)
		}
	}
	if s := c.Plugin.Stats().Replicas[0].Health; len(s.Servers) != 2 {
		t.Errorf("after the fault, Stats shows servers %v, want both still", s.Servers)
	}
}
