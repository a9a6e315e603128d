package policy

import (
	"math"
	"sync/atomic"
	"time"
)

// Constants of the latency average. They are documented on Stats.Latency.
const (
	// ewmaTau is the time constant of the latency EWMA: a sample's weight
	// falls to 1/e after ewmaTau, to half after ewmaTau·ln2 ≈ 416ms.
	ewmaTau = 600 * time.Millisecond
	// failPenalty is the least latency folded into the EWMA for a
	// statement that failed because of the replica.
	failPenalty = time.Second
)

// epoch is the origin of the package's monotonic clock.
var epoch = time.Now()

// nanotime returns monotonic nanoseconds since epoch. Zero is reserved to
// mean "never" in Stats fields; a reading of exactly zero is harmless.
//
// Inside a testing/synctest bubble time.Now has no monotonic reading, so
// the value follows the bubble's fake clock (and is negative, since the
// bubble starts in 2000); differences between readings stay exact.
func nanotime() int64 { return int64(time.Since(epoch)) }

// Stats are a replica's live counters: statements in flight, an average of
// statement latency, and totals. The plugin updates them around every
// statement the replica serves (queries, execs, BeginTx and the statements
// of transactions on the replica), and policies read them to choose a
// replica.
//
// All methods are lock-free, allocation-free and safe for concurrent use.
// The zero value is ready to use: nothing in flight, no latency measured
// yet. A Stats must not be copied after first use; share it by pointer, as
// Replica does, so that every Picker built over the replica sees the same
// counters.
type Stats struct {
	inflight atomic.Int64
	served   atomic.Uint64
	failed   atomic.Uint64
	// ewma is the latency average in nanoseconds.
	ewma atomic.Int64
	// stamp is the nanotime of the last Done, 0 if none yet.
	stamp atomic.Int64
	// probed is the nanotime at which P2C last picked the replica to
	// re-measure it, 0 if never.
	probed atomic.Int64
}

// Start records that a statement began on the replica and returns a token
// to pass to Done when it finishes. The token is a monotonic clock reading
// that only this process's Stats understand.
func (s *Stats) Start() int64 {
	s.inflight.Add(1)
	return nanotime()
}

// Done records that the statement begun at start (Start's token) finished.
// failed reports whether it failed because of the replica (a connection
// error or a timeout), as opposed to an error the server produced for the
// statement, which counts as a success here. The statement's latency is
// folded into Latency; a failed statement counts as taking at least 1s.
func (s *Stats) Done(start int64, failed bool) {
	now := nanotime()
	s.inflight.Add(-1)
	s.served.Add(1)
	lat := max(now-start, 0)
	if failed {
		s.failed.Add(1)
		lat = max(lat, int64(failPenalty))
	}
	s.observe(now, lat)
}

// observe folds a latency sample lat, taken at now, into the EWMA. The
// weight of the old average is exp(-elapsed/tau), elapsed being the time
// since the previous sample; the first sample is taken as it is.
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

// ResetLatency forgets the latency history, so that the next statement to
// finish sets Latency afresh. The plugin calls it when the health checker
// returns a replica to service: the failure penalties it collected while
// it was failing say nothing about the replica that is back, and a
// latency-driven policy would otherwise keep avoiding it until they decay.
func (s *Stats) ResetLatency() {
	s.stamp.Store(0)
	s.ewma.Store(0)
}

// InFlight returns the number of statements running on the replica: Start
// calls not yet matched by Done.
func (s *Stats) InFlight() int64 { return s.inflight.Load() }

// Latency returns the replica's average statement latency, zero until a
// statement has finished.
//
// It is an exponentially weighted moving average over time, as in kratos
// (and Finagle's PeakEWMA, less the peak): when a statement finishes, elapsed after the
// previous one, the average becomes old·w + latency·(1−w) with
// w = exp(−elapsed/600ms). A sample's weight thus depends on the time it
// covers, not on how many statements finished: the average reflects about
// the last second whatever the traffic, and after a quiet spell of a few
// seconds the next statement replaces it almost entirely, which is how a
// recovered replica is re-measured quickly. A statement that failed
// because of the replica counts as taking at least 1s (the penalty), so a
// replica that fails fast does not look fast.
func (s *Stats) Latency() time.Duration { return time.Duration(s.ewma.Load()) }

// Served returns the number of statements that finished on the replica,
// failed ones included.
func (s *Stats) Served() uint64 { return s.served.Load() }

// Failed returns the number of statements that failed because of the
// replica (connection errors and timeouts), a subset of Served.
func (s *Stats) Failed() uint64 { return s.failed.Load() }

// Snapshot is a copy of a Stats' counters in plain values, which may be
// kept and compared.
type Snapshot struct {
	// InFlight is the number of statements running on the replica.
	InFlight int64
	// Latency is the average statement latency (see Stats.Latency).
	Latency time.Duration
	// Served counts finished statements, failed ones included.
	Served uint64
	// Failed counts statements that failed because of the replica.
	Failed uint64
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

// claimProbe marks the replica as probed at now, and reports whether this
// caller won the right to probe it: of concurrent callers that saw it
// idle, one wins.
func (s *Stats) claimProbe(now int64, d time.Duration) bool {
	p := s.probed.Load()
	return older(now, p, d) && s.probed.CompareAndSwap(p, now)
}

// older reports whether the reading t is more than d before now; t == 0
// means never, which is older than anything.
func older(now, t int64, d time.Duration) bool {
	return t == 0 || now-t > int64(d)
}
