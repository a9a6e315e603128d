package lagcheck

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"go.uber.org/goleak"

	"github.com/rwsplit/rwsplit/internal/connerr"
)

const (
	tick = 100 * time.Millisecond
	poll = time.Millisecond // waitFor's granularity
)

// waitFor sleeps in 1ms steps of the bubble's fake clock until cond holds,
// and returns how long that took; it fails the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not after %v", what, limit)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// TestStartReflectsReality: the state after Start is the first round's,
// without waiting for EvictAfter readings.
func TestStartReflectsReality(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, f := newFakeChecker(t, Config{Interval: tick, MaxLag: time.Second}, 4)
		f.set(0, fakeReplica{lag: 10 * time.Millisecond})
		f.set(1, fakeReplica{err: fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED)})
		f.set(2, fakeReplica{lag: 5 * time.Second})
		f.set(3, fakeReplica{lag: 700 * time.Millisecond}) // between the marks: healthy, not good enough to readmit
		if got := c.State(1); got != Healthy {
			t.Errorf("before Start, state %v, want healthy", got)
		}
		start := time.Now()
		c.Start(context.Background())
		if took := time.Since(start); took != settleTime(tick) {
			t.Errorf("Start took %v of fake time with instant probes, want the settle time %v", took, settleTime(tick))
		}
		want := []State{Healthy, Evicted, Evicted, Healthy}
		for i, w := range want {
			if got := c.State(i); got != w {
				t.Errorf("replica %d: %v, want %v", i, got, w)
			}
		}
		st := c.Status()
		if st[0].Name != "r0" || !st[0].LagKnown || st[0].Lag != 10*time.Millisecond || st[0].LastErr != nil || st[0].LastProbe.IsZero() {
			t.Errorf("status 0 = %+v", st[0])
		}
		if !errors.Is(st[1].LastErr, syscall.ECONNREFUSED) || st[1].Evictions != 1 || st[1].LagKnown {
			t.Errorf("status 1 = %+v", st[1])
		}
		if lag, ok := c.Lag(2); !ok || lag != 5*time.Second {
			t.Errorf("Lag(2) = %v, %v", lag, ok)
		}
		if _, ok := c.Lag(1); ok {
			t.Error("Lag(1) known after a failed probe")
		}
		c.Close()
	})
}

// TestEvictionAndReadmissionTiming: evicted within 2×Interval after the
// readings go bad (EvictAfter 2), readmitted within (M+1)×Interval after
// they recover (ReadmitAfter M=3).
func TestEvictionAndReadmissionTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu      sync.Mutex
			changes []string
			c       *Checker
			f       *fakeProbe
		)
		cfg := Config{Interval: tick, MaxLag: 500 * time.Millisecond, OnStateChange: func(ch Change) {
			// Runs outside every lock: the Checker's own methods,
			// Status included (it takes the replica's lock), work here.
			st := c.Status()[ch.Index]
			mu.Lock()
			changes = append(changes, fmt.Sprintf("%s %v->%v", ch.Replica, ch.From, ch.To))
			mu.Unlock()
			_ = st
		}}
		c, f = newFakeChecker(t, cfg, 2)
		f.set(0, fakeReplica{lag: 10 * time.Millisecond})
		f.set(1, fakeReplica{lag: 10 * time.Millisecond})
		c.Start(context.Background())
		defer c.Close()

		time.Sleep(tick/2 + 3*tick) // mid-interval
		f.set(0, fakeReplica{lag: 800 * time.Millisecond})
		evictedAfter := waitFor(t, 10*tick, "eviction", func() bool { return c.State(0) == Evicted })
		// Two bad readings (EvictAfter), an interval apart; the first may
		// come at the very instant the lag goes bad.
		if evictedAfter > 2*tick+poll || evictedAfter < tick {
			t.Errorf("evicted %v after the lag went bad; want within [1, 2] intervals (%v)", evictedAfter, 2*tick)
		}
		time.Sleep(3 * tick)
		f.set(0, fakeReplica{lag: 10 * time.Millisecond})
		readmittedAfter := waitFor(t, 10*tick, "readmission", func() bool { return c.State(0) == Healthy })
		// Three good readings (ReadmitAfter), an interval apart.
		if readmittedAfter > 4*tick+poll || readmittedAfter < 2*tick {
			t.Errorf("readmitted %v after recovery; want within [2, 4] intervals", readmittedAfter)
		}
		t.Logf("evicted after %v, readmitted after %v (Interval %v)", evictedAfter, readmittedAfter, tick)
		if got := c.State(1); got != Healthy {
			t.Errorf("replica 1 is %v", got)
		}
		c.Close()
		st := c.Status()[0]
		if st.Evictions != 1 || st.Readmissions != 1 {
			t.Errorf("evictions %d readmissions %d", st.Evictions, st.Readmissions)
		}
		mu.Lock()
		defer mu.Unlock()
		want := "[r0 healthy->evicted r0 evicted->probation r0 probation->healthy]"
		if fmt.Sprint(changes) != want {
			t.Errorf("changes %v, want %v", changes, want)
		}
	})
}

// TestHungReplica: a replica that hangs times out after Timeout on every
// probe, is evicted after EvictAfter timeouts, and the other replica's
// loop keeps its cadence.
func TestHungReplica(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, f := newFakeChecker(t, Config{Interval: tick}, 2) // Timeout = Interval
		f.set(0, fakeReplica{lag: time.Millisecond})
		f.set(1, fakeReplica{lag: time.Millisecond})
		c.Start(context.Background())
		time.Sleep(tick / 2)
		f.set(1, fakeReplica{hang: true})
		evictedAfter := waitFor(t, 10*tick, "eviction of the hung replica", func() bool { return c.State(1) == Evicted })
		st := c.Status()[1]
		if !connerr.IsTimeout(st.LastErr) || st.LagKnown {
			t.Errorf("hung replica status: %+v", st)
		}
		// First hung probe starts at the next tick (≤ 1 interval), each
		// takes Timeout: evicted by 1 + 2×Timeout intervals.
		if limit := tick/2 + 2*tick + settleTime(tick) + poll; evictedAfter > limit {
			t.Errorf("hung replica evicted after %v, want within %v", evictedAfter, limit)
		}
		time.Sleep(10 * tick)
		c.Close()

		probes := f.probes(0)
		for k := 2; k < len(probes); k++ { // from the first round on the ticker (Start's round is off its cadence)
			if d := probes[k].Sub(probes[k-1]); d != tick {
				t.Errorf("healthy replica probe %d came %v after the previous, want %v", k, d, tick)
			}
		}
		if len(probes) < 12 {
			t.Errorf("healthy replica probed %d times in 12 intervals", len(probes))
		}
		if got := c.State(0); got != Healthy {
			t.Errorf("healthy replica is %v", got)
		}
		t.Logf("hung replica evicted %v after it froze; healthy replica probed %d times at a steady %v", evictedAfter, len(probes), tick)
	})
}

// TestReportFailureGeneration: ReportFailure evicts at once, and a probe
// that started before it cannot readmit the replica.
func TestReportFailureGeneration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var changes []Change
		var mu sync.Mutex
		cfg := Config{Interval: tick, ReadmitAfter: 1, OnStateChange: func(ch Change) {
			mu.Lock()
			changes = append(changes, ch)
			mu.Unlock()
		}}
		c, f := newFakeChecker(t, cfg, 1)
		gate := make(chan struct{})
		f.set(0, fakeReplica{lag: time.Millisecond})
		c.Start(context.Background())
		defer c.Close()

		reported := io.ErrUnexpectedEOF
		c.ReportFailure(0, reported)
		if got := c.State(0); got != Evicted {
			t.Fatalf("after ReportFailure: %v", got)
		}
		// The next probe blocks in flight until the gate opens.
		f.setGate(0, gate)
		time.Sleep(tick) // the probe of the next round has started
		synctest.Wait()
		c.ReportFailure(0, reported) // a second failure while that probe runs
		close(gate)                  // its good result arrives, stamped with the old generation
		synctest.Wait()
		if got := c.State(0); got != Evicted {
			t.Errorf("a probe from before the failure readmitted the replica: %v", got)
		}
		f.setGate(0, nil)
		time.Sleep(tick)
		synctest.Wait()
		if got := c.State(0); got != Healthy {
			t.Errorf("a probe after the failure did not readmit: %v", got)
		}
		c.Close()
		st := c.Status()[0]
		if st.Generation != 2 || st.Evictions != 1 || st.Readmissions != 1 {
			t.Errorf("status %+v", st)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(changes) != 2 || changes[0].To != Evicted || !errors.Is(changes[0].Reading.Err, reported) || changes[0].Generation != 1 ||
			changes[1].From != Evicted || changes[1].To != Healthy || changes[1].Generation != 2 {
			t.Errorf("changes %+v", changes)
		}
		// Out of range: no panic, nothing eligible.
		c.ReportFailure(5, reported)
		c.ReportFailure(-1, reported)
		if c.State(5) != Evicted || c.Covers(5, LSNPosition(1)) {
			t.Error("out-of-range replica")
		}
		if _, ok := c.Lag(-1); ok {
			t.Error("Lag(-1) known")
		}
	})
}

// TestPrimaryDown: while the primary cannot be sampled, replicas keep
// their state (their own errors still count).
func TestPrimaryDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, f := newFakeChecker(t, Config{Interval: tick}, 3)
		f.setPrimary(LSNPosition(100), nil)
		for i := range 3 {
			f.set(i, fakeReplica{pos: LSNPosition(100)})
		}
		c.Start(context.Background())
		defer c.Close()
		if lag, ok := c.Lag(0); !ok || lag != settleTime(tick) {
			t.Errorf("caught-up replica lag %v, %v; want the settle time %v with instant probes", lag, ok, settleTime(tick))
		}
		f.setPrimary(Position{}, fmt.Errorf("dial: %w", syscall.ECONNREFUSED))
		f.set(1, fakeReplica{pos: LSNPosition(100), err: ErrNotReceiving}) // its IO thread lost the primary too
		f.set(2, fakeReplica{pos: LSNPosition(100), err: ErrReplicationStopped})
		time.Sleep(20 * tick)
		want := []State{Healthy, Healthy, Evicted}
		for i, w := range want {
			if got := c.State(i); got != w {
				t.Errorf("replica %d: %v, want %v (%+v)", i, got, w, c.Status()[i])
			}
		}
		st := c.Status()[0]
		if st.PrimaryErr == nil || st.LagKnown {
			t.Errorf("status during the primary's outage: %+v", st)
		}
	})
}

// TestCovers: Covers follows each replica's last probed position.
func TestCovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, f := newFakeChecker(t, Config{Interval: tick}, 2)
		f.setPrimary(LSNPosition(200), nil)
		f.set(0, fakeReplica{pos: LSNPosition(200)})
		f.set(1, fakeReplica{pos: LSNPosition(150)})
		if c.Covers(0, LSNPosition(1)) {
			t.Error("Covers before any probe")
		}
		c.Start(context.Background())
		defer c.Close()
		write := LSNPosition(180)
		if !c.Covers(0, write) || c.Covers(1, write) {
			t.Errorf("Covers(180): r0 %v r1 %v, want true false", c.Covers(0, write), c.Covers(1, write))
		}
		if st := c.Status()[1]; st.Behind != 50 || st.ReplayPosition.String() != "0/96" {
			t.Errorf("status 1: behind %d at %v", st.Behind, st.ReplayPosition)
		}
		f.set(1, fakeReplica{pos: LSNPosition(200)})
		took := waitFor(t, 5*tick, "Covers", func() bool { return c.Covers(1, write) })
		if took > tick+settleTime(tick)+poll {
			t.Errorf("Covers became true %v after the replica replayed, want within one interval", took)
		}
		// A failing probe does not forget the position.
		f.set(1, fakeReplica{err: errors.New("boom")})
		time.Sleep(2 * tick)
		if !c.Covers(1, write) || c.Status()[1].ReplayPosition.String() != "0/C8" {
			t.Errorf("position forgotten after a failed probe: %v", c.Status()[1].ReplayPosition)
		}
		if n := testing.AllocsPerRun(100, func() { c.Covers(0, write) }); n != 0 {
			t.Errorf("Checker.Covers allocates %v times", n)
		}
	})
}

func TestLifecycle(t *testing.T) {
	// Registered first, so it runs last: after the sqlmock pools close.
	ignore := goleak.IgnoreCurrent() // TestMain's (testdb.Main's) own goroutines
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	// Close without Start; Close twice; Start after Close.
	c, f := newFakeChecker(t, Config{Interval: 5 * time.Millisecond}, 2)
	f.set(0, fakeReplica{lag: time.Millisecond})
	c.Close()
	c.Close()
	c.Start(context.Background())
	if f.primaries != 0 {
		t.Errorf("Start after Close probed the primary %d times", f.primaries)
	}

	// Start, run, Close concurrently from several goroutines.
	c, f = newFakeChecker(t, Config{Interval: 5 * time.Millisecond, OnStateChange: func(Change) {}}, 3)
	f.set(2, fakeReplica{hang: true})
	c.Start(context.Background())
	c.Start(context.Background()) // no-op
	time.Sleep(30 * time.Millisecond)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { c.Close() })
	}
	wg.Wait()
	c.ReportFailure(0, io.EOF) // after Close: harmless
}

// TestStartContext: ctx bounds how long Start waits for the first round.
func TestStartContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, f := newFakeChecker(t, Config{Interval: tick, Timeout: time.Hour}, 1)
		f.set(0, fakeReplica{hang: true})
		ctx, cancel := context.WithTimeout(context.Background(), tick)
		defer cancel()
		start := time.Now()
		c.Start(ctx)
		if took := time.Since(start); took != tick {
			t.Errorf("Start returned after %v, want %v", took, tick)
		}
		c.Close()
	})
}

func TestPrimaryPosition(t *testing.T) {
	db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mock.ExpectQuery(pgPrimarySQL).WillReturnRows(sqlmock.NewRows([]string{"lsn"}).AddRow("0/3000148"))
	c, err := New(Config{Probe: newFakeProbe()}, "postgres", db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if pos, err := c.PrimaryPosition(context.Background()); err != nil || pos.String() != "0/3000148" {
		t.Errorf("PrimaryPosition = %v, %v", pos, err)
	}
	c2, err := New(Config{Heartbeat: &Heartbeat{}}, "sqlite", db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.PrimaryPosition(context.Background()); !errors.Is(err, ErrNoPosition) {
		t.Errorf("PrimaryPosition without positions = %v", err)
	}
}

// TestCommitPosition: marks read the WAL insert position, on the
// connection given (nil: the primary pool), and the MariaDB GTID position.
func TestCommitPosition(t *testing.T) {
	tests := []struct {
		name    string
		dialect string
		query   string
		row     []driver.Value
		pinned  bool
		want    string
	}{
		{name: "postgres, pool", dialect: "postgres", query: pgCommitSQL, row: []driver.Value{"0/3000150", int64(8192), int64(16 << 20)}, want: "0/3000150"},
		{name: "postgres, pinned connection", dialect: "postgres", query: pgCommitSQL, row: []driver.Value{"0/3000150", int64(8192), int64(16 << 20)}, pinned: true, want: "0/3000150"},
		{name: "postgres, past a page header", dialect: "postgres", query: pgCommitSQL, row: []driver.Value{"0/3002018", int64(8192), int64(16 << 20)}, want: "0/3002000"},
		{name: "postgres, past a segment header", dialect: "postgres", query: pgCommitSQL, row: []driver.Value{"0/4000028", int64(8192), int64(16 << 20)}, want: "0/4000000"},
		{name: "postgres, a record ending 40 bytes into a page", dialect: "postgres", query: pgCommitSQL, row: []driver.Value{"0/3002028", int64(8192), int64(16 << 20)}, want: "0/3002028"},
		{name: "mariadb", dialect: "mariadb", query: mariaPrimarySQL, row: []driver.Value{"0-1-7", int64(1)}, want: "0-1-7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			cols := []string{"pos", "a", "b"}[:len(tt.row)]
			mock.ExpectQuery(tt.query).WillReturnRows(sqlmock.NewRows(cols).AddRow(tt.row...))
			c, err := New(Config{Probe: newFakeProbe()}, tt.dialect, db, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var q Querier
			if tt.pinned {
				conn, err := db.Conn(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				q = conn
			}
			if pos, err := c.CommitPosition(context.Background(), q); err != nil || pos.String() != tt.want {
				t.Errorf("CommitPosition = %v, %v; want %s", pos, err, tt.want)
			}
			if err := mock.ExpectationsWereMet(); err != nil {
				t.Error(err)
			}
		})
	}
}

// testChecker is a Checker over reps, for the tests of its readers.
func testChecker(reps ...*replica) *Checker {
	c := &Checker{}
	c.reps.Store(&reps)
	return c
}

func TestLagNowGrowsBetweenProbes(t *testing.T) {
	c := testChecker(&replica{})
	c.replica(0).lag.Store(-1) // as New leaves them
	c.replica(0).fresh.Store(noFresh)
	if _, ok := c.LagNow(0); ok {
		t.Fatal("LagNow known before any reading")
	}
	c.replica(0).publish(Reading{Lag: 5 * time.Millisecond, LagKnown: true, At: time.Now().Add(-20 * time.Millisecond)})
	got, ok := c.LagNow(0)
	if !ok || got < 25*time.Millisecond || got > time.Second {
		t.Fatalf("LagNow = %v, %v; want about 25ms (5ms lag measured 20ms ago)", got, ok)
	}
	if lag, _ := c.Lag(0); lag != 5*time.Millisecond {
		t.Fatalf("Lag = %v, want the reading's 5ms", lag)
	}
	if _, ok := c.LagNow(7); ok {
		t.Fatal("LagNow known for an index out of range")
	}
}

// TestLagNowBound: the staleness bound grows from the newest instant the
// replica is known to have every commit before, and readings that cannot
// bound the lag (the primary cannot be sampled, the probe failed) leave it
// growing instead of making it unknown. Time is injected: ms(d) is d after
// epoch.
func TestLagNowBound(t *testing.T) {
	ms := func(d int) time.Time { return epoch.Add(time.Duration(d) * time.Millisecond) }
	down := errors.New("primary down")
	type query struct {
		at    int // ms after epoch
		want  time.Duration
		known bool
	}
	tests := []struct {
		name     string
		give     []Reading // published in order
		want     query
		wantLag  time.Duration // Lag
		lagKnown bool
	}{
		{name: "no reading", want: query{at: 100}},
		{name: "known lag grows with time",
			give:    []Reading{{Lag: 5 * time.Millisecond, LagKnown: true, At: ms(100)}},
			want:    query{at: 120, want: 25 * time.Millisecond, known: true},
			wantLag: 5 * time.Millisecond, lagKnown: true},
		{name: "primary down: unknown lag keeps the bound growing",
			give: []Reading{
				{Lag: 5 * time.Millisecond, LagKnown: true, At: ms(100)},
				{PrimaryErr: down, At: ms(300)},
				{PrimaryErr: down, At: ms(500)},
			},
			want: query{at: 900, want: 805 * time.Millisecond, known: true}},
		{name: "primary down: a covered sample newer than the last bound tightens it",
			give: []Reading{
				{Lag: 5 * time.Millisecond, LagKnown: true, At: ms(100)},
				{PrimaryErr: down, At: ms(300), fresh: ms(250)},
			},
			want: query{at: 900, want: 650 * time.Millisecond, known: true}},
		{name: "a weaker bound does not move it back",
			give: []Reading{
				{Lag: 5 * time.Millisecond, LagKnown: true, At: ms(100)},
				{PrimaryErr: down, At: ms(300), fresh: ms(50)},
			},
			want: query{at: 900, want: 805 * time.Millisecond, known: true}},
		{name: "probe error keeps the bound growing",
			give: []Reading{
				{Lag: 5 * time.Millisecond, LagKnown: true, At: ms(100)},
				{Err: ErrReplicationStopped, At: ms(300)},
			},
			want: query{at: 600, want: 505 * time.Millisecond, known: true}},
		{name: "unknown from the start: only a lower bound is no bound",
			give: []Reading{{Lag: 700 * time.Millisecond, At: ms(800)}},
			want: query{at: 900}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &replica{}
			r.lag.Store(-1)
			r.fresh.Store(noFresh)
			for _, rd := range tt.give {
				r.publish(rd)
			}
			got, known := r.lagNow(int64(ms(tt.want.at).Sub(epoch)))
			if got != tt.want.want || known != tt.want.known {
				t.Errorf("lagNow at %dms = %v, %v; want %v, %v", tt.want.at, got, known, tt.want.want, tt.want.known)
			}
			c := testChecker(r)
			if lag, ok := c.Lag(0); lag != tt.wantLag || ok != tt.lagKnown {
				t.Errorf("Lag = %v, %v; want %v, %v", lag, ok, tt.wantLag, tt.lagKnown)
			}
		})
	}
}

// TestPoolBusy: a probe cannot get a connection because the replica's pool
// (capped at 1, below the size the Checker keeps a connection of) is taken
// by the application. The wait is not the replica's fault: a healthy
// replica stays Healthy however long it lasts, its Status says
// ErrPoolBusy, and its staleness bound grows. Once a connection is free,
// probes run again, and the Checker gives the connection back after each.
func TestPoolBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{Interval: 10 * time.Millisecond, Timeout: 20 * time.Millisecond, MaxLag: time.Second}
		c, f := newFakeChecker(t, cfg, 1)
		pool := c.replica(0).conn.pool
		pool.SetMaxOpenConns(1)
		f.set(0, fakeReplica{lag: time.Millisecond})
		c.Start(t.Context())
		t.Cleanup(func() { c.Close() })
		if c.State(0) != Healthy {
			t.Fatalf("state %v after the first round, want healthy", c.State(0))
		}

		app, err := pool.Conn(t.Context()) // the application takes the only connection
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "a busy-pool reading", func() bool { return errors.Is(c.Status()[0].LastErr, ErrPoolBusy) })
		probed := len(f.probes(0))
		lagBusy, _ := c.LagNow(0)
		// 10 more rounds (each waits up to a Timeout for the connection).
		lastProbe := c.Status()[0].LastProbe
		for range 10 {
			waitFor(t, 10*time.Second, "a new reading", func() bool { return c.Status()[0].LastProbe.After(lastProbe) })
			lastProbe = c.Status()[0].LastProbe
		}
		st := c.Status()[0]
		lagNow, _ := c.LagNow(0)
		if st.State != Healthy || st.Evictions != 0 || !errors.Is(st.LastErr, ErrPoolBusy) {
			t.Errorf("after 10 rounds without a connection: %v, %d evictions, last error %v; want healthy, 0, ErrPoolBusy", st.State, st.Evictions, st.LastErr)
		}
		if got := len(f.probes(0)); got != probed {
			t.Errorf("the probe ran %d times without a connection", got-probed)
		}
		if lagNow <= lagBusy {
			t.Errorf("LagNow %v did not grow from %v while no probe ran", lagNow, lagBusy)
		}

		app.Close()
		waitFor(t, 10*time.Second, "probes once the connection is free", func() bool { return len(f.probes(0)) > probed+2 })
		if st := c.Status()[0]; st.State != Healthy || st.LastErr != nil {
			t.Errorf("after the connection was freed: %v, last error %v; want healthy, nil", st.State, st.LastErr)
		}
		// The Checker does not keep the only connection between probes.
		waitFor(t, 10*time.Second, "the connection given back", func() bool { return pool.Stats().InUse == 0 })
	})
}
