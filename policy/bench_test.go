package policy

import (
	"context"
	"strconv"
	"testing"
)

// BenchmarkPick measures one Pick per iteration from parallel goroutines,
// per policy and replica count. Pick must not allocate.
func BenchmarkPick(b *testing.B) {
	share := func() Policy { p, _ := PrimaryShare(Default(), 0.25); return p }
	for _, pol := range append(builtins[:len(builtins):len(builtins)], struct {
		name string
		new  func() Policy
	}{"primaryshare", share}) {
		b.Run(pol.name, func(b *testing.B) {
			for _, n := range []int{1, 2, 3, 8} {
				b.Run(strconv.Itoa(n), func(b *testing.B) {
					rs := newReplicas(weightsFor(n)...)
					p := pol.new().NewPicker(rs)
					ctx := context.Background()
					b.ReportAllocs()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							p.Pick(ctx)
						}
					})
				})
			}
		})
	}
}

// weightsFor returns n weights 1, 2, 3, …, so that Weighted has a
// non-trivial schedule.
func weightsFor(n int) []int {
	w := make([]int, n)
	for i := range w {
		w[i] = i + 1
	}
	return w
}

// BenchmarkStatsStartDone measures recording one statement: Start (or
// StartSampled) then Done, on one replica's Stats shared by all goroutines (the contended
// case), and from one goroutine.
func BenchmarkStatsStartDone(b *testing.B) {
	b.Run("parallel", func(b *testing.B) {
		var s Stats
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s.Done(s.Start(), false)
			}
		})
	})
	b.Run("serial", func(b *testing.B) {
		var s Stats
		b.ReportAllocs()
		for b.Loop() {
			s.Done(s.Start(), false)
		}
	})
	b.Run("sampled/parallel", func(b *testing.B) {
		var s Stats
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s.Done(s.StartSampled(), false)
			}
		})
	})
	b.Run("sampled/serial", func(b *testing.B) {
		var s Stats
		b.ReportAllocs()
		for b.Loop() {
			s.Done(s.StartSampled(), false)
		}
	})
}

// BenchmarkLatencyHistogram measures what Done pays for Latencies: one
// bucket lookup and one atomic add, on one replica's histogram shared by
// all goroutines, and from one goroutine.
func BenchmarkLatencyHistogram(b *testing.B) {
	b.Run("parallel", func(b *testing.B) {
		var h latencyHist
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			lat := int64(1_000_000)
			for pb.Next() {
				h.add(lat)
				lat ^= 0x5_5555 // a few neighbouring buckets
			}
		})
	})
	b.Run("serial", func(b *testing.B) {
		var h latencyHist
		b.ReportAllocs()
		lat := int64(1_000_000)
		for b.Loop() {
			h.add(lat)
			lat ^= 0x5_5555
		}
	})
}
