package rwsplit_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
)

// portCluster is a PostgreSQL cluster opened through rwsplit, and which
// node listens on each port: a statement's node is read on the server
// (inet_server_port()), since these pools are opened from DSNs, without
// the test's recorder.
type portCluster struct {
	db     *gorm.DB
	plugin *rwsplit.Plugin
	nodeOf map[int]string
}

// openPorts opens pg through rwsplit with cfg. shared, when not nil,
// opens each replica as an existing *sql.DB (postgres.Config{Conn}), made
// by shared; otherwise every node is opened from its DSN.
func openPorts(t *testing.T, pg *testdb.PGCluster, cfg rwsplit.Config, shared func(dsn string) *sql.DB) *portCluster {
	t.Helper()
	c := &portCluster{nodeOf: map[int]string{pg.Primary.Port: "primary"}}
	db, err := gorm.Open(postgres.Open(pg.Primary.DSN()), &gorm.Config{Logger: logger.Discard})
	noErr(t, err)
	for i, r := range pg.Replicas {
		name := fmt.Sprintf("replica%d", i+1)
		c.nodeOf[r.Port] = name
		d := postgres.Open(r.DSN())
		if shared != nil {
			sqlDB := shared(r.DSN())
			t.Cleanup(func() { sqlDB.Close() })
			d = postgres.New(postgres.Config{Conn: sqlDB})
		}
		cfg.Replicas = append(cfg.Replicas, rwsplit.Replica{Name: name, Dialector: d})
	}
	c.plugin = rwsplit.New(cfg)
	noErr(t, db.Use(c.plugin))
	c.db = db
	t.Cleanup(func() {
		noErr(t, c.plugin.Close())
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
	})
	return c
}

// readLoad runs readers goroutines, each reading the serving node's port
// and sleeping sleep on the server, until stop is closed. It returns the
// reads by node name, and the errors.
func (c *portCluster) readLoad(t *testing.T, readers int, sleep time.Duration, stop <-chan struct{}) (map[string]int, []error) {
	t.Helper()
	var (
		mu     sync.Mutex
		byNode = map[string]int{}
		errs   []error
		wg     sync.WaitGroup
	)
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var port int
				var slept string
				err := c.db.Raw("SELECT inet_server_port(), pg_sleep(?)::text", sleep.Seconds()).Row().Scan(&port, &slept)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					byNode[c.nodeOf[port]]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return byNode, errs
}

// reportErrs fails t with the number of errors and the first three.
func reportErrs(t *testing.T, errs []error) {
	t.Helper()
	if len(errs) > 0 {
		t.Errorf("%d reads failed, e.g. %v", len(errs), errs[:min(3, len(errs))])
	}
}

func (c *portCluster) evictions() (n uint64) {
	for _, r := range c.plugin.Stats().Replicas {
		n += r.Health.Evictions
	}
	return n
}

// TestSaturatedReplicaPools: the application's replica pools are capped
// and busy, every read waiting for a connection; the replicas are caught
// up. The checker probes on connections of its own, so no replica is
// evicted and no read moves to the primary. Probing through the
// application's pools evicted caught-up replicas in this situation.
func TestSaturatedReplicaPools(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	dbtest.Within(t, 10*time.Second, pg.WaitCaughtUp)
	for _, tt := range []struct {
		name   string
		shared func(dsn string) *sql.DB // nil: replicas opened from DSNs
		cap    int                      // SetMaxOpenConns on each replica's pool
	}{
		// rwsplit opens a pool of its own for the checker.
		{name: "dsn", cap: 2},
		// The replicas are existing *sql.DBs: the checker holds one
		// connection of each (4 is the smallest pool it holds one of),
		// and the application has the other 3.
		{name: "existing-db", cap: 4, shared: func(dsn string) *sql.DB {
			db, err := sql.Open("pgx", dsn)
			noErr(t, err)
			return db
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			log := newStateLog()
			// The health tests' probes (every 100ms, 250ms Timeout), with
			// MaxLag 2s: a checker starved of CPU by the 32 readers on a
			// loaded 2-core machine must not send a read to the primary
			// through its growing staleness bound, which is not what this
			// test is about (evictions are).
			lag := healthLag
			lag.MaxLag = 2 * time.Second
			c := openPorts(t, pg, healthConfig(log, lag), tt.shared)
			var waitsBefore int64
			for _, r := range c.plugin.Stats().Replicas {
				pool := c.plugin.ReplicaDB(r.Name)
				pool.SetMaxOpenConns(tt.cap)
				waitsBefore += pool.Stats().WaitCount
			}
			evictionsBefore := c.evictions()
			start := time.Now()

			// 32 readers on 2×cap connections, each read 40ms on the
			// server, for 30 probe intervals: a connection of the
			// application's pools is free about every 40ms/cap, so a
			// probe through them would wait for about 16 reads, longer
			// than its 250ms Timeout.
			stop := make(chan struct{})
			time.AfterFunc(30*healthLag.Interval, func() { close(stop) })
			byNode, errs := c.readLoad(t, 32, 40*time.Millisecond, stop)

			var waits int64
			for _, r := range c.plugin.Stats().Replicas {
				waits += c.plugin.ReplicaDB(r.Name).Stats().WaitCount
			}
			t.Logf("reads by node %v, errors %d, reads that waited for a pool connection %d, evictions %d", byNode, len(errs), waits-waitsBefore, c.evictions()-evictionsBefore)
			if waits-waitsBefore < 100 {
				t.Fatalf("only %d reads waited for a connection: the pools were not saturated, nothing measured", waits-waitsBefore)
			}
			reportErrs(t, errs)
			if d := c.evictions() - evictionsBefore; d != 0 {
				t.Errorf("%d evictions of caught-up replicas, want 0", d)
			}
			for _, ch := range log.snapshot() {
				if ch.at.After(start) {
					t.Errorf("%s became %v %v into the load", ch.replica, ch.to, ch.at.Sub(start).Round(time.Millisecond))
				}
			}
			if byNode["primary"] != 0 || byNode["replica1"] == 0 || byNode["replica2"] == 0 {
				t.Errorf("reads by node %v: want every read on the two replicas", byNode)
			}
		})
	}
}

// TestSaturatedPrimaryPool: every connection of the application's primary
// pool is taken. The checker samples the primary on a connection of its
// own: while the replicas are caught up they serve every read; once both
// stop replaying, no read that starts more than MaxLag after a commit is
// served by a replica that lacks it. Sampling through the application's
// pool left every lag unknown.
func TestSaturatedPrimaryPool(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	log := newStateLog()
	cfg := healthConfig(log, healthLag)
	cfg.Fallback = rwsplit.FallbackFail // reads must not queue for the saturated primary pool
	c := openPorts(t, pg, cfg, nil)
	noErr(t, c.db.Migrator().DropTable(&rtCounter{}))
	noErr(t, c.db.AutoMigrate(&rtCounter{}))
	dbtest.Within(t, 10*time.Second, pg.WaitCaughtUp)

	// A writer of the test's own, outside the saturated pool.
	direct, err := sql.Open("pgx", pg.Primary.DSN())
	noErr(t, err)
	t.Cleanup(func() { direct.Close() })

	primary, err := c.db.DB()
	noErr(t, err)
	primary.SetMaxOpenConns(2)
	for range 2 {
		conn, err := primary.Conn(t.Context())
		noErr(t, err)
		t.Cleanup(func() { conn.Close() })
	}
	if s := primary.Stats(); s.InUse != 2 || s.Idle != 0 {
		t.Fatalf("primary pool: %d in use, %d idle; want 2 and 0", s.InUse, s.Idle)
	}

	// Phase 1: the replicas are caught up, 4×MaxLag long.
	evictionsBefore := c.evictions()
	stop := make(chan struct{})
	time.AfterFunc(4*healthLag.MaxLag, func() { close(stop) })
	byNode, errs := c.readLoad(t, 4, time.Millisecond, stop)
	t.Logf("primary pool saturated, replicas caught up: reads by node %v, errors %d", byNode, len(errs))
	reportErrs(t, errs)
	if byNode["primary"] != 0 || byNode["replica1"]+byNode["replica2"] < 100 {
		t.Errorf("reads by node %v: want them all on the replicas", byNode)
	}
	if d := c.evictions() - evictionsBefore; d != 0 {
		t.Errorf("%d evictions of caught-up replicas, want 0", d)
	}
	for _, r := range c.plugin.Stats().Replicas {
		if r.Health.PrimaryErr != nil {
			t.Errorf("%s: the checker could not sample the primary: %v", r.Name, r.Health.PrimaryErr)
		}
	}

	// Phase 2: both replicas stop replaying, and a row is committed.
	for _, r := range pg.Replicas {
		noErr(t, r.PauseReplay(t.Context()))
		t.Cleanup(func() { _ = r.ResumeReplay(context.Background()) })
	}
	paused := time.Now()
	_, err = direct.ExecContext(t.Context(), "INSERT INTO rt_counters (id, v) VALUES (7, 0)")
	noErr(t, err)
	bound := time.Now().Add(healthLag.MaxLag)

	var after, stale, noReplica int
	for time.Now().Before(bound.Add(500 * time.Millisecond)) { // a measurement window, not a wait
		started := time.Now()
		var port int
		var found bool
		err := c.db.Raw("SELECT inet_server_port(), EXISTS (SELECT 1 FROM rt_counters WHERE id = 7)").Row().Scan(&port, &found)
		switch {
		case errors.Is(err, rwsplit.ErrNoReplica):
			if started.After(bound) {
				after++
				noReplica++
			}
		case err != nil:
			t.Fatalf("read: %v", err)
		case started.After(bound):
			after++
			if !found {
				stale++
				t.Errorf("a read %v after the commit, on %s, lacked the row", started.Sub(bound.Add(-healthLag.MaxLag)).Round(time.Millisecond), c.nodeOf[port])
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("replicas paused: %d reads after MaxLag, %d without the row, %d refused with ErrNoReplica", after, stale, noReplica)
	if after < 20 {
		t.Fatalf("only %d reads after MaxLag: nothing measured", after)
	}
	// The checker measured the lag: both replicas are evicted (bound:
	// MaxLag, plus EvictAfter Intervals, plus a Timeout, with slack for a
	// loaded machine).
	for _, r := range c.plugin.Stats().Replicas {
		log.wait(t, r.Name, lagcheck.Evicted, paused, 5*time.Second)
	}
}
