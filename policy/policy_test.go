package policy

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// builtins lists every built-in policy constructor by its Name.
var builtins = []struct {
	name string
	new  func() Policy
}{
	{"random", Random},
	{"roundrobin", RoundRobin},
	{"weighted", Weighted},
	{"leastinflight", LeastInFlight},
	{"p2c", func() Policy { p, _ := P2C(P2CConfig{}); return p }},
}

// newReplicas returns one replica per weight, named r0, r1, …, each with its
// own Stats.
func newReplicas(weights ...int) []Replica {
	rs := make([]Replica, len(weights))
	for i, w := range weights {
		rs[i] = Replica{Name: fmt.Sprintf("r%d", i), Weight: w, Stats: new(Stats)}
	}
	return rs
}

// ones returns n replicas of weight 1.
func ones(n int) []Replica {
	w := make([]int, n)
	for i := range w {
		w[i] = 1
	}
	return newReplicas(w...)
}

// pickN calls Pick n times and returns how many times each index came back;
// counts[len(counts)-1] counts out-of-range answers.
func pickN(p Picker, replicas, n int) []int {
	counts := make([]int, replicas+1)
	ctx := context.Background()
	for range n {
		i := p.Pick(ctx)
		if i < 0 || i >= replicas {
			i = replicas
		}
		counts[i]++
	}
	return counts
}

// shares turns counts into fractions of total.
func shares(counts []int, total int) []float64 {
	s := make([]float64, len(counts))
	for i, c := range counts {
		s[i] = float64(c) / float64(total)
	}
	return s
}

// assertShares checks each share against want within tol (absolute).
func assertShares(t *testing.T, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("shares = %v, want %v", got, want)
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > tol {
			t.Errorf("share[%d] = %.4f, want %.4f ± %.2f (all: %.4f)", i, got[i], want[i], tol, got)
		}
	}
}

func TestNames(t *testing.T) {
	for _, tt := range builtins {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.new().Name(); got != tt.name {
				t.Errorf("Name() = %q, want %q", got, tt.name)
			}
		})
	}
}

func TestDefaultIsP2C(t *testing.T) {
	if got, want := Default().Name(), "p2c"; got != want {
		t.Errorf("Default().Name() = %q, want %q", got, want)
	}
}

// Every policy: an empty set yields -1, a single replica is always chosen,
// whatever its weight or statistics.
func TestPickEmptyAndOne(t *testing.T) {
	busy := newReplicas(0)
	for range 10 {
		busy[0].Stats.Start()
	}
	tests := []struct {
		name string
		give []Replica
		want int
	}{
		{name: "nil", give: nil, want: -1},
		{name: "empty", give: []Replica{}, want: -1},
		{name: "one", give: ones(1), want: 0},
		{name: "one weight 0 busy", give: busy, want: 0},
		{name: "one nil stats", give: []Replica{{Name: "r0"}}, want: 0},
	}
	for _, pol := range builtins {
		for _, tt := range tests {
			t.Run(pol.name+"/"+tt.name, func(t *testing.T) {
				p := pol.new().NewPicker(tt.give)
				for k := range 100 {
					if got := p.Pick(context.Background()); got != tt.want {
						t.Fatalf("pick %d = %d, want %d", k, got, tt.want)
					}
				}
			})
		}
	}
}

// Replicas without Stats (not something the plugin produces) must not make
// any policy panic.
func TestPickNilStats(t *testing.T) {
	for _, pol := range builtins {
		t.Run(pol.name, func(t *testing.T) {
			give := []Replica{{Name: "a", Weight: 1}, {Name: "b", Weight: 1}, {Name: "c", Weight: 1}}
			got := pickN(pol.new().NewPicker(give), 3, 3000)
			if got[3] != 0 {
				t.Errorf("%d picks out of range", got[3])
			}
		})
	}
}

// Pick must not allocate, for any policy and any replica count.
func TestPickDoesNotAllocate(t *testing.T) {
	for _, pol := range builtins {
		for _, n := range []int{0, 1, 2, 3, 8} {
			t.Run(fmt.Sprintf("%s/%d", pol.name, n), func(t *testing.T) {
				p := pol.new().NewPicker(ones(n))
				ctx := context.Background()
				if got := testing.AllocsPerRun(1000, func() { p.Pick(ctx) }); got != 0 {
					t.Errorf("Pick allocates %v times, want 0", got)
				}
			})
		}
	}
}

// A Picker built later from the same Replica values sees the counters
// recorded while the first one was in use (grpc-go's
// TestLeastRequestPersistsCounts): rebuilding does not reset Stats, and
// the load-aware policies keep avoiding the busy replica.
func TestStatsSurviveRebuild(t *testing.T) {
	tests := []struct {
		name string
		give Policy
		want []int // picks of r0, r1 out of 1000, before and after the rebuild
	}{
		{name: "leastinflight", give: LeastInFlight(), want: []int{0, 1000}},
		// Probing off: r0 has never finished a statement, so P2C would
		// otherwise probe it once.
		{name: "p2c", give: mustP2C(t, P2CConfig{DisableProbe: true}), want: []int{0, 1000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := newReplicas(1, 1)
			for range 10 {
				first[0].Stats.Start() // r0: 10 in flight
			}
			for range 5 {
				first[1].Stats.Done(first[1].Stats.Start()-int64(time.Millisecond), false)
			}
			if got := pickN(tt.give.NewPicker(first), 2, 1000)[:2]; !slices.Equal(got, tt.want) {
				t.Fatalf("picks of r0, r1 before the rebuild = %v, want %v", got, tt.want)
			}
			before := []Snapshot{first[0].Stats.Snapshot(), first[1].Stats.Snapshot()}

			// Rebuild as the plugin does, from new Replica values pointing
			// at the same Stats, here in the other order.
			second := []Replica{
				{Name: "r1", Weight: 1, Stats: first[1].Stats},
				{Name: "r0", Weight: 1, Stats: first[0].Stats},
			}
			p := tt.give.NewPicker(second)
			after := []Snapshot{second[1].Stats.Snapshot(), second[0].Stats.Snapshot()}
			if !slices.Equal(after, before) {
				t.Errorf("Snapshots of r0, r1 after the rebuild = %+v, want %+v", after, before)
			}
			counts := pickN(p, 2, 1000)
			if got := []int{counts[1], counts[0]}; !slices.Equal(got, tt.want) {
				t.Errorf("picks of r0, r1 after the rebuild = %v, want %v", got, tt.want)
			}
		})
	}
}

// Many goroutines pick and run statements while the set of replicas is
// rebuilt under them. Run with -race. Every pick must be in range for the
// picker it came from, and the counters must balance at the end.
func TestConcurrentPickAndRebuild(t *testing.T) {
	const (
		goroutines = 8
		picks      = 2000
	)
	for _, pol := range builtins {
		t.Run(pol.name, func(t *testing.T) {
			all := newReplicas(1, 2, 3, 1, 5)
			policy := pol.new()
			type snapshot struct {
				picker   Picker
				replicas []Replica
			}
			var cur atomic.Pointer[snapshot]
			cur.Store(&snapshot{policy.NewPicker(all), all})

			stop := make(chan struct{})
			var rebuilds sync.WaitGroup
			rebuilds.Go(func() {
				for k := 0; ; k++ {
					select {
					case <-stop:
						return
					default:
					}
					// Prefixes and suffixes of all, the empty set included.
					sub := all[:k%(len(all)+1)]
					if k%2 == 1 {
						sub = all[k%len(all):]
					}
					cur.Store(&snapshot{policy.NewPicker(sub), sub})
				}
			})

			var outOfRange, none, statements atomic.Int64
			var pickers sync.WaitGroup
			for g := range goroutines {
				pickers.Go(func() {
					for k := range picks {
						s := cur.Load()
						i := s.picker.Pick(context.Background())
						switch {
						case i == -1 && len(s.replicas) == 0:
							none.Add(1)
							continue
						case i < 0 || i >= len(s.replicas):
							outOfRange.Add(1)
							continue
						}
						st := s.replicas[i].Stats
						start := st.Start()
						st.Done(start, (g+k)%7 == 0)
						statements.Add(1)
					}
				})
			}
			pickers.Wait()
			close(stop)
			rebuilds.Wait()

			if got := outOfRange.Load(); got != 0 {
				t.Errorf("%d picks out of range", got)
			}
			if got, want := statements.Load()+none.Load(), int64(goroutines*picks); got != want {
				t.Errorf("statements + empty picks = %d, want %d", got, want)
			}
			var served uint64
			for _, r := range all {
				if got := r.Stats.InFlight(); got != 0 {
					t.Errorf("%s: InFlight = %d, want 0", r.Name, got)
				}
				served += r.Stats.Served()
			}
			if got, want := served, uint64(statements.Load()); got != want {
				t.Errorf("total Served = %d, want %d", got, want)
			}
		})
	}
}

func TestFunc(t *testing.T) {
	var pol Policy = Func(func(replicas []Replica) func(context.Context) int {
		last := len(replicas) - 1
		return func(context.Context) int { return last }
	})
	tests := []struct {
		name string
		give []Replica
		want int
	}{
		{name: "empty", give: nil, want: -1},
		{name: "three", give: ones(3), want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pol.NewPicker(tt.give).Pick(context.Background()); got != tt.want {
				t.Errorf("Pick = %d, want %d", got, tt.want)
			}
		})
	}
	if got := pol.Name(); got != "func" {
		t.Errorf("Name() = %q, want %q", got, "func")
	}
}
