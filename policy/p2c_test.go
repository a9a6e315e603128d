package policy

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestP2CScore(t *testing.T) {
	tests := []struct {
		name     string
		latency  time.Duration
		inflight int
		want     time.Duration
	}{
		{name: "unmeasured, idle", want: time.Millisecond},
		{name: "unmeasured, busy", inflight: 10, want: 11 * time.Millisecond},
		{name: "fast, idle", latency: 500 * time.Microsecond, want: 1500 * time.Microsecond},
		{name: "fast, 3 in flight", latency: 500 * time.Microsecond, inflight: 3, want: 6 * time.Millisecond},
		{name: "slow, idle", latency: 20 * time.Millisecond, want: 21 * time.Millisecond},
		{name: "failed", latency: failPenalty, inflight: 1, want: 2 * (failPenalty + time.Millisecond)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var s Stats
				if tt.latency > 0 {
					finish(&s, tt.latency, false)
				}
				for range tt.inflight {
					s.Start()
				}
				if got := time.Duration(score(&s)); got != tt.want {
					t.Errorf("score = %v, want %v", got, tt.want)
				}
			})
		})
	}
}

// warm feeds every replica 30 statements of its latency, one every 10ms
// of fake time, as steady traffic would.
func warm(rs []Replica, lat []time.Duration) {
	for range 30 {
		time.Sleep(10 * time.Millisecond)
		for i, r := range rs {
			finish(r.Stats, lat[i], false)
		}
	}
}

// latencies returns n latencies of 0.5ms, but 20ms at index slow.
func latencies(n, slow int) []time.Duration {
	lat := make([]time.Duration, n)
	for i := range lat {
		lat[i] = 500 * time.Microsecond
	}
	if slow >= 0 {
		lat[slow] = 20 * time.Millisecond
	}
	return lat
}

// In a tight loop (no time passes) a replica 20ms slower than its peers
// gets under 5% of reads — none at all while it has been heard from
// recently, and exactly one probe if it has been idle, whatever the
// number of concurrent callers.
func TestP2CAvoidsSlowReplica(t *testing.T) {
	const picks = 10000
	tests := []struct {
		name      string
		replicas  int
		slow      int
		idle      time.Duration // fake time between warming and picking
		callers   int
		wantSlow  int
		wantShare float64 // the slow replica's share is under this
	}{
		{name: "2 replicas", replicas: 2, slow: 1, callers: 1, wantSlow: 0, wantShare: .05},
		{name: "3 replicas", replicas: 3, slow: 0, callers: 1, wantSlow: 0, wantShare: .05},
		{name: "8 replicas", replicas: 8, slow: 5, callers: 1, wantSlow: 0, wantShare: .05},
		{name: "2 replicas, idle 2s", replicas: 2, slow: 1, idle: 2 * time.Second, callers: 1, wantSlow: 1, wantShare: .05},
		{name: "3 replicas, idle 2s, 8 callers", replicas: 3, slow: 2, idle: 2 * time.Second, callers: 8, wantSlow: 1, wantShare: .05},
		{name: "8 replicas, idle 2s, 8 callers", replicas: 8, slow: 0, idle: 2 * time.Second, callers: 8, wantSlow: 1, wantShare: .05},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rs := ones(tt.replicas)
				lat := latencies(tt.replicas, tt.slow)
				warm(rs, lat)
				time.Sleep(tt.idle)
				p := mustP2C(t, P2CConfig{}).NewPicker(rs)
				var slow, outOfRange atomic.Int64
				var wg sync.WaitGroup
				for range tt.callers {
					wg.Go(func() {
						for range picks / tt.callers {
							i := p.Pick(t.Context())
							switch {
							case i < 0 || i >= len(rs):
								outOfRange.Add(1)
								continue
							case i == tt.slow:
								slow.Add(1)
							}
							finish(rs[i].Stats, lat[i], false)
						}
					})
				}
				wg.Wait()
				if got := outOfRange.Load(); got != 0 {
					t.Errorf("%d picks out of range", got)
				}
				if got := int(slow.Load()); got != tt.wantSlow {
					t.Errorf("slow replica picked %d times, want %d", got, tt.wantSlow)
				}
				if got := float64(slow.Load()) / picks; got >= tt.wantShare {
					t.Errorf("slow replica's share = %.4f, want < %.2f", got, tt.wantShare)
				}
			})
		})
	}
}

// simulate sends a read every step of fake time for d, each to the replica
// p picks, and records on it a statement of latency lat(i) (with ±20%
// jitter). It returns how many reads each replica served.
func simulate(p Picker, rs []Replica, step, d time.Duration, lat func(i int) time.Duration) []int {
	counts := make([]int, len(rs))
	ctx := context.Background()
	for end := time.Now().Add(d); time.Now().Before(end); {
		time.Sleep(step)
		i := p.Pick(ctx)
		counts[i]++
		l := lat(i)
		l += time.Duration(rand.Int64N(int64(l)*2/5+1)) - l/5
		finish(rs[i].Stats, l, false)
	}
	return counts
}

// Over a long stretch of steady traffic the slow replica is still probed,
// about once per probe interval, and keeps a tiny share.
func TestP2CProbesSlowReplica(t *testing.T) {
	const (
		step = 10 * time.Millisecond
		d    = time.Minute // 6000 reads
	)
	tests := []struct {
		name     string
		give     P2CConfig
		min, max int // probes of the slow replica
	}{
		// Stale after 1s, then drawn 2/3 of the time and probed at odds of
		// 1/16: about one probe per 1.24s, ≈ 48 in a minute.
		{name: "default", min: 38, max: 58},
		{name: "every 5s", give: P2CConfig{ProbeInterval: 5 * time.Second}, min: 9, max: 13},
		{name: "zero means default", give: P2CConfig{ProbeInterval: 0}, min: 38, max: 58},
		{name: "off", give: P2CConfig{DisableProbe: true}, min: 0, max: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rs := ones(3)
				lat := latencies(3, 2)
				warm(rs, lat)
				p := mustP2C(t, tt.give).NewPicker(rs)
				counts := simulate(p, rs, step, d, func(i int) time.Duration { return lat[i] })
				if got := counts[2]; got < tt.min || got > tt.max {
					t.Errorf("slow replica picked %d times in %v (counts %v), want %d to %d", got, d, counts, tt.min, tt.max)
				}
				if got := float64(counts[2]) / float64(d/step); got >= 0.05 {
					t.Errorf("slow replica's share = %.4f, want < 0.05", got)
				}
			})
		})
	}
}

// load runs workers that each, until d of fake time has passed, pick a
// replica with p, hold a statement on it for lat(i) (±20% jitter), and
// wait think before the next read: concurrent traffic, so that statements
// in flight count. It returns how many reads each replica served.
func load(p Picker, rs []Replica, workers int, think, d time.Duration, lat func(i int) time.Duration) []int {
	var mu sync.Mutex
	counts := make([]int, len(rs))
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for time.Now().Before(end) {
				i := p.Pick(context.Background())
				s := rs[i].Stats
				l := lat(i)
				start := s.Start()
				time.Sleep(l + time.Duration(rand.Int64N(int64(l)*2/5+1)) - l/5)
				s.Done(start, false)
				mu.Lock()
				counts[i]++
				mu.Unlock()
				time.Sleep(think)
			}
		})
	}
	wg.Wait()
	return counts
}

// A slow replica that recovers is re-measured by the probes and takes its
// share again within seconds.
func TestP2CRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rs := ones(3)
		var slow atomic.Int64
		slow.Store(int64(20 * time.Millisecond))
		lat := func(i int) time.Duration {
			if i == 2 {
				return time.Duration(slow.Load())
			}
			return 500 * time.Microsecond
		}
		p := mustP2C(t, P2CConfig{}).NewPicker(rs)
		sick := load(p, rs, 4, 10*time.Millisecond, 20*time.Second, lat)
		slow.Store(int64(500 * time.Microsecond))
		recovering := load(p, rs, 4, 10*time.Millisecond, 5*time.Second, lat)
		recovered := load(p, rs, 4, 10*time.Millisecond, 10*time.Second, lat)
		t.Logf("reads per replica: sick %v, recovering %v, recovered %v", sick, recovering, recovered)
		if got := share(sick, 2); got >= 0.05 {
			t.Errorf("share while slow = %.4f, want < 0.05", got)
		}
		if got := rs[2].Stats.Latency(); got > time.Millisecond {
			t.Errorf("Latency 15s after recovery = %v, want ≤ 1ms", got)
		}
		// Equal replicas under light load do not split reads evenly (the
		// one with the lowest average wins the draws it is in), so the
		// bound is loose; it is still 17 times the share while slow.
		if got := share(recovered, 2); got < 0.05 {
			t.Errorf("share 5s to 15s after recovery = %.4f, want ≥ 0.05", got)
		}
	})
}

// share returns counts[i]'s share of the total.
func share(counts []int, i int) float64 {
	total := 0
	for _, c := range counts {
		total += c
	}
	return float64(counts[i]) / float64(total)
}

// At equal latency P2C follows load like LeastInFlight.
func TestP2CPrefersLessLoaded(t *testing.T) {
	const picks = 30000
	tests := []struct {
		name string
		give []int // statements in flight
		want []float64
	}{
		{name: "2: busy first", give: []int{10, 0}, want: []float64{0, 1, 0}},
		{name: "2: tie", give: []int{2, 2}, want: []float64{.5, .5, 0}},
		{name: "3: one busy", give: []int{0, 10, 0}, want: []float64{.5, 0, .5, 0}},
		{name: "3: ordered", give: []int{0, 1, 2}, want: []float64{2. / 3, 1. / 3, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rs := ones(len(tt.give))
				warm(rs, latencies(len(rs), -1))
				for i, n := range tt.give {
					for range n {
						rs[i].Stats.Start()
					}
				}
				got := shares(pickN(mustP2C(t, P2CConfig{}).NewPicker(rs), len(rs), picks), picks)
				assertShares(t, got, tt.want, 0.03)
			})
		})
	}
}

// Replicas nobody has measured yet share the reads evenly.
func TestP2CUnmeasured(t *testing.T) {
	const picks = 30000
	for _, n := range []int{2, 3, 8} {
		rs := ones(n)
		want := make([]float64, n+1)
		for i := range n {
			want[i] = 1 / float64(n)
		}
		got := shares(pickN(mustP2C(t, P2CConfig{}).NewPicker(rs), n, picks), picks)
		assertShares(t, got, want, 0.03)
	}
}

// Each P2C value is independent, and its config applies only to it.
func TestP2CConfig(t *testing.T) {
	tests := []struct {
		name string
		give P2CConfig
		want time.Duration // the picker's probe interval; 0: never probe
	}{
		{name: "zero", give: P2CConfig{}, want: time.Second},
		{name: "3s", give: P2CConfig{ProbeInterval: 3 * time.Second}, want: 3 * time.Second},
		{name: "off", give: P2CConfig{DisableProbe: true}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustP2C(t, tt.give).NewPicker(ones(2)).(*p2cPicker)
			if p.probe != tt.want {
				t.Errorf("probe interval = %v, want %v", p.probe, tt.want)
			}
		})
	}
}

func TestP2CConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		give P2CConfig
		want string
	}{
		{name: "negative probe interval", give: P2CConfig{ProbeInterval: -time.Second}, want: "ProbeInterval is negative (-1s)"},
		{name: "negative nanosecond", give: P2CConfig{ProbeInterval: -1}, want: "ProbeInterval is negative"},
		{name: "interval with probing off", give: P2CConfig{ProbeInterval: time.Second, DisableProbe: true}, want: "set with DisableProbe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := P2C(tt.give)
			if p != nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("P2C(%+v) = %v, %v; want ErrConfig containing %q", tt.give, p, err, tt.want)
			}
		})
	}
}

func mustP2C(t testing.TB, cfg P2CConfig) Policy {
	t.Helper()
	p, err := P2C(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// two draws each ordered pair of distinct indices equally often.
func TestTwo(t *testing.T) {
	for _, n := range []int{2, 3, 5} {
		const draws = 60000
		counts := map[[2]int]int{}
		for range draws {
			i, j := two(rand.Uint64(), n)
			if i == j || i < 0 || j < 0 || i >= n || j >= n {
				t.Fatalf("two(_, %d) = %d, %d", n, i, j)
			}
			counts[[2]int{i, j}]++
		}
		want := float64(draws) / float64(n*(n-1))
		if len(counts) != n*(n-1) {
			t.Errorf("n=%d: %d pairs drawn, want %d", n, len(counts), n*(n-1))
		}
		for pair, c := range counts {
			if math.Abs(float64(c)-want) > 0.1*want {
				t.Errorf("n=%d: pair %v drawn %d times, want %.0f ± 10%%", n, pair, c, want)
			}
		}
	}
}
