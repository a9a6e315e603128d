package rwsplit_test

import (
	"database/sql"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/policy"
)

// countOf returns how many of nodes are name.
func countOf(nodes []string, name string) int {
	return len(nodes) - len(slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return n == name }))
}

// pgDialector is GORM's PostgreSQL dialector over a testdb pool.
func pgDialector(db *sql.DB) gorm.Dialector { return postgres.New(postgres.Config{Conn: db}) }

// underLoad runs readers goroutines that call read until the returned
// stop is called; stop waits for them and fails the test if any call
// failed. It returns how many calls ran.
func underLoad(t *testing.T, readers int, read func(i int) error) (stop func() int64) {
	t.Helper()
	var (
		done   = make(chan struct{})
		wg     sync.WaitGroup
		calls  atomic.Int64
		mu     sync.Mutex
		failed []error
	)
	for i := range readers {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				calls.Add(1)
				if err := read(i); err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
				}
			}
		})
	}
	var once sync.Once
	return func() int64 {
		once.Do(func() {
			close(done)
			wg.Wait()
			if len(failed) > 0 {
				t.Errorf("%d of %d calls under load failed, the first: %v", len(failed), calls.Load(), failed[0])
			}
		})
		return calls.Load()
	}
}

// postReads is the background load of the control tests: reads by primary
// key, and every fourth reader read-only transactions of two reads.
func postReads(db *gorm.DB) func(i int) error {
	return func(i int) error {
		var p rtPost
		if i%4 != 3 {
			return db.First(&p, 1).Error
		}
		return db.Clauses(rwsplit.Replica{}).Transaction(func(tx *gorm.DB) error {
			if err := tx.First(&p, 1).Error; err != nil {
				return err
			}
			return tx.Take(&p).Error
		})
	}
}

// fgReads runs 40 reads and returns the nodes that served them, as the
// driver recorded them. The table alias fgq tells them from the load's.
func fgReads(t *testing.T, c *cluster) []string {
	t.Helper()
	return c.served("fgq", func() {
		for range 40 {
			var p rtPost
			noErr(t, c.DB.Table("rt_posts AS fgq").Where("fgq.id = ?", 1).Take(&p).Error)
		}
	})
}

func replicaNames(s rwsplit.Stats) []string {
	var names []string
	for _, r := range s.Replicas {
		names = append(names, r.Name)
	}
	return names
}

// wantClosed fails the test unless db was closed.
func wantClosed(t *testing.T, name string, db *sql.DB) {
	t.Helper()
	if err := db.Ping(); err == nil || err.Error() != "sql: database is closed" {
		t.Errorf("%s's pool: Ping = %v, want sql: database is closed", name, err)
	}
	if n := db.Stats().OpenConnections; n != 0 {
		t.Errorf("%s's pool has %d open connections", name, n)
	}
}

// TestAddRemoveReplica: the plugin starts with one replica of two; under
// load (8 goroutines reading, 2 of them in read-only transactions) the
// second is added and serves reads, then removed: no statement runs on it
// afterwards, a transaction open on it holds RemoveReplica until it
// commits, its pool is closed, and no caller sees an error. The last
// replica can go too, and reads then follow Fallback. Asserted at the
// driver.
func TestAddRemoveReplica(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	c := &cluster{t: t, rec: &testdb.Recorder{}}
	c.open(pgDialector(pg.Primary.OpenDB(c.rec)),
		[]rwsplit.Replica{{Name: "replica1", Dialector: pgDialector(pg.Replicas[0].OpenDB(c.rec))}},
		clusterOpts{config: rwsplit.Config{Policy: policy.RoundRobin()}})
	setupPosts(t, c, pg.WaitCaughtUp)
	stop := underLoad(t, 8, postReads(c.DB))
	defer stop()
	replica2 := pg.Replicas[1].OpenDB(c.rec)

	t.Run("add under load", func(t *testing.T) {
		noErr(t, c.Plugin.AddReplica(rwsplit.Replica{Name: "replica2", Dialector: pgDialector(replica2)}))
		nodes := fgReads(t, c)
		if !allOn(nodes, isReplica) || !slices.Contains(nodes, "replica2") {
			t.Errorf("after AddReplica, reads ran on %v, want replica2 among replicas", nodes)
		}
		s := c.Plugin.Stats()
		if got := replicaNames(s); !slices.Equal(got, []string{"replica1", "replica2"}) || !s.Replicas[1].Eligible {
			t.Errorf("Stats.Replicas = %v, replica2 eligible %v", got, len(s.Replicas) > 1 && s.Replicas[1].Eligible)
		}
		t.Logf("added: %d of 40 reads on replica2", countOf(nodes, "replica2"))
	})
	t.Run("remove under load", func(t *testing.T) {
		before := c.Plugin.Stats().Replicas[1].Served
		start := time.Now()
		noErr(t, c.Plugin.RemoveReplica("replica2"))
		took := time.Since(start)
		mark := c.rec.Mark()
		nodes := fgReads(t, c)
		time.Sleep(100 * time.Millisecond) // more of the load's reads
		var after []string
		for _, e := range c.rec.Since(mark) {
			after = append(after, e.Node)
		}
		if slices.Contains(after, "replica2") || !slices.Contains(nodes, "replica1") {
			t.Errorf("after RemoveReplica, %d statements ran on %v", len(after), slices.Compact(slices.Sorted(slices.Values(after))))
		}
		wantClosed(t, "replica2", replica2)
		if got := replicaNames(c.Plugin.Stats()); !slices.Equal(got, []string{"replica1"}) || c.Plugin.ReplicaDB("replica2") != nil {
			t.Errorf("after RemoveReplica, Stats.Replicas = %v", got)
		}
		t.Logf("removed in %v after serving %d statements; %d statements since, none on replica2", took.Round(time.Millisecond), before, len(after))
	})
	t.Run("remove waits for a transaction", func(t *testing.T) {
		replica2 = pg.Replicas[1].OpenDB(c.rec)
		noErr(t, c.Plugin.AddReplica(rwsplit.Replica{Name: "replica2", Dialector: pgDialector(replica2)}))
		tx := c.DB.Clauses(rwsplit.Replica{Name: "replica2"}).Begin()
		noErr(t, tx.Error)
		inTx := func() []string {
			return c.served("txq", func() {
				var p rtPost
				noErr(t, tx.Table("rt_posts AS txq").Take(&p).Error)
			})
		}
		if got := inTx(); !slices.Equal(got, []string{"replica2"}) {
			t.Fatalf("the transaction's read ran on %v", got)
		}
		done := make(chan error, 1)
		go func() { done <- c.Plugin.RemoveReplica("replica2") }()
		select {
		case err := <-done:
			t.Fatalf("RemoveReplica returned (%v) while a transaction was open on the replica", err)
		case <-time.After(200 * time.Millisecond):
		}
		if nodes := fgReads(t, c); slices.Contains(nodes, "replica2") {
			t.Errorf("while replica2 drains, reads ran on %v", nodes)
		}
		if got := inTx(); !slices.Equal(got, []string{"replica2"}) {
			t.Errorf("the open transaction's next read ran on %v", got)
		}
		noErr(t, tx.Commit().Error)
		select {
		case err := <-done:
			noErr(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("RemoveReplica still waiting 5s after the transaction committed")
		}
		wantClosed(t, "replica2", replica2)
	})
	t.Run("remove the last", func(t *testing.T) {
		noErr(t, c.Plugin.RemoveReplica("replica1"))
		if nodes := fgReads(t, c); !allOn(nodes, func(n string) bool { return n == "primary" }) {
			t.Errorf("with no replica, reads ran on %v, want the primary (FallbackPrimary)", nodes)
		}
		if s := c.Plugin.Stats(); len(s.Replicas) != 0 || s.Routes[rwsplit.ReasonNoReplica] == 0 {
			t.Errorf("with no replica: Replicas %v, no-replica routes %d", replicaNames(s), s.Routes[rwsplit.ReasonNoReplica])
		}
		noErr(t, c.Plugin.AddReplica(rwsplit.Replica{Name: "replica1", Dialector: pgDialector(pg.Replicas[0].OpenDB(c.rec))}))
		// AddReplica returns after a probe that bounds the lag, or that
		// evicted the replica: on a loaded machine the first probe may
		// time out, and readmission takes ReadmitAfter more. Wait for it
		// to be eligible (the event), then every read must be there.
		deadline := time.Now().Add(10 * time.Second)
		for !c.Plugin.Stats().Replicas[0].Eligible {
			if time.Now().After(deadline) {
				t.Fatalf("replica1 added again, not eligible after 10s: %+v", c.Plugin.Stats().Replicas[0].Health)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if nodes := fgReads(t, c); !allOn(nodes, func(n string) bool { return n == "replica1" }) {
			t.Errorf("replica1 added again, reads ran on %v", nodes)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			give func() error
			want error
		}{
			{name: "duplicate name", give: func() error {
				return c.Plugin.AddReplica(rwsplit.Replica{Name: "replica1", Dialector: postgres.Open(pg.Replicas[1].DSN())})
			}, want: rwsplit.ErrConfig},
			{name: "the primary's name", give: func() error {
				return c.Plugin.AddReplica(rwsplit.Replica{Name: "primary", Dialector: postgres.Open(pg.Replicas[1].DSN())})
			}, want: rwsplit.ErrConfig},
			{name: "no name", give: func() error {
				return c.Plugin.AddReplica(rwsplit.Replica{Dialector: postgres.Open(pg.Replicas[1].DSN())})
			}, want: rwsplit.ErrConfig},
			{name: "nil Dialector", give: func() error { return c.Plugin.AddReplica(rwsplit.Replica{Name: "x"}) }, want: rwsplit.ErrConfig},
			{name: "negative weight", give: func() error {
				return c.Plugin.AddReplica(rwsplit.Replica{Name: "x", Weight: -1, Dialector: postgres.Open(pg.Replicas[1].DSN())})
			}, want: rwsplit.ErrConfig},
			{name: "unknown name", give: func() error { return c.Plugin.RemoveReplica("nope") }, want: rwsplit.ErrUnknownReplica},
			{name: "removed name", give: func() error { return c.Plugin.RemoveReplica("replica2") }, want: rwsplit.ErrUnknownReplica},
		} {
			if err := tt.give(); !errors.Is(err, tt.want) {
				t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
			}
		}
	})
	t.Run("not a replica", func(t *testing.T) {
		db := pg.Primary.OpenDB(c.rec)
		err := c.Plugin.AddReplica(rwsplit.Replica{Name: "imposter", Dialector: pgDialector(db)})
		if !errors.Is(err, rwsplit.ErrConfig) || !errors.Is(err, lagcheck.ErrNotReplica) {
			t.Errorf("AddReplica of the primary = %v, want ErrConfig and lagcheck.ErrNotReplica", err)
		}
		wantClosed(t, "imposter", db)
		if got := replicaNames(c.Plugin.Stats()); !slices.Equal(got, []string{"replica1"}) {
			t.Errorf("Stats.Replicas = %v", got)
		}
	})
	t.Logf("%d background calls, none failed", stop())
}

// TestAddRemoveReplicaMariaDB: AddReplica and RemoveReplica on MariaDB
// GTID replication, under load, asserted at the driver: the added replica
// serves reads; the removed one serves nothing after RemoveReplica returns
// and its pool is closed; the primary given as a replica is refused; no
// caller sees an error.
func TestAddRemoveReplicaMariaDB(t *testing.T) {
	my := dbtest.MariaDB(t, 2)
	myDialector := func(db *sql.DB) gorm.Dialector { return mysql.New(mysql.Config{Conn: db}) }
	c := &cluster{t: t, rec: &testdb.Recorder{}}
	c.open(myDialector(my.Primary.OpenDB(c.rec)),
		[]rwsplit.Replica{{Name: "replica1", Dialector: myDialector(my.Replicas[0].OpenDB(c.rec))}},
		clusterOpts{config: rwsplit.Config{Policy: policy.RoundRobin()}})
	setupPosts(t, c, my.WaitCaughtUp)
	stop := underLoad(t, 8, postReads(c.DB))
	defer stop()

	replica2 := my.Replicas[1].OpenDB(c.rec)
	noErr(t, c.Plugin.AddReplica(rwsplit.Replica{Name: "replica2", Dialector: myDialector(replica2)}))
	deadline := time.Now().Add(10 * time.Second) // the event: replica2 eligible
	for s := c.Plugin.Stats(); len(s.Replicas) < 2 || !s.Replicas[1].Eligible; s = c.Plugin.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("replica2 added, not eligible after 10s: %+v", s.Replicas)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if nodes := fgReads(t, c); !allOn(nodes, isReplica) || !slices.Contains(nodes, "replica2") {
		t.Errorf("after AddReplica, reads ran on %v, want replica2 among replicas", nodes)
	}

	noErr(t, c.Plugin.RemoveReplica("replica2"))
	mark := c.rec.Mark()
	nodes := fgReads(t, c)
	var after []string
	for _, e := range c.rec.Since(mark) {
		after = append(after, e.Node)
	}
	if slices.Contains(after, "replica2") || !allOn(nodes, func(n string) bool { return n == "replica1" }) {
		t.Errorf("after RemoveReplica, statements ran on %v", slices.Compact(slices.Sorted(slices.Values(after))))
	}
	wantClosed(t, "replica2", replica2)

	imposter := my.Primary.OpenDB(c.rec)
	err := c.Plugin.AddReplica(rwsplit.Replica{Name: "imposter", Dialector: myDialector(imposter)})
	if !errors.Is(err, rwsplit.ErrConfig) || !errors.Is(err, lagcheck.ErrNotReplica) {
		t.Errorf("AddReplica of the primary = %v, want ErrConfig and lagcheck.ErrNotReplica", err)
	}
	wantClosed(t, "imposter", imposter)
	if got := replicaNames(c.Plugin.Stats()); !slices.Equal(got, []string{"replica1"}) {
		t.Errorf("Stats.Replicas = %v, want [replica1]", got)
	}
	t.Logf("%d background calls, none failed", stop())
}

// TestControlsNeedARunningPlugin: before db.Use and after Close, the
// controls return errors.
func TestControlsNeedARunningPlugin(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	idle := rwsplit.New(rwsplit.Config{Replicas: []rwsplit.Replica{{Name: "r", Dialector: postgres.Open(pg.Replicas[0].DSN())}}})
	c := pgOn(t, pg, clusterOpts{})
	noErr(t, c.Plugin.Close())
	add := func(p *rwsplit.Plugin) error {
		return p.AddReplica(rwsplit.Replica{Name: "x", Dialector: postgres.Open(pg.Replicas[1].DSN())})
	}
	for _, tt := range []struct {
		name string
		give error
		want error
	}{
		{name: "AddReplica before db.Use", give: add(idle), want: rwsplit.ErrConfig},
		{name: "RemoveReplica before db.Use", give: idle.RemoveReplica("r"), want: rwsplit.ErrConfig},
		{name: "SetMaxLag before db.Use", give: idle.SetMaxLag(time.Second), want: rwsplit.ErrConfig},
		{name: "AddReplica after Close", give: add(c.Plugin), want: rwsplit.ErrClosed},
		{name: "RemoveReplica after Close", give: c.Plugin.RemoveReplica("replica1"), want: rwsplit.ErrClosed},
		{name: "SetMaxLag after Close", give: c.Plugin.SetMaxLag(time.Second), want: rwsplit.ErrClosed},
	} {
		if !errors.Is(tt.give, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, tt.give, tt.want)
		}
	}
}

// TestSetMaxLag: replica1 applies each commit 400ms late while a writer
// commits every 10ms, so its lag reads about 400ms: under MaxLag 1s it
// serves reads. Lowered to 250ms under load, the next reads avoid it, and
// the checker evicts it; raised to 2s, it is readmitted and serves again.
// Asserted at the driver. The probe Timeout is well above the Interval, so
// that probes slowed by -race on two busy cores do not fail.
func TestSetMaxLag(t *testing.T) {
	c, pg := pgCluster(t, clusterOpts{config: rwsplit.Config{Policy: policy.RoundRobin(),
		Lag: lagcheck.Config{Interval: 100 * time.Millisecond, Timeout: time.Second, MaxLag: time.Second}}})
	setupPosts(t, c, pg.WaitCaughtUp)
	stop := underLoad(t, 6, func(i int) error {
		if i == 0 {
			time.Sleep(10 * time.Millisecond)
			return c.DB.Create(&rtPost{Author: "writer", Body: "lag"}).Error
		}
		return postReads(c.DB)(i)
	})
	defer stop()
	dbtest.Must(t, pg.Replicas[0].SetApplyDelay(t.Context(), 400*time.Millisecond))
	replica1 := func() rwsplit.ReplicaStats { return c.Plugin.Stats().Replicas[0] }
	eventually(t, 5*time.Second, "replica1's lag reads 300ms or more", func() bool {
		h := replica1().Health
		return h.LagKnown && h.Lag >= 300*time.Millisecond
	})
	if nodes := fgReads(t, c); !slices.Contains(nodes, "replica1") {
		t.Fatalf("at a %v lag under MaxLag 1s, reads ran on %v, want replica1 among them", replica1().Health.Lag, nodes)
	}

	noErr(t, c.Plugin.SetMaxLag(250*time.Millisecond))
	nodes := fgReads(t, c)
	if slices.Contains(nodes, "replica1") || !slices.Contains(nodes, "replica2") {
		t.Errorf("right after SetMaxLag(250ms), reads ran on %v, want none on replica1", nodes)
	}
	if s := c.Plugin.Stats(); s.MaxLag != 250*time.Millisecond || s.ReadmitLag != 125*time.Millisecond {
		t.Errorf("Stats: MaxLag %v, ReadmitLag %v; want 250ms, 125ms", s.MaxLag, s.ReadmitLag)
	}
	evicted := eventually(t, 3*time.Second, "the checker evicts replica1", func() bool { return replica1().Health.State == lagcheck.Evicted })
	t.Logf("lowered: replica1 at %v lag; of 40 reads %d on replica2, %d on the primary; evicted after %v",
		replica1().Health.Lag.Round(time.Millisecond), countOf(nodes, "replica2"), countOf(nodes, "primary"), evicted.Round(time.Millisecond))

	for _, bad := range []time.Duration{0, -time.Second, 100 * time.Millisecond} {
		if err := c.Plugin.SetMaxLag(bad); !errors.Is(err, rwsplit.ErrConfig) {
			t.Errorf("SetMaxLag(%v) = %v, want ErrConfig", bad, err)
		}
	}
	if s := c.Plugin.Stats(); s.MaxLag != 250*time.Millisecond {
		t.Errorf("a refused SetMaxLag changed MaxLag to %v", s.MaxLag)
	}

	noErr(t, c.Plugin.SetMaxLag(2*time.Second))
	readmitted := eventually(t, 5*time.Second, "reads on replica1 again", func() bool { return slices.Contains(fgReads(t, c), "replica1") })
	t.Logf("raised: replica1 serves again after %v, state %v", readmitted.Round(time.Millisecond), replica1().Health.State)
}

// eventually polls cond every 10ms until it holds, and returns how long
// that took; it fails the test after limit.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}
