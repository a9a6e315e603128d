package stickiness

import (
	"context"
	"errors"
	"hash/maphash"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/rwsplit/rwsplit/lagcheck"
)

// clock is a settable MemoryOptions.Now.
type clock struct{ nanos atomic.Int64 }

func newClock(t time.Time) *clock {
	c := new(clock)
	c.nanos.Store(t.UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.nanos.Load()) }
func (c *clock) Advance(d time.Duration) { c.nanos.Add(int64(d)) }

func newTestMemory(t *testing.T, o MemoryOptions) *Memory {
	t.Helper()
	m := mustMemory(t, o)
	t.Cleanup(func() { m.Close() })
	return m
}

// mustMemory is NewMemory for options that are valid.
func mustMemory(tb testing.TB, o MemoryOptions) *Memory {
	tb.Helper()
	m, err := NewMemory(o)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestNewMemoryErrors(t *testing.T) {
	for _, give := range []MemoryOptions{{MaxEntries: -1}, {SweepInterval: -time.Second}} {
		if m, err := NewMemory(give); !errors.Is(err, ErrConfig) || m != nil {
			t.Errorf("NewMemory(%+v) = %v, %v; want ErrConfig", give, m, err)
		}
	}
}

func TestMemoryMerge(t *testing.T) {
	ctx := context.Background()
	base := time.Unix(1_700_000_000, 0)
	for _, tt := range append(mergeTests[:len(mergeTests):len(mergeTests)], pendingTests...) {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMemory(t, MemoryOptions{Now: newClock(base).Now})
			if tt.old.until != 0 {
				if err := m.Set(ctx, "u", tt.old.at(t, base)); err != nil {
					t.Fatal(err)
				}
			}
			if err := m.Set(ctx, "u", tt.give.at(t, base)); err != nil {
				t.Fatal(err)
			}
			rec, ok, err := m.Get(ctx, "u")
			if err != nil {
				t.Fatal(err)
			}
			wantRecord(t, rec, ok, tt.want.at(t, base))
		})
	}
}

// TestMemoryExpiry checks, at each step of a clock, what Get returns for a
// record set at 0 until 10s.
func TestMemoryExpiry(t *testing.T) {
	ctx := context.Background()
	base := time.Unix(1_700_000_000, 0)
	clk := newClock(base)
	m := newTestMemory(t, MemoryOptions{Now: clk.Now})
	rec := Record{Until: base.Add(10 * time.Second), Position: lagcheck.LSNPosition(1)}
	if err := m.Set(ctx, "u", rec); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		give   time.Duration // the clock
		wantOK bool
	}{
		{name: "fresh", give: 0, wantOK: true},
		{name: "later", give: 5 * time.Second, wantOK: true},
		{name: "a nanosecond before", give: 10*time.Second - 1, wantOK: true},
		// Gets above must not have extended the record.
		{name: "at until", give: 10 * time.Second, wantOK: false},
		{name: "after", give: time.Minute, wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.nanos.Store(base.Add(tt.give).UnixNano())
			got, ok, err := m.Get(ctx, "u")
			if err != nil || ok != tt.wantOK || (ok && !got.Equal(rec)) {
				t.Errorf("Get = %v %q, %v, %v; want ok=%v", got.Until, got.Position, ok, err, tt.wantOK)
			}
		})
	}
}

func TestMemorySetExpiredIsIgnored(t *testing.T) {
	ctx := context.Background()
	base := time.Unix(1_700_000_000, 0)
	m := newTestMemory(t, MemoryOptions{Now: newClock(base).Now})
	if err := m.Set(ctx, "u", Record{Until: base}); err != nil {
		t.Fatal(err)
	}
	if n := m.Len(); n != 0 {
		t.Errorf("Len = %d after setting an expired record, want 0", n)
	}
}

func TestMemorySetReplacesExpired(t *testing.T) {
	ctx := context.Background()
	base := time.Unix(1_700_000_000, 0)
	clk := newClock(base)
	m := newTestMemory(t, MemoryOptions{Now: clk.Now})
	// An expired record with an unknown position must not make the next
	// record's position unknown.
	m.Set(ctx, "u", Record{Until: base.Add(time.Second)})
	clk.Advance(2 * time.Second)
	give := Record{Until: base.Add(time.Minute), Position: pos(t, "0-1-9")}
	m.Set(ctx, "u", give)
	rec, ok, _ := m.Get(ctx, "u")
	wantRecord(t, rec, ok, give)
}

func TestMemoryEviction(t *testing.T) {
	ctx := context.Background()
	base := time.Unix(1_700_000_000, 0)
	const max = 64
	tests := []struct {
		name        string
		giveExpired int // of the max records filling the store, how many expire
		wantEvicted uint64
	}{
		// Of any sample of 8, at least 4 are expired: they go, not a live one.
		{name: "expired first", giveExpired: max - 4, wantEvicted: 0},
		{name: "soonest live", giveExpired: 0, wantEvicted: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock(base)
			m := newTestMemory(t, MemoryOptions{MaxEntries: max, Now: clk.Now})
			for i := range max {
				until := time.Hour + time.Duration(i)*time.Second
				if i < tt.giveExpired {
					until = time.Second
				}
				m.Set(ctx, "old-"+strconv.Itoa(i), Record{Until: base.Add(until)})
			}
			clk.Advance(2 * time.Second)
			m.Set(ctx, "new", Record{Until: base.Add(time.Hour)})
			if n := m.Len(); n > max {
				t.Errorf("Len = %d, want at most %d", n, max)
			}
			if got := m.Evicted(); got != tt.wantEvicted {
				t.Errorf("Evicted = %d, want %d", got, tt.wantEvicted)
			}
			if _, ok, _ := m.Get(ctx, "new"); !ok {
				t.Error("the new record is missing")
			}
			live := 0
			for i := range max {
				if _, ok, _ := m.Get(ctx, "old-"+strconv.Itoa(i)); ok {
					live++
				}
			}
			if want := max - tt.giveExpired - int(tt.wantEvicted); live != want {
				t.Errorf("%d old records live, want %d", live, want)
			}
		})
	}
}

func TestMemoryBound(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		give int // MaxEntries
	}{
		{name: "one shard", give: 100},
		{name: "some shards", give: 1000},
		{name: "all shards", give: 64 * 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMemory(t, MemoryOptions{MaxEntries: tt.give})
			until := time.Now().Add(time.Hour)
			for i := range 10 * tt.give {
				m.Set(ctx, "user-"+strconv.Itoa(i), Record{Until: until})
				if n := m.Len(); n > tt.give {
					t.Fatalf("Len = %d after %d Sets, want at most %d", n, i+1, tt.give)
				}
			}
			if got, want := m.Evicted(), uint64(9*tt.give); got < want {
				t.Errorf("Evicted = %d, want at least %d", got, want)
			}
		})
	}
}

func TestMemorySweeper(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m := mustMemory(t, MemoryOptions{SweepInterval: time.Second})
		defer m.Close()
		now := time.Now()
		for i := range 3 {
			m.Set(ctx, "short-"+strconv.Itoa(i), Record{Until: now.Add(1500 * time.Millisecond)})
		}
		m.Set(ctx, "long", Record{Until: now.Add(10 * time.Second)})

		time.Sleep(1100 * time.Millisecond) // first sweep: nothing expired
		synctest.Wait()
		if n := m.Len(); n != 4 {
			t.Errorf("Len after the first sweep = %d, want 4", n)
		}
		time.Sleep(time.Second) // second sweep: the short ones go
		synctest.Wait()
		if n := m.Len(); n != 1 {
			t.Errorf("Len after the second sweep = %d, want 1", n)
		}
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if n := m.Len(); n != 0 {
			t.Errorf("Len after all expired = %d, want 0", n)
		}
	})
}

func TestMemoryClose(t *testing.T) {
	verifyNoLeaks(t)
	ctx := context.Background()
	m := mustMemory(t, MemoryOptions{SweepInterval: time.Millisecond})
	rec := Record{Until: time.Now().Add(time.Hour), Position: lagcheck.LSNPosition(1)}
	m.Set(ctx, "u", rec)
	for range 2 { // idempotent
		if err := m.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	}
	// The store is still usable, without its sweeper.
	got, ok, err := m.Get(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	wantRecord(t, got, ok, rec)
}

// TestMemoryConcurrent has writers set increasing positions for a few
// keys, out of order, while readers get them: each key must end with its
// newest record, and readers must never see a position go back.
func TestMemoryConcurrent(t *testing.T) {
	ctx := context.Background()
	m := newTestMemory(t, MemoryOptions{SweepInterval: time.Millisecond})
	const writers, writes, keys = 4, 500, 3
	base := time.Now().Add(time.Hour)
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for r := range 2 {
		readers.Go(func() {
			key := "user-" + strconv.Itoa(r%keys)
			var last uint64
			for {
				select {
				case <-stop:
					return
				default:
				}
				rec, ok, _ := m.Get(ctx, key)
				if !ok {
					continue
				}
				lsn, _ := rec.Position.LSN()
				if lsn < last {
					t.Errorf("%s: position went back from %d to %d", key, last, lsn)
					return
				}
				last = lsn
			}
		})
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range writes {
				n := uint64(i*writers + w + 1)
				key := "user-" + strconv.Itoa(i%keys)
				m.Set(ctx, key, Record{Until: base.Add(time.Duration(n)), Position: lagcheck.LSNPosition(n)})
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	for k := range keys {
		// The last write of key k is the highest i with i%keys == k, by the last writer.
		i := writes - 1 - (writes-1-k+keys)%keys
		n := uint64(i*writers + writers)
		rec, ok, _ := m.Get(ctx, "user-"+strconv.Itoa(k))
		wantRecord(t, rec, ok, Record{Until: base.Add(time.Duration(n)), Position: lagcheck.LSNPosition(n)})
	}
}

// TestMemoryMillionUsers measures the heap that 1M sticky users take:
// the goal is at most 100 MB.
func TestMemoryMillionUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 1M records")
	}
	for _, tt := range millionUsers {
		t.Run(tt.name, func(t *testing.T) {
			const n = 1_000_000
			mb, perEntry := heapPerEntry(t, n, tt.give)
			t.Logf("%d users: %.1f MB heap, %.0f bytes/entry (Record %d bytes, Position %d bytes, entry %d bytes)",
				n, mb, perEntry, unsafe.Sizeof(Record{}), unsafe.Sizeof(lagcheck.Position{}), unsafe.Sizeof(entry{}))
			if mb > tt.wantMax {
				t.Errorf("%d users take %.1f MB, want at most %.0f MB", n, mb, tt.wantMax)
			}
		})
	}
}

// millionUsers are the positions of TestMemoryMillionUsers and
// BenchmarkMemoryHeap: every user has a distinct one.
var millionUsers = []struct {
	name    string
	give    func(i int) lagcheck.Position
	wantMax float64 // MB
}{
	{name: "postgres", give: func(i int) lagcheck.Position { return lagcheck.LSNPosition(uint64(i)) }, wantMax: 100},
	// A MariaDB position of one domain is stored like an LSN, with a
	// template of its domain and server shared by the shard.
	{name: "mariadb", give: func(i int) lagcheck.Position {
		p, _ := lagcheck.ParsePosition("0-1-" + strconv.Itoa(i))
		return p
	}, wantMax: 100},
	// Failovers change the server id: a few templates per shard.
	{name: "mariadb servers", give: func(i int) lagcheck.Position {
		return lagcheck.MariaDBPosition(0, uint32(1+i%5), uint64(i))
	}, wantMax: 100},
}

// heapPerEntry stores n records in a Memory and returns the heap they take
// in MB, and per record in bytes.
func heapPerEntry(tb testing.TB, n int, position func(i int) lagcheck.Position) (mb, perEntry float64) {
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := mustMemory(tb, MemoryOptions{})
	until := time.Now().Add(time.Hour)
	key := make([]byte, 0, 32)
	for i := range n {
		key = strconv.AppendInt(append(key[:0], "user-"...), int64(i), 10)
		m.Set(ctx, string(key), Record{Until: until, Position: position(i)})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got := m.Len(); got != n {
		tb.Errorf("Len = %d, want %d (evicted %d)", got, n, m.Evicted())
	}
	runtime.KeepAlive(m)
	m.Close()
	used := float64(after.HeapAlloc) - float64(before.HeapAlloc)
	return used / 1e6, used / float64(n)
}

// TestMemoryPositions stores positions of every kind and form and gets
// them back; MariaDB positions of one domain share their shard's template
// of their domain and server.
func TestMemoryPositions(t *testing.T) {
	ctx := context.Background()
	base := time.Unix(1_700_000_000, 0)
	m := newTestMemory(t, MemoryOptions{MaxEntries: 100, Now: newClock(base).Now}) // one shard
	gives := []string{
		"", "0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF",
		"mariadb:", "0-0-0", "0-1-0", "0-1-5", "0-1-6", "0-2-5", "1-1-5", "4294967295-4294967295-18446744073709551615",
		"0-1-5,1-2-3", "0-1-5,1-2-3,7-7-7",
		"mysql:", uuidA + ":1-5:7",
	}
	until := base.Add(time.Hour)
	for i, s := range gives {
		m.Set(ctx, "user-"+strconv.Itoa(i), Record{Until: until, Position: pos(t, s)})
	}
	for i, s := range gives {
		rec, ok, _ := m.Get(ctx, "user-"+strconv.Itoa(i))
		wantRecord(t, rec, ok, Record{Until: until, Position: pos(t, s)})
		if rec.Position.String() != s {
			t.Errorf("Get(user-%d).Position = %q, want %q", i, rec.Position, s)
		}
		_, _, _, inline := rec.Position.MariaDB()
		_, _, _, wantInline := pos(t, s).MariaDB()
		if inline != wantInline {
			t.Errorf("%q: MariaDB() ok = %v, want %v", s, inline, wantInline)
		}
	}
	s := &m.shards[0].shard
	e1, e2 := s.m[maphash.String(m.seed, "user-7")], s.m[maphash.String(m.seed, "user-8")] // 0-1-5, 0-1-6
	if e1.pos != e2.pos || e1.lsn != 5 || e2.lsn != 6 {
		t.Errorf("0-1-5 and 0-1-6 do not share a template: %p %d, %p %d", e1.pos, e1.lsn, e2.pos, e2.lsn)
	}
	if got := len(s.mariaDB); got != 5 { // domain-server 0-0, 0-1, 0-2, 1-1, max-max
		t.Errorf("%d templates, want 5 (%v)", got, s.mariaDB)
	}
}

// TestMemoryManyTemplates: a shard that has seen more domain-server pairs
// than it keeps templates of still returns every record right.
func TestMemoryManyTemplates(t *testing.T) {
	ctx := context.Background()
	const n = 2*maxTemplates - 8
	m := newTestMemory(t, MemoryOptions{MaxEntries: 127}) // one shard
	until := time.Now().Add(time.Hour)
	for i := range n {
		m.Set(ctx, "user-"+strconv.Itoa(i), Record{Until: until, Position: lagcheck.MariaDBPosition(uint32(i%7), uint32(i), uint64(i))})
	}
	for i := range n {
		rec, ok, _ := m.Get(ctx, "user-"+strconv.Itoa(i))
		wantRecord(t, rec, ok, Record{Until: until, Position: lagcheck.MariaDBPosition(uint32(i%7), uint32(i), uint64(i))})
	}
	if got, want := len(m.shards[0].mariaDB), n-maxTemplates; got != want || len(m.shards) != 1 || m.Evicted() != 0 {
		t.Errorf("%d templates in %d shards, %d evicted; want %d in 1, 0", got, len(m.shards), m.Evicted(), want)
	}
}

// TestMemoryGetAllocs: Get does not allocate, whatever the position.
func TestMemoryGetAllocs(t *testing.T) {
	ctx := context.Background()
	m := newTestMemory(t, MemoryOptions{})
	until := time.Now().Add(time.Hour)
	for _, s := range []string{"", "16/B374D848", "mariadb:", "0-1-5", "0-1-5,1-2-3", uuidA + ":1-5:7"} {
		m.Set(ctx, "u"+s, Record{Until: until, Position: pos(t, s)})
		key := "u" + s
		if n := testing.AllocsPerRun(100, func() {
			if _, ok, _ := m.Get(ctx, key); !ok {
				t.Fatalf("no record for %q", s)
			}
		}); n != 0 {
			t.Errorf("Get of a %q record allocates %v times", s, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { m.Get(ctx, "nobody") }); n != 0 {
		t.Errorf("Get of no record allocates %v times", n)
	}
}

// TestMemoryPendingWithPosition: a pending write merged with a position
// (kept outside the entry) keeps both, and its resolution clears it; the
// sweeper deletes it with its entry.
func TestMemoryPendingWithPosition(t *testing.T) {
	ctx := context.Background()
	base := time.Unix(1_700_000_000, 0)
	clk := newClock(base)
	m := newTestMemory(t, MemoryOptions{Now: clk.Now})
	w1 := Pending{Writer: 1, At: 5}
	_ = m.Set(ctx, "u", Record{Until: base.Add(10 * time.Second), Position: pos(t, "0/100")})
	_ = m.Set(ctx, "u", Record{Until: base.Add(20 * time.Second), Pending: w1})
	rec, ok, _ := m.Get(ctx, "u")
	wantRecord(t, rec, ok, Record{Until: base.Add(20 * time.Second), Position: pos(t, "0/100"), Pending: w1})
	_ = m.Set(ctx, "u", Record{Until: base.Add(20 * time.Second), Position: pos(t, "0/200"), Pending: Pending{Writer: 1, At: 7, Resolved: true}})
	rec, ok, _ = m.Get(ctx, "u")
	wantRecord(t, rec, ok, Record{Until: base.Add(20 * time.Second), Position: pos(t, "0/200")})

	_ = m.Set(ctx, "v", Record{Until: base.Add(10 * time.Second), Position: pos(t, "0/100")})
	_ = m.Set(ctx, "v", Record{Until: base.Add(20 * time.Second), Pending: w1})
	clk.Advance(30 * time.Second)
	m.sweep(nil)
	s := m.shard(maphash.String(m.seed, "v"))
	s.mu.RLock()
	n := len(s.both)
	s.mu.RUnlock()
	if n != 0 {
		t.Errorf("%d records left in shard.both after the sweep, want 0", n)
	}
}
