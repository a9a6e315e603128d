// Package policy chooses which replica serves each read.
//
// A Policy builds a Picker from the replicas that are currently eligible
// (healthy, not lagging). The plugin rebuilds the Picker whenever that set
// changes, and calls Pick once per read. The design follows grpc-go's
// balancer/picker split: a Picker is an immutable snapshot, so picking needs
// no lock, and per-replica Stats live outside it, so a rebuild keeps what the
// policy has learnt.
//
// The built-in policies are Random, RoundRobin, Weighted (smooth weighted
// round robin), LeastInFlight and P2C (latency × load, the Default). A
// custom policy implements Policy and Picker, or wraps a function in Func.
package policy

import (
	"context"
	"errors"
)

// Replica is one eligible replica as a Policy sees it.
type Replica struct {
	// Name is the replica's configured name.
	Name string
	// Weight is the replica's configured weight, at least 1. Only
	// Weighted uses it.
	Weight int
	// Stats are the replica's live counters. The pointer stays the same for
	// the life of the plugin, so a Picker built later sees the same counters.
	// The plugin always sets it; the built-in policies treat nil as a
	// replica with no statistics.
	Stats *Stats
}

// Policy builds Pickers.
type Policy interface {
	// Name identifies the policy in Stats and logs, e.g. "p2c".
	Name() string
	// NewPicker returns a Picker over replicas. The slice is never modified
	// after the call and may be kept. It may be empty, in which case the
	// Picker must return -1.
	NewPicker(replicas []Replica) Picker
}

// Picker chooses the replica for one read.
type Picker interface {
	// Pick returns the index, in the slice given to NewPicker, of the
	// replica that should serve the next read, or -1 if there is none.
	//
	// Pick must not block, must not allocate, and must be safe for
	// concurrent use. The plugin reports how the statement went through the
	// chosen replica's Stats (Start and Done), so Pick itself has no
	// completion callback.
	Pick(ctx context.Context) int
}

// Func adapts a function to a Policy whose Picker ignores statistics.
// NewPicker is called with the eligible replicas; the returned function is
// the Pick method.
type Func func(replicas []Replica) func(ctx context.Context) int

// Name implements Policy.
func (Func) Name() string { return "func" }

// NewPicker implements Policy.
func (f Func) NewPicker(replicas []Replica) Picker { return pickFunc(f(replicas)) }

type pickFunc func(ctx context.Context) int

func (f pickFunc) Pick(ctx context.Context) int { return f(ctx) }

// ErrConfig is wrapped by every error a policy constructor returns for a
// bad config.
var ErrConfig = errors.New("policy: invalid config")

// Default returns the policy the plugin uses when none is configured: P2C
// with its defaults, the built-in policy that avoids a slow or overloaded
// replica yet notices when it recovers (see docs/policies.md).
func Default() Policy {
	p, _ := P2C(P2CConfig{}) // the zero P2CConfig is valid
	return p
}
