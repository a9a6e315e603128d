package rwsplit

import (
	"sync/atomic"
	"time"

	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/policy"
	"github.com/rwsplit/rwsplit/stickiness"
)

// Stats is a snapshot of the plugin's state and counters. It holds plain
// values and may be kept.
type Stats struct {
	// Policy is the name of the policy choosing among replicas.
	Policy string
	// Replicas has one entry per replica in service: those of Config,
	// then those added by AddReplica, in that order, without those removed
	// by RemoveReplica.
	Replicas []ReplicaStats
	// Routes counts routing decisions by reason since Initialize; a read
	// served again after a connection error counts once more under
	// ReasonRetry.
	Routes map[Reason]uint64
	// PrimaryName is Config.PrimaryName; PrimaryRoutes counts the
	// decisions of Routes whose Route.Node is the primary, by reason
	// (ReplicaStats.Routes has each replica's; a statement on a connection
	// the caller pinned, with no node, counts in Routes only).
	PrimaryName   string
	PrimaryRoutes map[Reason]uint64
	// Sticky counts read-your-own-writes activity.
	Sticky stickiness.Stats
	// ReadsToPrimary reports Plugin.SetReadsToPrimary.
	ReadsToPrimary bool
	// PrimaryErr is the error of the checker's latest attempt to sample
	// the primary; nil while it succeeds. While it is set, no lag is
	// measured: see ReplicaStats.ServesWithoutPrimary.
	PrimaryErr error
	// PrimaryReads counts the reads routing sent to the primary (reasons
	// forced-primary, no-replica, retry, stale, sticky, reads-to-primary,
	// policy-primary): with the replicas' Served, the read load on each
	// node.
	PrimaryReads uint64
	// MaxLag is the lag above which replicas stop serving reads:
	// Config.Lag.MaxLag, or what Plugin.SetMaxLag set last; ReadmitLag is
	// the lag they must be at or below to serve again. Zero before
	// Initialize.
	MaxLag, ReadmitLag time.Duration
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
	// position), last probe error, evictions and readmissions, and the
	// server that answered (Health.Servers lists several when the
	// replica's address answers from more than one: see
	// docs/topologies.md).
	Health lagcheck.Status
	// Policy statistics: statements in flight, EWMA latency, statements
	// served and failed (connection errors and timeouts).
	policy.Snapshot
	// Routes counts the routing decisions whose Route.Node is this
	// replica, by reason, since it was added.
	Routes map[Reason]uint64
	// Latencies is the distribution of the latencies of the replica's
	// timed statements since Initialize: every statement on a quiet
	// replica, one in 16 on a busy one (policy.Stats.StartSampled).
	Latencies policy.Histogram
}

// primaryReadReasons has bit r set for each Reason r of a read that
// counts in Stats.PrimaryReads when it runs on the primary.
const primaryReadReasons = 1<<ReasonForcedPrimary | 1<<ReasonNoReplica | 1<<ReasonRetry |
	1<<ReasonStale | 1<<ReasonSticky | 1<<ReasonReadsToPrimary | 1<<ReasonPolicyPrimary

// Stats returns a snapshot of the plugin's counters.
func (p *Plugin) Stats() Stats {
	s := Stats{Routes: countsOf(&p.counts), PrimaryName: p.primaryName, PrimaryRoutes: countsOf(&p.primaryCounts),
		ReadsToPrimary: p.readsToPrimary.Load(), PrimaryReads: p.primaryReads.Load()}
	if p.pol != nil {
		s.Policy = p.pol.Name()
	}
	if p.sticky != nil {
		s.Sticky = p.sticky.Stats()
	}
	health := map[int]lagcheck.Status{}
	if p.checker != nil {
		for _, h := range p.checker.Status() {
			health[h.Index] = h
		}
		cfg := p.checker.Config()
		s.MaxLag, s.ReadmitLag = cfg.MaxLag, cfg.ReadmitLag
		s.PrimaryErr = p.checker.PrimaryErr()
	}
	for _, n := range p.replicas().nodes {
		s.Replicas = append(s.Replicas, ReplicaStats{Name: n.name, Eligible: p.eligible(n) && !n.drained.Load(), Drained: n.drained.Load(),
			Health: health[n.idx], Snapshot: n.stats.Snapshot(), Latencies: n.stats.Latencies(), Routes: countsOf(&n.routes),
			ServesWithoutPrimary: p.checker != nil && p.checker.ServesWithoutPrimary(n.idx)})
	}
	return s
}

// countsOf returns the non-zero counts of c by reason.
func countsOf(c *[numReasons]atomic.Uint64) map[Reason]uint64 {
	m := make(map[Reason]uint64, numReasons)
	for r := Reason(1); r < numReasons; r++ {
		if v := c[r].Load(); v > 0 {
			m[r] = v
		}
	}
	return m
}
