package lagcheck

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
)

// serverLog records OnServerChange calls.
type serverLog struct {
	mu      sync.Mutex
	changes []ServerChange
	at      []time.Time
}

func (l *serverLog) add(sc ServerChange) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changes = append(l.changes, sc)
	l.at = append(l.at, time.Now())
}

func (l *serverLog) snapshot() []ServerChange {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.changes)
}

// TestPGBouncerSeveralStandbys: PgBouncer spreads one database over both
// standbys, given to the Checker as ONE replica. The Checker sees the two
// servers answer in turn and says so; with one of them paused, the
// replica's lag is the paused one's, and it is evicted; no position is
// covered while both answer.
func TestPGBouncerSeveralStandbys(t *testing.T) {
	pg, primary, _ := pgCluster(t)
	b := dbtest.PgBouncer(t, pg.Replicas...)
	ro := openDB(t, "pgx", b.DSN()+" default_query_exec_mode=simple_protocol")
	rec := &changeLog{}
	srv := &serverLog{}
	cfg := itConfig(rec)
	cfg.OnServerChange = srv.add
	c := startChecker(t, cfg, "postgres", primary, ro)
	stop := writeEvery(t, primary, 10*time.Millisecond, "INSERT INTO lagcheck_ticks DEFAULT VALUES")
	defer stop()

	// PgBouncer opens its second server connection in the background
	// (min_pool_size); from then on the probes alternate.
	start := time.Now()
	deadline := start.Add(10 * time.Second)
	for len(c.Status()[0].Servers) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("one address over two standbys not detected after 10s: %+v", c.Status()[0])
		}
		time.Sleep(time.Millisecond)
	}
	detected := time.Since(start)
	st := c.Status()[0]
	var addrs []string
	for _, s := range st.Servers {
		addrs = append(addrs, s.Addr)
		if s.Started.IsZero() {
			t.Errorf("server %v without a start time", s)
		}
	}
	want := []string{fmt.Sprintf("local:%d", pg.Replicas[0].Port), fmt.Sprintf("local:%d", pg.Replicas[1].Port)}
	slices.Sort(want)
	if !slices.Equal(addrs, want) {
		t.Errorf("servers %v, want the standbys' %v (PgBouncer reaches them over Unix sockets)", addrs, want)
	}
	pos, err := c.PrimaryPosition(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Both standbys have long had the table's creation; Covers says no
	// all the same, for any position, while two servers answer.
	if c.Covers(0, LSNPosition(1)) || c.Covers(0, pos) {
		t.Error("Covers true while two servers answer behind the address")
	}
	if ch := srv.snapshot(); len(ch) != 1 || !ch[0].Several || len(ch[0].Servers) != 2 {
		t.Errorf("OnServerChange calls %+v, want one, with both servers", ch)
	}

	before := time.Now()
	dbtest.Must(t, pg.Replicas[1].PauseReplay(t.Context()))
	paused := time.Now()
	ev := rec.wait(t, 0, Evicted, before, 5*time.Second)
	// The paused standby answers every other probe, and LagNow grows from
	// its last bound whichever answers: eviction comes as with one paused
	// server, an Interval later at most.
	hi := paused.Add(itMaxLag + 3*itInterval + slack)
	if ev.Reading.At.Before(before.Add(itMaxLag)) || ev.Reading.At.After(hi) {
		t.Errorf("evicted %v after the pause; want between MaxLag (%v) and MaxLag + 3 intervals + %v", ev.Reading.At.Sub(before), itMaxLag, slack)
	}
	if !ev.Reading.LagKnown || ev.Reading.Lag <= itMaxLag || len(ev.Reading.Servers) != 2 {
		t.Errorf("eviction reading: lag %v known %v, servers %v; want the paused standby's lag above MaxLag, and both servers",
			ev.Reading.Lag, ev.Reading.LagKnown, ev.Reading.Servers)
	}
	lagNow, _ := c.LagNow(0)
	resumed := time.Now()
	dbtest.Must(t, pg.Replicas[1].ResumeReplay(t.Context()))
	back := rec.wait(t, 0, Healthy, resumed, 5*time.Second)
	stop()
	t.Logf("detected %v after Start; servers %v; evicted %v after pausing %s (reading lag %v, by server %v); LagNow at resume %v; readmitted %v after resume",
		detected.Round(time.Millisecond), st.Servers, ev.Reading.At.Sub(before).Round(time.Millisecond), pg.Replicas[1].Name,
		ev.Reading.Lag.Round(time.Millisecond), ev.Reading.Server, lagNow.Round(time.Millisecond), back.Reading.At.Sub(resumed).Round(time.Millisecond))
}
