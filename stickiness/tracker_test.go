package stickiness

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rwsplit/rwsplit/lagcheck"
)

var trackerBase = time.Unix(1_700_000_000, 0)

// newTestTracker returns a Tracker on a settable clock at trackerBase.
func newTestTracker(t *testing.T, cfg Config) (*Tracker, *clock) {
	t.Helper()
	clk := newClock(trackerBase)
	tr, err := newTracker(cfg, clk.Now, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, clk
}

// mark runs Pending and Mark as rwsplit does after a committed write.
func mark(t *testing.T, tr *Tracker, ctx context.Context, table string, pos lagcheck.Position) {
	t.Helper()
	w, ok := tr.Pending(ctx, tbl(table))
	if !ok {
		t.Fatalf("Pending(%q) = false, want a write to mark", table)
	}
	tr.Mark(pos, w)
}

func TestTrackerLookup(t *testing.T) {
	alice := WithUser(context.Background(), "alice")
	bob := WithUser(context.Background(), "bob")
	p100, p200 := lagcheck.LSNPosition(100), lagcheck.LSNPosition(200)
	type write struct {
		ctx   context.Context
		table string
		pos   lagcheck.Position
	}
	tests := []struct {
		name       string
		cfg        Config
		writes     []write
		advance    time.Duration // after the writes
		give       context.Context
		giveTable  string
		wantPos    lagcheck.Position
		wantSticky bool
	}{
		{name: "causal no user", give: context.Background(), wantSticky: false},
		{name: "causal user never wrote", give: alice, wantSticky: false},
		{name: "causal user wrote", writes: []write{{ctx: alice, pos: p100}}, give: alice, wantPos: p100, wantSticky: true},
		{name: "causal other user wrote", writes: []write{{ctx: bob, pos: p100}}, give: alice, wantSticky: false},
		{name: "causal unknown position", writes: []write{{ctx: alice}}, give: alice, wantSticky: true},
		{name: "causal newest write", writes: []write{{ctx: alice, pos: p200}, {ctx: alice, pos: p100}}, give: alice, wantPos: p200, wantSticky: true},
		{name: "causal before window end", writes: []write{{ctx: alice, pos: p100}}, advance: DefaultWindow - time.Nanosecond, give: alice, wantPos: p100, wantSticky: true},
		{name: "causal after window", writes: []write{{ctx: alice, pos: p100}}, advance: DefaultWindow, give: alice, wantSticky: false},
		{name: "custom window", cfg: Config{Window: time.Second}, writes: []write{{ctx: alice, pos: p100}}, advance: time.Second, give: alice, wantSticky: false},
		{name: "window mode", cfg: Config{Mode: ModeWindow}, writes: []write{{ctx: alice, pos: p100}}, give: alice, wantSticky: true},
		{name: "window mode after window", cfg: Config{Mode: ModeWindow}, writes: []write{{ctx: alice, pos: p100}}, advance: DefaultWindow, give: alice, wantSticky: false},
		{name: "custom key", cfg: Config{Key: func(context.Context) (string, bool) { return "everyone", true }}, writes: []write{{ctx: bob, pos: p100}}, give: context.Background(), wantPos: p100, wantSticky: true},
		{name: "tables off: table not sticky", writes: []write{{ctx: alice, table: "posts", pos: p100}}, give: context.Background(), giveTable: "posts", wantSticky: false},
		{name: "table mode written table", cfg: Config{Tables: true}, writes: []write{{ctx: context.Background(), table: "posts", pos: p100}}, give: context.Background(), giveTable: "posts", wantPos: p100, wantSticky: true},
		{name: "table mode other table", cfg: Config{Tables: true}, writes: []write{{ctx: context.Background(), table: "posts", pos: p100}}, give: context.Background(), giveTable: "users", wantSticky: false},
		{name: "table mode merges user", cfg: Config{Tables: true}, writes: []write{{ctx: context.Background(), table: "posts", pos: p100}, {ctx: alice, table: "users", pos: p200}}, give: alice, giveTable: "posts", wantPos: p200, wantSticky: true},
		{name: "table mode window", cfg: Config{Tables: true, Mode: ModeWindow}, writes: []write{{ctx: context.Background(), table: "posts", pos: p100}}, give: context.Background(), giveTable: "posts", wantSticky: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, clk := newTestTracker(t, tt.cfg)
			for _, w := range tt.writes {
				mark(t, tr, w.ctx, w.table, w.pos)
			}
			clk.Advance(tt.advance)
			pos, sticky := tr.Lookup(tt.give, tbl(tt.giveTable))
			if sticky != tt.wantSticky || !pos.Equal(tt.wantPos) {
				t.Errorf("Lookup = %q, %v; want %q, %v", pos, sticky, tt.wantPos, tt.wantSticky)
			}
		})
	}
}

func TestTrackerPending(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		give   context.Context
		table  string
		wantOK bool
	}{
		{name: "nothing", give: context.Background(), table: "posts", wantOK: false},
		{name: "user", give: WithUser(context.Background(), "u"), wantOK: true},
		{name: "empty user", give: WithUser(context.Background(), ""), wantOK: false},
		{name: "carrier", give: WithCarrier(context.Background()), wantOK: true},
		{name: "table mode", cfg: Config{Tables: true}, give: context.Background(), table: "posts", wantOK: true},
		{name: "table mode no table", cfg: Config{Tables: true}, give: context.Background(), wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, _ := newTestTracker(t, tt.cfg)
			if _, ok := tr.Pending(tt.give, tbl(tt.table)); ok != tt.wantOK {
				t.Errorf("Pending = %v, want %v", ok, tt.wantOK)
			}
		})
	}
}

// TestTrackerCarrier: a write with a carrier is noted in it, and a
// lookup with the carrier is sticky in any process.
func TestTrackerCarrier(t *testing.T) {
	writer, _ := newTestTracker(t, Config{})
	reader, _ := newTestTracker(t, Config{}) // another application server
	ctx := WithCarrier(context.Background())
	mark(t, writer, ctx, "", lagcheck.LSNPosition(7))
	if s := writer.Stats(); s.Notes != 1 || s.Marks != 0 {
		t.Errorf("Stats = %+v, want 1 note and no mark", s)
	}
	pos, sticky := reader.Lookup(ctx, Tables{})
	if !sticky || !pos.Equal(lagcheck.LSNPosition(7)) {
		t.Errorf("Lookup = %q, %v; want 0/7, true", pos, sticky)
	}
	if _, sticky := reader.Lookup(context.Background(), Tables{}); sticky {
		t.Error("a lookup without the carrier is sticky")
	}
}

// TestTrackerTokenClamp: the record of an unsigned token is clamped to
// now+Window at each lookup.
func TestTrackerTokenClamp(t *testing.T) {
	const window = 10 * time.Second
	tests := []struct {
		name       string
		give       time.Duration // the token's Until after trackerBase
		advance    time.Duration
		wantUntil  time.Duration // after trackerBase
		wantSticky bool
	}{
		{name: "long token", give: time.Hour, wantUntil: window, wantSticky: true},
		{name: "long token later", give: time.Hour, advance: 30 * time.Minute, wantUntil: 30*time.Minute + window, wantSticky: true},
		{name: "short token kept", give: 5 * time.Second, wantUntil: 5 * time.Second, wantSticky: true},
		{name: "expired token", give: time.Hour, advance: time.Hour, wantSticky: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, clk := newTestTracker(t, Config{Window: window})
			clk.Advance(tt.advance)
			tok := Record{Until: trackerBase.Add(tt.give), Position: lagcheck.LSNPosition(9)}.Token()
			ctx := WithToken(context.Background(), tok)
			rec, sticky, _ := tr.record(ctx, Tables{})
			if sticky != tt.wantSticky || (sticky && !rec.Until.Equal(trackerBase.Add(tt.wantUntil))) {
				t.Errorf("record = %v, %v; want Until base+%v, %v", rec.Until.Sub(trackerBase), sticky, tt.wantUntil, tt.wantSticky)
			}
			if pos, _ := tr.Lookup(ctx, Tables{}); sticky && !pos.Equal(lagcheck.LSNPosition(9)) {
				t.Errorf("Lookup position = %q, want 0/9", pos)
			}
		})
	}
}

// fakeStore is a Store whose Get and Set fail while err is set.
type fakeStore struct {
	err        atomic.Pointer[error]
	block      bool // Get waits for its context to end
	rec        Record
	gets, sets atomic.Int64
	closed     atomic.Int64
}

func (s *fakeStore) fail(err error) { s.err.Store(&err) }

func (s *fakeStore) Get(ctx context.Context, key string) (Record, bool, error) {
	s.gets.Add(1)
	if s.block {
		<-ctx.Done()
		return Record{}, false, ctx.Err()
	}
	if p := s.err.Load(); p != nil && *p != nil {
		return Record{}, false, *p
	}
	return s.rec, !s.rec.Until.IsZero(), nil
}

func (s *fakeStore) Set(ctx context.Context, key string, rec Record) error {
	s.sets.Add(1)
	if p := s.err.Load(); p != nil && *p != nil {
		return *p
	}
	return nil
}

func (s *fakeStore) Close() error { s.closed.Add(1); return nil }

// TestTrackerStoreBackoff: after a failed Get, keyed reads are sticky to
// the primary without asking the store for storeBackoff, then the store
// is asked again.
func TestTrackerStoreBackoff(t *testing.T) {
	store := new(fakeStore)
	tr, clk := newTestTracker(t, Config{Store: store})
	alice := WithUser(context.Background(), "alice")
	steps := []struct {
		name       string
		advance    time.Duration
		storeErr   error
		wantSticky bool
		want       Stats // Marks, Notes and Mode are not checked
		wantGets   int64
	}{
		{name: "store up, no record", wantSticky: false, wantGets: 1},
		{name: "store fails", storeErr: errors.New("down"), wantSticky: true, want: Stats{StoreErrors: 1}, wantGets: 2},
		{name: "backoff", storeErr: errors.New("down"), wantSticky: true, want: Stats{StoreErrors: 1, StoreSkipped: 1}, wantGets: 2},
		{name: "backoff end", advance: storeBackoff - time.Nanosecond, wantSticky: true, want: Stats{StoreErrors: 1, StoreSkipped: 2}, wantGets: 2},
		{name: "asked again", advance: time.Nanosecond, wantSticky: false, want: Stats{StoreErrors: 1, StoreSkipped: 2}, wantGets: 3},
		{name: "fails again", storeErr: errors.New("down"), wantSticky: true, want: Stats{StoreErrors: 2, StoreSkipped: 2}, wantGets: 4},
	}
	for _, st := range steps {
		clk.Advance(st.advance)
		store.fail(st.storeErr)
		pos, sticky := tr.Lookup(alice, Tables{})
		if sticky != st.wantSticky || !pos.IsZero() {
			t.Fatalf("%s: Lookup = %q, %v; want the zero position, %v", st.name, pos, sticky, st.wantSticky)
		}
		s := tr.Stats()
		if s.StoreErrors != st.want.StoreErrors || s.StoreSkipped != st.want.StoreSkipped || store.gets.Load() != st.wantGets {
			t.Fatalf("%s: StoreErrors %d, StoreSkipped %d, Gets %d; want %d, %d, %d", st.name,
				s.StoreErrors, s.StoreSkipped, store.gets.Load(), st.want.StoreErrors, st.want.StoreSkipped, st.wantGets)
		}
	}
	// Reads without a user never need the store, even during a backoff.
	if _, sticky := tr.Lookup(context.Background(), Tables{}); sticky {
		t.Error("a read without a user is sticky during the backoff")
	}
}

func TestTrackerStore(t *testing.T) {
	alice := WithUser(context.Background(), "alice")
	t.Run("record from another server", func(t *testing.T) {
		store := &fakeStore{rec: Record{Until: trackerBase.Add(time.Second), Position: lagcheck.LSNPosition(5)}}
		tr, clk := newTestTracker(t, Config{Store: store})
		pos, sticky := tr.Lookup(alice, Tables{})
		if !sticky || !pos.Equal(lagcheck.LSNPosition(5)) {
			t.Errorf("Lookup = %q, %v; want 0/5, true", pos, sticky)
		}
		clk.Advance(time.Second) // a Store that returns an expired record
		if _, sticky := tr.Lookup(alice, Tables{}); sticky {
			t.Error("an expired record from the store is sticky")
		}
	})
	t.Run("newer write in the store", func(t *testing.T) {
		// Marked here at 0/3, then written through another server at 0/9:
		// this process's record does not hide the store's.
		store := &fakeStore{rec: Record{Until: trackerBase.Add(time.Second), Position: lagcheck.LSNPosition(9)}}
		tr, _ := newTestTracker(t, Config{Store: store})
		mark(t, tr, alice, "", lagcheck.LSNPosition(3))
		if pos, sticky := tr.Lookup(alice, Tables{}); !sticky || !pos.Equal(lagcheck.LSNPosition(9)) {
			t.Errorf("Lookup = %q, %v; want 0/9 from the store", pos, sticky)
		}
		if n := store.gets.Load(); n != 1 {
			t.Errorf("the store was asked %d times, want 1", n)
		}
		if n := store.sets.Load(); n != 1 {
			t.Errorf("Mark set the store %d times, want 1", n)
		}
	})
	t.Run("failed set", func(t *testing.T) {
		store := new(fakeStore)
		store.fail(errors.New("down"))
		tr, _ := newTestTracker(t, Config{Store: store})
		mark(t, tr, alice, "", lagcheck.LSNPosition(3))
		if s := tr.Stats(); s.StoreErrors != 1 || s.Marks != 1 {
			t.Errorf("Stats = %+v, want 1 mark and 1 store error", s)
		}
		if pos, sticky := tr.Lookup(alice, Tables{}); !sticky || !pos.IsZero() {
			t.Errorf("Lookup = %q, %v; want the primary: the store cannot tell", pos, sticky)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		store := &fakeStore{block: true}
		tr, _ := newTestTracker(t, Config{Store: store, StoreTimeout: time.Millisecond})
		if pos, sticky := tr.Lookup(alice, Tables{}); !sticky || !pos.IsZero() {
			t.Errorf("Lookup = %q, %v; want the primary", pos, sticky)
		}
		if s := tr.Stats(); s.StoreErrors != 1 {
			t.Errorf("StoreErrors = %d, want 1", s.StoreErrors)
		}
	})
	t.Run("caller gave up", func(t *testing.T) {
		store := &fakeStore{block: true}
		tr, _ := newTestTracker(t, Config{Store: store})
		ctx, cancel := context.WithCancel(alice)
		cancel()
		if pos, sticky := tr.Lookup(ctx, Tables{}); !sticky || !pos.IsZero() {
			t.Errorf("Lookup = %q, %v; want the primary", pos, sticky)
		}
		if s := tr.Stats(); s.StoreErrors != 0 {
			t.Errorf("StoreErrors = %d, want 0: not the store's fault", s.StoreErrors)
		}
		store.block = false
		if _, sticky := tr.Lookup(alice, Tables{}); sticky {
			t.Error("the store is backing off after a cancelled lookup")
		}
	})
}

// TestTrackerStoreRetry: a Set the store failed is retried every
// storeRetryInterval until it succeeds or the record's Window ends.
func TestTrackerStoreRetry(t *testing.T) {
	alice := WithUser(context.Background(), "alice")
	steps := []struct {
		name        string
		up          bool
		wantSets    int64 // the Mark's own Set included
		wantRetries uint64
	}{
		{name: "still down", wantSets: 2, wantRetries: 1},
		{name: "down again", wantSets: 3, wantRetries: 2},
		{name: "back up", up: true, wantSets: 4, wantRetries: 3},
		{name: "nothing left", up: true, wantSets: 4, wantRetries: 3},
	}
	synctest.Test(t, func(t *testing.T) {
		store := new(fakeStore)
		store.fail(errors.New("down"))
		tr, err := New(Config{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		mark(t, tr, alice, "", lagcheck.LSNPosition(3))
		for _, st := range steps {
			if st.up {
				store.fail(nil)
			}
			time.Sleep(storeRetryInterval)
			synctest.Wait()
			if sets, retries := store.sets.Load(), tr.Stats().StoreRetries; sets != st.wantSets || retries != st.wantRetries {
				t.Fatalf("%s: %d Sets, StoreRetries %d; want %d, %d", st.name, sets, retries, st.wantSets, st.wantRetries)
			}
		}
	})
	t.Run("window ends first", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			store := new(fakeStore)
			store.fail(errors.New("down"))
			tr, err := New(Config{Store: store, Window: storeRetryInterval + storeRetryInterval/2})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			mark(t, tr, alice, "", lagcheck.LSNPosition(3))
			time.Sleep(5 * storeRetryInterval)
			synctest.Wait()
			if r := tr.Stats().StoreRetries; r != 1 {
				t.Errorf("StoreRetries = %d, want 1: the record expired before the second", r)
			}
		})
	})
}

func TestTrackerClose(t *testing.T) {
	verifyNoLeaks(t)
	store := new(fakeStore)
	for _, cfg := range []Config{{}, {Tables: true, Store: store}} {
		tr, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := tr.Close(); err != nil {
				t.Errorf("Close = %v", err)
			}
		}
	}
	if n := store.closed.Load(); n != 0 {
		t.Errorf("Close closed the caller's store %d times", n)
	}
}

func TestNewErrors(t *testing.T) {
	for _, cfg := range []Config{{Window: -1}, {StoreTimeout: -1}, {Mode: 9}, {Mode: ModeWindow, ExactMarks: true}} {
		if tr, err := New(cfg); !errors.Is(err, ErrConfig) || tr != nil {
			t.Errorf("New(%+v) = %v, %v; want nil, ErrConfig", cfg, tr, err)
		}
	}
}

// TestTrackerLookupAllocs: the memory path allocates nothing.
func TestTrackerLookupAllocs(t *testing.T) {
	tr, err := New(Config{Tables: true, Window: time.Hour}) // the marks outlive the run
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for _, bb := range lookupBenches(tr) {
		if n := testing.AllocsPerRun(100, func() { tr.Lookup(bb.ctx, bb.tables) }); n != 0 {
			t.Errorf("%s: %v allocs per Lookup, want 0", bb.name, n)
		}
	}
}
