package lagcheck

import (
	"cmp"
	"slices"
	"time"
)

// Server identifies the database server that answered a probe. Behind one
// replica address (PgBouncer over several standbys, a TCP load balancer, a
// Kubernetes Service, RDS Proxy, an Aurora reader endpoint) successive
// probes may reach different servers; the Checker tells them apart by
// Server. The zero Server means the probe does not say.
type Server struct {
	// Addr names the server as it reports itself: PostgreSQL
	// "10.0.0.7:5432" (inet_server_addr() and port; "local:5432" over a
	// Unix socket), MariaDB and MySQL "db-2:3306 server_id=2" (@@hostname,
	// @@port, @@server_id), Aurora the instance identifier.
	Addr string
	// Started is when the server started (PostgreSQL's
	// pg_postmaster_start_time()); zero if unknown. A later Started at the
	// same Addr is that server restarted, not another server.
	Started time.Time
}

// IsZero reports whether s says nothing.
func (s Server) IsZero() bool { return s.Addr == "" && s.Started.IsZero() }

// String returns Addr, with Started when known.
func (s Server) String() string {
	if s.Started.IsZero() {
		return s.Addr
	}
	return s.Addr + " (started " + s.Started.UTC().Format("2006-01-02T15:04:05.000000Z") + ")"
}

// ServerChange is a change in the number of servers answering behind one
// replica's address, as given to Config.OnServerChange.
type ServerChange struct {
	// Index is the replica's index in the targets given to New; Replica
	// its name.
	Index   int
	Replica string
	// Several is true when a second server has answered (Servers lists
	// every server that answered within the hold), false when one server
	// alone has answered again for the hold (Servers is nil).
	Several bool
	Servers []Server
}

// serverHold is how long a server that answered a replica's probes counts
// as behind the replica's address after its last answer: 40 Intervals, at
// least 10s. A balancer may hand the probe's connection one server many
// times in a row before it hands it another.
func serverHold(interval time.Duration) time.Duration {
	return max(40*interval, 10*time.Second)
}

// servers is what a replica's probes have seen of the servers behind its
// address: each server that answered within the hold. It is a value;
// observe returns the next one.
type servers struct {
	seen []seenServer
}

type seenServer struct {
	id    Server
	last  time.Time // its last answer
	fresh time.Time // it had every commit made before this; zero: unknown
}

// several reports whether more than one server answered within the hold.
func (s servers) several() bool { return len(s.seen) > 1 }

// list returns the servers seen, sorted, when there are several; nil
// otherwise.
func (s servers) list() []Server {
	if !s.several() {
		return nil
	}
	out := make([]Server, len(s.seen))
	for i, e := range s.seen {
		out[i] = e.id
	}
	slices.SortFunc(out, func(a, b Server) int {
		return cmp.Or(cmp.Compare(a.Addr, b.Addr), a.Started.Compare(b.Started))
	})
	return out
}

// observe records the reading rd, taken at rd.At, from the server it names
// (none if its Server is zero), after forgetting the servers not heard from
// within hold. While several servers remain, it returns rd made as bad as
// the worst of them: staleness bound from the server with the oldest
// fresh instant, and no known lag while one of them has none; rd.Servers
// lists them. It is a pure function.
//
// A server whose Started is later than that of the one server seen at its
// Addr replaces it: a restart, not a second server. One whose Started is
// earlier is another server sharing the Addr (servers behind per-host
// proxies all report 127.0.0.1:5432).
func (s servers) observe(rd Reading, hold time.Duration) (servers, Reading) {
	now := rd.At
	next := servers{seen: make([]seenServer, 0, len(s.seen)+1)}
	for _, e := range s.seen {
		if now.Sub(e.last) <= hold {
			next.seen = append(next.seen, e)
		}
	}
	if id := rd.Server; !id.IsZero() {
		fresh := rd.fresh
		if fresh.IsZero() && rd.LagKnown {
			fresh = rd.At.Add(-rd.Lag)
		}
		i := slices.IndexFunc(next.seen, func(e seenServer) bool { return e.id == id })
		if i < 0 {
			if i = next.restarted(id); i >= 0 {
				next.seen[i].fresh = time.Time{} // a restart may have lost what it had
			}
		}
		if i < 0 {
			next.seen = append(next.seen, seenServer{})
			i = len(next.seen) - 1
		}
		e := &next.seen[i]
		e.id, e.last = id, now
		if fresh.After(e.fresh) {
			e.fresh = fresh
		}
	}
	if !next.several() {
		return next, rd
	}
	rd.Servers = next.list()
	var oldest time.Time
	for _, e := range next.seen {
		if e.fresh.IsZero() {
			// A server whose staleness was never bounded: the address's
			// bound cannot be, and the one published earlier keeps growing.
			rd.LagKnown, rd.fresh = false, time.Time{}
			return next, rd
		}
		if oldest.IsZero() || e.fresh.Before(oldest) {
			oldest = e.fresh
		}
	}
	if rd.fresh.IsZero() || oldest.Before(rd.fresh) {
		rd.fresh = oldest
	}
	if rd.LagKnown {
		rd.Lag = max(rd.Lag, rd.At.Sub(oldest))
	}
	return next, rd
}

// restarted returns the index of the one server seen at id.Addr if id is
// it restarted (a later Started), or -1.
func (s servers) restarted(id Server) int {
	if id.Started.IsZero() {
		return -1
	}
	found := -1
	for i, e := range s.seen {
		if e.id.Addr != id.Addr {
			continue
		}
		if found >= 0 || e.id.Started.IsZero() || !e.id.Started.Before(id.Started) {
			return -1
		}
		found = i
	}
	return found
}
