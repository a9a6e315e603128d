package main

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"gonum.org/v1/plot/plotter"
	"gorm.io/gorm"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/counter"
	"github.com/rwsplit/rwsplit/internal/testdb"
)

const (
	readTimeout = time.Second            // each read's context deadline in the fault workloads
	slowLatency = 20 * time.Millisecond  // added to replica2 in the slow case
	slowMark    = 10 * time.Millisecond  // a read slower than this counts as slow
	bucket      = 250 * time.Millisecond // timeline resolution
)

// fault is one fault workload.
type fault struct {
	id, title string
	replica   int // the replica it hits (0 or 1)
	inject    func(context.Context) error
	heal      func(context.Context) error
}

// faultRun is what one configuration saw through one fault.
type faultRun struct {
	reads       []read
	from, to    time.Duration // the fault's window, since the workload's origin
	end         time.Duration
	faultyPort  int
	primaryPort int
}

func (r *faultRun) window() []read {
	var out []read
	for _, rd := range r.reads {
		if rd.at >= r.from && rd.at < r.to {
			out = append(out, rd)
		}
	}
	return out
}

func runFaults(ctx context.Context, b *bench, w *sectionWriter) error {
	o := b.o
	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	cl, err := testdb.StartPostgres(startCtx, 2, nil)
	cancel()
	if err != nil {
		return err
	}
	defer cl.Close()
	proxy, err := testdb.StartProxy(cl.Replicas[1].Addr())
	if err != nil {
		return err
	}
	defer proxy.Close()
	t := &topology{f: pgFlavor, primary: pgNode(cl.Primary, nil), replicas: []node{pgNode(cl.Replicas[0], nil), pgNode(cl.Replicas[1], proxy)}}

	primary, err := sql.Open("pgx", cl.Primary.DSN())
	if err != nil {
		return err
	}
	defer primary.Close()
	setupDB, err := gorm.Open(pgFlavor.open(cl.Primary.DSN()), gormConfig())
	if err != nil {
		return err
	}
	if err := createRows(ctx, setupDB); err != nil {
		return err
	}
	closeGorm(setupDB)
	if err := cl.WaitCaughtUp(ctx); err != nil {
		return err
	}

	// Each fault gets fresh configurations, so that what one fault left in
	// a plugin's statistics does not carry over into the next.
	openSetups := func() ([]*setup, error) {
		var setups []*setup
		for _, open := range []func() (*setup, error){
			func() (*setup, error) { return openPlain(t) },
			func() (*setup, error) { return openDBResolver(t, t.replicas) },
			func() (*setup, error) { return openRWSplit(t, t.replicas, rwsplit.Config{}) },
		} {
			s, err := open()
			if err != nil {
				closeAll(setups)
				return nil, err
			}
			keepIdle(s, t.replicas, o.readers+1)
			setups = append(setups, s)
			if err := waitEligible(ctx, s, 20*time.Second); err != nil {
				closeAll(setups)
				return nil, err
			}
		}
		return setups, nil
	}
	names := []string{"plain GORM", "dbresolver", "rwsplit"}
	lagDefaults, err := defaultLag()
	if err != nil {
		return err
	}
	maxLag := lagDefaults.MaxLag
	r1, r2 := cl.Replicas[0], cl.Replicas[1]
	faults := []fault{
		{"paused", "replica1 stops replaying WAL", 0, r1.PauseReplay, r1.ResumeReplay},
		{"crashed", "replica2 crashes (immediate shutdown), then restarts", 1, r2.Crash, r2.Start},
		{"frozen", "replica1 freezes (SIGSTOP: it hangs, it does not fail), then thaws", 0, r1.Freeze, r1.Thaw},
		{"slow", fmt.Sprintf("replica2 answers %v late (proxy)", slowLatency), 1,
			func(context.Context) error { proxy.SetLatency(slowLatency); return nil },
			func(context.Context) error { proxy.SetLatency(0); return nil }},
	}
	pre, post := time.Second, 2*time.Second
	if o.quick {
		pre, post = 500*time.Millisecond, time.Second
	}
	w.p("A PostgreSQL primary and 2 replicas (replica2 behind a TCP proxy). %d goroutines read one row by primary key in a loop, each read with a %v deadline, "+
		"while the primary updates that row every 10 ms. Each configuration goes through each fault on its own, in turn, opened afresh for each fault: %v of normal service, the fault for %v, then %v after it is healed. "+
		"The table counts the reads that started during the fault; the plots show the whole run. "+
		"rwsplit runs with its defaults (MaxLag %v, the checker every %v). The server's port in each answer says which node served it.",
		o.readers, readTimeout, pre, o.fault, post, maxLag, lagDefaults.Interval)

	runs := map[string][]*faultRun{} // fault id → per setup
	for _, f := range faults {
		setups, err := openSetups()
		if err != nil {
			return err
		}
		for _, s := range setups {
			log.Printf("fault %s: %s", f.id, s.name)
			r, err := underFault(ctx, s, t, primary, f, o.readers, pre, o.fault, post)
			if err != nil {
				closeAll(setups)
				return fmt.Errorf("%s, %s: %w", f.id, s.name, err)
			}
			runs[f.id] = append(runs[f.id], r)
			// Back to normal before the next one.
			if err := cl.WaitCaughtUp(ctx); err != nil {
				closeAll(setups)
				return err
			}
			for _, s := range setups {
				if err := waitEligible(ctx, s, 20*time.Second); err != nil {
					closeAll(setups)
					return err
				}
			}
		}
		closeAll(setups)
	}

	// The table.
	var rows [][]string
	addRow := func(id, label, measure string, fn func(r *faultRun) string) {
		row := []string{label, measure}
		for _, r := range runs[id] {
			row = append(row, fn(r))
		}
		rows = append(rows, row)
	}
	addRow("paused", "replica1 replay paused", fmt.Sprintf("reads older than %v; the oldest", maxLag), func(r *faultRun) string {
		win := r.window()
		stale, worst := 0, time.Duration(0)
		for _, rd := range win {
			if rd.err == nil {
				worst = max(worst, rd.stale)
				if rd.stale > maxLag {
					stale++
				}
			}
		}
		return fmt.Sprintf("%.1f%% (%s)", pct(stale, len(win)), ms(worst))
	})
	addRow("crashed", "replica2 crashed", "failed reads", func(r *faultRun) string {
		win := r.window()
		n := countErrs(win)
		return fmt.Sprintf("%d of %d (%.1f%%)", n, len(win), pct(n, len(win)))
	})
	addRow("frozen", "replica1 frozen", "reads/s during the fault (before it); failed reads", func(r *faultRun) string {
		win := r.window()
		before := okRate(r.reads, 0, r.from)
		return fmt.Sprintf("%.0f (%.0f); %d failed", okRate(r.reads, r.from, r.to), before, countErrs(win))
	})
	addRow("slow", fmt.Sprintf("replica2 %v slower", slowLatency), "reads over 10 ms; p99; reads/s", func(r *faultRun) string {
		win := r.window()
		var lat []time.Duration
		slow := 0
		for _, rd := range win {
			if rd.err == nil {
				lat = append(lat, rd.took)
				if rd.took > slowMark {
					slow++
				}
			}
		}
		s := sortedDurations(lat)
		return fmt.Sprintf("%.1f%%; %s; %.0f", pct(slow, len(win)), ms(quantile(s, 0.99)), okRate(r.reads, r.from, r.to))
	})
	w.table(append([]string{"fault", "measure"}, names...), rows)

	// Plots.
	for _, f := range faults {
		rs := runs[f.id]
		from, to := rs[0].from.Seconds(), rs[0].to.Seconds()
		// Read latency over time, every configuration.
		var lat []tsSeries
		for i, r := range rs {
			lat = append(lat, tsSeries{name: names[i], pts: latencyPoints(r.reads), points: true})
		}
		file := "fault-" + f.id + "-latency.png"
		if err := plotTimeline(w.plotPath(file), f.title+": read latency", "read latency (ms, log scale)", lat, from, to, true); err != nil {
			return err
		}
		w.image(f.title+": read latency over time", file)
		// The faulty replica's share of reads over time, for the plugins.
		var share []tsSeries
		for i, r := range rs[1:] {
			share = append(share, tsSeries{name: names[i+1], pts: sharePoints(r.reads, r.faultyPort)})
		}
		file = "fault-" + f.id + "-share.png"
		if err := plotTimeline(w.plotPath(file), f.title+": share of reads on "+t.replicas[f.replica].name, "share of reads served by "+t.replicas[f.replica].name+" (%)", share, from, to, false); err != nil {
			return err
		}
		w.image(f.title+": the faulty replica's share of reads over time", file)
		switch f.id {
		case "paused":
			var st []tsSeries
			for i, r := range rs {
				st = append(st, tsSeries{name: names[i], pts: stalePoints(r.reads), points: true})
			}
			file = "fault-paused-staleness.png"
			if err := plotTimeline(w.plotPath(file), f.title+": staleness of what each read returned", "staleness (s)", st, from, to, false); err != nil {
				return err
			}
			w.image("staleness over time with a paused replica", file)
		case "crashed", "frozen":
			var rate []tsSeries
			for i, r := range rs {
				rate = append(rate, tsSeries{name: names[i], pts: ratePoints(r.reads, r.end)})
			}
			file = "fault-" + f.id + "-rate.png"
			if err := plotTimeline(w.plotPath(file), f.title+": successful reads per second", "reads/s", rate, from, to, false); err != nil {
				return err
			}
			w.image(f.title+": reads per second over time", file)
		case "slow":
			lats := map[string][]time.Duration{}
			for i, r := range rs {
				for _, rd := range r.window() {
					if rd.err == nil {
						lats[names[i]] = append(lats[names[i]], rd.took)
					}
				}
			}
			file = "fault-slow-cdf.png"
			if err := plotCDF(w.plotPath(file), f.title+": read latency distribution during the fault", names, lats); err != nil {
				return err
			}
			w.image("latency CDF with a slow replica", file)
		}
	}
	// The share table: how much each plugin sent to the faulty replica.
	var shareRows [][]string
	for _, f := range faults {
		row := []string{f.title}
		for _, r := range runs[f.id][1:] {
			win := r.window()
			n := 0
			for _, rd := range win {
				if rd.err == nil && rd.port == r.faultyPort {
					n++
				}
			}
			row = append(row, fmt.Sprintf("%.1f%%", pct(n, len(win))))
		}
		shareRows = append(shareRows, row)
	}
	w.p("Share of the reads during the fault that the faulty replica answered (successfully):")
	w.table(append([]string{"fault"}, names[1:]...), shareRows)
	return nil
}

func closeAll(setups []*setup) {
	for _, s := range setups {
		s.close()
	}
}

func countErrs(rs []read) int {
	n := 0
	for _, r := range rs {
		if r.err != nil {
			n++
		}
	}
	return n
}

// okRate is successful reads per second among the reads started in [from, to).
func okRate(rs []read, from, to time.Duration) float64 {
	n := 0
	for _, r := range rs {
		if r.err == nil && r.at >= from && r.at < to {
			n++
		}
	}
	if to <= from {
		return 0
	}
	return float64(n) / (to - from).Seconds()
}

// underFault runs the workload through s around one fault.
func underFault(ctx context.Context, s *setup, t *topology, primary *sql.DB, f fault, readers int, pre, during, post time.Duration) (*faultRun, error) {
	wr := counter.Start(ctx, primary, "bench_rows")
	defer wr.Stop()
	time.Sleep(300 * time.Millisecond)
	l := startLoad(readers, func(ctx context.Context, r *read) {
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, readTimeout)
		row, err := readRow(rctx, s.db, t.f, 1)
		cancel()
		r.port, r.v, r.err = row.Port, row.V, err
		if err == nil {
			r.stale = wr.Staleness(row.V, start)
		}
	}, ctx)
	l.record()
	time.Sleep(pre)
	run := &faultRun{faultyPort: t.replicas[f.replica].port, primaryPort: t.primary.port}
	run.from = time.Since(l.origin)
	if err := f.inject(ctx); err != nil {
		l.finish()
		return nil, err
	}
	time.Sleep(during)
	run.to = time.Since(l.origin)
	herr := f.heal(ctx)
	time.Sleep(post)
	run.end = time.Since(l.origin)
	run.reads = l.finish()
	if herr != nil {
		return nil, herr
	}
	return run, ctx.Err()
}

func latencyPoints(rs []read) plotter.XYs {
	step := max(1, len(rs)/4000)
	var pts plotter.XYs
	for i := 0; i < len(rs); i += step {
		r := rs[i]
		pts = append(pts, plotter.XY{X: r.at.Seconds(), Y: max(float64(r.took)/1e6, 0.01)})
	}
	return pts
}

func stalePoints(rs []read) plotter.XYs {
	step := max(1, len(rs)/4000)
	var pts plotter.XYs
	for i := 0; i < len(rs); i += step {
		r := rs[i]
		if r.err == nil {
			pts = append(pts, plotter.XY{X: r.at.Seconds(), Y: min(r.stale.Seconds(), 60)})
		}
	}
	return pts
}

// ratePoints is successful reads per second, by bucket of start time.
func ratePoints(rs []read, end time.Duration) plotter.XYs {
	n := int(end/bucket) + 1
	counts := make([]int, n)
	for _, r := range rs {
		if r.err == nil {
			if i := int(r.at / bucket); i < n {
				counts[i]++
			}
		}
	}
	var pts plotter.XYs
	for i, c := range counts[:n-1] {
		pts = append(pts, plotter.XY{X: (time.Duration(i)*bucket + bucket/2).Seconds(), Y: float64(c) / bucket.Seconds()})
	}
	return pts
}

// sharePoints is the share of reads started in each bucket that port served.
func sharePoints(rs []read, port int) plotter.XYs {
	var end time.Duration
	for _, r := range rs {
		end = max(end, r.at)
	}
	n := int(end/bucket) + 1
	on, all := make([]int, n), make([]int, n)
	for _, r := range rs {
		i := int(r.at / bucket)
		all[i]++
		if r.err == nil && r.port == port {
			on[i]++
		}
	}
	var pts plotter.XYs
	for i := range n - 1 {
		if all[i] > 0 {
			pts = append(pts, plotter.XY{X: (time.Duration(i)*bucket + bucket/2).Seconds(), Y: pct(on[i], all[i])})
		}
	}
	return pts
}
