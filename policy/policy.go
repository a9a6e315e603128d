// Package policy chooses which replica serves each read.
//
// A Policy builds an immutable Picker over the eligible replicas; the
// plugin rebuilds it when that set changes and calls Pick once per read.
// Per-replica Stats outlive rebuilds. The built-in policies are Random,
// RoundRobin, Weighted, LeastInFlight and P2C (the Default), and
// PrimaryShare, which sends a share of the reads to the primary around any
// of them; a custom one implements Policy, or wraps a function in Func. docs/policies.md has the
// design notes.
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
	// Stats are the replica's live counters, the same pointer for the life
	// of the plugin. The built-in policies treat nil as no statistics.
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
	// replica that should serve the next read, -1 if there is none, or
	// Primary to have the primary serve it. It must not block or
	// allocate, and must be safe for concurrent use.
	Pick(ctx context.Context) int
}

// Func adapts a function to a Policy: it is called with the eligible
// replicas and returns the Pick method.
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
