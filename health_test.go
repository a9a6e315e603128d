package rwsplit_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/connerr"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/policy"
)

// The health tests use the settings: MaxLag 500ms, probing every
// 100ms, each probe bounded by 250ms.
var healthLag = lagcheck.Config{Interval: 100 * time.Millisecond, Timeout: 250 * time.Millisecond, MaxLag: 500 * time.Millisecond}

// stateLog records the checker's state changes with their times.
type stateLog struct {
	mu      sync.Mutex
	changes []stateChange
	notify  chan struct{}
}

type stateChange struct {
	at      time.Time
	replica string
	to      lagcheck.State
	err     error // the reading's
}

func newStateLog() *stateLog { return &stateLog{notify: make(chan struct{}, 1)} }

func (l *stateLog) record(ch lagcheck.Change) {
	l.mu.Lock()
	l.changes = append(l.changes, stateChange{time.Now(), ch.Replica, ch.To, ch.Reading.Err})
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// snapshot returns the changes recorded so far.
func (l *stateLog) snapshot() []stateChange {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.changes)
}

// wait returns the time of the first change of replica to state at or
// after since, waiting up to timeout. The change may have been recorded
// before wait was called.
func (l *stateLog) wait(t *testing.T, replica string, to lagcheck.State, since time.Time, timeout time.Duration) time.Time {
	t.Helper()
	return l.waitChange(t, replica, to, since, timeout).at
}

// waitChange is wait, returning the change.
func (l *stateLog) waitChange(t *testing.T, replica string, to lagcheck.State, since time.Time, timeout time.Duration) stateChange {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		for _, c := range l.snapshot() {
			if c.replica == replica && c.to == to && !c.at.Before(since) {
				return c
			}
		}
		select {
		case <-l.notify:
		case <-deadline.C:
			t.Fatalf("%s did not become %v within %v of %v; changes: %+v", replica, to, timeout, since.Format("15:04:05.000"), l.snapshot())
		}
	}
}

func healthConfig(l *stateLog, lag lagcheck.Config) rwsplit.Config {
	lag.OnStateChange = l.record
	return rwsplit.Config{Lag: lag}
}

// counter is a row the primary updates every 10ms; it remembers when each
// value was superseded (the newer value's commit acknowledged), so a reader
// can tell how stale a value it read was: a read that started after that
// and still saw the old value is stale by the difference.
type counter struct {
	db         *gorm.DB
	mu         sync.Mutex
	superseded []time.Time // superseded[v]: when the UPDATE to v+1 had committed
	stop       chan struct{}
	done       chan struct{}
}

type rtCounter struct {
	ID int
	V  int64
}

func startCounter(t *testing.T, c *cluster, waitCaughtUp func(context.Context) error) *counter {
	t.Helper()
	noErr(t, c.DB.Migrator().DropTable(&rtCounter{}))
	noErr(t, c.DB.AutoMigrate(&rtCounter{}))
	noErr(t, c.DB.Create(&rtCounter{ID: 1, V: 0}).Error)
	dbtest.Within(t, 10*time.Second, waitCaughtUp)
	k := &counter{db: c.DB, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(k.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for v := int64(1); ; v++ {
			select {
			case <-k.stop:
				return
			case <-tick.C:
			}
			if err := k.db.Model(&rtCounter{ID: 1}).Update("v", v).Error; err != nil {
				t.Errorf("counter update: %v", err)
				return
			}
			k.mu.Lock()
			k.superseded = append(k.superseded, time.Now())
			k.mu.Unlock()
		}
	}()
	t.Cleanup(k.close)
	return k
}

func (k *counter) close() {
	select {
	case <-k.stop:
	default:
		close(k.stop)
	}
	<-k.done
}

// staleness is how long before at the value v had been superseded (0 if
// it was current).
func (k *counter) staleness(v int64, at time.Time) time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	if v >= int64(len(k.superseded)) || k.superseded[v].After(at) {
		return 0
	}
	return at.Sub(k.superseded[v])
}

// read is one counter read as a reader saw it.
type read struct {
	start, end time.Time
	node       string
	stale      time.Duration
	err        error
}

// readers runs n goroutines reading the counter until stop, each read
// bounded by timeout (0: none), and returns every read. Each reader waits
// pace between reads: an application does not read in a tight loop, and
// readers that take both cores starve the checker's probes, so that
// timing tests measure the scheduler instead.
func readers(c *cluster, k *counter, n int, timeout, pace time.Duration, stop <-chan struct{}) func() []read {
	var (
		mu  sync.Mutex
		all []read
		wg  sync.WaitGroup
	)
	for range n {
		wg.Go(func() {
			var mine []read
			for {
				select {
				case <-stop:
					mu.Lock()
					all = append(all, mine...)
					mu.Unlock()
					return
				default:
				}
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if timeout > 0 {
					ctx, cancel = context.WithTimeout(ctx, timeout)
				}
				var node atomic.Value
				ctx = context.WithValue(ctx, nodeKey{}, &node)
				r := read{start: time.Now()}
				var x rtCounter
				r.err = c.DB.WithContext(ctx).First(&x, 1).Error
				cancel()
				r.end = time.Now()
				if s, ok := node.Load().(string); ok {
					r.node = s
				}
				if r.err == nil {
					r.stale = k.staleness(x.V, r.start)
				}
				mine = append(mine, r)
				if pace > 0 {
					time.Sleep(pace)
				}
			}
		})
	}
	return func() []read { wg.Wait(); return all }
}

// nodeKey carries, in a read's context, where OnRoute says it ran (the
// last route wins, so a retried read reports its final node).
type nodeKey struct{}

func withNodeHook(cfg rwsplit.Config) rwsplit.Config {
	cfg.OnRoute = func(ctx context.Context, r rwsplit.Route) {
		if v, ok := ctx.Value(nodeKey{}).(*atomic.Value); ok {
			v.Store(r.Node)
		}
	}
	return cfg
}

func summarizeReads(reads []read, from, to time.Time) (n, errs int, maxStale time.Duration, nodes map[string]int) {
	nodes = map[string]int{}
	for _, r := range reads {
		if r.start.Before(from) || !r.start.Before(to) {
			continue
		}
		n++
		if r.err != nil {
			errs++
			continue
		}
		nodes[r.node]++
		maxStale = max(maxStale, r.stale)
	}
	return
}

// fault is a health-fault scenario: while readers read the counter, inject
// breaks a replica, which the checker must evict, and heal repairs it.
type fault struct {
	replica       string        // the broken replica's name, "replica1"
	readers       int           // concurrent readers
	timeout, pace time.Duration // per read (0: none), and between a reader's reads
	inject, heal  func(context.Context) error
	readmit       bool // wait until the checker readmits the replica after heal
	// before, hold and after are how long the readers run before inject,
	// after the eviction, and after the readmission: measurement windows,
	// not waits for the checker.
	before, hold, after time.Duration
}

// faultRun is what runFault saw.
type faultRun struct {
	started    time.Time // the readers started
	injected   time.Time // inject was called
	evicted    time.Time // the checker evicted the replica
	healing    time.Time // heal was called
	healed     time.Time // heal returned: the replica works again
	readmitted time.Time // the checker readmitted the replica (zero without f.readmit)
	reads      []read
}

// runFault runs f on c. It waits for the checker's state changes on log,
// which records each one when it happens, before or during the wait: a
// replica may well be readmitted before heal returns (Start waits until it
// streams again), so the readmission is looked for from the call to heal.
func runFault(t *testing.T, c *cluster, k *counter, log *stateLog, f fault) faultRun {
	t.Helper()
	stop := make(chan struct{})
	collect := readers(c, k, f.readers, f.timeout, f.pace, stop)
	stopped := false
	defer func() {
		if !stopped { // a failed wait: stop the readers all the same
			close(stop)
			collect()
		}
	}()
	r := faultRun{started: time.Now()}
	time.Sleep(f.before)
	r.injected = time.Now()
	noErr(t, f.inject(t.Context()))
	r.evicted = log.wait(t, f.replica, lagcheck.Evicted, r.injected, 5*time.Second)
	time.Sleep(f.hold)
	r.healing = time.Now()
	noErr(t, f.heal(t.Context()))
	r.healed = time.Now()
	if f.readmit {
		r.readmitted = log.wait(t, f.replica, lagcheck.Healthy, r.healing, 5*time.Second)
		time.Sleep(f.after)
	}
	close(stop)
	stopped = true
	r.reads = collect()
	return r
}

// TestPauseReplay: replica1 stops replaying WAL. It is evicted within
// 2 x Interval + probe time of its lag passing MaxLag; afterwards no read
// returns data older than MaxLag; after resume it is readmitted within
// (ReadmitAfter + 1) x Interval.
func TestPauseReplay(t *testing.T) {
	log := newStateLog()
	c, pg := pgCluster(t, clusterOpts{config: withNodeHook(healthConfig(log, healthLag))})
	k := startCounter(t, c, pg.WaitCaughtUp)
	run := runFault(t, c, k, log, fault{
		replica: "replica1", readers: 4, pace: time.Millisecond,
		inject: pg.Replicas[0].PauseReplay, heal: pg.Replicas[0].ResumeReplay, readmit: true,
		before: 300 * time.Millisecond, hold: 1500 * time.Millisecond, after: 300 * time.Millisecond,
	})
	paused, evicted, resumed, healthy, reads := run.injected, run.evicted, run.healing, run.readmitted, run.reads

	lag := healthLag
	// The design bound, plus 500ms: a probe round runs late while both
	// cores are busy (962ms against 950ms was seen with a benchmark running
	// beside CI). The bound that matters, no read older than MaxLag, is
	// checked without slack below.
	evictBound := lag.MaxLag + 2*lag.Interval + lag.Timeout + 500*time.Millisecond
	// M = 3 good readings, a round may take up to Timeout, and the rounds
	// themselves may start late by a couple of Intervals when go test runs
	// other packages' tests with -race on the same 2 cores (seen: 703ms
	// and 792ms against 650ms, with other tests running).
	readmitBound := time.Duration(3+1)*lag.Interval + lag.Timeout + 2*lag.Interval
	n, errs, maxStale, nodes := summarizeReads(reads, evicted, resumed)
	t.Logf("evicted %v after pause (%v after lag passed MaxLag; bound %v); readmitted %v after resume (bound %v)",
		evicted.Sub(paused).Round(time.Millisecond), (evicted.Sub(paused) - lag.MaxLag).Round(time.Millisecond), evictBound,
		healthy.Sub(resumed).Round(time.Millisecond), readmitBound)
	t.Logf("while evicted: %d reads, %d errors, max staleness %v, by node %v", n, errs, maxStale, nodes)
	nAll, _, maxAll, _ := summarizeReads(reads, time.Time{}, time.Now())
	t.Logf("whole run: %d reads, max staleness %v", nAll, maxAll)

	if d := evicted.Sub(paused); d > evictBound {
		t.Errorf("evicted %v after the pause, want <= MaxLag + 2 x Interval + Timeout + 500ms = %v", d, evictBound)
	}
	if d := healthy.Sub(resumed); d > readmitBound {
		t.Errorf("readmitted %v after resume, want <= %v", d, readmitBound)
	}
	if errs > 0 || n < 50 {
		t.Errorf("while evicted: %d reads, %d errors; want many reads and no error", n, errs)
	}
	if nodes["replica1"] > 0 {
		t.Errorf("evicted replica1 served %d reads", nodes["replica1"])
	}
	if maxStale > lag.MaxLag {
		t.Errorf("a read after eviction returned data %v stale, want <= MaxLag %v", maxStale, lag.MaxLag)
	}
	// Stronger than the eviction: every read checks the replica's
	// staleness bound now (LagNow), so no read at all, before the
	// eviction either, returns data older than MaxLag.
	if maxAll > lag.MaxLag {
		t.Errorf("a read returned data %v stale, want <= MaxLag %v for every read", maxAll, lag.MaxLag)
	}
	if nodes["replica2"] == 0 {
		t.Errorf("replica2 served no read while replica1 was out: %v", nodes)
	}
}

// TestCrashReplica: replica2 is killed (immediate shutdown) under load and
// restarted. No error reaches a caller; it is out in under 1s and back soon
// after it is reachable.
func TestCrashReplica(t *testing.T) {
	log := newStateLog()
	lag := healthLag
	lag.ReadmitAfter = 2
	cfg := healthConfig(log, lag)
	// Round robin, so that the readmitted replica's share shows at once
	// (P2C sends it reads as its latency measurements allow).
	cfg.Policy = policy.RoundRobin()
	c, pg := pgCluster(t, clusterOpts{config: withNodeHook(cfg)})
	k := startCounter(t, c, pg.WaitCaughtUp)
	run := runFault(t, c, k, log, fault{
		replica: "replica2", readers: 4, pace: time.Millisecond,
		inject: pg.Replicas[1].Crash, heal: pg.Replicas[1].Start, readmit: true,
		before: 300 * time.Millisecond, hold: time.Second, after: 500 * time.Millisecond,
	})
	// reachable is when Start returned: the replica accepts connections
	// and streams. The checker may readmit it before that.
	crashed, evicted, reachable, healthy, reads := run.injected, run.evicted, run.healed, run.readmitted, run.reads
	out := reachable // the end of the eviction
	if healthy.Before(out) {
		out = healthy
	}

	n, errs, _, nodes := summarizeReads(reads, time.Time{}, time.Now())
	nOut, _, _, nodesOut := summarizeReads(reads, evicted, out)
	nBack, _, _, nodesBack := summarizeReads(reads, healthy.Add(100*time.Millisecond), time.Now())
	t.Logf("crash: evicted %v after kill; back %v after it was reachable (ReadmitAfter %d, Interval %v)",
		evicted.Sub(crashed).Round(time.Millisecond), healthy.Sub(reachable).Round(time.Millisecond), lag.ReadmitAfter, lag.Interval)
	t.Logf("%d reads, %d errors, by node %v; while out %d %v; after readmission %d %v", n, errs, nodes, nOut, nodesOut, nBack, nodesBack)
	for _, ch := range log.snapshot() {
		t.Logf("  %s %s -> %v", ch.at.Sub(crashed).Round(time.Millisecond), ch.replica, ch.to)
	}
	t.Logf("replica2 stats: %+v", c.Plugin.Stats().Replicas[1])
	retries := c.Plugin.Stats().Routes[rwsplit.ReasonRetry]
	t.Logf("reads retried on another node: %d", retries)

	if errs > 0 {
		for _, r := range reads {
			if r.err != nil {
				t.Errorf("a read failed: %v", r.err)
				break
			}
		}
		t.Errorf("%d of %d reads failed, want 0", errs, n)
	}
	if d := evicted.Sub(crashed); d >= time.Second {
		t.Errorf("evicted %v after the crash, want < 1s", d)
	}
	// Two good readings, an Interval apart; the round that takes the
	// second may itself take up to Timeout on a loaded machine.
	if d, bound := healthy.Sub(reachable), 2*lag.Interval+lag.Timeout; d > bound {
		t.Errorf("back %v after reachable, want <= 2 x Interval + Timeout = %v", d, bound)
	}
	if nodesOut["replica2"] > 0 {
		t.Errorf("replica2 served %d reads while evicted", nodesOut["replica2"])
	}
	if nodesBack["replica2"] == 0 {
		t.Errorf("replica2 served no read after readmission: %v", nodesBack)
	}
}

// TestFreezeReplica: replica2's process is stopped (SIGSTOP): connections
// hang instead of failing. With a 500ms timeout per read, under 1% of reads
// time out and throughput stays above half of healthy.
func TestFreezeReplica(t *testing.T) {
	log := newStateLog()
	c, pg := pgCluster(t, clusterOpts{config: withNodeHook(healthConfig(log, healthLag))})
	k := startCounter(t, c, pg.WaitCaughtUp)
	run := runFault(t, c, k, log, fault{
		replica: "replica2", readers: 8, timeout: 500 * time.Millisecond, // saturating: throughput is the measure
		inject: pg.Replicas[1].Freeze, heal: pg.Replicas[1].Thaw,
		before: 1500 * time.Millisecond, hold: 2500 * time.Millisecond,
	})
	start, frozen, evicted, end, reads := run.started, run.injected, run.evicted, run.healing, run.reads

	nHealthy, _, _, _ := summarizeReads(reads, start.Add(500*time.Millisecond), frozen)
	nFrozen, errs, _, nodes := summarizeReads(reads, frozen, end)
	healthyRate := float64(nHealthy) / frozen.Sub(start.Add(500*time.Millisecond)).Seconds()
	frozenRate := float64(nFrozen) / end.Sub(frozen).Seconds()
	t.Logf("freeze: evicted %v after SIGSTOP; healthy %.0f reads/s, frozen %.0f reads/s (%.0f%%); %d of %d reads failed (%.2f%%); by node %v",
		evicted.Sub(frozen).Round(time.Millisecond), healthyRate, frozenRate, 100*frozenRate/healthyRate, errs, nFrozen, 100*float64(errs)/float64(nFrozen), nodes)
	for _, r := range reads {
		if r.err != nil && !errors.Is(r.err, context.DeadlineExceeded) && !connerr.IsTimeout(r.err) {
			t.Errorf("a read failed with %v, not a timeout", r.err)
			break
		}
	}
	if float64(errs) >= 0.01*float64(nFrozen) {
		t.Errorf("%d of %d reads timed out, want < 1%%", errs, nFrozen)
	}
	if frozenRate < 0.5*healthyRate {
		t.Errorf("throughput %.0f/s while frozen, want > 50%% of healthy %.0f/s", frozenRate, healthyRate)
	}
}

// TestAllReplicasPaused: with every replica lagging, reads are served fresh
// by the primary (the default fallback), fail with ErrNoReplica
// (FallbackFail), or go to the least-lagged replica (FallbackLeastLagged).
func TestAllReplicasPaused(t *testing.T) {
	for _, fb := range []rwsplit.Fallback{rwsplit.FallbackPrimary, rwsplit.FallbackFail, rwsplit.FallbackLeastLagged} {
		t.Run(fmt.Sprint(fb), func(t *testing.T) {
			log := newStateLog()
			cfg := healthConfig(log, healthLag)
			cfg.Fallback = fb
			c, pg := pgCluster(t, clusterOpts{config: withNodeHook(cfg)})
			k := startCounter(t, c, pg.WaitCaughtUp)
			now := time.Now()
			noErr(t, pg.Replicas[0].PauseReplay(t.Context()))
			time.Sleep(300 * time.Millisecond) // replica1 lags more than replica2
			noErr(t, pg.Replicas[1].PauseReplay(t.Context()))
			log.wait(t, "replica1", lagcheck.Evicted, now, 5*time.Second)
			log.wait(t, "replica2", lagcheck.Evicted, now, 5*time.Second)

			stop := make(chan struct{})
			collect := readers(c, k, 2, 0, time.Millisecond, stop)
			time.Sleep(500 * time.Millisecond)
			close(stop)
			n, errs, maxStale, nodes := summarizeReads(collect(), time.Time{}, time.Now())
			t.Logf("%v: %d reads, %d errors, max staleness %v, by node %v", fb, n, errs, maxStale, nodes)
			switch fb {
			case rwsplit.FallbackPrimary:
				if errs > 0 || nodes["primary"] != n || maxStale > 0 {
					t.Errorf("want every read fresh from the primary")
				}
			case rwsplit.FallbackFail:
				if errs != n {
					t.Errorf("want every read to fail with ErrNoReplica")
				}
				var x rtCounter
				if err := c.DB.First(&x, 1).Error; !errors.Is(err, rwsplit.ErrNoReplica) {
					t.Errorf("read error %v, want ErrNoReplica", err)
				}
			case rwsplit.FallbackLeastLagged:
				if errs > 0 || nodes["replica2"] != n {
					t.Errorf("want every read on replica2, the least lagged")
				}
			}
		})
	}
}

// TestMaxStaleness: a read with MaxStaleness(d) runs on a replica whose
// measured lag is at most d, else on the primary.
func TestMaxStaleness(t *testing.T) {
	log := newStateLog()
	lag := healthLag
	lag.MaxLag = time.Minute // keep the paused replica eligible
	c, pg := pgCluster(t, clusterOpts{config: withNodeHook(healthConfig(log, lag))})
	k := startCounter(t, c, pg.WaitCaughtUp)
	noErr(t, pg.Replicas[0].PauseReplay(t.Context()))
	time.Sleep(600 * time.Millisecond)

	check := func(d time.Duration, want func(node string) bool, desc string) {
		t.Helper()
		nodes := map[string]int{}
		var worst time.Duration
		for range 60 {
			var node atomic.Value
			ctx := context.WithValue(context.Background(), nodeKey{}, &node)
			start := time.Now()
			var x rtCounter
			noErr(t, c.DB.WithContext(ctx).Clauses(rwsplit.MaxStaleness(d)).First(&x, 1).Error)
			n, _ := node.Load().(string)
			nodes[n]++
			worst = max(worst, k.staleness(x.V, start))
			if !want(n) {
				t.Fatalf("MaxStaleness(%v) read ran on %s, want %s", d, n, desc)
			}
		}
		t.Logf("MaxStaleness(%v): %v, max staleness %v", d, nodes, worst)
		if worst > d {
			t.Errorf("MaxStaleness(%v) returned data %v stale", d, worst)
		}
	}
	check(200*time.Millisecond, func(n string) bool { return n == "replica2" }, "replica2")
	noErr(t, pg.Replicas[1].PauseReplay(t.Context()))
	time.Sleep(600 * time.Millisecond)
	check(200*time.Millisecond, func(n string) bool { return n == "primary" }, "the primary")
	check(time.Hour, isReplica, "a replica")
}

// TestMariaDBSQLThread: stopping a MariaDB replica's SQL thread (NULL
// Seconds_Behind_Master) evicts it; starting it again readmits it.
func TestMariaDBSQLThread(t *testing.T) {
	log := newStateLog()
	c, my := mariaCluster(t, clusterOpts{config: withNodeHook(healthConfig(log, healthLag))})
	k := startCounter(t, c, my.WaitCaughtUp)
	run := runFault(t, c, k, log, fault{
		replica: "replica1", readers: 2, pace: time.Millisecond,
		inject: my.Replicas[0].StopSQLThread, heal: my.Replicas[0].StartSQLThread, readmit: true,
		before: 300 * time.Millisecond, hold: time.Second, after: 300 * time.Millisecond,
	})
	stopped, evicted, started, healthy, reads := run.injected, run.evicted, run.healing, run.readmitted, run.reads
	nOut, errs, maxStale, nodesOut := summarizeReads(reads, evicted, started)
	t.Logf("SQL thread stopped: evicted %v after; readmitted %v after start; while out %d reads, %d errors, max staleness %v, %v",
		evicted.Sub(stopped).Round(time.Millisecond), healthy.Sub(started).Round(time.Millisecond), nOut, errs, maxStale, nodesOut)
	if nodesOut["replica1"] > 0 || errs > 0 {
		t.Errorf("while evicted replica1 served %d reads and %d failed", nodesOut["replica1"], errs)
	}
	if maxStale > healthLag.MaxLag {
		t.Errorf("max staleness %v > MaxLag", maxStale)
	}
	if s := c.Plugin.Stats().Replicas[0].Health; s.Evictions == 0 {
		t.Errorf("Stats shows no eviction: %+v", s)
	}
}

// TestCallerDeadlineEvictsNothing: reads whose own 1ms deadline runs out
// while pgx dials a new connection (no idle connection is kept) fail with
// the caller's deadline, mostly inside a *pgconn.ConnectError. That is the
// caller's doing, not the replica's: no replica is evicted, and no read is
// retried elsewhere or sent to the primary for want of a replica.
func TestCallerDeadlineEvictsNothing(t *testing.T) {
	log := newStateLog()
	// The checker's probes share the replica pools, so they dial too, and
	// every read cut short at 1ms leaves PostgreSQL starting a backend
	// that exits at once: on 2 shared cores a probe's connection took
	// 250-640ms here under these reads, which timed out a 250ms probe and
	// stretched rounds past a 500ms MaxLag. That is a slow server, not a
	// caller's deadline: generous bounds keep it out of this test.
	lag := lagcheck.Config{Interval: 100 * time.Millisecond, Timeout: 2 * time.Second, MaxLag: 5 * time.Second}
	c, _ := pgCluster(t, clusterOpts{config: withNodeHook(healthConfig(log, lag))})
	for _, name := range []string{"replica1", "replica2"} {
		c.Plugin.ReplicaDB(name).SetMaxIdleConns(0) // every read dials
	}
	var x rtCounter
	noErr(t, c.DB.Migrator().DropTable(&rtCounter{}))
	noErr(t, c.DB.AutoMigrate(&rtCounter{}))
	evictions := func() (n uint64) {
		for _, r := range c.Plugin.Stats().Replicas {
			n += r.Health.Evictions
		}
		return n
	}
	before := evictions()
	routesBefore := c.Plugin.Stats().Routes
	start := time.Now()
	// One reader, 5ms between reads, as an application would read: a
	// tight loop of aborted dials keeps PostgreSQL forking backends that
	// exit at once, and on 2 shared cores that starved the checker's own
	// probes (which dial too) past their Timeout, a different fault.
	const reads = 200
	var errs, connectErrs, ok int
	nodes := map[string]int{}
	for range reads {
		var node atomic.Value
		ctx, cancel := context.WithTimeout(context.WithValue(t.Context(), nodeKey{}, &node), time.Millisecond)
		err := c.DB.WithContext(ctx).Limit(1).Find(&x).Error
		cancel()
		var ce *pgconn.ConnectError
		switch {
		case errors.As(err, &ce):
			connectErrs++
			errs++
		case err != nil:
			errs++
		default:
			ok++
		}
		if s, _ := node.Load().(string); s != "" {
			nodes[s]++
		}
		time.Sleep(5 * time.Millisecond)
	}
	routes := c.Plugin.Stats().Routes
	t.Logf("%d reads with a 1ms deadline in %v: %d ok, %d failed (%d as a *pgconn.ConnectError); routed to %v; routes %v (before %v); evictions %d -> %d",
		reads, time.Since(start).Round(time.Millisecond), ok, errs, connectErrs, nodes, routes, routesBefore, before, evictions())
	if connectErrs == 0 {
		t.Fatalf("no read ran out of its 1ms deadline while connecting: the test did not exercise it")
	}
	if got := evictions(); got != before {
		t.Errorf("evictions %d -> %d: a caller's deadline evicted a replica", before, got)
	}
	for _, ch := range log.snapshot() {
		if ch.to == lagcheck.Evicted && ch.at.After(start) {
			t.Errorf("%s was evicted %v into the reads", ch.replica, ch.at.Sub(start).Round(time.Millisecond))
		}
	}
	for _, why := range []rwsplit.Reason{rwsplit.ReasonRetry, rwsplit.ReasonNoReplica} {
		if d := routes[why] - routesBefore[why]; d > 0 {
			t.Errorf("%d reads routed with %v, want 0: the replicas are healthy", d, why)
		}
	}
}

// gatedProbe is the PostgreSQL probe whose primary side hangs, as a frozen
// primary's does, while blocked: the checker cannot sample the primary,
// yet the primary serves the application.
type gatedProbe struct {
	lagcheck.Probe
	blocked atomic.Bool
	hit     chan struct{} // a sample hung (capacity 1)
}

func (g *gatedProbe) Primary(ctx context.Context, db lagcheck.DB) (lagcheck.Position, error) {
	if !g.blocked.Load() {
		return g.Probe.Primary(ctx, db)
	}
	select {
	case g.hit <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return lagcheck.Position{}, ctx.Err()
}

// TestPrimaryUnsampledReplicasPaused: the checker cannot sample the
// primary, so no reading can measure a lag, while both replicas stop
// replaying. Their staleness bound keeps growing from the last sample they
// covered: no read that starts more than MaxLag after a row was committed
// is served by a replica that lacks it.
func TestPrimaryUnsampledReplicasPaused(t *testing.T) {
	probe := &gatedProbe{Probe: lagcheck.PostgresProbe(), hit: make(chan struct{}, 1)}
	lag := healthLag
	lag.Probe = probe
	log := newStateLog()
	c, pg := pgCluster(t, clusterOpts{config: withNodeHook(healthConfig(log, lag))})
	noErr(t, c.DB.Migrator().DropTable(&rtCounter{}))
	noErr(t, c.DB.AutoMigrate(&rtCounter{}))
	noErr(t, c.DB.Create(&rtCounter{ID: 1}).Error)
	dbtest.Within(t, 10*time.Second, pg.WaitCaughtUp)

	probe.blocked.Store(true)
	select {
	case <-probe.hit:
	case <-time.After(5 * time.Second): // rounds start every Interval (100ms)
		t.Fatal("the checker did not sample the primary within 5s")
	}
	for _, r := range pg.Replicas {
		noErr(t, r.PauseReplay(t.Context()))
		t.Cleanup(func() { _ = r.ResumeReplay(context.Background()) })
	}
	noErr(t, c.DB.Create(&rtCounter{ID: 2}).Error)
	committed := time.Now()
	bound := committed.Add(lag.MaxLag)

	type result struct {
		start time.Time
		node  string
		found bool
	}
	var results []result
	// A measurement window, not a wait: reads before and after the bound.
	for time.Since(committed) < lag.MaxLag+500*time.Millisecond {
		var node atomic.Value
		ctx := context.WithValue(t.Context(), nodeKey{}, &node)
		r := result{start: time.Now()}
		var x rtCounter
		err := c.DB.WithContext(ctx).Where("id = ?", 2).Limit(1).Find(&x).Error
		noErr(t, err)
		r.found = x.ID == 2
		r.node, _ = node.Load().(string)
		results = append(results, r)
		time.Sleep(2 * time.Millisecond)
	}
	var before, after, staleBefore, staleAfter int
	nodesAfter := map[string]int{}
	for _, r := range results {
		if r.start.After(bound) {
			after++
			nodesAfter[r.node]++
			if !r.found {
				staleAfter++
			}
			continue
		}
		before++
		if !r.found {
			staleBefore++
		}
	}
	st := c.Plugin.Stats()
	t.Logf("within MaxLag of the commit: %d reads, %d without the row; after: %d reads, %d without the row, by node %v", before, staleBefore, after, staleAfter, nodesAfter)
	for _, r := range st.Replicas {
		t.Logf("%s: %v, primary error %v, evictions %d", r.Name, r.Health.State, r.Health.PrimaryErr, r.Health.Evictions)
		if r.Health.PrimaryErr == nil {
			t.Errorf("%s: the last reading sampled the primary; the test meant it not to", r.Name)
		}
	}
	if after < 20 {
		t.Fatalf("only %d reads after MaxLag: nothing measured", after)
	}
	if staleAfter > 0 {
		t.Errorf("%d reads that started more than MaxLag %v after the commit lacked the row", staleAfter, lag.MaxLag)
	}
	for node, n := range nodesAfter {
		if isReplica(node) {
			t.Errorf("%s served %d reads after its bound passed MaxLag", node, n)
		}
	}
}
