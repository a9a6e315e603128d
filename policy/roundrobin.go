package policy

import (
	"context"
	"sync/atomic"
)

// RoundRobin returns a policy that cycles through the replicas in order,
// ignoring weights and statistics. Its position is one atomic counter per
// policy value, so a rebuilt Picker carries on where the last one was.
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
