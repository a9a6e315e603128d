package policy

import (
	"fmt"
	"testing"
)

func TestRandomDistribution(t *testing.T) {
	const picks = 30000
	tests := []struct {
		name string
		give []Replica
		want []float64 // share of each replica, then of out-of-range picks
	}{
		{name: "2", give: ones(2), want: []float64{1. / 2, 1. / 2, 0}},
		{name: "3", give: ones(3), want: []float64{1. / 3, 1. / 3, 1. / 3, 0}},
		// Weights are ignored.
		{name: "3 weighted", give: newReplicas(1, 1, 8), want: []float64{1. / 3, 1. / 3, 1. / 3, 0}},
		{name: "8", give: ones(8), want: []float64{.125, .125, .125, .125, .125, .125, .125, .125, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := shares(pickN(Random().NewPicker(tt.give), len(tt.give), picks), picks)
			assertShares(t, got, tt.want, 0.03)
		})
	}
}

// Random must not fall into a cycle: over pairs of consecutive picks, each
// of the 9 transitions between 3 replicas appears about equally often.
func TestRandomIsNotACycle(t *testing.T) {
	const picks = 30000
	p := Random().NewPicker(ones(3))
	counts := make(map[string]int)
	prev := p.Pick(t.Context())
	for range picks {
		i := p.Pick(t.Context())
		counts[fmt.Sprint(prev, i)]++
		prev = i
	}
	got := make([]float64, 0, 9)
	want := make([]float64, 0, 9)
	for a := range 3 {
		for b := range 3 {
			got = append(got, float64(counts[fmt.Sprint(a, b)])/picks)
			want = append(want, 1./9)
		}
	}
	assertShares(t, got, want, 0.02)
}
