package main

import (
	"context"
	"fmt"
	"log"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/policy"
)

// scaleConfig is one configuration of the scaling runs.
type scaleConfig struct {
	name string
	open func(t *topology, replicas []node) (*setup, error)
}

func rwsplitPolicy(name string, pol func() policy.Policy) scaleConfig {
	return scaleConfig{"rwsplit " + name, func(t *topology, replicas []node) (*setup, error) {
		s, err := openRWSplit(t, replicas, rwsplit.Config{Policy: pol()})
		if err == nil {
			s.name = "rwsplit " + name
		}
		return s, err
	}}
}

var scaleConfigs = []scaleConfig{
	rwsplitPolicy("P2C", func() policy.Policy { p, _ := policy.P2C(policy.P2CConfig{}); return p }),
	rwsplitPolicy("LeastInFlight", policy.LeastInFlight),
	rwsplitPolicy("RoundRobin", policy.RoundRobin),
	{"dbresolver", openDBResolver},
}

// scaleResult is one throughput measurement.
type scaleResult struct {
	readsPerSec float64
	errs        int
	p50, p99    time.Duration
	byNode      map[string]int
	total       int
	idle        float64 // the machine's idle CPU share during the measurement
}

// capSetup caps every application pool of s at n connections.
func capSetup(s *setup, replicas []node, n int) {
	if d, err := s.db.DB(); err == nil {
		capPool(d, n)
	}
	if s.dbr != nil {
		s.dbr.SetMaxOpenConns(n).SetMaxIdleConns(n)
	}
	if s.plugin != nil {
		for _, r := range replicas {
			capPool(s.plugin.ReplicaDB(r.name), n)
		}
	}
}

// keepIdle lets every application pool of s keep n idle connections
// (database/sql keeps 2 by default: with more concurrent readers, every
// configuration would close and reopen connections while measured).
func keepIdle(s *setup, replicas []node, n int) {
	if d, err := s.db.DB(); err == nil {
		d.SetMaxIdleConns(n)
	}
	if s.dbr != nil {
		s.dbr.SetMaxIdleConns(n)
	}
	if s.plugin != nil {
		for _, r := range replicas {
			if d := s.plugin.ReplicaDB(r.name); d != nil {
				d.SetMaxIdleConns(n)
			}
		}
	}
}

// measureReads runs readers primary-key readers through s for warm, then
// measures for dur.
func measureReads(ctx context.Context, s *setup, t *topology, readers int, warm, dur time.Duration) (scaleResult, error) {
	l := startLoad(readers, func(ctx context.Context, r *read) {
		row, err := readRow(ctx, s.db, t.f, randomID())
		r.port, r.err = row.Port, err
	}, ctx)
	time.Sleep(warm)
	i0, t0 := cpuIdle()
	from := l.record()
	time.Sleep(dur)
	to := l.pause()
	i1, t1 := cpuIdle()
	reads := l.finish()
	if err := ctx.Err(); err != nil {
		return scaleResult{}, err
	}
	res := scaleResult{byNode: map[string]int{}}
	var lat []time.Duration
	for _, r := range reads {
		if r.err != nil {
			res.errs++
			continue
		}
		lat = append(lat, r.took)
		res.byNode[t.nameOf(r.port)]++
	}
	res.total = len(lat)
	res.readsPerSec = float64(len(lat)) / (to - from).Seconds()
	lat = sortedDurations(lat)
	res.p50, res.p99 = quantile(lat, 0.5), quantile(lat, 0.99)
	if t1 > t0 {
		res.idle = float64(i1-i0) / float64(t1-t0)
	}
	if res.errs > 0 {
		var first error
		for _, r := range reads {
			if r.err != nil {
				first = r.err
				break
			}
		}
		log.Printf("%s: %d reads failed, first: %v", s.name, res.errs, first)
	}
	return res, nil
}

// scaleCluster is the scaling runs' cluster: a primary and 4 replicas, each
// server behind its own latency proxy.
type scaleCluster struct {
	cl      *testdb.PGCluster
	proxies []*testdb.Proxy // [0] the primary's, then the replicas'
	topo    *topology
}

func startScaleCluster(ctx context.Context, replicas int, latency time.Duration) (*scaleCluster, error) {
	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cl, err := testdb.StartPostgres(startCtx, replicas, nil)
	if err != nil {
		return nil, err
	}
	sc := &scaleCluster{cl: cl}
	for _, n := range append([]*testdb.PGNode{cl.Primary}, cl.Replicas...) {
		p, err := testdb.StartProxy(n.Addr())
		if err != nil {
			cl.Close()
			return nil, err
		}
		p.SetLatency(latency)
		sc.proxies = append(sc.proxies, p)
	}
	sc.topo = &topology{f: pgFlavor, primary: pgNode(cl.Primary, sc.proxies[0])}
	for i, r := range cl.Replicas {
		sc.topo.replicas = append(sc.topo.replicas, pgNode(r, sc.proxies[i+1]))
	}
	// The table, through a direct connection (no proxy).
	db, err := gorm.Open(pgFlavor.open(cl.Primary.DSN()), gormConfig())
	if err != nil {
		sc.close()
		return nil, err
	}
	defer closeGorm(db)
	if err := createRows(ctx, db); err != nil {
		sc.close()
		return nil, err
	}
	if err := cl.WaitCaughtUp(ctx); err != nil {
		sc.close()
		return nil, err
	}
	return sc, nil
}

func (sc *scaleCluster) close() {
	for _, p := range sc.proxies {
		p.Close()
	}
	sc.cl.Close()
}

func closeGorm(db *gorm.DB) {
	if d, err := db.DB(); err == nil {
		d.Close()
	}
}

const maxN = 4

func runScaling(ctx context.Context, b *bench, w *sectionWriter) error {
	sc, err := startScaleCluster(ctx, maxN, b.o.scaleLats[0])
	if err != nil {
		return err
	}
	defer sc.close()
	for i, lat := range b.o.scaleLats {
		for _, p := range sc.proxies {
			p.SetLatency(lat)
		}
		if err := scaleAt(ctx, b, w, sc, lat, i == 0); err != nil {
			return err
		}
	}
	return nil
}

// scaleRounds and scaleMeasure: the scaling runs repeat each measurement
// fewer times than the other sections, having many more of them.
func (o *options) scaleRounds() int { return min(o.rounds, 3) }

func (o *options) scaleMeasure() time.Duration { return min(o.measure, 3*time.Second) }

// scaleAt writes the scaling table, plot and unequal-replica table for
// one latency.
func scaleAt(ctx context.Context, b *bench, w *sectionWriter, sc *scaleCluster, lat time.Duration, first bool) error {
	o := b.o
	t := sc.topo
	warm := 700 * time.Millisecond
	if o.quick {
		warm = 400 * time.Millisecond
	}
	rounds := o.scaleRounds()
	capacity := float64(o.scaleConns) / lat.Seconds()
	w.p("### +%v per query", lat)
	if !first {
		w.p("The same runs with %v added to every query: a replica's capacity drops to about %.0f reads/s, so that %d of them need far less CPU than the machine has, and the replicas' capacity, not the CPU, is the limit at every N.", lat, capacity, maxN)
	} else {
		w.p("A PostgreSQL primary and %d streaming replicas, each server reached through its own TCP proxy that adds %v to every query, "+
			"each application pool capped at %d connections: a server then serves at most about %d × 1s/%v ≈ %.0f reads/s whatever the CPU does. "+
			"%d goroutines read rows by primary key (`SELECT id, v, inet_server_port() FROM bench_rows WHERE id = $1 LIMIT 1`, built by GORM's `Take`). "+
			"The server's port in each answer says which node served the read, independently of the plugins' own counters. "+
			"For N replicas the plugins are given the first N; the others idle. "+
			"Each configuration is measured %d times for %v (after %v of warm-up), in an order that rotates between repeats; the table shows medians. "+
			"**Efficiency** is throughput(N) / (N × throughput(1)) of the same configuration. **CPU idle** is the machine's idle CPU during the measurement: near 0%% the CPU, not the replicas, is the limit.",
			maxN, lat, o.scaleConns, o.scaleConns, lat, capacity, o.scaleReadrs, rounds, o.scaleMeasure(), warm)
	}

	// Plain GORM on the primary alone: one capacity-limited server.
	plain, err := openPlain(t)
	if err != nil {
		return err
	}
	capSetup(plain, nil, o.scaleConns)
	var plainRes []scaleResult
	for range rounds {
		r, err := measureReads(ctx, plain, t, o.scaleReadrs, warm, o.scaleMeasure())
		if err != nil {
			return err
		}
		plainRes = append(plainRes, r)
	}
	plain.close()
	log.Printf("plain GORM on the primary: %.0f reads/s", median(thr(plainRes)))

	results := map[string]map[int][]scaleResult{} // config → N → runs
	for _, c := range scaleConfigs {
		results[c.name] = map[int][]scaleResult{}
	}
	for n := 1; n <= maxN; n++ {
		reps := t.replicas[:n]
		setups := make([]*setup, len(scaleConfigs))
		for i, c := range scaleConfigs {
			s, err := c.open(t, reps)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			defer s.close()
			capSetup(s, reps, o.scaleConns)
			if err := waitEligible(ctx, s, 10*time.Second); err != nil {
				return err
			}
			setups[i] = s
		}
		for round := range rounds {
			for k := range setups {
				i := (k + round) % len(setups)
				r, err := measureReads(ctx, setups[i], t, o.scaleReadrs, warm, o.scaleMeasure())
				if err != nil {
					return err
				}
				results[scaleConfigs[i].name][n] = append(results[scaleConfigs[i].name][n], r)
				log.Printf("N=%d %s: %.0f reads/s, primary %d, errors %d, idle %.0f%%", n, scaleConfigs[i].name, r.readsPerSec, r.byNode[t.primary.name], r.errs, 100*r.idle)
			}
		}
		for _, s := range setups {
			s.close()
		}
	}

	// The table.
	header := []string{"N", "configuration", "reads/s (median, range)", "efficiency", "ideal N × 1 replica", "primary's share", "reads per replica", "p50", "p99", "errors", "CPU idle"}
	var rows [][]string
	plainThr := median(thr(plainRes))
	rows = append(rows, []string{"—", "plain GORM, primary alone", spread(thr(plainRes), "%.0f"), "—", "—", "100%",
		"—", ms(medDur(plainRes, p50Of)), ms(medDur(plainRes, p99Of)), fmt.Sprint(sumErrs(plainRes)), fmt.Sprintf("%.0f%%", 100*median(idleOf(plainRes)))})
	for n := 1; n <= maxN; n++ {
		for _, c := range scaleConfigs {
			rs := results[c.name][n]
			one := median(thr(results[c.name][1]))
			eff := median(thr(rs)) / (float64(n) * one)
			rows = append(rows, []string{fmt.Sprint(n), c.name, spread(thr(rs), "%.0f"), fmt.Sprintf("%.0f%%", 100*eff),
				fmt.Sprintf("%.0f", float64(n)*one), primaryShare(rs, t), replicaShares(rs, t.replicas[:n]),
				ms(medDur(rs, p50Of)), ms(medDur(rs, p99Of)), fmt.Sprint(sumErrs(rs)), fmt.Sprintf("%.0f%%", 100*median(idleOf(rs)))})
		}
	}
	w.table(header, rows)
	w.p("*reads per replica*: each replica's share of the reads in the median run's pooled total, in replica order. " +
		"*primary's share*: reads whose answer came from the primary's port, over every run of the row.")

	// Plot: throughput against N.
	series := map[string][]float64{}
	var names []string
	for _, c := range scaleConfigs {
		names = append(names, c.name)
		for n := 1; n <= maxN; n++ {
			series[c.name] = append(series[c.name], median(thr(results[c.name][n])))
		}
	}
	var ideal []float64
	for n := 1; n <= maxN; n++ {
		ideal = append(ideal, float64(n)*plainThr)
	}
	file := fmt.Sprintf("scaling-%v.png", lat)
	if err := plotScaling(w.plotPath(file), fmt.Sprintf("Read throughput against replicas, +%v per query, %d connections each", lat, o.scaleConns), names, series, ideal); err != nil {
		return err
	}
	w.image("reads/s against the number of replicas, per configuration, with the ideal line", file)
	w.p("The ideal line is N × the throughput of plain GORM on one server alone (the primary, behind the same proxy and cap).")

	// Goals.
	var goals []string
	for _, name := range []string{"rwsplit P2C", "rwsplit LeastInFlight"} {
		worst := 1.0
		for n := 2; n <= maxN; n++ {
			worst = min(worst, median(thr(results[name][n]))/(float64(n)*median(thr(results[name][1]))))
		}
		verdict := "met"
		if worst < 0.9 {
			verdict = "missed"
		}
		goals = append(goals, fmt.Sprintf("%s: lowest efficiency up to %d replicas %.0f%% (goal ≥ 90%%: %s)", name, maxN, 100*worst, verdict))
	}
	prim := 0
	for _, c := range scaleConfigs[:3] {
		for n := 1; n <= maxN; n++ {
			for _, r := range results[c.name][n] {
				prim += r.byNode[t.primary.name]
			}
		}
	}
	goals = append(goals, fmt.Sprintf("reads the primary served through rwsplit, every policy and N: %d (goal 0)", prim))
	w.p("**Goals.** %s.", strings.Join(goals, "; "))
	var cpuBound []string
	for n := 1; n <= maxN; n++ {
		var idle []float64
		for _, c := range scaleConfigs {
			idle = append(idle, idleOf(results[c.name][n])...)
		}
		if median(idle) < 0.10 {
			cpuBound = append(cpuBound, fmt.Sprint(n))
		}
	}
	if len(cpuBound) > 0 {
		w.p("**The CPU may have been the limit** at N = %s here: the machine's median idle CPU during those measurements was below 10%% (this run's work and other processes': see the load line). "+
			"Where the throughput falls short of N × one replica there, it measures the 2 cores, not the policies.", strings.Join(cpuBound, ", "))
	} else {
		w.p("The machine kept idle CPU (median at least 10%%) at every N: the replicas' capacity, not the CPU, was the limit.")
	}

	return runUnequal(ctx, b, w, sc, lat, warm)
}

// runUnequal: 3 replicas, the third at twice the latency (half the
// capacity).
func runUnequal(ctx context.Context, b *bench, w *sectionWriter, sc *scaleCluster, lat, warm time.Duration) error {
	o := b.o
	t := sc.topo
	reps := t.replicas[:3]
	rounds := o.scaleRounds()
	sc.proxies[3].SetLatency(2 * lat)
	defer sc.proxies[3].SetLatency(lat)

	// Each replica's capacity: plain GORM on it alone, capped alike.
	caps := make([][]float64, len(reps))
	for i, r := range reps {
		s, err := openDirect(t.f, r)
		if err != nil {
			return err
		}
		capSetup(s, nil, o.scaleConns)
		for range rounds {
			res, err := measureReads(ctx, s, t, o.scaleReadrs, warm, o.scaleMeasure())
			if err != nil {
				return err
			}
			caps[i] = append(caps[i], res.readsPerSec)
		}
		s.close()
	}
	var capSum float64
	var capText []string
	for i, c := range caps {
		capSum += median(c)
		capText = append(capText, fmt.Sprintf("%s %.0f", reps[i].name, median(c)))
	}

	setups := make([]*setup, len(scaleConfigs))
	for i, c := range scaleConfigs {
		s, err := c.open(t, reps)
		if err != nil {
			return err
		}
		defer s.close()
		capSetup(s, reps, o.scaleConns)
		if err := waitEligible(ctx, s, 10*time.Second); err != nil {
			return err
		}
		setups[i] = s
	}
	res := make([][]scaleResult, len(setups))
	for round := range rounds {
		for k := range setups {
			i := (k + round) % len(setups)
			r, err := measureReads(ctx, setups[i], t, o.scaleReadrs, warm, o.scaleMeasure())
			if err != nil {
				return err
			}
			res[i] = append(res[i], r)
			log.Printf("unequal %s: %.0f reads/s", scaleConfigs[i].name, r.readsPerSec)
		}
	}
	w.p("#### Unequal replicas, +%v\n\n3 replicas; %s is reached with %v added instead of %v, so it has half the capacity of the others. "+
		"Capacities measured with plain GORM on each replica alone (same proxy and cap, median of %d): %s reads/s, sum %.0f.",
		lat, reps[2].name, 2*lat, lat, rounds, strings.Join(capText, ", "), capSum)
	var rows [][]string
	var goals []string
	for i, c := range scaleConfigs {
		share := median(thr(res[i])) / capSum
		rows = append(rows, []string{c.name, spread(thr(res[i]), "%.0f"), fmt.Sprintf("%.0f%%", 100*share), primaryShare(res[i], t), replicaShares(res[i], reps),
			ms(medDur(res[i], p50Of)), ms(medDur(res[i], p99Of)), fmt.Sprint(sumErrs(res[i])), fmt.Sprintf("%.0f%%", 100*median(idleOf(res[i])))})
		if i < 2 {
			verdict := "met"
			if share < 0.9 {
				verdict = "missed"
			}
			goals = append(goals, fmt.Sprintf("%s %.0f%% of the capacity sum (goal ≥ 90%%: %s)", c.name, 100*share, verdict))
		}
	}
	w.table([]string{"configuration", "reads/s (median, range)", "share of the capacity sum", "primary's share", "reads per replica", "p50", "p99", "errors", "CPU idle"}, rows)
	w.p("**Goals.** %s.", strings.Join(goals, "; "))
	return nil
}

func thr(rs []scaleResult) []float64 {
	var out []float64
	for _, r := range rs {
		out = append(out, r.readsPerSec)
	}
	return out
}

func idleOf(rs []scaleResult) []float64 {
	var out []float64
	for _, r := range rs {
		out = append(out, r.idle)
	}
	return out
}

func p50Of(r scaleResult) time.Duration { return r.p50 }
func p99Of(r scaleResult) time.Duration { return r.p99 }

func medDur(rs []scaleResult, f func(scaleResult) time.Duration) time.Duration {
	var xs []float64
	for _, r := range rs {
		xs = append(xs, float64(f(r)))
	}
	return time.Duration(median(xs))
}

func sumErrs(rs []scaleResult) int {
	n := 0
	for _, r := range rs {
		n += r.errs
	}
	return n
}

func primaryShare(rs []scaleResult, t *topology) string {
	p, all := 0, 0
	for _, r := range rs {
		p += r.byNode[t.primary.name]
		all += r.total
	}
	if p == 0 {
		return "0"
	}
	return fmt.Sprintf("%.2f%% (%d)", pct(p, all), p)
}

// replicaShares gives each replica's share of the median run's reads.
func replicaShares(rs []scaleResult, reps []node) string {
	if len(rs) == 0 {
		return "—"
	}
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b scaleResult) int {
		switch {
		case a.readsPerSec < b.readsPerSec:
			return -1
		case a.readsPerSec > b.readsPerSec:
			return 1
		}
		return 0
	})
	r := sorted[len(sorted)/2]
	var parts []string
	for _, n := range reps {
		parts = append(parts, fmt.Sprintf("%.0f", pct(r.byNode[n.name], r.total)))
	}
	return strings.Join(parts, "/") + " %"
}
