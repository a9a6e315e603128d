package policy

import (
	"slices"
	"testing"
)

// withInFlight returns one replica per count, each with that many
// statements started and not finished.
func withInFlight(counts ...int) []Replica {
	rs := ones(len(counts))
	for i, c := range counts {
		for range c {
			rs[i].Stats.Start()
		}
	}
	return rs
}

func TestLeastInFlight(t *testing.T) {
	const picks = 30000
	tests := []struct {
		name string
		give []int // statements in flight on each replica
		want []float64
	}{
		{name: "2: busy first", give: []int{10, 0}, want: []float64{0, 1, 0}},
		{name: "2: busy second", give: []int{0, 10}, want: []float64{1, 0, 0}},
		{name: "2: one more", give: []int{3, 2}, want: []float64{0, 1, 0}},
		{name: "2: tie", give: []int{4, 4}, want: []float64{.5, .5, 0}},
		{name: "3: one busy", give: []int{0, 10, 0}, want: []float64{.5, 0, .5, 0}},
		// r1 wins whenever drawn (2/3 of picks); r0 and r2 tie otherwise.
		{name: "3: one idle", give: []int{5, 0, 5}, want: []float64{1. / 6, 2. / 3, 1. / 6, 0}},
		// The busiest replica loses every draw; the idlest wins every draw.
		{name: "3: ordered", give: []int{0, 1, 2}, want: []float64{2. / 3, 1. / 3, 0, 0}},
		{name: "8: all idle", give: []int{0, 0, 0, 0, 0, 0, 0, 0}, want: []float64{.125, .125, .125, .125, .125, .125, .125, .125, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := LeastInFlight().NewPicker(withInFlight(tt.give...))
			got := shares(pickN(p, len(tt.give), picks), picks)
			assertShares(t, got, tt.want, 0.03)
		})
	}
}

// A replica whose statements finish comes back into use.
func TestLeastInFlightFollowsDone(t *testing.T) {
	rs := ones(2)
	p := LeastInFlight().NewPicker(rs)
	var tokens []int64
	for range 10 {
		tokens = append(tokens, rs[0].Stats.Start())
	}
	before := pickN(p, 2, 1000)
	for _, tok := range tokens {
		rs[0].Stats.Done(tok, false)
	}
	rs[1].Stats.Start()
	after := pickN(p, 2, 1000)
	if want := []int{0, 1000, 0}; !slices.Equal(before, want) {
		t.Errorf("counts while r0 is busy = %v, want %v", before, want)
	}
	if want := []int{1000, 0, 0}; !slices.Equal(after, want) {
		t.Errorf("counts once r0's statements are done = %v, want %v", after, want)
	}
}
