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
	m := NewMemory(MemoryOptions{})
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
	m := NewMemory(MemoryOptions{})
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
	Note(ctx, Record{Until: time.Now().Add(time.Hour), Position: lagcheck.LSNPosition(1)})
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
