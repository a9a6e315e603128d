package policy

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram bucket layout: 8 buckets per power of two between 1.024µs
// and 68.7s, one below and one above.
const (
	histSub     = 3  // log2 of the buckets per power of two
	histMin     = 10 // latencies below 2^histMin ns share bucket 0
	histMax     = 36 // latencies from 2^histMax ns share the last bucket
	HistBuckets = 1 + (histMax-histMin)<<histSub + 1
)

// Histogram counts statement latencies in HistBuckets buckets. Each
// bucket between 1.024µs and 68.7s is 1/8 of a power of two wide, so
// Quantile is at most 12.5% above the true value. Counts are cumulative
// since the replica's first statement: Sub gives those of an interval.
// The zero value is an empty histogram.
type Histogram struct {
	Counts [HistBuckets]uint64
}

// latencyHist is Histogram's live, lock-free form inside Stats.
type latencyHist [HistBuckets]atomic.Uint64

func (h *latencyHist) add(ns int64) { h[bucketOf(ns)].Add(1) }

func (h *latencyHist) load() Histogram {
	var out Histogram
	for i := range h {
		out.Counts[i] = h[i].Load()
	}
	return out
}

// bucketOf returns the bucket of a latency of ns nanoseconds.
func bucketOf(ns int64) int {
	switch {
	case ns < 1<<histMin:
		return 0
	case ns >= 1<<histMax:
		return HistBuckets - 1
	}
	e := bits.Len64(uint64(ns)) - 1
	sub := int(ns>>(e-histSub)) & (1<<histSub - 1)
	return 1 + (e-histMin)<<histSub + sub
}

// BucketUpper returns the upper bound of bucket i: every latency counted
// in it is below this; the last bucket's bound is the largest Duration.
func BucketUpper(i int) time.Duration {
	switch {
	case i <= 0:
		return 1 << histMin
	case i >= HistBuckets-1:
		return math.MaxInt64
	}
	i--
	e := histMin + i>>histSub
	return time.Duration(1<<e + (i&(1<<histSub-1)+1)<<(e-histSub))
}

// Count returns the number of latencies counted.
func (h *Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Sub returns the counts added since old, an earlier reading of the same
// replica's histogram.
func (h *Histogram) Sub(old *Histogram) Histogram {
	var out Histogram
	for i, c := range h.Counts {
		out.Counts[i] = c - min(c, old.Counts[i])
	}
	return out
}

// Quantile returns the upper bound of the bucket holding the q-quantile
// (0 < q <= 1) of the counted latencies, or zero if there are none.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var seen uint64
	for i, c := range h.Counts {
		if seen += c; seen >= rank {
			return BucketUpper(i)
		}
	}
	return BucketUpper(HistBuckets - 1)
}
