package policy

import (
	"errors"
	"math"
	"testing"
)

// TestPrimaryShare: about share of the picks return Primary, the others
// what the wrapped policy picks, in its proportions; with no replica, -1.
func TestPrimaryShare(t *testing.T) {
	const picks = 40000
	tests := []struct {
		name  string
		share float64
		give  []Replica
		want  []float64 // share of each replica, then of Primary
	}{
		{name: "0 of 2", share: 0, give: ones(2), want: []float64{.5, .5, 0}},
		{name: "0.25 of 2", share: .25, give: ones(2), want: []float64{.375, .375, .25}},
		{name: "0.5 of 1", share: .5, give: ones(1), want: []float64{.5, .5}},
		{name: "0.9 of 3", share: .9, give: ones(3), want: []float64{.1 / 3, .1 / 3, .1 / 3, .9}},
		{name: "1 of 2", share: 1, give: ones(2), want: []float64{0, 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol, err := PrimaryShare(RoundRobin(), tt.share)
			if err != nil {
				t.Fatal(err)
			}
			p := pol.NewPicker(tt.give)
			counts := make([]int, len(tt.give)+1)
			for range picks {
				switch i := p.Pick(t.Context()); {
				case i == Primary:
					counts[len(tt.give)]++
				case i >= 0 && i < len(tt.give):
					counts[i]++
				default:
					t.Fatalf("Pick = %d", i)
				}
			}
			assertShares(t, shares(counts, picks), tt.want, 0.01)
		})
	}
	t.Run("no replica", func(t *testing.T) {
		pol, _ := PrimaryShare(RoundRobin(), 1)
		if got := pol.NewPicker(nil).Pick(t.Context()); got != -1 {
			t.Errorf("Pick over no replica = %d, want -1", got)
		}
	})
	t.Run("name", func(t *testing.T) {
		pol, _ := PrimaryShare(Weighted(), 0.25)
		if got, want := pol.Name(), "weighted+primary(0.25)"; got != want {
			t.Errorf("Name() = %q, want %q", got, want)
		}
	})
}

func TestPrimaryShareErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		pol   Policy
		share float64
	}{
		{name: "nil policy", pol: nil, share: .5},
		{name: "negative", pol: Random(), share: -0.1},
		{name: "above 1", pol: Random(), share: 1.5},
		{name: "NaN", pol: Random(), share: math.NaN()},
		{name: "+Inf", pol: Random(), share: math.Inf(1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := PrimaryShare(tt.pol, tt.share); !errors.Is(err, ErrConfig) || p != nil {
				t.Errorf("PrimaryShare = %v, %v; want nil, ErrConfig", p, err)
			}
		})
	}
}
