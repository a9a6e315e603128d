package main

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/lagcheck"
)

// The probe cost: P plugins in one process stand for P application
// processes; each server's own counter of transactions in the database
// the plugins use (pg_stat_database.xact_commit + xact_rollback of
// "postgres", read from template1 after the plugins' sessions have ended,
// which flushes their statistics) gives the queries each server received.
// What a plugin costs once (connecting, pinging, Start's round) is
// measured by a run with an hour's Interval and subtracted, as
// lagcheck's TestProbeLoad does for bare Checkers.

type probeServer struct {
	name    string
	monitor *sql.DB
}

func (s probeServer) count(ctx context.Context) (int64, error) {
	var v int64
	err := s.monitor.QueryRowContext(ctx, "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'postgres'").Scan(&v)
	return v, err
}

func (s probeServer) sessions(ctx context.Context) (int64, error) {
	var v int64
	err := s.monitor.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = 'postgres' AND backend_type = 'client backend'").Scan(&v)
	return v, err
}

func runProbes(ctx context.Context, b *bench, w *sectionWriter) error {
	o := b.o
	ns, ps, window := []int{1, 2, 4}, []int{1, 4, 16}, 5*time.Second
	if o.quick {
		ns, ps, window = []int{2}, []int{1, 4}, 2*time.Second
	}
	maxN := ns[len(ns)-1]
	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	cl, err := testdb.StartPostgres(startCtx, maxN, nil)
	cancel()
	if err != nil {
		return err
	}
	defer cl.Close()
	t := &topology{f: pgFlavor, primary: pgNode(cl.Primary, nil)}
	var servers []probeServer
	for _, n := range append([]*testdb.PGNode{cl.Primary}, cl.Replicas...) {
		if n != cl.Primary {
			t.replicas = append(t.replicas, pgNode(n, nil))
		}
		m, err := sql.Open("pgx", strings.Replace(n.DSN(), "dbname=postgres", "dbname=template1", 1))
		if err != nil {
			return err
		}
		defer m.Close()
		servers = append(servers, probeServer{name: n.Name, monitor: m})
	}
	// The default Interval, as lagcheck applies it (New runs no query).
	def, err := lagcheck.New(lagcheck.Config{}, "postgres", servers[0].monitor, nil)
	if err != nil {
		return err
	}
	interval := def.Config().Interval
	def.Close()

	// run opens p configurations over the first n replicas, keeps them for
	// window, closes them, waits for their sessions to end, and returns the
	// queries each server counted and the running time summed over the p.
	run := func(n, p int, lag lagcheck.Config, window time.Duration, dbr bool) ([]int64, time.Duration, error) {
		before := make([]int64, len(servers))
		for i, s := range servers {
			var err error
			if before[i], err = s.count(ctx); err != nil {
				return nil, 0, err
			}
		}
		var setups []*setup
		started := make([]time.Time, 0, p)
		for range p {
			var s *setup
			var err error
			if dbr {
				s, err = openDBResolver(t, t.replicas[:n])
			} else {
				s, err = openRWSplit(t, t.replicas[:n], rwsplit.Config{Lag: lag})
			}
			if err != nil {
				return nil, 0, err
			}
			setups = append(setups, s)
			started = append(started, time.Now())
		}
		time.Sleep(window)
		var running time.Duration
		for k, s := range setups {
			s.close()
			running += time.Since(started[k])
		}
		deadline := time.Now().Add(20 * time.Second)
		for _, s := range servers {
			for {
				n, err := s.sessions(ctx)
				if err != nil {
					return nil, 0, err
				}
				if n == 0 {
					break
				}
				if time.Now().After(deadline) {
					return nil, 0, fmt.Errorf("%s: %d sessions still open", s.name, n)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		counts := make([]int64, len(servers))
		for i, s := range servers {
			after, err := s.count(ctx)
			if err != nil {
				return nil, 0, err
			}
			counts[i] = after - before[i] // the monitor reads from template1: not counted here
		}
		return counts, running, nil
	}

	var rows [][]string
	for _, n := range ns {
		hour := lagcheck.Config{Interval: time.Hour, MaxLag: 2 * time.Hour}
		once, _, err := run(n, 1, hour, 0, false)
		if err != nil {
			return err
		}
		for _, p := range ps {
			counts, running, err := run(n, p, lagcheck.Config{}, window, false)
			if err != nil {
				return err
			}
			each := running / time.Duration(p)
			rate := func(i int) float64 { return float64(counts[i]-int64(p)*once[i]) / each.Seconds() }
			formula := float64(p) / interval.Seconds()
			var reps []float64
			for i := 1; i <= n; i++ {
				reps = append(reps, rate(i))
			}
			idle := 0.0
			for i := n + 1; i < len(servers); i++ {
				idle += rate(i)
			}
			total := rate(0)
			for _, r := range reps {
				total += r
			}
			repText := fmt.Sprintf("%.1f", reps[0])
			if n > 1 {
				repText = spread(reps, "%.1f")
			}
			rows = append(rows, []string{fmt.Sprint(n), fmt.Sprint(p), fmt.Sprintf("%.1f", rate(0)), repText,
				fmt.Sprintf("%.0f", formula), fmt.Sprintf("%.1f", total), fmt.Sprintf("%.0f", formula*float64(1+n)),
				fmt.Sprintf("%.0f%%", 100*total/(formula*float64(1+n))), fmt.Sprint(once[0]) + " / " + fmt.Sprint(once[1])})
			log.Printf("probes N=%d P=%d: primary %.1f/s, replicas %v, formula %.0f", n, p, rate(0), reps, formula)
		}
	}
	w.p("A PostgreSQL primary and %d replicas, no proxy, no application load. For N replicas and P application processes, P rwsplit plugins in one process, each over the first N replicas with the default checker (Interval %v), "+
		"stay open for %v. docs/health.md (\"Fleet cost\") gives the formula: each server receives P × 1 query per round / Interval on PostgreSQL, "+
		"so P × (1 + N) / Interval in all. *once* is what one plugin costs outside its loop (connecting, pings, Start's round: transactions on the primary / on a replica), measured with an hour's Interval and subtracted; "+
		"the rate is per second of a plugin's running time, summed over the P plugins.", maxN, interval, window)
	w.table([]string{"N", "P", "primary (queries/s)", "each replica (queries/s; median, range)", "formula per server P / Interval", "all servers", "formula P × (1+N) / Interval", "measured / formula", "once (primary / replica)"}, rows)

	// dbresolver for comparison: no checker.
	p := ps[len(ps)-1]
	counts, running, err := run(maxN, p, lagcheck.Config{}, window, true)
	if err != nil {
		return err
	}
	var sum int64
	for _, c := range counts {
		sum += c
	}
	w.p("For comparison, %d dbresolver instances over the same %d replicas, open for the same %v: %d transactions on all servers in all (their pings at start-up), that is no probes: dbresolver never checks a replica, which is why it keeps reading from one that is paused, crashed or frozen (see the faults above). Plain GORM sends nothing either.",
		p, maxN, (running / time.Duration(p)).Round(10*time.Millisecond), sum)
	return nil
}
