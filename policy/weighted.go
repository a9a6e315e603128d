package policy

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"
)

// maxSchedule bounds the length of a Weighted schedule (32 KiB).
const maxSchedule = 1 << 14

// Weighted returns a policy that shares reads among the replicas in
// proportion to Replica.Weight, spread out evenly (nginx's smooth weighted
// round robin: 5:1:1 gives a a b a c a a). Weights below 1 count as 1,
// above 2³¹−1 as 2³¹−1; statistics are ignored. A rebuilt Picker carries
// on the cycle. Beyond 16384 reduced weight units it falls back to
// weighted random, right on average rather than exact per cycle.
func Weighted() Policy { return &weighted{} }

type weighted struct {
	next atomic.Uint64
	_    [56]byte // keep the counter on its own cache line
}

func (*weighted) Name() string { return "weighted" }

func (w *weighted) NewPicker(replicas []Replica) Picker {
	n := len(replicas)
	if n <= 1 {
		return fixedPicker(n - 1) // -1 or 0
	}
	weights := make([]int64, n)
	var g, total int64
	for i, r := range replicas {
		weights[i] = min(max(int64(r.Weight), 1), math.MaxInt32)
		g = gcd(g, weights[i])
	}
	for i := range weights {
		weights[i] /= g
		total += weights[i]
	}
	if total <= maxSchedule {
		return &wrrPicker{next: &w.next, schedule: smoothSchedule(weights, total)}
	}
	prefix := make([]int64, n)
	var sum int64
	for i, wt := range weights {
		sum += wt
		prefix[i] = sum
	}
	return wrandPicker(prefix)
}

// smoothSchedule returns one cycle of nginx's smooth weighted round robin
// over weights, whose sum is total (at most maxSchedule, so indices fit in
// uint16).
func smoothSchedule(weights []int64, total int64) []uint16 {
	cur := make([]int64, len(weights))
	schedule := make([]uint16, total)
	for k := range schedule {
		best := 0
		for i, wt := range weights {
			cur[i] += wt
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		schedule[k] = uint16(best)
	}
	return schedule
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

type wrrPicker struct {
	next     *atomic.Uint64
	schedule []uint16
}

func (p *wrrPicker) Pick(context.Context) int {
	c := p.next.Add(1) - 1
	return int(p.schedule[c%uint64(len(p.schedule))])
}

// wrandPicker holds the prefix sums of the reduced weights.
type wrandPicker []int64

func (p wrandPicker) Pick(context.Context) int {
	r := rand.Int64N(p[len(p)-1])
	// The first replica whose prefix sum exceeds r.
	i, _ := slices.BinarySearch(p, r+1)
	return i
}

// fixedPicker always returns the same index: -1 for an empty set, 0 for a
// single replica.
type fixedPicker int

func (p fixedPicker) Pick(context.Context) int { return int(p) }
