package lagcheck

import (
	"errors"
	"sync"
	"time"
)

// Reading is the outcome of one probe of one replica.
type Reading struct {
	// Lag bounds how stale the replica's data was when it was probed.
	// When LagKnown, it is an upper bound: the replica had every commit
	// the primary made up to Lag before the probe. Otherwise it is a lower
	// bound, possibly zero (the primary could not be sampled, the replica
	// is behind every sample kept, or the probe failed).
	Lag      time.Duration
	LagKnown bool

	// Behind is how far the replica's position is behind the primary's
	// newest sample: bytes of WAL on PostgreSQL, transactions with GTIDs;
	// -1 when unknown.
	Behind int64

	// Position is the replica's replay position (zero if unknown).
	Position Position

	// Err is why the probe failed or the replica cannot serve fresh
	// reads (ErrNotReplica, ErrReplicationStopped, a timeout, a
	// connection error, ...), or the error Checker.ReportFailure got.
	Err error

	// PrimaryErr is set when the primary could not be sampled in this
	// round; the replica's state then changes only on its own errors or a
	// lag proven above MaxLag.
	PrimaryErr error

	// Fallback is the probe's Replay.Fallback: why the replica has no
	// position, and how the lag was bounded instead; "" normally.
	Fallback string

	// Disconnected: the replica said it is not connected to its primary
	// (Replay.Disconnected, or ErrNotReceiving).
	Disconnected bool

	// Server is the server that answered the probe (zero if the probe
	// does not say). Servers, when the replica's address has answered
	// from several servers within the hold (see Status.Servers), lists
	// them; Lag is then the worst of theirs. Nil otherwise.
	Server  Server
	Servers []Server

	// At is when the probe finished; Took how long it ran.
	At   time.Time
	Took time.Duration

	// fresh, when not zero, is an instant before which the replica had
	// every commit, known even when Lag is not (the primary could not be
	// sampled, or the probe failed after reading the position): the
	// start of the newest sample its position covers, or its probe's
	// own bound.
	fresh time.Time
}

// sample is one reading of the primary's position. pos was current at
// some instant between start and end.
type sample struct {
	start, end time.Time
	pos        Position
}

// history keeps the primary's recent samples, oldest first, in a ring.
type history struct {
	mu      sync.Mutex
	ring    []sample
	head, n int   // ring[head] is the oldest of n samples
	lastErr error // error of the latest attempt; nil if it succeeded
}

// historyCap is how many samples to keep: enough to span 4×MaxLag (at
// least 30s), within [16, 1024].
func historyCap(c Config) int {
	span := max(4*c.MaxLag, 30*time.Second)
	return min(max(int(span/c.Interval)+2, 16), 1024)
}

func newHistory(capacity int) *history {
	return &history{ring: make([]sample, capacity)}
}

func (h *history) at(k int) *sample { return &h.ring[(h.head+k)%len(h.ring)] }

// record stores the outcome of one attempt to sample the primary.
func (h *history) record(s sample, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastErr = err
	if err != nil {
		return
	}
	if h.n == len(h.ring) {
		h.ring[h.head] = s
		h.head = (h.head + 1) % len(h.ring)
		return
	}
	*h.at(h.n) = s
	h.n++
}

// latest returns the newest sampled position (zero if the latest attempt
// failed or there is none).
func (h *history) latest() Position {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lastErr != nil || h.n == 0 {
		return Position{}
	}
	return h.at(h.n - 1).pos
}

// estimate turns a replica probe that ran from start to end into a
// Reading, against the samples kept: staleness is at most end − (start of
// the newest covered sample) and at least start − (end of the oldest
// sample not covered). docs/health.md has the argument.
func (h *history) estimate(rep Replay, probeErr error, start, end time.Time) Reading {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := Reading{
		Behind:   -1,
		Position: rep.Position,
		Fallback: rep.Fallback,
		Server:   rep.Server,
		Err:      probeErr,

		Disconnected: rep.Disconnected || errors.Is(probeErr, ErrNotReceiving),
		PrimaryErr:   h.lastErr,
		At:           end,
		Took:         end.Sub(start),
	}
	upper, upperOK := time.Duration(0), false
	lower := rep.LagAtLeast
	if !rep.Position.IsZero() && h.n > 0 {
		if b, ok := rep.Position.Behind(h.at(h.n - 1).pos); ok {
			r.Behind = b
		}
		k := h.n - 1
		for k >= 0 && !rep.Position.Covers(h.at(k).pos) {
			k--
		}
		if k >= 0 {
			upper, upperOK = max(0, end.Sub(h.at(k).start)), true
		}
		if k+1 < h.n {
			lower = max(lower, start.Sub(h.at(k+1).end))
		}
	}
	// The probe's own bound held when the server evaluated it, at some
	// instant of the probe: counted from the probe's start, so that what
	// was committed while the answer travelled back is not taken as had.
	if own := max(0, rep.LagAtMost) + end.Sub(start); rep.LagAtMostKnown && (!upperOK || own < upper) {
		upper, upperOK = own, true
	}
	if upperOK {
		r.fresh = end.Add(-max(upper, lower))
	}
	if probeErr != nil || h.lastErr != nil || !upperOK {
		r.Lag = lower
		return r
	}
	r.Lag, r.LagKnown = max(upper, lower), true
	return r
}
