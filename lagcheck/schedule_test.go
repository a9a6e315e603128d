package lagcheck

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestFirstWait(t *testing.T) {
	const interval = 250 * time.Millisecond
	tests := []struct {
		name string
		draw int64
		want time.Duration
	}{
		{name: "lowest draw: a full Interval", draw: 0, want: interval},
		{name: "middle", draw: int64(interval / 2), want: interval / 2},
		{name: "highest draw: at once", draw: int64(interval) - 1, want: time.Nanosecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotN int64
			got := firstWait(interval, func(n int64) int64 { gotN = n; return tt.draw })
			if got != tt.want || gotN != int64(interval) {
				t.Errorf("firstWait = %v after a draw in [0, %d); want %v after a draw in [0, %d)", got, gotN, tt.want, int64(interval))
			}
		})
	}
}

// TestFirstWaitSpread: with a seeded source, the phases of 10,000 Checkers
// fall within (0, Interval], spread evenly: each tenth of the Interval gets
// 1,000 ± 10%.
func TestFirstWaitSpread(t *testing.T) {
	const interval, n = 250 * time.Millisecond, 10000
	src := rand.New(rand.NewPCG(11, 12))
	var bins [10]int
	for range n {
		w := firstWait(interval, src.Int64N)
		if w <= 0 || w > interval {
			t.Fatalf("firstWait = %v, outside (0, %v]", w, interval)
		}
		bins[min(int(w*10/interval), 9)]++
	}
	for i, b := range bins {
		if b < n/10*9/10 || b > n/10*11/10 {
			t.Errorf("phases in tenth %d of the Interval: %d of %d, want %d ± 10%%: %v", i, b, n, n/10, bins)
		}
	}
}

// sampleTimes is a Probe that records when each primary sample started.
type sampleTimes struct {
	mu sync.Mutex
	at []time.Time
}

func (s *sampleTimes) Primary(context.Context, DB) (Position, error) {
	s.mu.Lock()
	s.at = append(s.at, time.Now())
	s.mu.Unlock()
	return LSNPosition(1), nil
}

func (s *sampleTimes) Replica(context.Context, DB, Position) (Replay, error) {
	return Replay{Position: LSNPosition(1)}, nil
}

func (s *sampleTimes) times() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.at)
}

// TestSampleSchedule: after Start's round, the sample loop waits its
// random phase, then samples every Interval exactly: no gap above an
// Interval (the staleness bound's growth), the rate unchanged. Checkers
// that start at the same instant sample at different instants. Fake time;
// each Checker draws its phase from its own seeded source.
func TestSampleSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const checkers, rounds = 8, 20
		var (
			probes []*sampleTimes
			draws  = make([]time.Duration, checkers)
			wg     sync.WaitGroup
		)
		t0 := time.Now()
		for k := range checkers {
			p := &sampleTimes{}
			c, err := New(Config{Interval: tick, Probe: p}, "postgres", openMock(t), []Target{{DB: openMock(t)}})
			if err != nil {
				t.Fatal(err)
			}
			src := rand.New(rand.NewPCG(1, uint64(k)))
			c.phase = func(n int64) int64 {
				d := src.Int64N(n)
				draws[k] = time.Duration(d)
				return d
			}
			probes = append(probes, p)
			defer c.Close()
			wg.Go(func() { c.Start(context.Background()) }) // all at t0
		}
		wg.Wait()
		started := time.Now() // t0 + the settle time of Start's round
		if started != t0.Add(settleTime(tick)) {
			t.Fatalf("Start took %v", started.Sub(t0))
		}
		time.Sleep(rounds * tick)
		synctest.Wait()

		seen := map[time.Time]int{}
		var firsts []time.Duration
		for k, p := range probes {
			at := p.times()
			if at[0] != t0 {
				t.Errorf("checker %d: Start's round at +%v", k, at[0].Sub(t0))
			}
			// The loop's first round: Interval − the draw after Start.
			firsts = append(firsts, at[1].Sub(started))
			if want := started.Add(tick - draws[k]); at[1] != want {
				t.Errorf("checker %d: first loop round %v after Start, want %v", k, at[1].Sub(started), want.Sub(started))
			}
			for i := 2; i < len(at); i++ {
				if d := at[i].Sub(at[i-1]); d != tick {
					t.Errorf("checker %d: round %d came %v after the previous, want %v", k, i, d, tick)
				}
			}
			if got := len(at) - 1; got != rounds && got != rounds-1 {
				t.Errorf("checker %d: %d rounds in %d Intervals", k, got, rounds)
			}
			for _, a := range at[1:] {
				seen[a]++
			}
		}
		for a, n := range seen {
			if n > 1 {
				t.Errorf("%d checkers sampled at the same instant +%v", n, a.Sub(t0))
			}
		}
		t.Logf("first loop rounds of %d checkers started together, after Start: %v", checkers, firsts)
	})
}
