package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb"
)

// statusServer serves rwsplit's status page on addr until stop is called.
type statusServer struct {
	srv  *http.Server
	url  string
	done chan error
}

func serveStatus(addr string, p *rwsplit.Plugin) (*statusServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-http %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", rwsplit.StatusHandler(p))
	s := &statusServer{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		url:  "http://" + ln.Addr().String() + "/",
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

func (s *statusServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	<-s.done
}

// WatchItem is the row the -watch workload writes and reads.
type WatchItem struct {
	ID     int64
	Author string
	Body   string
}

// faults are the commands -watch takes on the local cluster.
type faults struct {
	cluster *testdb.PGCluster
}

// watch runs a mixed workload through db until ctx ends, readers and
// users who write and read their writes back (sticky), and redraws a per-replica table every second. Lines typed on
// the standard input are commands (see watchHelp).
func watch(ctx context.Context, db *gorm.DB, p *rwsplit.Plugin, f *faults, statusURL string, readers int) error {
	if err := db.AutoMigrate(&WatchItem{}); err != nil {
		return err
	}
	if err := db.Create(&WatchItem{Author: "seed", Body: "seed"}).Error; err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg     sync.WaitGroup
		errsMu sync.Mutex
		errs   []string // the last few workload errors
	)
	note := func(err error) {
		if err == nil || ctx.Err() != nil {
			return
		}
		errsMu.Lock()
		errs = append(errs, time.Now().Format("15:04:05")+" "+err.Error())
		if len(errs) > 3 {
			errs = errs[len(errs)-3:]
		}
		errsMu.Unlock()
	}
	pace := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for range max(readers, 1) { // readers browsing the latest items
		wg.Go(func() {
			for pace(5 * time.Millisecond) {
				var recent []WatchItem
				uctx := rwsplit.WithUser(ctx, "reader-"+strconv.Itoa(rand.IntN(1000)))
				note(db.WithContext(uctx).Order("id desc").Limit(5).Find(&recent).Error)
			}
		})
	}
	wg.Go(func() { // users who write and read their write back at once
		for i := 0; pace(20 * time.Millisecond); i++ {
			uctx := rwsplit.WithUser(ctx, "user-"+strconv.Itoa(i%20))
			it := WatchItem{Author: "user-" + strconv.Itoa(i%20), Body: "hello"}
			if err := db.WithContext(uctx).Create(&it).Error; err != nil {
				note(err)
				continue
			}
			var got WatchItem
			err := db.WithContext(uctx).First(&got, it.ID).Error
			if errors.Is(err, gorm.ErrRecordNotFound) {
				err = fmt.Errorf("user-%d did not read their own write %d", i%20, it.ID)
			}
			note(err)
		}
	})

	cmds := make(chan string)
	go readCommands(os.Stdin, cmds) // ends with the process: stdin cannot be interrupted
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	prev, prevAt := p.Stats(), time.Now()
	msg := ""
	for {
		select {
		case <-ctx.Done():
			cancel()
			wg.Wait()
			fmt.Println("\nstopping: workload ended; stopping the servers")
			return nil
		case line := <-cmds:
			msg = command(ctx, line, p, f)
		case now := <-tick.C:
			s := p.Stats()
			errsMu.Lock()
			recent := slices.Clone(errs)
			errsMu.Unlock()
			fmt.Print("\033[H\033[2J") // home, clear screen
			drawTable(os.Stdout, prev, s, now.Sub(prevAt), statusURL)
			for _, e := range recent {
				fmt.Println("  error:", e)
			}
			fmt.Println("\n" + watchHelp(f != nil))
			if msg != "" {
				fmt.Println("> " + msg)
			}
			prev, prevAt = s, now
		}
	}
}

func watchHelp(local bool) string {
	h := "commands (type, then Enter): drain N, undrain N, primary on|off"
	if local {
		h += ", pause N, resume N, crash N, start N"
	}
	return h + " (N: replica number); Ctrl-C stops"
}

// readCommands sends each line of r to out.
func readCommands(r io.Reader, out chan<- string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		out <- strings.TrimSpace(sc.Text())
	}
}

// command runs one typed command and returns what it did.
func command(ctx context.Context, line string, p *rwsplit.Plugin, f *faults) string {
	verb, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	if verb == "primary" {
		p.SetReadsToPrimary(arg == "on")
		return "reads to primary: " + map[bool]string{true: "on", false: "off"}[arg == "on"]
	}
	n, err := strconv.Atoi(arg)
	if err != nil || n < 1 {
		return fmt.Sprintf("%q: %s", line, watchHelp(f != nil))
	}
	name := "replica" + strconv.Itoa(n)
	var node *testdb.PGNode
	if f != nil && n <= len(f.cluster.Replicas) {
		node = f.cluster.Replicas[n-1]
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch {
	case verb == "drain":
		err = p.Drain(name)
	case verb == "undrain":
		err = p.Undrain(name)
	case node == nil:
		return fmt.Sprintf("%q: %s", line, watchHelp(f != nil))
	case verb == "pause":
		err = node.PauseReplay(fctx)
	case verb == "resume":
		err = node.ResumeReplay(fctx)
	case verb == "crash":
		err = node.Crash(fctx)
	case verb == "start":
		err = node.Start(fctx)
	default:
		return fmt.Sprintf("%q: %s", line, watchHelp(f != nil))
	}
	if err != nil {
		return fmt.Sprintf("%s %s: %v", verb, name, err)
	}
	return verb + " " + name + ": done"
}

// drawTable prints the per-replica table for the interval from prev to
// cur, which took d.
func drawTable(w io.Writer, prev, cur rwsplit.Stats, d time.Duration, statusURL string) {
	secs := d.Seconds()
	rate := func(now, old uint64) float64 {
		if now < old || secs <= 0 {
			return 0
		}
		return float64(now-old) / secs
	}
	total := rate(cur.PrimaryReads, prev.PrimaryReads)
	for i, r := range cur.Replicas {
		if i < len(prev.Replicas) {
			total += rate(r.Served, prev.Replicas[i].Served)
		}
	}
	share := func(r float64) string {
		if total == 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f%%", 100*r/total)
	}
	var drained []string
	for _, r := range cur.Replicas {
		if r.Drained {
			drained = append(drained, r.Name)
		}
	}
	onOff := map[bool]string{true: "ON", false: "off"}
	fmt.Fprintf(w, "rwsplit-demo -watch  %s   status page %s\n", time.Now().Format("15:04:05"), statusURL)
	fmt.Fprintf(w, "policy %s · reads to primary %s · drained %s\n\n", cur.Policy, onOff[cur.ReadsToPrimary], orNone(drained))
	fmt.Fprintf(w, "%-10s %-10s %-9s %10s %7s %10s %10s %10s  %s\n", "node", "state", "lag", "reads/s", "share", "p99 (1s)", "in flight", "evictions", "last error")
	for i, r := range cur.Replicas {
		var old rwsplit.ReplicaStats
		if i < len(prev.Replicas) {
			old = prev.Replicas[i]
		}
		state := r.Health.State.String()
		if r.Drained {
			state += "*"
		}
		lag := "unknown"
		if r.Health.LagKnown {
			lag = fmtDur(r.Health.Lag)
		}
		win := r.Latencies.Sub(&old.Latencies)
		p99 := "–"
		if win.Count() > 0 {
			p99 = fmtDur(win.Quantile(0.99))
		}
		lastErr := ""
		if r.Health.LastErr != nil {
			lastErr = r.Health.LastErr.Error()
			if len(lastErr) > 60 {
				lastErr = lastErr[:59] + "…"
			}
		}
		rr := rate(r.Served, old.Served)
		fmt.Fprintf(w, "%-10s %-10s %-9s %10.0f %7s %10s %10d %10d  %s\n", r.Name, state, lag, rr, share(rr), p99, r.InFlight, r.Health.Evictions, lastErr)
	}
	pr := rate(cur.PrimaryReads, prev.PrimaryReads)
	fmt.Fprintf(w, "%-10s %-10s %-9s %10.0f %7s\n", "primary", "", "", pr, share(pr))
	if len(drained) > 0 {
		fmt.Fprintln(w, "(* drained)")
	}
	fmt.Fprintf(w, "\nper second: writes %.0f · sticky reads %.0f on the primary, %.0f on a caught-up replica\n",
		rate(cur.Routes[rwsplit.ReasonWrite], prev.Routes[rwsplit.ReasonWrite]),
		rate(cur.Routes[rwsplit.ReasonSticky], prev.Routes[rwsplit.ReasonSticky]),
		rate(cur.Routes[rwsplit.ReasonCausal], prev.Routes[rwsplit.ReasonCausal]))
	reasons := make([]rwsplit.Reason, 0, len(cur.Routes))
	for r := range cur.Routes {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%s %d", r, cur.Routes[r])
	}
	fmt.Fprintf(w, "routes since start: %s\n", strings.Join(parts, " · "))
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// fmtDur formats a latency or lag: 850µs, 12.3ms, 1.25s.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Minute:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}
