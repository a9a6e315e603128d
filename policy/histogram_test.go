package policy

import (
	"math"
	"testing"
	"testing/synctest"
	"time"
)

func TestBucketOf(t *testing.T) {
	tests := []struct {
		name string
		give time.Duration
		want int
	}{
		{name: "zero", give: 0, want: 0},
		{name: "below 1.024µs", give: 1023, want: 0},
		{name: "1.024µs", give: 1024, want: 1},
		{name: "1.152µs", give: 1152, want: 2},
		{name: "2.047µs", give: 2047, want: 8},
		{name: "2.048µs", give: 2048, want: 9},
		{name: "1ms", give: time.Millisecond, want: 1 + (19-histMin)*8 + 7}, // 2^19 < 1e6 < 2^20: (1e6>>16)&7 = 15&7
		{name: "just below 68.7s", give: 1<<histMax - 1, want: HistBuckets - 2},
		{name: "68.7s", give: 1 << histMax, want: HistBuckets - 1},
		{name: "an hour", give: time.Hour, want: HistBuckets - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bucketOf(int64(tt.give)); got != tt.want {
				t.Errorf("bucketOf(%v) = %d, want %d", tt.give, got, tt.want)
			}
		})
	}
}

// TestBucketBounds: every bucket's upper bound is the next bucket's lower
// one, no bucket is wider than 1/8 of its lower bound, and a latency
// falls in the bucket whose bounds hold it.
func TestBucketBounds(t *testing.T) {
	for i := 1; i < HistBuckets-1; i++ {
		lo, hi := BucketUpper(i-1), BucketUpper(i)
		if hi <= lo || float64(hi-lo) > float64(lo)/8 {
			t.Fatalf("bucket %d is [%v, %v)", i, lo, hi)
		}
		for _, d := range []time.Duration{lo, (lo + hi) / 2, hi - 1} {
			if got := bucketOf(int64(d)); got != i {
				t.Fatalf("bucketOf(%v) = %d, want %d ([%v, %v))", d, got, i, lo, hi)
			}
		}
	}
	if got := BucketUpper(HistBuckets - 1); got != math.MaxInt64 {
		t.Errorf("last bucket's bound = %v", got)
	}
}

func TestQuantile(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		give []time.Duration // latencies
		q    float64
		want time.Duration // upper bound of the bucket
	}{
		{name: "empty", q: 0.99, want: 0},
		{name: "one", give: []time.Duration{ms}, q: 0.99, want: BucketUpper(bucketOf(int64(ms)))},
		{name: "p99 of 99 fast and 1 slow is fast", give: append(repeat(99, ms), 100*ms), q: 0.99, want: BucketUpper(bucketOf(int64(ms)))},
		{name: "p99 of 98 fast and 2 slow is slow", give: append(repeat(98, ms), 100*ms, 100*ms), q: 0.99, want: BucketUpper(bucketOf(int64(100 * ms)))},
		{name: "p50", give: []time.Duration{ms, 2 * ms, 3 * ms, 4 * ms}, q: 0.5, want: BucketUpper(bucketOf(int64(2 * ms)))},
		{name: "max", give: []time.Duration{ms, time.Hour}, q: 1, want: math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Fake time: each statement measures exactly its latency, not
			// also the time a loaded machine took between Start and Done.
			synctest.Test(t, func(t *testing.T) {
				var s Stats
				for _, d := range tt.give {
					finish(&s, d, false)
				}
				h := s.Latencies()
				if got := h.Quantile(tt.q); got != tt.want {
					t.Errorf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
				}
				if got := h.Count(); got != uint64(len(tt.give)) {
					t.Errorf("Count = %d, want %d", got, len(tt.give))
				}
			})
		})
	}
}

// TestHistogramSub: the counts of an interval are the later reading less
// the earlier one.
func TestHistogramSub(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s Stats
		for range 10 {
			finish(&s, 100*time.Millisecond, false)
		}
		before := s.Latencies()
		for range 5 {
			finish(&s, time.Millisecond, true) // a failure counts as measured
		}
		after := s.Latencies()
		d := after.Sub(&before)
		if got := d.Count(); got != 5 {
			t.Errorf("Count of the interval = %d, want 5", got)
		}
		if got, want := d.Quantile(0.99), BucketUpper(bucketOf(int64(time.Millisecond))); got != want {
			t.Errorf("p99 of the interval = %v, want %v", got, want)
		}
	})
}

func repeat(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}
