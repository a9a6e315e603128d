// Package rwsplitprom exports an rwsplit Plugin's Stats as Prometheus
// metrics. It is a package of its own so that the plugin does not depend
// on the Prometheus client.
//
//	prometheus.MustRegister(rwsplitprom.NewCollector(p))
package rwsplitprom

import (
	"database/sql"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/lagcheck"
)

// desc is one metric: its description and how a snapshot fills it.
type desc struct {
	*prometheus.Desc
	kind prometheus.ValueType
}

func newDesc(name, help string, kind prometheus.ValueType, labels ...string) desc {
	return desc{prometheus.NewDesc("rwsplit_"+name, help, labels, nil), kind}
}

var (
	routes      = newDesc("routes_total", "Statements routed, by reason (see rwsplit.Reason); retries and fallbacks to the primary have reasons of their own.", prometheus.CounterValue, "reason")
	statements  = newDesc("statements_total", "Statements routed, by the node that ran them (the primary's name or a replica's) and the reason; a statement on a connection the caller pinned (db.Connection) has no node and counts in rwsplit_routes_total only.", prometheus.CounterValue, "node", "reason")
	readsToPrim = newDesc("reads_to_primary", "1 while the operator switch SetReadsToPrimary is on.", prometheus.GaugeValue)
	maxLag      = newDesc("max_lag_seconds", "The lag above which replicas stop serving reads: Lag.MaxLag, or what SetMaxLag set last.", prometheus.GaugeValue)
	readmitLag  = newDesc("readmit_lag_seconds", "The lag an evicted replica must be at or below to serve reads again.", prometheus.GaugeValue)
	eligible    = newDesc("replica_eligible", "1 while the replica may serve reads.", prometheus.GaugeValue, "replica")
	drained     = newDesc("replica_drained", "1 while the replica is drained.", prometheus.GaugeValue, "replica")
	state       = newDesc("replica_state", "1 for the replica's health state, 0 for the others.", prometheus.GaugeValue, "replica", "state")
	lag         = newDesc("replica_lag_seconds", "The replica's last measured replication lag (an upper bound when known).", prometheus.GaugeValue, "replica")
	lagKnown    = newDesc("replica_lag_known", "1 when the last probe bounded the replica's lag.", prometheus.GaugeValue, "replica")
	evictions   = newDesc("replica_evictions_total", "Moves of the replica from healthy to evicted.", prometheus.CounterValue, "replica")
	readmits    = newDesc("replica_readmissions_total", "Moves of the replica back to healthy.", prometheus.CounterValue, "replica")
	served      = newDesc("replica_statements_total", "Statements the replica served.", prometheus.CounterValue, "replica")
	failed      = newDesc("replica_failures_total", "Statements on the replica that failed with a connection error or a timeout.", prometheus.CounterValue, "replica")
	inFlight    = newDesc("replica_in_flight", "Statements running on the replica.", prometheus.GaugeValue, "replica")
	latency     = newDesc("replica_latency_ewma_seconds", "The replica's moving average statement latency, as the policy sees it.", prometheus.GaugeValue, "replica")
	poolOpen    = newDesc("replica_pool_open_connections", "sql.DBStats.OpenConnections of the replica's pool.", prometheus.GaugeValue, "replica")
	poolInUse   = newDesc("replica_pool_in_use_connections", "sql.DBStats.InUse of the replica's pool.", prometheus.GaugeValue, "replica")
	poolIdle    = newDesc("replica_pool_idle_connections", "sql.DBStats.Idle of the replica's pool.", prometheus.GaugeValue, "replica")
	poolMax     = newDesc("replica_pool_max_open_connections", "sql.DBStats.MaxOpenConnections of the replica's pool (0: unlimited).", prometheus.GaugeValue, "replica")
	poolWaits   = newDesc("replica_pool_waits_total", "sql.DBStats.WaitCount: waits for a connection of the replica's pool.", prometheus.CounterValue, "replica")
	poolWaitSec = newDesc("replica_pool_wait_seconds_total", "sql.DBStats.WaitDuration of the replica's pool.", prometheus.CounterValue, "replica")
	marks       = newDesc("sticky_marks_total", "Writes that made their user sticky.", prometheus.CounterValue)
	notes       = newDesc("sticky_notes_total", "Writes recorded in a context's carrier (cookie, token).", prometheus.CounterValue)
	storeErrs   = newDesc("sticky_store_errors_total", "Failed or timed-out calls to the stickiness store.", prometheus.CounterValue)
	storeSkips  = newDesc("sticky_store_skipped_total", "Keyed reads sent to the primary without asking the store, during its backoff.", prometheus.CounterValue)
	storeRetry  = newDesc("sticky_store_retries_total", "Retries of store writes that failed.", prometheus.CounterValue)
	resolved    = newDesc("sticky_resolved_total", "Free causal marks this process resolved in the store.", prometheus.CounterValue)

	all = []desc{routes, statements, readsToPrim, maxLag, readmitLag, eligible, drained, state, lag, lagKnown, evictions, readmits,
		served, failed, inFlight, latency, poolOpen, poolInUse, poolIdle, poolMax, poolWaits, poolWaitSec,
		marks, notes, storeErrs, storeSkips, storeRetry, resolved}

	states = []lagcheck.State{lagcheck.Healthy, lagcheck.Evicted, lagcheck.Probation}
)

type collector struct{ p *rwsplit.Plugin }

// NewCollector returns a prometheus.Collector of p's Stats and of its
// replica pools' sql.DBStats, read at each scrape.
func NewCollector(p *rwsplit.Plugin) prometheus.Collector { return collector{p} }

// Describe implements prometheus.Collector.
func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range all {
		ch <- d.Desc
	}
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Stats()
	emit := func(d desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d.Desc, d.kind, v, labels...)
	}
	// Every reason, zeros included, so that rates and alerts on retries
	// or fallbacks have a series before the first one happens.
	for r := rwsplit.Reason(1); r.String() != "unknown"; r++ {
		emit(routes, float64(s.Routes[r]), r.String())
	}
	for r, n := range s.PrimaryRoutes {
		emit(statements, float64(n), s.PrimaryName, r.String())
	}
	for _, rs := range s.Replicas {
		for r, n := range rs.Routes {
			emit(statements, float64(n), rs.Name, r.String())
		}
	}
	emit(readsToPrim, b2f(s.ReadsToPrimary))
	emit(maxLag, s.MaxLag.Seconds())
	emit(readmitLag, s.ReadmitLag.Seconds())
	for _, r := range s.Replicas {
		emit(eligible, b2f(r.Eligible), r.Name)
		emit(drained, b2f(r.Drained), r.Name)
		for _, st := range states {
			emit(state, b2f(r.Health.State == st), r.Name, st.String())
		}
		emit(lag, r.Health.Lag.Seconds(), r.Name)
		emit(lagKnown, b2f(r.Health.LagKnown), r.Name)
		emit(evictions, float64(r.Health.Evictions), r.Name)
		emit(readmits, float64(r.Health.Readmissions), r.Name)
		emit(served, float64(r.Served), r.Name)
		emit(failed, float64(r.Failed), r.Name)
		emit(inFlight, float64(r.InFlight), r.Name)
		emit(latency, r.Latency.Seconds(), r.Name)
		var ps sql.DBStats
		if db := c.p.ReplicaDB(r.Name); db != nil {
			ps = db.Stats()
		}
		emit(poolOpen, float64(ps.OpenConnections), r.Name)
		emit(poolInUse, float64(ps.InUse), r.Name)
		emit(poolIdle, float64(ps.Idle), r.Name)
		emit(poolMax, float64(ps.MaxOpenConnections), r.Name)
		emit(poolWaits, float64(ps.WaitCount), r.Name)
		emit(poolWaitSec, ps.WaitDuration.Seconds(), r.Name)
	}
	emit(marks, float64(s.Sticky.Marks))
	emit(notes, float64(s.Sticky.Notes))
	emit(storeErrs, float64(s.Sticky.StoreErrors))
	emit(storeSkips, float64(s.Sticky.StoreSkipped))
	emit(storeRetry, float64(s.Sticky.StoreRetries))
	emit(resolved, float64(s.Sticky.Resolved))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
