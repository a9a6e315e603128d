package stickiness

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rwsplit/rwsplit/lagcheck"
)

// fakeSamples is a Samples whose samples the test publishes, each started
// at time.Now().
type fakeSamples struct {
	mu sync.Mutex
	s  []fakeSample
	ch chan struct{}
}

type fakeSample struct {
	start time.Time
	pos   lagcheck.Position
}

func newFakeSamples() *fakeSamples { return &fakeSamples{ch: make(chan struct{})} }

// sample publishes a sample of pos started now.
func (f *fakeSamples) sample(pos lagcheck.Position) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.s = append(f.s, fakeSample{time.Now(), pos})
	close(f.ch)
	f.ch = make(chan struct{})
}

func (f *fakeSamples) CommitAfter(t time.Time) (lagcheck.Position, time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.s {
		if s.start.After(t) {
			return s.pos, s.start, true
		}
	}
	return lagcheck.Position{}, time.Time{}, false
}

func (f *fakeSamples) Sampled() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ch
}

// freeMark runs Pending and what rwsplit runs after a committed write.
func freeMark(t *testing.T, tr *Tracker, ctx context.Context) {
	t.Helper()
	w, ok := tr.Pending(ctx, Tables{})
	if !ok {
		t.Fatal("Pending = false, want a write to mark")
	}
	if tr.Exact(w) {
		t.Fatal("Exact = true, want a free mark")
	}
	tr.MarkPending(w)
}

// wantLookup fails unless a lookup with ctx is sticky with pos.
func wantLookup(t *testing.T, tr *Tracker, ctx context.Context, want lagcheck.Position) {
	t.Helper()
	got, sticky := tr.Lookup(ctx, Tables{})
	if !sticky || !got.Equal(want) {
		t.Errorf("Lookup = %q, %v; want %q, true", got, sticky, want)
	}
}

// TestTrackerFreeMark: a free mark sends reads to the primary until a
// sample started after it, then uses that sample's position, not a later
// one's.
func TestTrackerFreeMark(t *testing.T) {
	tr, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	alice := WithUser(context.Background(), "alice")
	if w, _ := tr.Pending(alice, Tables{}); !tr.Exact(w) {
		t.Error("Exact = false without Samples, want true")
	}
	fs := newFakeSamples()
	tr.SetSamples(fs)
	fs.sample(lagcheck.LSNPosition(100)) // before the write: covers nothing of it
	freeMark(t, tr, alice)
	wantLookup(t, tr, alice, lagcheck.Position{})
	fs.sample(lagcheck.LSNPosition(200))
	wantLookup(t, tr, alice, lagcheck.LSNPosition(200))
	fs.sample(lagcheck.LSNPosition(300)) // a later sample does not move the mark
	wantLookup(t, tr, alice, lagcheck.LSNPosition(200))
	freeMark(t, tr, alice) // a newer write waits for a newer sample
	wantLookup(t, tr, alice, lagcheck.Position{})
	fs.sample(lagcheck.LSNPosition(400))
	wantLookup(t, tr, alice, lagcheck.LSNPosition(400))

	if w, _ := tr.Pending(WithCarrier(alice), Tables{}); !tr.Exact(w) {
		t.Error("Exact = false for a write with a carrier, want true")
	}
}

func TestTrackerExactMarks(t *testing.T) {
	tr, err := New(Config{ExactMarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tr.SetSamples(newFakeSamples())
	if w, _ := tr.Pending(WithUser(context.Background(), "alice"), Tables{}); !tr.Exact(w) {
		t.Error("Exact = false with ExactMarks, want true")
	}
}

// TestTrackerFreeMarkTables: table marks are free too.
func TestTrackerFreeMarkTables(t *testing.T) {
	tr, err := New(Config{Tables: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	fs := newFakeSamples()
	tr.SetSamples(fs)
	w, _ := tr.Pending(context.Background(), tbl("orders"))
	tr.MarkPending(w)
	for _, ts := range []Tables{tbl("orders"), {All: true}} {
		if got, sticky := tr.Lookup(context.Background(), ts); !sticky || !got.IsZero() {
			t.Errorf("Lookup(%+v) before a sample = %q, %v; want the primary", ts, got, sticky)
		}
	}
	fs.sample(lagcheck.LSNPosition(200))
	for _, ts := range []Tables{tbl("orders"), {All: true}} {
		if got, sticky := tr.Lookup(context.Background(), ts); !sticky || !got.Equal(lagcheck.LSNPosition(200)) {
			t.Errorf("Lookup(%+v) after a sample = %q, %v; want 0/C8", ts, got, sticky)
		}
	}
}

// TestTrackerFreeMarkStore: another Tracker sharing the Store sends the
// user's reads to the primary until the writer's Tracker resolves the
// record there, after its sample; a newer mark is not resolved by a
// sample older than it.
func TestTrackerFreeMarkStore(t *testing.T) {
	verifyNoLeaks(t)
	store := newTestMemory(t, MemoryOptions{})
	writer, err := New(Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	reader, err := New(Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	wfs, rfs := newFakeSamples(), newFakeSamples()
	writer.SetSamples(wfs)
	reader.SetSamples(rfs)
	alice := WithUser(context.Background(), "alice")

	freeMark(t, writer, alice)
	rfs.sample(lagcheck.LSNPosition(999)) // the reader's samples resolve nothing of the writer's
	wantLookup(t, reader, alice, lagcheck.Position{})
	wantLookup(t, writer, alice, lagcheck.Position{})
	wfs.sample(lagcheck.LSNPosition(200))
	wantLookup(t, writer, alice, lagcheck.LSNPosition(200)) // at once, in the writer's process
	waitLookup(t, reader, alice, lagcheck.LSNPosition(200))

	freeMark(t, writer, alice)
	wantLookup(t, reader, alice, lagcheck.Position{}) // the newer mark is pending again
	wfs.sample(lagcheck.LSNPosition(300))
	waitLookup(t, reader, alice, lagcheck.LSNPosition(300))
	if got := writer.Stats().Resolved; got != 2 {
		t.Errorf("Resolved = %d, want 2", got)
	}
}

// waitLookup waits, up to 5s (a loaded machine), until a lookup with ctx
// is sticky with want; the primary until then.
func waitLookup(t *testing.T, tr *Tracker, ctx context.Context, want lagcheck.Position) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, sticky := tr.Lookup(ctx, Tables{})
		if !sticky || (!got.IsZero() && !got.Equal(want)) {
			t.Fatalf("Lookup = %q, %v; want the primary, then %q", got, sticky, want)
		}
		if got.Equal(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Lookup still %q after 5s, want %q", got, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTrackerPendingLookupAllocs: resolving a pending mark at lookup
// allocates nothing.
func TestTrackerPendingLookupAllocs(t *testing.T) {
	tr, err := New(Config{Tables: true, Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	fs := newFakeSamples()
	tr.SetSamples(fs)
	alice := WithUser(context.Background(), "alice")
	w, _ := tr.Pending(alice, tbl("orders"))
	tr.MarkPending(w)
	fs.sample(lagcheck.LSNPosition(200))
	if n := testing.AllocsPerRun(100, func() { tr.Lookup(alice, tbl("orders")) }); n != 0 {
		t.Errorf("%v allocs per Lookup of a resolved pending mark, want 0", n)
	}
}
