package rwsplit

import "github.com/rwsplit/rwsplit/lagcheck"

// logServers logs, at warn level, that a replica's address answers from
// several servers (PgBouncer over several standbys, a load balancer, a
// Kubernetes -ro Service, a reader endpoint), and at info level that one
// server alone answers again. Meanwhile the replica's lag is the worst of
// its servers' and causal reads skip it (see docs/topologies.md).
func (p *Plugin) logServers(sc lagcheck.ServerChange) {
	l := p.cfg.Logger
	if l == nil {
		return
	}
	if !sc.Several {
		l.Info("rwsplit: replica address answers from one server again", "replica", sc.Replica)
		return
	}
	servers := make([]string, len(sc.Servers))
	for i, s := range sc.Servers {
		servers[i] = s.String()
	}
	l.Warn("rwsplit: one replica address, several servers: lag is the worst of theirs, causal reads go to the primary; give each server its own Replica",
		"replica", sc.Replica, "servers", servers)
}
