package lagcheck

import (
	"errors"
	"strconv"
	"time"

	"github.com/rwsplit/rwsplit/internal/connerr"
)

// State is a replica's standing. Only a Healthy replica serves reads.
//
//	Healthy ──EvictAfter bad readings, or one connection error or ErrNotReplica──▶ Evicted
//	Evicted ──a good reading──▶ Probation
//	Probation ──ReadmitAfter good readings in a row in all──▶ Healthy
//	Probation ──any reading that is not good──▶ Evicted
//
// The zero State is Healthy: a replica is eligible until a reading (or
// Checker.ReportFailure) says otherwise.
type State int32

// States.
const (
	// Healthy: serves reads.
	Healthy State = iota
	// Evicted: lagging or failing; serves no reads.
	Evicted
	// Probation: recovering; serves no reads until ReadmitAfter good
	// readings in a row.
	Probation
)

func (s State) String() string {
	switch s {
	case Healthy:
		return "healthy"
	case Evicted:
		return "evicted"
	case Probation:
		return "probation"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Eligible reports whether a replica in state s may serve reads.
func (s State) Eligible() bool { return s == Healthy }

// verdict is what one reading says about a replica.
type verdict uint8

const (
	// unknown: the reading tells nothing (the primary could not be
	// sampled, or no bound on the lag is known yet). Counters are kept.
	unknown verdict = iota
	// good: lag at or below ReadmitLag.
	good
	// fair: lag above ReadmitLag, at or below MaxLag: fine for a healthy
	// replica, not good enough to readmit one.
	fair
	// bad: lag above MaxLag, a probe error or timeout, replication
	// stopped.
	bad
	// fatal: a connection-class error, or a server that is not a
	// replica: evict at once.
	fatal
)

var verdictNames = [...]string{unknown: "unknown", good: "good", fair: "fair", bad: "bad", fatal: "fatal"}

func (v verdict) String() string { return verdictNames[v] }

// rules are the thresholds of the state machine, from a defaulted Config.
type rules struct {
	maxLag, readmitLag       time.Duration
	evictAfter, readmitAfter int
}

func rulesOf(c Config) rules {
	return rules{maxLag: c.MaxLag, readmitLag: c.ReadmitLag, evictAfter: c.EvictAfter, readmitAfter: c.ReadmitAfter}
}

// classify turns a reading into a verdict. When LagKnown is false, Lag is
// only a lower bound, so it can prove a replica bad but never good.
func (ru rules) classify(r Reading) verdict {
	switch {
	case r.Err != nil && !errors.Is(r.Err, ErrReplicationStopped) && connerr.Is(r.Err) && !connerr.IsTimeout(r.Err):
		// A lost or refused connection. A connection attempt that ran
		// out of the probe's Timeout is a timeout: bad, like any other.
		// A replica that reports its own link to the primary broken
		// (ErrNotReceiving, whose text quotes the replica's connection
		// error) answered us: that is not a connection error of ours.
		return fatal
	case errors.Is(r.Err, ErrNotReplica):
		// The server answers, but replicates from nothing: promoted, or
		// never a replica. Waiting EvictAfter readings buys nothing: it
		// will not replay this primary's commits again (a promoted
		// PostgreSQL standby is on a timeline of its own; a MariaDB
		// replica after RESET SLAVE ALL has no primary), so its data only
		// gets staler, and it accepts writes that no other node sees.
		return fatal
	case errors.Is(r.Err, ErrPoolBusy):
		// The Checker waited for a connection of a busy pool: the pool's
		// doing, not the server's.
		return unknown
	case r.Err != nil && r.PrimaryErr != nil && errors.Is(r.Err, ErrNotReceiving):
		// The replica cannot reach the primary, and neither can we: the
		// primary's outage explains it, and nothing can be committed
		// that the replica misses.
		return unknown
	case r.Err != nil:
		return bad
	case r.Lag > ru.maxLag:
		return bad
	case !r.LagKnown:
		return unknown
	case r.Lag > ru.readmitLag:
		return fair
	}
	return good
}

// health is one replica's state machine: its State and the counters that
// decide the next one. It is a value; step returns the next one.
type health struct {
	state    State
	observed bool   // a reading (other than unknown) or a failure was applied
	bad      int    // consecutive bad readings while Healthy
	good     int    // consecutive good readings while Evicted/Probation
	gen      uint64 // bumped by ReportFailure; older probe results are dropped
	since    time.Time

	evictions, readmissions uint64
}

// transition is what step did.
type transition struct {
	from, to State
	changed  bool // from != to
	dropped  bool // the result was stamped with an old generation
}

// step applies one verdict, stamped with the generation gen that was
// current when its probe started, at time now. It is a pure function.
//
// A result from an older generation is dropped: its probe started before
// a passive failure report, so it must not readmit the replica. The first
// informative verdict of a replica decides its state at once (Start's
// round: a replica down or lagging at start-up starts Evicted).
func (ru rules) step(h health, v verdict, gen uint64, now time.Time) (health, transition) {
	from := h.state
	if gen != h.gen {
		return h, transition{from: from, to: from, dropped: true}
	}
	if v == unknown {
		return h, transition{from: from, to: from}
	}
	first := !h.observed
	h.observed = true
	switch h.state {
	case Healthy:
		switch v {
		case good, fair:
			h.bad = 0
		case bad:
			h.bad++
			if h.bad >= ru.evictAfter || first {
				h = h.evict(now)
			}
		case fatal:
			h = h.evict(now)
		}
	case Evicted:
		switch v {
		case good:
			h.good = 1
			if h.good >= ru.readmitAfter {
				h = h.readmit(now)
			} else {
				h.state, h.since = Probation, now
			}
		default:
			h.good = 0
		}
	case Probation:
		switch v {
		case good:
			h.good++
			if h.good >= ru.readmitAfter {
				h = h.readmit(now)
			}
		default:
			h.state, h.since, h.good = Evicted, now, 0
		}
	}
	return h, transition{from: from, to: h.state, changed: from != h.state}
}

func (h health) evict(now time.Time) health {
	h.state, h.since, h.bad, h.good = Evicted, now, 0, 0
	h.evictions++
	return h
}

func (h health) readmit(now time.Time) health {
	h.state, h.since, h.bad, h.good = Healthy, now, 0, 0
	h.readmissions++
	return h
}
