package policy

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
)

// Primary is the index a Picker returns to have the read served by the
// primary instead of a replica. The plugin honours it for the reads it
// would send to a replica of the policy's choosing: plain reads, reads
// with a freshness bound or of a sticky user, read-only transactions, and
// retries; it counts them under the reason "policy-primary" (a retry's
// stays "retry"). A read that asked for a replica (a Replica{} clause)
// asks the Picker again, and at last takes the first eligible replica.
// With no eligible replica the Picker is not asked: the plugin's Fallback
// decides.
const Primary = -2

// PrimaryShare returns a policy that sends about share (0 to 1) of the
// reads it is asked about to the primary, by returning Primary, and the
// rest to the replica p picks: the primary serves reads too (share 0.5
// with one replica spreads reads evenly over both servers), or only
// 1-share of the reads go to replicas. Each Pick draws at random, without
// a lock or an allocation; with no eligible replica it returns -1. Errors
// wrap ErrConfig: a nil p, or a share outside [0, 1].
func PrimaryShare(p Policy, share float64) (Policy, error) {
	switch {
	case p == nil:
		return nil, fmt.Errorf("%w: PrimaryShare of a nil Policy", ErrConfig)
	case !(share >= 0 && share <= 1): // NaN too
		return nil, fmt.Errorf("%w: PrimaryShare share %v is not within [0, 1]", ErrConfig, share)
	}
	s := &primaryShare{inner: p, share: share, all: share == 1}
	if !s.all {
		s.step = uint64(math.Ldexp(share, 64)) // share × 2⁶⁴, below 2⁶⁴
	}
	return s, nil
}

type primaryShare struct {
	inner Policy
	share float64
	step  uint64 // a draw below step sends the read to the primary
	all   bool   // share 1: every read
}

func (s *primaryShare) Name() string { return fmt.Sprintf("%s+primary(%g)", s.inner.Name(), s.share) }

func (s *primaryShare) NewPicker(replicas []Replica) Picker {
	inner := s.inner.NewPicker(replicas)
	if len(replicas) == 0 || s.step == 0 && !s.all {
		return inner
	}
	return &sharePicker{inner: inner, step: s.step, all: s.all}
}

type sharePicker struct {
	inner Picker
	step  uint64
	all   bool
}

func (p *sharePicker) Pick(ctx context.Context) int {
	if p.all || rand.Uint64() < p.step {
		return Primary
	}
	return p.inner.Pick(ctx)
}
