package lagcheck

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestServersObserve: the servers behind one address, probe by probe.
func TestServersObserve(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	boot := t0.Add(-time.Hour)
	a := Server{Addr: "10.0.0.1:5432", Started: boot}
	b := Server{Addr: "10.0.0.2:5432", Started: boot}
	aRestarted := Server{Addr: a.Addr, Started: t0.Add(3 * time.Second)}
	local := Server{Addr: "127.0.0.1:5432", Started: boot}
	localOther := Server{Addr: "127.0.0.1:5432", Started: boot.Add(-time.Minute)}
	maria := Server{Addr: "db-2:3306 server_id=2"}
	const hold = 10 * time.Second

	type probe struct {
		server Server
		at     time.Duration // since t0
		lag    time.Duration
		known  bool
	}
	ok := func(s Server, at, lag time.Duration) probe { return probe{s, at, lag, true} }
	tests := []struct {
		name        string
		give        []probe
		wantSeveral bool
		wantLag     time.Duration // of the last reading, as returned
		wantKnown   bool
		wantServers int // len(Reading.Servers)
	}{
		{name: "one server", give: []probe{ok(a, 0, 50*time.Millisecond), ok(a, time.Second, 20*time.Millisecond)},
			wantLag: 20 * time.Millisecond, wantKnown: true},
		{name: "a second server: the worst lag of the two",
			give:        []probe{ok(a, 0, 3*time.Second), ok(b, time.Second, 10*time.Millisecond)},
			wantSeveral: true, wantLag: 4 * time.Second, wantKnown: true, wantServers: 2},
		{name: "the worse one answering keeps growing",
			give:        []probe{ok(a, 0, 3*time.Second), ok(b, time.Second, 10*time.Millisecond), ok(a, 2*time.Second, 5*time.Second)},
			wantSeveral: true, wantLag: 5 * time.Second, wantKnown: true, wantServers: 2},
		{name: "a server never bounded: no known lag",
			give:        []probe{ok(a, 0, 10*time.Millisecond), {server: b, at: time.Second}},
			wantSeveral: true, wantServers: 2},
		{name: "a restart at the same address is the same server",
			give:    []probe{ok(a, 0, 10*time.Millisecond), ok(aRestarted, 4*time.Second, 30*time.Millisecond)},
			wantLag: 30 * time.Millisecond, wantKnown: true},
		{name: "the old start time answering again: two servers share the address",
			give:        []probe{ok(a, 0, 10*time.Millisecond), ok(aRestarted, 4*time.Second, 30*time.Millisecond), ok(a, 5*time.Second, 10*time.Millisecond)},
			wantSeveral: true, wantLag: 1030 * time.Millisecond, wantKnown: true, wantServers: 2}, // the restarted one, last bounded at 3.97s
		{name: "per-host proxies: one address, different start times",
			give:        []probe{ok(local, 0, 10*time.Millisecond), ok(localOther, time.Second, 10*time.Millisecond)},
			wantSeveral: true, wantLag: 1010 * time.Millisecond, wantKnown: true, wantServers: 2},
		{name: "no start time (MariaDB): same address, same server",
			give:    []probe{ok(maria, 0, 10*time.Millisecond), ok(maria, time.Second, 10*time.Millisecond)},
			wantLag: 10 * time.Millisecond, wantKnown: true},
		{name: "the other server silent for the hold: one server again",
			give:    []probe{ok(a, 0, 10*time.Millisecond), ok(b, time.Second, 10*time.Millisecond), ok(a, time.Second+hold+time.Millisecond, 10*time.Millisecond)},
			wantLag: 10 * time.Millisecond, wantKnown: true},
		{name: "within the hold it still counts",
			give:        []probe{ok(a, 0, 10*time.Millisecond), ok(b, time.Second, 10*time.Millisecond), ok(a, time.Second+hold, 10*time.Millisecond)},
			wantSeveral: true, wantLag: hold + 10*time.Millisecond, wantKnown: true, wantServers: 2},
		{name: "a probe that names no server keeps the worst",
			give:        []probe{ok(a, 0, 2*time.Second), ok(b, time.Second, 10*time.Millisecond), ok(Server{}, 2*time.Second, 10*time.Millisecond)},
			wantSeveral: true, wantLag: 4 * time.Second, wantKnown: true, wantServers: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s servers
			var rd Reading
			for _, p := range tt.give {
				s, rd = s.observe(Reading{Server: p.server, At: t0.Add(p.at), Lag: p.lag, LagKnown: p.known}, hold)
			}
			if s.several() != tt.wantSeveral || rd.Lag != tt.wantLag || rd.LagKnown != tt.wantKnown || len(rd.Servers) != tt.wantServers {
				t.Errorf("several %v, Lag %v known %v, Servers %v; want %v, %v %v, %d servers",
					s.several(), rd.Lag, rd.LagKnown, rd.Servers, tt.wantSeveral, tt.wantLag, tt.wantKnown, tt.wantServers)
			}
		})
	}
}

// TestServersObservePure: observe leaves the value it was called on as
// it was.
func TestServersObservePure(t *testing.T) {
	t0 := time.Now()
	a, b := Server{Addr: "a:1"}, Server{Addr: "b:1"}
	s, _ := servers{}.observe(Reading{Server: a, At: t0, LagKnown: true}, time.Minute)
	before := slices.Clone(s.seen)
	next, _ := s.observe(Reading{Server: b, At: t0.Add(time.Second), LagKnown: true, Lag: time.Second}, time.Minute)
	next, _ = next.observe(Reading{Server: a, At: t0.Add(2 * time.Second), LagKnown: true}, time.Minute)
	if !slices.Equal(s.seen, before) || s.several() || !next.several() {
		t.Errorf("observe changed its receiver: %+v, was %+v", s.seen, before)
	}
}

// rotatingProbe answers each replica probe from the next of its servers in
// turn, as PgBouncer with server_round_robin does over a host list. Each
// server has its own replay position.
type rotatingProbe struct {
	mu      sync.Mutex
	primary Position
	servers []Server
	pos     map[Server]Position
	next    int
}

func (p *rotatingProbe) Primary(context.Context, DB) (Position, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.primary, nil
}

func (p *rotatingProbe) Replica(context.Context, DB, Position) (Replay, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.servers[p.next%len(p.servers)]
	p.next++
	return Replay{Position: p.pos[s], Server: s}, nil
}

func (p *rotatingProbe) set(f func(p *rotatingProbe)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

// TestSeveralServersBehindOneAddress: two servers answer in turn for one
// replica, one of them stuck. The Checker reports both, takes the stuck
// one's lag, evicts the replica, covers no position while they answer,
// and says so through OnServerChange; once only one answers for the hold,
// the replica is one server again.
func TestSeveralServersBehindOneAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fresh := Server{Addr: "10.0.0.1:5432", Started: time.Unix(1e9, 0)}
		stuck := Server{Addr: "10.0.0.2:5432", Started: time.Unix(1e9, 0)}
		p := &rotatingProbe{primary: LSNPosition(100), servers: []Server{fresh}, pos: map[Server]Position{fresh: LSNPosition(100), stuck: LSNPosition(100)}}
		var (
			mu      sync.Mutex
			changes []ServerChange
		)
		cfg := Config{Interval: tick, MaxLag: 500 * time.Millisecond, Probe: p, OnServerChange: func(sc ServerChange) {
			mu.Lock()
			changes = append(changes, sc)
			mu.Unlock()
		}}
		c, err := New(cfg, "postgres", openMock(t), []Target{{Name: "ro", DB: openMock(t)}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Start(context.Background())
		write := LSNPosition(100)
		if !c.Covers(0, write) || c.Status()[0].Servers != nil || c.Status()[0].Server != fresh {
			t.Fatalf("one server: Covers %v, Status %+v", c.Covers(0, write), c.Status()[0])
		}

		// The stuck server joins the rotation; the primary moves on.
		p.set(func(p *rotatingProbe) {
			p.servers = []Server{fresh, stuck}
			p.primary = LSNPosition(200)
			p.pos[fresh] = LSNPosition(200)
		})
		joined := time.Now()
		waitFor(t, 3*tick, "two servers reported", func() bool { return len(c.Status()[0].Servers) == 2 })
		if c.Covers(0, write) {
			t.Error("Covers is true while two servers answer, one of them without the write")
		}
		if c.Covers(0, LSNPosition(100)) {
			t.Error("Covers is true while two servers answer, even for a position both have")
		}
		// The stuck server's staleness grows whichever server answers.
		waitFor(t, 2*time.Second, "evicted", func() bool { return c.State(0) == Evicted })
		evictedAfter := time.Since(joined)
		if lag, ok := c.LagNow(0); !ok || lag < cfg.MaxLag {
			t.Errorf("LagNow %v %v after eviction, want above MaxLag", lag, ok)
		}
		t.Logf("evicted %v after the stuck server joined (MaxLag %v, Interval %v)", evictedAfter, cfg.MaxLag, tick)
		if evictedAfter > cfg.MaxLag+3*tick+settleTime(tick) {
			t.Errorf("evicted %v after the stuck server joined, want within MaxLag + 3 Intervals", evictedAfter)
		}

		// The stuck server leaves; after the hold the replica is one
		// server again: covered, and readmitted.
		p.set(func(p *rotatingProbe) { p.servers = []Server{fresh} })
		left := time.Now()
		waitFor(t, serverHold(tick)+3*tick, "one server again", func() bool { return c.Status()[0].Servers == nil })
		// The stuck server last answered up to an Interval before it left.
		if d := time.Since(left); d < serverHold(tick)-tick {
			t.Errorf("one server again %v after the other left, want after the hold %v (less its last Interval)", d, serverHold(tick))
		}
		waitFor(t, 10*tick, "readmitted", func() bool { return c.State(0) == Healthy })
		if !c.Covers(0, LSNPosition(200)) {
			t.Error("Covers false with one server again, caught up")
		}
		c.Close()
		mu.Lock()
		defer mu.Unlock()
		if len(changes) != 2 || !changes[0].Several || len(changes[0].Servers) != 2 || changes[1].Several || changes[1].Servers != nil {
			t.Errorf("OnServerChange calls %+v, want several (2 servers), then one", changes)
		}
	})
}

// TestSeveralServersErrors: a server that fails its probes (the primary
// behind a replica address, say) leaves the address's lag unknown and the
// replica evicted.
func TestSeveralServersErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ok := Server{Addr: "10.0.0.1:5432"}
		primary := Server{Addr: "10.0.0.9:5432"}
		p := &failingServer{rotatingProbe: rotatingProbe{primary: LSNPosition(100), servers: []Server{ok, primary}, pos: map[Server]Position{ok: LSNPosition(100)}}, bad: primary}
		c, err := New(Config{Interval: tick, MaxLag: 500 * time.Millisecond, Probe: p}, "postgres", openMock(t), []Target{{Name: "ro", DB: openMock(t)}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Start(context.Background())
		waitFor(t, 10*tick, "evicted", func() bool { return c.State(0) == Evicted })
		st := c.Status()[0]
		if len(st.Servers) != 2 || c.Covers(0, LSNPosition(1)) {
			t.Errorf("Status %+v, Covers %v; want 2 servers and no cover", st, c.Covers(0, LSNPosition(1)))
		}
	})
}

type failingServer struct {
	rotatingProbe
	bad Server
}

func (f *failingServer) Replica(ctx context.Context, db DB, p Position) (Replay, error) {
	r, err := f.rotatingProbe.Replica(ctx, db, p)
	if r.Server == f.bad {
		return r, errors.New("lagcheck test: not a replica")
	}
	return r, err
}
