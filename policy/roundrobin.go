package policy

import (
	"context"
	"sync/atomic"
)

// RoundRobin returns a policy that cycles through the replicas in order,
// ignoring weights and statistics.
//
// The position is one atomic counter per policy value, shared by all of
// its Pickers: a Picker built after a change in the eligible set carries on
// from where the previous one was, instead of starting again at the first
// replica (which would favour it when the set changes often). A new policy
// value starts at the first replica. Concurrent picks each get their own
// position, so the cycle stays exact under concurrency, though the order in
// which goroutines see it is theirs.
//
// Cost: one atomic add and one integer division. The counter is shared by
// all goroutines, so under heavy parallel load its cache line moves between
// cores; Random avoids that.
func RoundRobin() Policy { return &roundRobin{} }

type roundRobin struct {
	next atomic.Uint64
	_    [56]byte // keep the counter on its own cache line
}

func (*roundRobin) Name() string { return "roundrobin" }

func (r *roundRobin) NewPicker(replicas []Replica) Picker {
	return &rrPicker{next: &r.next, n: uint64(len(replicas))}
}

type rrPicker struct {
	next *atomic.Uint64
	n    uint64
}

func (p *rrPicker) Pick(context.Context) int {
	switch p.n {
	case 0:
		return -1
	case 1:
		return 0
	}
	return int((p.next.Add(1) - 1) % p.n)
}
