package policy

import (
	"context"
	"math/rand/v2"
)

// Random returns a policy that picks a replica uniformly at random,
// ignoring weights and statistics. Pick takes no lock.
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
