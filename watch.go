package rwsplit

import (
	"time"
)

// watchEvery is how often the plugin looks for what no single event
// reports (see watch); it bounds how many records those give.
var watchEvery = time.Second

// watch logs, every watchEvery until stop is closed, the conditions that
// no single event reports, one record when each starts and one when it
// ends:
//   - reads falling back to the primary because no replica is eligible
//     (ReasonNoReplica), with how many and for how long;
//   - the checker failing to sample the primary, so no lag is measured.
//
// It runs only with Config.Logger set.
func (p *Plugin) watch(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	l := p.cfg.Logger
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	var (
		last          = p.counts[ReasonNoReplica].Load()
		fallingBack   bool
		fellBack      uint64 // reads that fell back since it started
		since         time.Time
		sampleErr     error // the primary sample's error, as last logged
		sampleSince   time.Time
		orphansLogged bool // the replicas serving without the primary were logged
	)
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		n := p.counts[ReasonNoReplica].Load()
		switch {
		case n > last && !fallingBack:
			fallingBack, fellBack, since = true, n-last, time.Now()
			l.Warn("rwsplit: reads falling back to the primary: no replica eligible",
				"reads", n-last, "fallback", p.fallback.String(), "replicas", p.replicaStates())
		case n > last:
			fellBack += n - last
		case fallingBack:
			fallingBack = false
			l.Info("rwsplit: reads back on replicas", "fallback_reads", fellBack, "for", time.Since(since).Round(time.Millisecond))
		}
		last = n

		err := p.checker.PrimaryErr()
		switch {
		case err != nil && sampleErr == nil:
			sampleErr, sampleSince = err, time.Now()
			l.Warn("rwsplit: cannot sample the primary; replica lags are not measured", "err", err.Error())
		case err == nil && sampleErr != nil:
			l.Info("rwsplit: primary sampled again", "after", time.Since(sampleSince).Round(time.Millisecond), "last_err", sampleErr.Error())
			sampleErr, orphansLogged = nil, false
		}
		if sampleErr != nil && !orphansLogged {
			var names []string
			for _, n := range p.replicas().nodes {
				if p.checker.ServesWithoutPrimary(n.idx) {
					names = append(names, n.name)
				}
			}
			if len(names) > 0 {
				orphansLogged = true
				l.Warn("rwsplit: primary down; reads go on on the replicas that lost it too, at the newest position any replica has", "replicas", names)
			}
		}
	}
}

// replicaStates returns "name=state" for each replica, with "drained" for
// a drained one, for the log.
func (p *Plugin) replicaStates() []string {
	nodes := p.replicas().nodes
	out := make([]string, len(nodes))
	for i, n := range nodes {
		s := p.state.State(n.idx).String()
		if n.drained.Load() {
			s += ",drained"
		}
		out[i] = n.name + "=" + s
	}
	return out
}
