package policy

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// finish records on s a statement that took lat and ended now.
func finish(s *Stats, lat time.Duration, failed bool) {
	s.Done(s.Start()-int64(lat), failed)
}

func TestStatsZeroValue(t *testing.T) {
	var s Stats
	if got, want := s.Snapshot(), (Snapshot{}); got != want {
		t.Errorf("Snapshot of the zero value = %+v, want %+v", got, want)
	}
}

func TestStatsCounts(t *testing.T) {
	tests := []struct {
		name    string
		started int // statements started and not finished
		ok      int // statements that succeeded
		failed  int // statements that failed because of the replica
		want    Snapshot
	}{
		{name: "none", want: Snapshot{}},
		{name: "in flight", started: 3, want: Snapshot{InFlight: 3}},
		{name: "served", ok: 5, want: Snapshot{Served: 5, Latency: time.Millisecond}},
		{name: "failed", failed: 2, want: Snapshot{Served: 2, Failed: 2, Latency: failPenalty}},
		{name: "all", started: 1, ok: 4, failed: 1, want: Snapshot{InFlight: 1, Served: 5, Failed: 1, Latency: time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var s Stats
				for range tt.started {
					s.Start()
				}
				// Failures first, then successes a few seconds later, so
				// that the latency is that of the successes (a failure
				// alone counts as failPenalty).
				for range tt.failed {
					finish(&s, time.Millisecond, true)
				}
				time.Sleep(time.Minute)
				for range tt.ok {
					finish(&s, time.Millisecond, false)
					time.Sleep(time.Millisecond)
				}
				if got := s.Snapshot(); got != tt.want {
					t.Errorf("Snapshot = %+v, want %+v", got, tt.want)
				}
			})
		})
	}
}

// The first latency is taken as it is; a failure counts as at least the
// penalty.
func TestStatsFirstSample(t *testing.T) {
	tests := []struct {
		name   string
		give   time.Duration
		failed bool
		want   time.Duration
	}{
		{name: "success", give: 20 * time.Millisecond, want: 20 * time.Millisecond},
		{name: "instant", give: 0, want: 0},
		{name: "fast failure", give: time.Millisecond, failed: true, want: time.Second},
		{name: "timeout", give: 5 * time.Second, failed: true, want: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var s Stats
				finish(&s, tt.give, tt.failed)
				if got := s.Latency(); got != tt.want {
					t.Errorf("Latency = %v, want %v", got, tt.want)
				}
			})
		})
	}
}

// The latency measured is the time between Start and Done.
func TestStatsMeasuresStartToDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s Stats
		start := s.Start()
		time.Sleep(7 * time.Millisecond)
		s.Done(start, false)
		if got, want := s.Latency(), 7*time.Millisecond; got != want {
			t.Errorf("Latency = %v, want %v", got, want)
		}
	})
}

// After 20ms, one sample of 1ms taken after a gap weighs 1−exp(−gap/600ms).
// The wants are worked out by hand: 20ms·w + 1ms·(1−w).
func TestStatsDecay(t *testing.T) {
	tests := []struct {
		name string
		give time.Duration // gap between the two samples
		want time.Duration
	}{
		{name: "same instant: no weight", give: 0, want: 20 * time.Millisecond},
		{name: "60ms", give: 60 * time.Millisecond, want: 18191909 * time.Nanosecond},  // w = e^-0.1
		{name: "600ms", give: 600 * time.Millisecond, want: 7989709 * time.Nanosecond}, // w = e^-1
		{name: "1.2s", give: 1200 * time.Millisecond, want: 3571303 * time.Nanosecond}, // w = e^-2
		{name: "10s", give: 10 * time.Second, want: 1000001 * time.Nanosecond},         // w = e^-16.7
		{name: "1m", give: time.Minute, want: time.Millisecond},                        // w ≈ 0
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var s Stats
				finish(&s, 20*time.Millisecond, false)
				time.Sleep(tt.give)
				finish(&s, time.Millisecond, false)
				if got := s.Latency(); (got - tt.want).Abs() > time.Microsecond {
					t.Errorf("Latency = %v, want %v ± 1µs", got, tt.want)
				}
			})
		})
	}
}

// Fed a steady latency every 50ms, the average converges to it within a
// few τ, from above or below.
func TestStatsConverges(t *testing.T) {
	tests := []struct {
		name string
		from time.Duration
		give time.Duration
		want time.Duration // after 6s = 10τ: all but e^-10 ≈ 0.005% of the way
	}{
		{name: "up", from: time.Millisecond, give: 20 * time.Millisecond, want: 20 * time.Millisecond},
		{name: "down", from: 20 * time.Millisecond, give: 500 * time.Microsecond, want: 500 * time.Microsecond},
		{name: "from a failure", from: failPenalty, give: 2 * time.Millisecond, want: 2 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var s Stats
				finish(&s, tt.from, false)
				var halfway time.Duration
				for k := range 120 {
					time.Sleep(50 * time.Millisecond)
					finish(&s, tt.give, false)
					if k == 5 {
						halfway = s.Latency() // after 300ms: about 40% of the way
					}
				}
				step := (tt.want - tt.from).Abs()
				if got := s.Latency(); (got - tt.want).Abs() > step/10000 {
					t.Errorf("Latency after 6s = %v, want %v ± 0.01%% of the step", got, tt.want)
				}
				// After 300ms = τ/2 it has gone 1−e^-0.5 ≈ 39% of the way.
				wantHalf := tt.from + time.Duration(0.3935*float64(tt.want-tt.from))
				if (halfway - wantHalf).Abs() > (tt.want-tt.from).Abs()/100 {
					t.Errorf("Latency after 300ms = %v, want %v ± 1%% of the step", halfway, wantHalf)
				}
			})
		})
	}
}

// Concurrent Start/Done from many goroutines balance out: nothing left in
// flight, every statement and failure counted.
func TestStatsConcurrent(t *testing.T) {
	const goroutines, each = 8, 5000
	var s Stats
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for k := range each {
				start := s.Start()
				_ = s.InFlight()
				_ = s.Latency()
				s.Done(start, (g+k)%10 == 0)
			}
		})
	}
	wg.Wait()
	got := s.Snapshot()
	got.Latency = 0 // depends on the machine
	if want := (Snapshot{Served: goroutines * each, Failed: goroutines * each / 10}); got != want {
		t.Errorf("Snapshot = %+v, want %+v", got, want)
	}
	if l := s.Latency(); l <= 0 || l > 2*failPenalty {
		t.Errorf("Latency = %v, want in (0, %v]", l, 2*failPenalty)
	}
}

func TestStatsDoesNotAllocate(t *testing.T) {
	var s Stats
	if got := testing.AllocsPerRun(1000, func() { s.Done(s.Start(), false) }); got != 0 {
		t.Errorf("Start+Done allocate %v times, want 0", got)
	}
	if got := testing.AllocsPerRun(1000, func() { s.Done(s.StartSampled(), false) }); got != 0 {
		t.Errorf("StartSampled+Done allocate %v times, want 0", got)
	}
	if got := testing.AllocsPerRun(1000, func() { _ = s.Snapshot() }); got != 0 {
		t.Errorf("Snapshot allocates %v times, want 0", got)
	}
}

func TestStatsResetLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s Stats
		s.Done(s.Start(), true) // a failure: at least the 1s penalty
		if s.Latency() < time.Second {
			t.Fatalf("Latency after a failure = %v, want >= 1s", s.Latency())
		}
		s.ResetLatency()
		if s.Latency() != 0 {
			t.Fatalf("Latency after ResetLatency = %v, want 0", s.Latency())
		}
		s.Done(s.Start(), false)
		if l := s.Latency(); l >= 100*time.Millisecond {
			t.Fatalf("Latency after one fast statement = %v: the penalty was not forgotten", l)
		}
		if s.Failed() != 1 || s.Served() != 2 {
			t.Fatalf("counters changed: served %d failed %d", s.Served(), s.Failed())
		}
	})
}

// A statement begun before ResetLatency (one that hung on the replica
// before it was taken out of service) does not set the fresh Latency when
// it finishes after it; one begun after does.
func TestStatsResetLatencyIgnoresEarlierStatements(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s Stats
		hung := s.Start()
		time.Sleep(time.Second)
		s.ResetLatency()
		time.Sleep(10 * time.Millisecond)
		s.Done(hung, false)
		if got := s.Latency(); got != 0 {
			t.Fatalf("Latency after a statement begun before the reset = %v, want 0", got)
		}
		if s.InFlight() != 0 || s.Served() != 1 {
			t.Fatalf("counters: in flight %d, served %d; want 0, 1", s.InFlight(), s.Served())
		}
		fresh := s.Start()
		time.Sleep(2 * time.Millisecond)
		s.Done(fresh, false)
		if got, want := s.Latency(), 2*time.Millisecond; got != want {
			t.Fatalf("Latency after a statement begun after the reset = %v, want %v", got, want)
		}
	})
}

// StartSampled times every statement of a quiet replica and one in 16 of a
// busy one; every statement counts as served, and the average is that of
// the timed ones.
func TestStatsSampled(t *testing.T) {
	tests := []struct {
		name      string
		gap       time.Duration // between one statement's end and the next one's start
		n         int
		wantTimed uint64
	}{
		// The first two are timed (no previous sample, then a first gap),
		// then sequence numbers 16, 32, ..., 160.
		{name: "busy", gap: time.Millisecond, n: 160, wantTimed: 2 + 10},
		{name: "quiet", gap: sampleGap, n: 40, wantTimed: 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var s Stats
				for range tt.n {
					start := s.StartSampled()
					time.Sleep(2 * time.Millisecond)
					s.Done(start, false)
					time.Sleep(tt.gap)
				}
				h := s.Latencies()
				want := Snapshot{Served: uint64(tt.n), Latency: 2 * time.Millisecond}
				if got := s.Snapshot(); got != want || h.Count() != tt.wantTimed {
					t.Errorf("Snapshot = %+v, %d timed; want %+v, %d timed", got, h.Count(), want, tt.wantTimed)
				}
			})
		})
	}
}

// A busy replica turns quiet: the first statement timed after the gap
// makes StartSampled time every statement again.
func TestStatsSampledTurnsQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s Stats
		for range 32 {
			s.Done(s.StartSampled(), false)
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Second)
		timed := func() bool { return s.StartSampled() >= untimedEnd }
		var k int
		for k = 1; !timed(); k++ {
		}
		if k > 16 {
			t.Fatalf("the first timed statement after the gap came %d statements in", k)
		}
		s.Done(nanotime(), false) // it ends after the gap
		for range 5 {
			if !timed() {
				t.Fatal("a statement after the gap was not timed")
			}
		}
	})
}

// A failure counts in Latency, as the penalty, even when it was not timed;
// not when it began before ResetLatency. A probe's statement is timed.
func TestStatsSampledFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s Stats
		for range 2 {
			s.Done(s.StartSampled(), false)
		}
		var before, after int64
		for before = s.StartSampled(); before >= untimedEnd; before = s.StartSampled() {
			s.Done(before, false)
		}
		time.Sleep(time.Second)
		s.ResetLatency()
		if s.StartSampled() < untimedEnd {
			t.Fatal("the statement after ResetLatency was not timed")
		}
		s.Done(before, true)
		if got := s.Latency(); got != 0 || s.Failed() != 1 {
			t.Fatalf("after a failure begun before ResetLatency: Latency %v, Failed %d; want 0, 1", got, s.Failed())
		}
		s.mask.Store(sampleMask)
		for after = s.StartSampled(); after >= untimedEnd; after = s.StartSampled() {
			s.Done(after, false)
		}
		s.Done(after, true)
		if got := s.Latency(); got != failPenalty {
			t.Fatalf("Latency after an untimed failure = %v, want %v", got, failPenalty)
		}
		s.mask.Store(sampleMask)
		if now := nanotime(); !s.claimProbe(now, time.Second) {
			t.Fatal("no probe")
		}
		if s.StartSampled() < untimedEnd {
			t.Fatal("the probe's statement was not timed")
		}
	})
}
