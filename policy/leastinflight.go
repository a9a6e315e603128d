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
	i, j := two(len(p))
	if p[j].InFlight() < p[i].InFlight() {
		return j
	}
	return i
}

// two returns two distinct indices in [0, n) in random order; n >= 2.
func two(n int) (int, int) {
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
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
