package policy

import (
	"context"
	"math/rand/v2"
)

// LeastInFlight returns a policy that draws two distinct replicas at random
// and picks the one with fewer statements in flight (Stats.InFlight), as
// grpc-go's least_request balancer does; a tie goes to either. It ignores
// weights and latency; P2C also weighs latency.
func LeastInFlight() Policy { return leastInFlight{} }

type leastInFlight struct{}

func (leastInFlight) Name() string { return "leastinflight" }

func (leastInFlight) NewPicker(replicas []Replica) Picker {
	return lifPicker(statsOf(replicas))
}

type lifPicker []*Stats

func (p lifPicker) Pick(context.Context) int {
	switch len(p) {
	case 0:
		return -1
	case 1:
		return 0
	}
	i, j := two(rand.Uint64(), len(p))
	if p[j].InFlight() < p[i].InFlight() {
		return j
	}
	return i
}

// two returns two distinct indices in [0, n) in random order, n >= 2,
// from the random bits 0–59 of r: i from the low 32, j from the next 28,
// each by multiplying and shifting (Lemire), so each index is off uniform
// by at most n/2²⁸. Bits 60–63 are left for the caller.
func two(r uint64, n int) (int, int) {
	i := int(r & (1<<32 - 1) * uint64(n) >> 32)
	j := int(r >> 32 & (1<<28 - 1) * uint64(n-1) >> 28)
	if j >= i {
		j++
	}
	return i, j
}

// statsOf returns the replicas' Stats in order, giving a replica without
// Stats a private one so that pickers never dereference nil.
func statsOf(replicas []Replica) []*Stats {
	st := make([]*Stats, len(replicas))
	for i, r := range replicas {
		st[i] = r.Stats
		if st[i] == nil {
			st[i] = new(Stats)
		}
	}
	return st
}
