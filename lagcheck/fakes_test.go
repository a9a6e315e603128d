package lagcheck

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
)

// openMock returns a sqlmock *sql.DB that is closed with the test.
func openMock(t testing.TB) *sql.DB {
	t.Helper()
	db, _, err := sqlmock.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

// fakeReplica is what the fake probe answers for one replica.
type fakeReplica struct {
	lag  time.Duration // LagAtMost
	err  error         // returned as the probe error
	hang bool          // block until the probe's context ends
	gate chan struct{} // if set, block until it is closed (or the context ends)
	pos  Position
}

// fakeProbe is a Probe driven by the test: it tells replicas apart by
// the index the Checker puts in the probe's context, and answers what the
// test set. It records when each
// replica was probed.
type fakeProbe struct {
	mu sync.Mutex

	replicas   map[int]fakeReplica
	primaryErr error
	primaryPos Position
	probed     map[int][]time.Time
	primaries  int
}

func newFakeProbe() *fakeProbe {
	return &fakeProbe{replicas: map[int]fakeReplica{}, probed: map[int][]time.Time{}}
}

func (f *fakeProbe) set(i int, r fakeReplica) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replicas[i] = r
}

func (f *fakeProbe) setGate(i int, gate chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.replicas[i]
	r.gate = gate
	f.replicas[i] = r
}

func (f *fakeProbe) setPrimary(pos Position, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.primaryPos, f.primaryErr = pos, err
}

func (f *fakeProbe) probes(i int) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.probed[i]...)
}

func (f *fakeProbe) Primary(ctx context.Context, db DB) (Position, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.primaries++
	return f.primaryPos, f.primaryErr
}

func (f *fakeProbe) Replica(ctx context.Context, db DB, primary Position) (Replay, error) {
	f.mu.Lock()
	i := targetIndex(ctx)
	r := f.replicas[i]
	f.probed[i] = append(f.probed[i], time.Now())
	f.mu.Unlock()
	if r.hang {
		<-ctx.Done()
		return Replay{}, ctx.Err()
	}
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return Replay{}, ctx.Err()
		}
	}
	if r.err != nil {
		return Replay{Position: r.pos}, r.err
	}
	return Replay{Position: r.pos, LagAtMost: r.lag, LagAtMostKnown: r.pos.IsZero()}, nil
}

// newFakeChecker builds a Checker over n sqlmock replicas (never queried:
// the fake probe answers for them) and returns it with its probe.
func newFakeChecker(t *testing.T, cfg Config, n int) (*Checker, *fakeProbe) {
	t.Helper()
	f := newFakeProbe()
	cfg.Probe = f
	var targets []Target
	for i := range n {
		db := openMock(t)
		targets = append(targets, Target{Name: fmt.Sprintf("r%d", i), DB: db})
	}
	c, err := New(cfg, "postgres", openMock(t), targets)
	if err != nil {
		t.Fatal(err)
	}
	c.phase = noPhase
	return c, f
}

// noPhase makes the sample loop's first round come a full Interval after
// Start's, the cadence the fake-clock tests are written for.
func noPhase(int64) int64 { return 0 }
