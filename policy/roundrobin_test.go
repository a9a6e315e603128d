package policy

import (
	"slices"
	"sync"
	"testing"
)

func TestRoundRobinCycles(t *testing.T) {
	tests := []struct {
		name string
		give int
		want []int
	}{
		{name: "2", give: 2, want: []int{0, 1, 0, 1, 0, 1}},
		{name: "3", give: 3, want: []int{0, 1, 2, 0, 1, 2, 0, 1, 2}},
		{name: "8", give: 8, want: []int{0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := RoundRobin().NewPicker(ones(tt.give))
			got := make([]int, len(tt.want))
			for k := range got {
				got[k] = p.Pick(t.Context())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("picks = %v, want %v", got, tt.want)
			}
		})
	}
}

// Concurrent picks each get their own position in the cycle, so the
// shares are exact, not just close.
func TestRoundRobinConcurrentShares(t *testing.T) {
	const goroutines, each = 6, 5000 // 30 000 picks
	tests := []struct {
		name string
		give int
		want []int
	}{
		{name: "3", give: 3, want: []int{10000, 10000, 10000, 0}},
		{name: "8", give: 8, want: []int{3750, 3750, 3750, 3750, 3750, 3750, 3750, 3750, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := RoundRobin().NewPicker(ones(tt.give))
			results := make([][]int, goroutines)
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() { results[g] = pickN(p, tt.give, each) })
			}
			wg.Wait()
			got := make([]int, tt.give+1)
			for _, r := range results {
				for i, c := range r {
					got[i] += c
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("counts = %v, want %v", got, tt.want)
			}
			assertShares(t, shares(got[:tt.give], goroutines*each), shares(tt.want[:tt.give], goroutines*each), 0.03)
		})
	}
}

// A Picker built after a change carries on from where the previous one of
// the same policy value was; another policy value has its own position.
func TestRoundRobinCarriesOnAcrossRebuilds(t *testing.T) {
	rs := ones(3)
	pol := RoundRobin()
	var got []int
	p := pol.NewPicker(rs)
	got = append(got, p.Pick(t.Context()), p.Pick(t.Context())) // 0 1
	p = pol.NewPicker(rs)
	got = append(got, p.Pick(t.Context()), p.Pick(t.Context())) // 2 0
	p = pol.NewPicker(rs[:2])                                   // counter at 4
	got = append(got, p.Pick(t.Context()), p.Pick(t.Context())) // 0 1
	other := RoundRobin().NewPicker(rs)
	got = append(got, other.Pick(t.Context())) // 0
	if want := []int{0, 1, 2, 0, 0, 1, 0}; !slices.Equal(got, want) {
		t.Errorf("picks = %v, want %v", got, want)
	}
}
