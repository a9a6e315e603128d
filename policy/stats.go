package policy

import (
	"math"
	"sync/atomic"
	"time"
)

// Constants of the latency average (see docs/policies.md).
const (
	ewmaTau     = 600 * time.Millisecond // time constant of the EWMA
	failPenalty = time.Second            // least latency of a failed statement
)

// epoch is the origin of the package's monotonic clock.
var epoch = time.Now()

// nanotime returns monotonic nanoseconds since epoch (under synctest, the
// bubble's clock). Zero means "never" in Stats fields.
func nanotime() int64 { return int64(time.Since(epoch)) }

// Stats are a replica's live counters: statements in flight, an average of
// statement latency, and totals. The plugin updates them around every
// statement the replica serves; policies read them. All methods are
// lock-free, allocation-free and safe for concurrent use. The zero value is
// ready to use. A Stats must not be copied after first use.
type Stats struct {
	inflight atomic.Int64
	served   atomic.Uint64
	failed   atomic.Uint64
	ewma     atomic.Int64 // latency average, nanoseconds
	stamp    atomic.Int64 // nanotime of the last Done; 0: none yet
	probed   atomic.Int64 // nanotime of P2C's last probe; 0: never
	reset    atomic.Int64 // nanotime of the last ResetLatency; 0: never
	hist     latencyHist
}

// Start records that a statement began on the replica and returns the
// token to pass to Done when it finishes.
func (s *Stats) Start() int64 {
	s.inflight.Add(1)
	return nanotime()
}

// Done records that the statement begun at start (Start's token) finished
// and folds its latency into Latency and Latencies. failed means it failed because of
// the replica (a connection error or a timeout), not the statement.
func (s *Stats) Done(start int64, failed bool) {
	now := nanotime()
	s.inflight.Add(-1)
	s.served.Add(1)
	lat := max(now-start, 0)
	s.hist.add(lat)
	if failed {
		s.failed.Add(1)
		lat = max(lat, int64(failPenalty))
	}
	if r := s.reset.Load(); r != 0 && start < r {
		return // begun before ResetLatency: it measured the replica as it was
	}
	s.observe(now, lat)
}

// observe folds a latency sample lat, taken at now, into the EWMA with the
// old average weighted exp(-elapsed/tau); the first sample is taken as is.
func (s *Stats) observe(now, lat int64) {
	prev := s.stamp.Swap(now)
	w := 0.0 // first sample: no history
	if prev != 0 {
		elapsed := now - prev
		if elapsed <= 0 {
			// Finished at the same instant as the previous sample: a
			// time-weighted average gives it no weight.
			return
		}
		w = math.Exp(-float64(elapsed) / float64(ewmaTau))
	}
	for {
		old := s.ewma.Load()
		v := int64(float64(old)*w + float64(lat)*(1-w))
		if s.ewma.CompareAndSwap(old, v) {
			return
		}
	}
}

// ResetLatency forgets the latency history, so that the next statement
// begun after it sets Latency afresh; statements begun before it no longer
// count in Latency. The plugin calls it when a replica returns to service.
func (s *Stats) ResetLatency() {
	s.reset.Store(nanotime())
	s.stamp.Store(0)
	s.ewma.Store(0)
}

// Cancel records that the statement Start counted did not run after all:
// InFlight is as it was before Start, and nothing else is counted.
func (s *Stats) Cancel() { s.inflight.Add(-1) }

// InFlight returns the number of statements running on the replica: Start
// calls not yet matched by Done.
func (s *Stats) InFlight() int64 { return s.inflight.Load() }

// Latency returns the replica's average statement latency, zero until a
// statement has finished: an exponentially weighted moving average over
// time (τ = 600ms), in which a failed statement counts as at least 1s.
// docs/policies.md explains the weighting.
func (s *Stats) Latency() time.Duration { return time.Duration(s.ewma.Load()) }

// Served returns the number of statements that finished on the replica,
// failed ones included.
func (s *Stats) Served() uint64 { return s.served.Load() }

// Failed returns the number of statements that failed because of the
// replica (connection errors and timeouts), a subset of Served.
func (s *Stats) Failed() uint64 { return s.failed.Load() }

// Latencies returns the distribution of the latencies of the statements
// served, failed ones included (as measured, without Latency's penalty).
func (s *Stats) Latencies() Histogram { return s.hist.load() }

// Snapshot is a copy of a Stats' counters, as its methods of the same
// names return them.
type Snapshot struct {
	InFlight int64
	Latency  time.Duration
	Served   uint64
	Failed   uint64
}

// Snapshot returns the current counters. Each is read atomically, but not
// all together: under traffic they may be a few statements apart.
func (s *Stats) Snapshot() Snapshot {
	return Snapshot{
		InFlight: s.InFlight(),
		Latency:  s.Latency(),
		Served:   s.Served(),
		Failed:   s.Failed(),
	}
}

// idle reports whether the replica has been neither heard from (no
// statement finished) nor probed for longer than d at now.
func (s *Stats) idle(now int64, d time.Duration) bool {
	return older(now, s.stamp.Load(), d) && older(now, s.probed.Load(), d)
}

// claimProbe marks the replica as probed at now and reports whether this
// caller, of those that saw it idle, won the probe.
func (s *Stats) claimProbe(now int64, d time.Duration) bool {
	p := s.probed.Load()
	return older(now, p, d) && s.probed.CompareAndSwap(p, now)
}

// older reports whether the reading t is more than d before now; t == 0
// means never, which is older than anything.
func older(now, t int64, d time.Duration) bool {
	return t == 0 || now-t > int64(d)
}
