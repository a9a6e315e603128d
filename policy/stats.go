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
	started  atomic.Uint64 // Start and StartSampled calls: each statement's sequence number
	served   atomic.Uint64 // Done calls
	canceled atomic.Uint64 // Cancel calls
	failed   atomic.Uint64
	ewma     atomic.Int64  // latency average, nanoseconds
	stamp    atomic.Int64  // nanotime of the last timed Done; 0: none yet
	probed   atomic.Int64  // nanotime of P2C's last probe; 0: never
	reset    atomic.Int64  // nanotime of the last ResetLatency; 0: never
	resetSeq atomic.Uint64 // started at the last ResetLatency
	mask     atomic.Uint64 // StartSampled times the statements whose sequence number & mask is 0
	hist     latencyHist
}

// Sampling (StartSampled). A replica whose timed statements finish less
// than sampleGap apart times one statement in sampleMask+1; one that is
// quieter times every statement.
const (
	sampleMask = 15
	sampleGap  = 50 * time.Millisecond
)

// untimed is the token of a statement StartSampled did not time, plus its
// sequence number; every such token is below untimedEnd, and every clock
// reading above it.
const (
	untimed    = math.MinInt64
	untimedEnd = math.MinInt64 / 2
)

// Start records that a statement began on the replica and returns the
// token to pass to Done when it finishes. The statement is timed.
func (s *Stats) Start() int64 {
	s.started.Add(1)
	return nanotime()
}

// StartSampled is Start for a statement that need not be timed: on a busy
// replica (timed statements finishing less than 50ms apart) it times one
// statement in 16 and reads the clock for no other; on a quieter one, and
// for the statement after ResetLatency or a P2C probe, it times every
// statement. The other counters count every statement alike.
func (s *Stats) StartSampled() int64 {
	seq := s.started.Add(1)
	if seq&s.mask.Load() != 0 {
		return untimed + int64(seq)
	}
	return nanotime()
}

// Done records that the statement begun at start (the token of Start or
// StartSampled) finished and, if it was timed, folds its latency into
// Latency and Latencies. failed means it failed because of the replica (a
// connection error or a timeout), not the statement; a failure counts in
// Latency even when it was not timed, as the 1s penalty.
func (s *Stats) Done(start int64, failed bool) {
	s.served.Add(1)
	if failed {
		s.failed.Add(1)
	}
	if start < untimedEnd {
		if failed && uint64(start-untimed) > s.resetSeq.Load() {
			s.observe(nanotime(), int64(failPenalty))
		}
		return
	}
	now := nanotime()
	lat := max(now-start, 0)
	s.hist.add(lat)
	if failed {
		lat = max(lat, int64(failPenalty))
	}
	if r := s.reset.Load(); r != 0 && start < r {
		return // begun before ResetLatency: it measured the replica as it was
	}
	prev := s.observe(now, lat)
	// Time one statement in 16 while timed ones come less than sampleGap
	// apart, every statement otherwise.
	mask := uint64(sampleMask)
	if prev == 0 || now-prev >= int64(sampleGap) {
		mask = 0
	}
	if s.mask.Load() != mask {
		s.mask.Store(mask)
	}
}

// observe folds a latency sample lat, taken at now, into the EWMA with the
// old average weighted exp(-elapsed/tau); the first sample is taken as is.
// It returns the time of the previous sample, 0 for none.
func (s *Stats) observe(now, lat int64) (prev int64) {
	prev = s.stamp.Swap(now)
	w := 0.0 // first sample: no history
	if prev != 0 {
		elapsed := now - prev
		if elapsed <= 0 {
			// Finished at the same instant as the previous sample: a
			// time-weighted average gives it no weight.
			return prev
		}
		w = math.Exp(-float64(elapsed) / float64(ewmaTau))
	}
	for {
		old := s.ewma.Load()
		v := int64(float64(old)*w + float64(lat)*(1-w))
		if s.ewma.CompareAndSwap(old, v) {
			return prev
		}
	}
}

// ResetLatency forgets the latency history, so that the next statement
// begun after it sets Latency afresh; statements begun before it no longer
// count in Latency. The plugin calls it when a replica returns to service.
func (s *Stats) ResetLatency() {
	s.reset.Store(nanotime())
	s.resetSeq.Store(s.started.Load())
	s.stamp.Store(0)
	s.ewma.Store(0)
	s.mask.Store(0)
}

// Cancel records that the statement Start counted did not run after all:
// InFlight is as it was before Start, and nothing else is counted.
func (s *Stats) Cancel() { s.canceled.Add(1) }

// InFlight returns the number of statements running on the replica: Start
// and StartSampled calls not yet matched by Done or Cancel.
func (s *Stats) InFlight() int64 {
	// The ends are read before started, so that the result is never below
	// zero; but a reader preempted between the two reads would count every
	// statement begun and ended meanwhile as in flight, and P2C would then
	// shun a fast replica for one pick. Reading the ends again detects it:
	// when they did not move, started was read while exactly that many had
	// ended, and the count is exact.
	ended := s.served.Load() + s.canceled.Load()
	for range 3 {
		started := s.started.Load()
		again := s.served.Load() + s.canceled.Load()
		if again == ended {
			return int64(started - ended)
		}
		ended = again
	}
	return int64(s.started.Load() - ended)
}

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
// timed (see StartSampled), failed ones included (as measured, without
// Latency's penalty). Its Count is that of the timed statements, at most
// Served.
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
// caller, of those that saw it idle, won the probe. The winner's statement
// is timed: it is what the probe is for.
func (s *Stats) claimProbe(now int64, d time.Duration) bool {
	p := s.probed.Load()
	if !older(now, p, d) || !s.probed.CompareAndSwap(p, now) {
		return false
	}
	s.mask.Store(0)
	return true
}

// older reports whether the reading t is more than d before now; t == 0
// means never, which is older than anything.
func older(now, t int64, d time.Duration) bool {
	return t == 0 || now-t > int64(d)
}
