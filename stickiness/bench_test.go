package stickiness

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rwsplit/rwsplit/lagcheck"
)

// benchKeys are user keys as an application has them.
func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "user-" + strconv.Itoa(100000+i)
	}
	return keys
}

// BenchmarkMemoryGet gets records of 64Ki stored users (hit: PostgreSQL
// positions; maria-hit: MariaDB positions of one domain) and of users with
// none (miss) from parallel goroutines.
func BenchmarkMemoryGet(b *testing.B) {
	ctx := context.Background()
	m := mustMemory(b, MemoryOptions{})
	defer m.Close()
	const n = 1 << 16
	keys := benchKeys(3 * n)
	until := time.Now().Add(time.Hour)
	for i, k := range keys[:n] {
		m.Set(ctx, k, Record{Until: until, Position: lagcheck.LSNPosition(uint64(i))})
	}
	for i, k := range keys[2*n:] {
		m.Set(ctx, k, Record{Until: until, Position: lagcheck.MariaDBPosition(0, 1, uint64(i))})
	}
	for _, bb := range []struct {
		name   string
		keys   []string
		wantOK bool
	}{
		{name: "hit", keys: keys[:n], wantOK: true},
		{name: "miss", keys: keys[n : 2*n], wantOK: false},
		{name: "maria-hit", keys: keys[2*n:], wantOK: true},
	} {
		b.Run(bb.name, func(b *testing.B) {
			var worker atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(worker.Add(1)) * 7919
				for pb.Next() {
					_, ok, _ := m.Get(ctx, bb.keys[i%n])
					if ok != bb.wantOK {
						b.Errorf("Get(%s) ok = %v", bb.keys[i%n], ok)
						return
					}
					i++
				}
			})
		})
	}
}

// BenchmarkMemorySet records writes of 64Ki users from parallel goroutines.
func BenchmarkMemorySet(b *testing.B) {
	ctx := context.Background()
	m := mustMemory(b, MemoryOptions{})
	defer m.Close()
	const n = 1 << 16
	keys := benchKeys(n)
	until := time.Now().Add(time.Hour)
	var worker atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(worker.Add(1)) * 7919
		for pb.Next() {
			m.Set(ctx, keys[i%n], Record{Until: until, Position: lagcheck.LSNPosition(uint64(i))})
			i++
		}
	})
}

// BenchmarkMemoryHeap reports the heap that 1M users take in a Memory
// (also asserted by TestMemoryMillionUsers).
func BenchmarkMemoryHeap(b *testing.B) {
	for _, bb := range millionUsers {
		b.Run(bb.name, func(b *testing.B) {
			for b.Loop() {
				mb, perEntry := heapPerEntry(b, 1_000_000, bb.give)
				b.ReportMetric(mb, "MB/1M-users")
				b.ReportMetric(perEntry, "B/user")
			}
		})
	}
}

func BenchmarkUser(b *testing.B) {
	ctx := WithUser(context.Background(), "user-123456")
	ctx = WithCarrier(ctx) // a context a few values deep, as in a request
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := User(ctx); !ok {
				b.Error("no user")
				return
			}
		}
	})
}

func BenchmarkFromContext(b *testing.B) {
	ctx := WithCarrier(context.Background())
	note(ctx, Record{Until: time.Now().Add(time.Hour), Position: lagcheck.LSNPosition(1)})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := FromContext(ctx); !ok {
				b.Error("no record")
				return
			}
		}
	})
}

type lookupBench struct {
	name   string
	ctx    context.Context
	tables Tables
	sticky bool
}

// lookupBenches marks a user, a carrier and a table in tr (Tables on),
// and returns lookups of each and of reads that are not sticky.
func lookupBenches(tr *Tracker) []lookupBench {
	pos := lagcheck.LSNPosition(0x16B374D848)
	user := WithUser(context.Background(), "user-123456")
	carried := WithCarrier(context.Background())
	for _, ctx := range []context.Context{user, carried} {
		w, _ := tr.Pending(ctx, Tables{})
		tr.Mark(pos, w)
	}
	w, _ := tr.Pending(context.Background(), tbl("orders"))
	tr.Mark(pos, w)
	return []lookupBench{
		{name: "no-user", ctx: context.Background()},
		{name: "user-not-sticky", ctx: WithUser(context.Background(), "user-654321")},
		{name: "user-sticky", ctx: user, sticky: true},
		{name: "carrier-sticky", ctx: carried, sticky: true},
		{name: "table-not-sticky", ctx: context.Background(), tables: tbl("users")},
		{name: "table-sticky", ctx: context.Background(), tables: tbl("orders"), sticky: true},
	}
}

// BenchmarkLookup measures Tracker.Lookup on the memory path, from
// parallel goroutines.
func BenchmarkLookup(b *testing.B) {
	tr, err := New(Config{Tables: true, Window: time.Hour}) // the marks outlive the run
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	for _, bb := range lookupBenches(tr) {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, sticky := tr.Lookup(bb.ctx, bb.tables); sticky != bb.sticky {
						b.Errorf("Lookup sticky = %v, want %v", sticky, bb.sticky)
						return
					}
				}
			})
		})
	}
}

// BenchmarkMarkPending measures a free causal mark of a user (what a keyed
// write adds after its commit, with the default in-memory store), and
// the lookup that resolves it from the samples.
func BenchmarkMarkPending(b *testing.B) {
	tr, err := New(Config{Window: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	fs := newFakeSamples()
	tr.SetSamples(fs)
	ctx := WithUser(context.Background(), "writer")
	b.Run("mark", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			w, _ := tr.Pending(ctx, Tables{})
			tr.MarkPending(w)
		}
	})
	fs.sample(lagcheck.LSNPosition(200))
	b.Run("lookup-resolved", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tr.Lookup(ctx, Tables{})
		}
	})
}
