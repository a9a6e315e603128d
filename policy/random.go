package policy

import (
	"context"
	"math/rand/v2"
)

// Random returns a policy that picks a replica uniformly at random,
// ignoring weights and statistics.
//
// Cost: one call to math/rand/v2's top-level generator, which is
// goroutine-safe without a lock (it is per-thread in the runtime). Pickers
// share no state.
func Random() Policy { return random{} }

type random struct{}

func (random) Name() string { return "random" }

func (random) NewPicker(replicas []Replica) Picker { return randomPicker(len(replicas)) }

// randomPicker is the number of replicas.
type randomPicker int

func (n randomPicker) Pick(context.Context) int {
	switch {
	case n <= 0:
		return -1
	case n == 1:
		return 0
	}
	return rand.IntN(int(n))
}
