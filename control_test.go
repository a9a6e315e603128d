package rwsplit_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/fakedb"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/policy"
)

// TestOperatorControls: Drain, Undrain and SetReadsToPrimary, called while
// 8 goroutines read, take effect for the next statement, asserted at the
// driver, and no caller sees an error.
func TestOperatorControls(t *testing.T) {
	c, pg := pgCluster(t, clusterOpts{config: rwsplit.Config{Policy: policy.RoundRobin()}})
	setupPosts(t, c, pg.WaitCaughtUp)

	// Background readers, so that the controls change routing under load
	// (and -race sees them).
	var (
		stop   = make(chan struct{})
		wg     sync.WaitGroup
		errCnt atomic.Int64
	)
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var p rtPost
				if err := c.DB.First(&p, 1).Error; err != nil {
					errCnt.Add(1)
				}
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
		if n := errCnt.Load(); n > 0 {
			t.Errorf("%d background reads failed", n)
		}
	}()

	// reads runs 40 reads after the control returned and returns the
	// nodes that served them.
	// The table alias fgq tells them from the background readers'.
	reads := func(t *testing.T, db *gorm.DB) []string {
		t.Helper()
		return c.served("fgq", func() {
			for range 40 {
				var p rtPost
				noErr(t, db.Table("rt_posts AS fgq").Where("fgq.id = ?", 1).Take(&p).Error)
			}
		})
	}
	isNot := func(name string) func(string) bool { return func(n string) bool { return n != name } }

	t.Run("drain", func(t *testing.T) {
		noErr(t, c.Plugin.Drain("replica1"))
		nodes := reads(t, c.DB)
		if !allOn(nodes, isNot("replica1")) || !slices.Contains(nodes, "replica2") {
			t.Errorf("with replica1 drained, reads ran on %v", nodes)
		}
		named := c.served("fgq", func() {
			var p rtPost
			noErr(t, c.DB.Clauses(rwsplit.Replica{Name: "replica1"}).Table("rt_posts AS fgq").Take(&p).Error)
		})
		if !allOn(named, isNot("replica1")) {
			t.Errorf("a Replica{Name: replica1} read of a drained replica ran on %v", named)
		}
		if s := c.Plugin.Stats(); !s.Replicas[0].Drained || s.Replicas[0].Eligible {
			t.Errorf("Stats of replica1: drained %v, eligible %v", s.Replicas[0].Drained, s.Replicas[0].Eligible)
		}
	})
	t.Run("undrain", func(t *testing.T) {
		noErr(t, c.Plugin.Undrain("replica1"))
		if nodes := reads(t, c.DB); !slices.Contains(nodes, "replica1") {
			t.Errorf("after Undrain, reads ran on %v, want replica1 among them", nodes)
		}
	})
	t.Run("reads to the primary", func(t *testing.T) {
		c.Plugin.SetReadsToPrimary(true)
		nodes := reads(t, c.DB)
		ro := c.served("fgq", func() {
			noErr(t, c.DB.Clauses(rwsplit.Replica{}).Transaction(func(tx *gorm.DB) error {
				var p rtPost
				return tx.Table("rt_posts AS fgq").Take(&p).Error
			}))
		})
		if !allOn(nodes, func(n string) bool { return n == "primary" }) || !allOn(ro, func(n string) bool { return n == "primary" }) {
			t.Errorf("with the switch on, reads ran on %v and a read-only transaction on %v", nodes, ro)
		}
		if !c.Plugin.Stats().ReadsToPrimary {
			t.Error("Stats.ReadsToPrimary is false")
		}
		c.Plugin.SetReadsToPrimary(false)
		if nodes := reads(t, c.DB); !allOn(nodes, isReplica) {
			t.Errorf("with the switch off again, reads ran on %v", nodes)
		}
	})
	t.Run("unknown names", func(t *testing.T) {
		for _, err := range []error{c.Plugin.Drain("nope"), c.Plugin.Undrain("")} {
			if !errors.Is(err, rwsplit.ErrUnknownReplica) {
				t.Errorf("got %v, want ErrUnknownReplica", err)
			}
		}
	})
}

// imposterProbe answers like freshProbe for every server but the one
// whose fakedb rows name "imposter": its first probe times out, and the
// next ones say it is not a replica, as the primary's would.
type imposterProbe struct {
	lagcheck.Probe // rwsplit.FreshProbe
	timedOut       atomic.Bool
}

func (p *imposterProbe) Replica(ctx context.Context, db lagcheck.DB, at lagcheck.Position) (lagcheck.Replay, error) {
	var (
		id   int64
		name string
		ts   time.Time
	)
	if err := db.QueryRowContext(ctx, "SELECT id, name, created_at").Scan(&id, &name, &ts); err != nil {
		return lagcheck.Replay{}, err
	}
	if name != "imposter" {
		return p.Probe.Replica(ctx, db, at)
	}
	if !p.timedOut.Swap(true) {
		return lagcheck.Replay{}, context.DeadlineExceeded
	}
	return lagcheck.Replay{}, fmt.Errorf("%w: pg_is_in_recovery() is false", lagcheck.ErrNotReplica)
}

// TestAddReplicaWaitsForAnAnswer: a new replica's first probe timed out,
// which evicts it (lagcheck's first-reading rule) but says nothing of what
// the server is. AddReplica waits for the next probe, which says the
// server is not a replica, and refuses it. (A CI run under load added the
// primary when AddReplica returned on the timeout's eviction.)
func TestAddReplicaWaitsForAnAnswer(t *testing.T) {
	db, _ := openFake(t)
	r1, _ := fakeDialector(t)
	probe := &imposterProbe{Probe: rwsplit.FreshProbe}
	cfg := rwsplit.Config{Replicas: []rwsplit.Replica{{Name: "r1", Dialector: r1}}}
	cfg.Lag.Probe, cfg.Lag.Interval = probe, 20*time.Millisecond
	p := rwsplit.New(cfg)
	noErr(t, db.Use(p))
	t.Cleanup(func() { p.Close() })

	c := &fakedb.Connector{Columns: []string{"id", "name", "created_at"}, Row: []driver.Value{int64(1), "imposter", time.Unix(0, 0)}}
	sqlDB := sql.OpenDB(c)
	t.Cleanup(func() { sqlDB.Close() })
	err := p.AddReplica(rwsplit.Replica{Name: "imposter", Dialector: postgres.New(postgres.Config{Conn: sqlDB})})
	if !probe.timedOut.Load() {
		t.Fatal("the imposter's first probe never ran")
	}
	if !errors.Is(err, rwsplit.ErrConfig) || !errors.Is(err, lagcheck.ErrNotReplica) {
		t.Errorf("AddReplica after a timed-out probe = %v, want ErrConfig and lagcheck.ErrNotReplica", err)
	}
	if got := replicaNames(p.Stats()); !slices.Equal(got, []string{"r1"}) {
		t.Errorf("Stats.Replicas = %v, want [r1]", got)
	}
}

// TestRowsErrorNotRetried: a replica that answered a read and then failed
// while the caller read the rows (a crash after the reply began: the
// chaos test met one as io.ErrUnexpectedEOF) gives the caller the error.
// The read is not served again: its rows were already the caller's.
func TestRowsErrorNotRetried(t *testing.T) {
	db, primary := openFake(t)
	dead := &fakedb.Connector{Columns: []string{"id", "name", "created_at"}, RowsErr: io.ErrUnexpectedEOF}
	deadDB := sql.OpenDB(dead)
	t.Cleanup(func() { deadDB.Close() })
	other, otherC := fakeDialector(t)
	cfg := rwsplit.Config{Replicas: []rwsplit.Replica{
		{Name: "dying", Dialector: postgres.New(postgres.Config{Conn: deadDB})},
		{Name: "other", Dialector: other},
	}}
	cfg.Lag.Probe = rwsplit.FreshProbe
	p := rwsplit.New(cfg)
	noErr(t, db.Use(p))
	t.Cleanup(func() { p.Close() })
	before := [3]int64{primary.Queries.Load(), dead.Queries.Load(), otherC.Queries.Load()}
	for _, read := range []struct {
		name string
		run  func(*gorm.DB) error
	}{
		{"Raw Scan", func(db *gorm.DB) error {
			var n int64
			return db.Raw("SELECT id FROM users WHERE id = ?", 1).Scan(&n).Error
		}},
		{"First", func(db *gorm.DB) error {
			var u benchUser
			return db.First(&u, 1).Error
		}},
	} {
		err := read.run(db.Clauses(rwsplit.Replica{Name: "dying"}))
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: %v, want io.ErrUnexpectedEOF", read.name, err)
		}
	}
	got := [3]int64{primary.Queries.Load() - before[0], dead.Queries.Load() - before[1], otherC.Queries.Load() - before[2]}
	if got != [3]int64{0, 2, 0} {
		t.Errorf("statements on primary, dying, other = %v, want [0 2 0]: a read whose rows failed was served again", got)
	}
	if n := p.Stats().Routes[rwsplit.ReasonRetry]; n != 0 {
		t.Errorf("%d retries, want 0", n)
	}
}
