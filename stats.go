package rwsplit

import (
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/policy"
	"github.com/rwsplit/rwsplit/stickiness"
)

// Stats is a snapshot of the plugin's state and counters. It holds plain
// values and may be kept.
type Stats struct {
	// Policy is the name of the policy choosing among replicas.
	Policy string
	// Replicas has one entry per configured replica, in Config order.
	Replicas []ReplicaStats
	// Routes counts routing decisions by reason since Initialize; a read
	// served again after a connection error counts once more under
	// ReasonRetry.
	Routes map[Reason]uint64
	// Sticky counts read-your-own-writes activity.
	Sticky stickiness.Stats
	// ReadsToPrimary reports Plugin.SetReadsToPrimary.
	ReadsToPrimary bool
	// PrimaryErr is the error of the checker's latest attempt to sample
	// the primary; nil while it succeeds. While it is set, no lag is
	// measured: see ReplicaStats.ServesWithoutPrimary.
	PrimaryErr error
}

// ReplicaStats describes one replica.
type ReplicaStats struct {
	Name string
	// Eligible reports whether reads may go to the replica now: healthy
	// and not drained.
	Eligible bool
	// Drained reports Plugin.Drain.
	Drained bool
	// ServesWithoutPrimary reports that the primary is down and the
	// replica, which lost it too and has replayed as far as any replica,
	// serves reads although its staleness bound passed MaxLag (see
	// lagcheck.Checker.ServesWithoutPrimary).
	ServesWithoutPrimary bool
	// Health is the lag checker's view: state, last lag (time and
	// position), last probe error, evictions and readmissions.
	Health lagcheck.Status
	// Policy statistics: statements in flight, EWMA latency, statements
	// served and failed (connection errors and timeouts).
	policy.Snapshot
}

// Stats returns a snapshot of the plugin's counters.
func (p *Plugin) Stats() Stats {
	s := Stats{Routes: make(map[Reason]uint64, numReasons), ReadsToPrimary: p.readsToPrimary.Load()}
	if p.pol != nil {
		s.Policy = p.pol.Name()
	}
	for r := Reason(1); r < numReasons; r++ {
		if v := p.counts[r].Load(); v > 0 {
			s.Routes[r] = v
		}
	}
	if p.sticky != nil {
		s.Sticky = p.sticky.Stats()
	}
	var health []lagcheck.Status
	if p.checker != nil {
		health = p.checker.Status()
		s.PrimaryErr = p.checker.PrimaryErr()
	}
	for i, n := range p.nodes {
		if n == nil {
			continue
		}
		s.Replicas = append(s.Replicas, ReplicaStats{Name: n.name, Eligible: p.eligible(n) && !n.drained.Load(), Drained: n.drained.Load(), Snapshot: n.stats.Snapshot(),
			ServesWithoutPrimary: p.checker != nil && p.checker.ServesWithoutPrimary(n.idx)})
		if i < len(health) {
			s.Replicas[len(s.Replicas)-1].Health = health[i]
		}
	}
	return s
}
