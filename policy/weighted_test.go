package policy

import (
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
)

// names maps picks to replica letters: 0 → "a", 1 → "b", …
func names(picks []int) string {
	var b strings.Builder
	for _, i := range picks {
		b.WriteByte(byte('a' + i))
	}
	return b.String()
}

// Nginx's smooth weighted round robin spreads each replica's share over
// the cycle. Each case gives two full cycles.
func TestWeightedSequence(t *testing.T) {
	tests := []struct {
		name string
		give []int
		want string
	}{
		{name: "5:1:1", give: []int{5, 1, 1}, want: "aabacaa" + "aabacaa"},
		{name: "1:1:2", give: []int{1, 1, 2}, want: "cabc" + "cabc"},
		{name: "2:2:4 reduces to 1:1:2", give: []int{2, 2, 4}, want: "cabc" + "cabc"},
		{name: "1:1", give: []int{1, 1}, want: "ab" + "ab"},
		{name: "1:2", give: []int{1, 2}, want: "bab" + "bab"},
		{name: "3:2", give: []int{3, 2}, want: "ababa" + "ababa"},
		{name: "0 and negative count as 1", give: []int{0, -5, 2}, want: "cabc" + "cabc"},
		{name: "equal weights are round robin", give: []int{7, 7, 7}, want: "abc" + "abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Weighted().NewPicker(newReplicas(tt.give...))
			got := make([]int, len(tt.want))
			for k := range got {
				got[k] = p.Pick(t.Context())
			}
			if names(got) != tt.want {
				t.Errorf("picks = %s, want %s", names(got), tt.want)
			}
		})
	}
}

// Over whole cycles the shares are exact, also when picks are concurrent.
func TestWeightedShares(t *testing.T) {
	const goroutines, each = 4, 10000 // 40 000 picks
	tests := []struct {
		name string
		give []int
		want []int
	}{
		{name: "1:1:2", give: []int{1, 1, 2}, want: []int{10000, 10000, 20000, 0}},
		{name: "5:1:1:1", give: []int{5, 1, 1, 1}, want: []int{25000, 5000, 5000, 5000, 0}},
		{name: "100:300", give: []int{100, 300}, want: []int{10000, 30000, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(tt.give)
			p := Weighted().NewPicker(newReplicas(tt.give...))
			results := make([][]int, goroutines)
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() { results[g] = pickN(p, n, each) })
			}
			wg.Wait()
			got := make([]int, n+1)
			for _, r := range results {
				for i, c := range r {
					got[i] += c
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("counts = %v, want %v", got, tt.want)
			}
			total := goroutines * each
			assertShares(t, shares(got, total), shares(tt.want, total), 0.03)
		})
	}
}

// Weights whose reduced sum exceeds maxSchedule fall back to weighted
// random: shares right within a tolerance, and no panic on extreme weights.
func TestWeightedFallback(t *testing.T) {
	const picks = 30000
	tests := []struct {
		name string
		give []int
		want []float64
	}{
		{name: "sum over the bound", give: []int{10007, 20011}, want: []float64{10007. / 30018, 20011. / 30018, 0}},
		{name: "sum one over the bound", give: []int{maxSchedule, 1}, want: []float64{1, 0, 0}},
		{name: "huge weights are capped", give: []int{math.MaxInt, math.MaxInt32, 1}, want: []float64{.5, .5, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Weighted().NewPicker(newReplicas(tt.give...))
			if _, ok := p.(wrandPicker); !ok {
				t.Fatalf("picker is %T, want the weighted random fallback", p)
			}
			got := shares(pickN(p, len(tt.give), picks), picks)
			assertShares(t, got, tt.want, 0.03)
		})
	}
}

// The largest schedule still built is maxSchedule long, and its shares are
// exact.
func TestWeightedScheduleAtTheBound(t *testing.T) {
	p := Weighted().NewPicker(newReplicas(maxSchedule-3, 1, 2))
	w, ok := p.(*wrrPicker)
	if !ok {
		t.Fatalf("picker is %T, want a schedule", p)
	}
	if got := len(w.schedule); got != maxSchedule {
		t.Errorf("schedule length = %d, want %d", got, maxSchedule)
	}
	if got, want := pickN(p, 3, maxSchedule), []int{maxSchedule - 3, 1, 2, 0}; !slices.Equal(got, want) {
		t.Errorf("counts over one cycle = %v, want %v", got, want)
	}
}

// A rebuilt Picker carries on through the cycle instead of starting again,
// so frequent rebuilds do not favour the replicas at the cycle's start.
func TestWeightedCarriesOnAcrossRebuilds(t *testing.T) {
	rs := newReplicas(5, 1, 1)
	pol := Weighted()
	var got []int
	for range 7 {
		got = append(got, pol.NewPicker(rs).Pick(t.Context()))
	}
	if want := "aabacaa"; names(got) != want {
		t.Errorf("picks with a rebuild before each = %s, want %s", names(got), want)
	}
}
