package lagcheck

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// TestAddRemove: an added replica is probed at once and its state is that
// first reading's; a removed one stops being probed at once, reads as
// Evicted with no lag, leaves Status, and its index is never given again.
func TestAddRemove(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, f := newFakeChecker(t, Config{Interval: tick, MaxLag: time.Second}, 1)
		f.set(0, fakeReplica{lag: 10 * time.Millisecond})
		f.set(1, fakeReplica{lag: 20 * time.Millisecond})
		f.set(2, fakeReplica{err: fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED)})
		c.Start(t.Context())
		defer c.Close()

		start := time.Now()
		i, err := c.Add(t.Context(), Target{Name: "added", DB: openMock(t)})
		if err != nil || i != 1 {
			t.Fatalf("Add = %d, %v; want 1", i, err)
		}
		if took := time.Since(start); took != 0 || len(f.probes(1)) != 1 {
			t.Errorf("Add took %v of fake time and probed %d times, want at once and once", took, len(f.probes(1)))
		}
		if lag, ok := c.LagNow(1); c.State(1) != Healthy || !ok || lag > 50*time.Millisecond {
			t.Errorf("after Add: %v, LagNow %v %v; want healthy with a known lag", c.State(1), lag, ok)
		}
		if i, err := c.Add(t.Context(), Target{DB: openMock(t)}); err != nil || i != 2 || c.State(2) != Evicted {
			t.Errorf("Add of a replica that is down = %d, %v, state %v; want 2, evicted", i, err, c.State(2))
		}
		if st := c.Status(); len(st) != 3 || st[1].Name != "added" || st[2].Name != "replica2" || c.Len() != 3 {
			t.Errorf("Status = %+v, Len %d", st, c.Len())
		}

		if err := c.Remove(1); err != nil {
			t.Fatal(err)
		}
		probed := len(f.probes(1))
		time.Sleep(5 * tick)
		if got := len(f.probes(1)); got != probed {
			t.Errorf("removed replica probed %d more times", got-probed)
		}
		if _, ok := c.LagNow(1); c.State(1) != Evicted || ok || c.Covers(1, LSNPosition(0)) {
			t.Errorf("removed replica: %v, lag known %v", c.State(1), ok)
		}
		if st := c.Status(); len(st) != 2 || st[0].Index != 0 || st[1].Index != 2 || c.Len() != 2 {
			t.Errorf("Status after Remove = %+v", st)
		}
		c.ReportFailure(1, errors.New("late")) // a statement still on it: nothing happens
		if i, err := c.Add(t.Context(), Target{DB: openMock(t)}); err != nil || i != 3 {
			t.Errorf("Add after Remove = %d, %v; want the new index 3", i, err)
		}
		if len(f.probes(0)) < 5 {
			t.Errorf("replica 0 probed %d times in 5 ticks", len(f.probes(0)))
		}
	})
}

// TestRemoveCancelsProbe: Remove cancels the probe in flight and drops its
// result: no state change is reported for the removed replica.
func TestRemoveCancelsProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var changes []Change
		c, f := newFakeChecker(t, Config{Interval: tick, MaxLag: time.Second, OnStateChange: func(ch Change) { changes = append(changes, ch) }}, 2)
		c.Start(t.Context())
		defer c.Close()
		f.set(1, fakeReplica{hang: true})
		time.Sleep(tick + settleTime(tick) + time.Millisecond) // the next round's probe hangs
		if n := len(f.probes(1)); n != 2 {
			t.Fatalf("%d probes of replica 1, want Start's and a hung one", n)
		}
		start := time.Now()
		if err := c.Remove(1); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("Remove waited %v for a hung probe", took)
		}
		time.Sleep(3 * tick)
		synctest.Wait()
		if len(changes) != 0 {
			t.Errorf("changes after Remove: %+v", changes)
		}
	})
}

// TestMembershipErrors: bad indices, nil pools, and calls after Close.
func TestMembershipErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := newFakeChecker(t, Config{Interval: tick, MaxLag: time.Second}, 2)
		c.Start(t.Context())
		if err := c.Remove(0); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			name string
			give func() error
			want error
		}{
			{name: "remove twice", give: func() error { return c.Remove(0) }, want: ErrConfig},
			{name: "remove out of range", give: func() error { return c.Remove(2) }, want: ErrConfig},
			{name: "remove negative", give: func() error { return c.Remove(-1) }, want: ErrConfig},
			{name: "add a nil DB", give: func() error { _, err := c.Add(t.Context(), Target{}); return err }, want: ErrConfig},
			{name: "close", give: c.Close, want: nil},
			{name: "add after Close", give: func() error { _, err := c.Add(t.Context(), Target{DB: openMock(t)}); return err }, want: ErrClosed},
			{name: "remove after Close", give: func() error { return c.Remove(1) }, want: ErrClosed},
			{name: "SetMaxLag after Close", give: func() error { return c.SetMaxLag(time.Second) }, want: ErrClosed},
		} {
			if err := tt.give(); !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
			}
		}
	})
}

// TestSetMaxLag: the next readings are judged against the new MaxLag and,
// when it was defaulted, the new ReadmitLag (MaxLag/2).
func TestSetMaxLag(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, f := newFakeChecker(t, Config{Interval: tick, MaxLag: time.Second}, 1)
		f.set(0, fakeReplica{lag: 300 * time.Millisecond})
		c.Start(t.Context())
		defer c.Close()
		if c.State(0) != Healthy {
			t.Fatalf("state %v at a 300ms lag under MaxLag 1s", c.State(0))
		}
		if err := c.SetMaxLag(200 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if cfg := c.Config(); cfg.MaxLag != 200*time.Millisecond || cfg.ReadmitLag != 100*time.Millisecond || cfg.Interval != tick {
			t.Errorf("Config after SetMaxLag(200ms): MaxLag %v, ReadmitLag %v, Interval %v", cfg.MaxLag, cfg.ReadmitLag, cfg.Interval)
		}
		took := waitFor(t, 10*tick, "evicted under the lowered MaxLag", func() bool { return c.State(0) == Evicted })
		if took > 2*tick+2*settleTime(tick) {
			t.Errorf("evicted %v after SetMaxLag, want within EvictAfter (2) rounds", took)
		}
		if err := c.SetMaxLag(2 * time.Second); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*tick, "readmitted under the raised MaxLag", func() bool { return c.State(0) == Healthy })
	})
}

func TestSetMaxLagErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		give time.Duration
		want error // nil: accepted
	}{
		{name: "zero", cfg: Config{}, give: 0, want: ErrConfig},
		{name: "negative", cfg: Config{}, give: -time.Second, want: ErrConfig},
		{name: "at the Interval", cfg: Config{Interval: tick, MaxLag: time.Second}, give: tick, want: ErrConfig},
		{name: "below a defaulted Interval", cfg: Config{MaxLag: time.Second}, give: 200 * time.Millisecond, want: ErrConfig},
		{name: "below a ReadmitLag that was set", cfg: Config{Interval: tick, MaxLag: time.Second, ReadmitLag: 500 * time.Millisecond}, give: 400 * time.Millisecond, want: ErrConfig},
		{name: "at a ReadmitLag that was set", cfg: Config{Interval: tick, MaxLag: time.Second, ReadmitLag: 500 * time.Millisecond}, give: 500 * time.Millisecond},
		{name: "above the Interval", cfg: Config{Interval: tick, MaxLag: time.Second}, give: 2 * tick},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newFakeChecker(t, tt.cfg, 1)
			defer c.Close()
			before := c.Config()
			err := c.SetMaxLag(tt.give)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("SetMaxLag(%v) = %v, want %v", tt.give, err, tt.want)
			}
			if after := c.Config(); err != nil && (after.MaxLag != before.MaxLag || after.ReadmitLag != before.ReadmitLag) {
				t.Errorf("a refused SetMaxLag changed MaxLag %v→%v, ReadmitLag %v→%v", before.MaxLag, after.MaxLag, before.ReadmitLag, after.ReadmitLag)
			}
			if after := c.Config(); err == nil && after.MaxLag != tt.give {
				t.Errorf("MaxLag %v after SetMaxLag(%v)", after.MaxLag, tt.give)
			}
		})
	}
}
