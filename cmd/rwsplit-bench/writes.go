package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/stickiness"
)

// benchPost is what the write workloads insert and read back.
type benchPost struct {
	ID     int64
	Author string
	Body   string
}

func (benchPost) TableName() string { return "bench_posts" }

// writeCluster is one cluster of the writes section, with its four
// configurations.
type writeCluster struct {
	f        flavor
	topo     *topology
	setups   []*setup // plain GORM, dbresolver, rwsplit (free marks), rwsplit with ExactMarks
	delay    func(context.Context, time.Duration) error
	caughtUp func(context.Context) error
	delayFor time.Duration // what the delayed case sets
	delayTxt string
	closeFn  func()
}

func startWriteCluster(ctx context.Context, f flavor) (*writeCluster, error) {
	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	wc := &writeCluster{f: f}
	switch f.name {
	case pgFlavor.name:
		cl, err := testdb.StartPostgres(startCtx, 2, nil)
		if err != nil {
			return nil, err
		}
		wc.topo = &topology{f: f, primary: pgNode(cl.Primary, nil), replicas: []node{pgNode(cl.Replicas[0], nil), pgNode(cl.Replicas[1], nil)}}
		wc.delay = cl.Replicas[0].SetApplyDelay
		wc.caughtUp = cl.WaitCaughtUp
		wc.delayFor, wc.delayTxt = 200*time.Millisecond, "replica1 applies each commit 200 ms late (`recovery_min_apply_delay`)"
		wc.closeFn = func() { cl.Close() }
	default:
		cl, err := testdb.StartMariaDB(startCtx, 2, nil)
		if err != nil {
			return nil, err
		}
		wc.topo = &topology{f: f, primary: mariaNode(cl.Primary, nil), replicas: []node{mariaNode(cl.Replicas[0], nil), mariaNode(cl.Replicas[1], nil)}}
		wc.delay = cl.Replicas[0].SetDelay
		wc.caughtUp = cl.WaitCaughtUp
		wc.delayFor, wc.delayTxt = 200*time.Millisecond, "replica1 applies each event 1 s late (`MASTER_DELAY` counts whole seconds: 200 ms rounds up to 1 s)"
		wc.closeFn = func() { cl.Close() }
	}
	plain, err := openPlain(wc.topo)
	if err != nil {
		wc.close()
		return nil, err
	}
	wc.setups = append(wc.setups, plain)
	if err := plain.db.WithContext(ctx).Migrator().DropTable(&benchPost{}); err != nil {
		wc.close()
		return nil, err
	}
	if err := plain.db.WithContext(ctx).AutoMigrate(&benchPost{}); err != nil {
		wc.close()
		return nil, err
	}
	if err := wc.caughtUp(ctx); err != nil {
		wc.close()
		return nil, err
	}
	dbr, err := openDBResolver(wc.topo, wc.topo.replicas)
	if err != nil {
		wc.close()
		return nil, err
	}
	wc.setups = append(wc.setups, dbr)
	for _, exact := range []bool{false, true} {
		split, err := openRWSplit(wc.topo, wc.topo.replicas, rwsplit.Config{Stickiness: stickiness.Config{ExactMarks: exact}})
		if err != nil {
			wc.close()
			return nil, err
		}
		split.name = "rwsplit (free mark)"
		if exact {
			split.name = "rwsplit, ExactMarks"
		}
		wc.setups = append(wc.setups, split)
		if err := waitEligible(ctx, split, 10*time.Second); err != nil {
			wc.close()
			return nil, err
		}
	}
	return wc, nil
}

func (wc *writeCluster) close() {
	for _, s := range wc.setups {
		s.close()
	}
	wc.closeFn()
}

// readPost reads post id with the port of the server that answered.
func readPost(ctx context.Context, db *gorm.DB, f flavor, id int64) (port int, found bool, err error) {
	var out struct {
		ID   int64
		Port int
	}
	err = db.WithContext(ctx).Model(&benchPost{}).Select("id, "+f.portExpr+" AS port").Where("id = ?", id).Take(&out).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return 0, false, nil
	}
	return out.Port, err == nil, err
}

func insertPost(ctx context.Context, db *gorm.DB, user string) (int64, error) {
	p := benchPost{Author: user, Body: "hello"}
	err := db.WithContext(ctx).Create(&p).Error
	return p.ID, err
}

func runWrites(ctx context.Context, b *bench, w *sectionWriter) error {
	w.p("Each cluster: a primary and 2 replicas, no proxy. *plain GORM* writes and reads on the primary; *dbresolver* is set up as its README does; " +
		"*rwsplit (free mark)* runs with its defaults (causal read-your-writes: a write by a user, `rwsplit.WithUser(ctx, key)`, marks the user until a replica has replayed it; " +
		"the position is the one of the lag checker's first sample of the primary sent after the commit, so the write sends nothing more to the primary); " +
		"*rwsplit, ExactMarks* is the same with `Stickiness.ExactMarks`, which asks the primary for its position right after each keyed write commits. Both run side by side on the same cluster. " +
		"Every insert goes through GORM's default transaction in every configuration.")
	for _, f := range []flavor{pgFlavor, mariaFlavor} {
		log.Printf("writes: %s", f.name)
		wc, err := startWriteCluster(ctx, f)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		err = writesOn(ctx, b, w, wc)
		wc.close()
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return nil
}

func writesOn(ctx context.Context, b *bench, w *sectionWriter, wc *writeCluster) error {
	o := b.o
	plain, dbr, split, exact := wc.setups[0], wc.setups[1], wc.setups[2], wc.setups[3]
	w.p("### %s", wc.f.name)

	// 1. Keyed-write cost, paired.
	type op struct {
		name string
		db   *gorm.DB
		user bool
	}
	ops := []op{{"plain GORM", plain.db, false}, {"dbresolver", dbr.db, false}, {"rwsplit, no user", split.db, false},
		{"rwsplit, keyed (free mark, the default)", split.db, true}, {"rwsplit, keyed (ExactMarks)", exact.db, true}}
	lat := make([][]time.Duration, len(ops))
	for i := range o.writePairs {
		for k := range ops {
			j := (i + k) % len(ops)
			c := ctx
			if ops[j].user {
				c = rwsplit.WithUser(ctx, "writer-"+strconv.Itoa(i%50))
			}
			start := time.Now()
			if _, err := insertPost(c, ops[j].db, "w"); err != nil {
				return err
			}
			lat[j] = append(lat[j], time.Since(start))
		}
	}
	var diffs, exactDiffs []float64 // keyed − unkeyed, per iteration
	for i := range lat[2] {
		diffs = append(diffs, float64(lat[3][i]-lat[2][i]))
		exactDiffs = append(exactDiffs, float64(lat[4][i]-lat[2][i]))
	}
	var rows [][]string
	base := quantile(sortedDurations(lat[0]), 0.5)
	for j, op := range ops {
		s := sortedDurations(lat[j])
		p50 := quantile(s, 0.5)
		rows = append(rows, []string{op.name, ms(p50), ms(quantile(s, 0.99)), fmt.Sprintf("%+.1f%%", 100*(float64(p50)/float64(base)-1))})
	}
	w.p("**Write cost.** %d iterations; each makes one insert through each of the five, in a rotating order. "+
		"*keyed* inserts run with a user in the context, so rwsplit marks the user: for free by default, with a query of the primary's position after the commit with `ExactMarks`.", o.writePairs)
	w.table([]string{"insert through", "p50", "p99", "p50 against plain GORM"}, rows)
	unkeyed := quantile(sortedDurations(lat[2]), 0.5)
	w.p("Keyed against unkeyed through rwsplit, paired per iteration: median difference %s (%+.1f%% of the unkeyed p50 %s) with the free mark; %s (%+.1f%%) with `ExactMarks`.",
		signedMs(time.Duration(median(diffs))), 100*median(diffs)/float64(unkeyed), ms(unkeyed),
		signedMs(time.Duration(median(exactDiffs))), 100*median(exactDiffs)/float64(unkeyed))

	// 2. Read-your-writes misses, healthy and with a delayed replica.
	var rywRows [][]string
	for _, delayed := range []bool{false, true} {
		if delayed {
			if err := wc.delay(ctx, wc.delayFor); err != nil {
				return err
			}
		}
		misses := make([]int, len(wc.setups))
		onReplica := make([]int, len(wc.setups))
		for i := range o.rywRounds {
			user := "user-" + strconv.Itoa(i%50)
			c := rwsplit.WithUser(ctx, user)
			for k := range wc.setups {
				j := (i + k) % len(wc.setups)
				id, err := insertPost(c, wc.setups[j].db, user)
				if err != nil {
					return err
				}
				port, found, err := readPost(c, wc.setups[j].db, wc.f, id)
				if err != nil {
					return err
				}
				if !found {
					misses[j]++
				}
				if found && port != wc.topo.primary.port || !found {
					onReplica[j]++ // a miss can only come from a replica
				}
			}
		}
		if delayed {
			if err := wc.delay(ctx, 0); err != nil {
				return err
			}
			if err := wc.caughtUp(ctx); err != nil {
				return err
			}
		}
		cond := "healthy"
		if delayed {
			cond = wc.delayTxt
		}
		for j, s := range wc.setups {
			rywRows = append(rywRows, []string{cond, s.name, fmt.Sprintf("%d of %d (%.1f%%)", misses[j], o.rywRounds, pct(misses[j], o.rywRounds)),
				fmt.Sprintf("%.1f%%", pct(onReplica[j], o.rywRounds))})
		}
		for _, s := range []*setup{split, exact} {
			if err := waitEligible(ctx, s, 15*time.Second); err != nil {
				return err
			}
		}
	}
	w.p("**Read-your-writes.** %d rounds per case: a user inserts a row and reads it back by primary key at once, with the user in the context; the configurations take turns. "+
		"A miss is a read that did not find the row just written. *Reads on replicas* counts the reads the replicas answered (by the server's port in the answer).", o.rywRounds)
	w.table([]string{"case", "configuration", "misses", "reads on replicas"}, rywRows)

	// 3. Time back to replicas after a write.
	lagDefaults, err := defaultLag()
	if err != nil {
		return err
	}
	var backRows [][]string
	for _, s := range []*setup{dbr, split, exact} {
		back, missed, err := timeBack(ctx, s, wc, o.backSamples, lagDefaults.Interval)
		if err != nil {
			return err
		}
		sorted := sortedDurations(back)
		samples := fmt.Sprint(len(back))
		if len(back) < o.backSamples {
			samples = fmt.Sprintf("%d (%d not back within 10 s)", len(back), o.backSamples-len(back))
		}
		backRows = append(backRows, []string{s.name, samples, ms(quantile(sorted, 0.5)), ms(quantile(sorted, 0.99)), ms(sorted[len(sorted)-1]),
			fmt.Sprintf("%d (%.1f%%)", missed, pct(missed, len(back)))})
	}
	backRows = append(backRows, []string{"plain GORM", "—", "never: every read is on the primary", "", "", "0"})
	w.p("**Time back to replicas.** %d samples, 8 users at a time: a user waits a random time within the checker's Interval (%s), inserts a row, then reads it back every millisecond until a replica answers (by the server's port); "+
		"the time runs from the insert's return to the end of that first replica read. *first replica read missed* counts first replica reads that did not find the row. "+
		"rwsplit's users are back at the first replica probe that shows the write: on average half an Interval later, at most about one, plus the replication lag.", o.backSamples, lagDefaults.Interval)
	w.table([]string{"configuration", "samples", "p50", "p99", "max", "first replica read missed"}, backRows)
	return nil
}

func signedMs(d time.Duration) string {
	if d < 0 {
		return "−" + ms(-d)
	}
	return "+" + ms(d)
}

// timeBack measures, n times, how long after a keyed write the user's
// reads are served by a replica again. Each write starts after a random
// pause within a checker Interval, so that the writes fall at random
// points of the checker's cycle instead of in step with it (a user back on
// a replica at a probe would otherwise write again right after it, and
// wait a whole Interval every time).
func timeBack(ctx context.Context, s *setup, wc *writeCluster, n int, interval time.Duration) (back []time.Duration, missed int, err error) {
	var mu sync.Mutex
	var firstErr error
	next := make(chan int)
	var wg sync.WaitGroup
	for u := range 8 {
		wg.Go(func() {
			user := "back-" + strconv.Itoa(u)
			c := rwsplit.WithUser(ctx, user)
			for range next {
				time.Sleep(rand.N(interval))
				id, err := insertPost(c, s.db, user)
				if err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
					continue
				}
				t0 := time.Now()
				for time.Since(t0) < 10*time.Second {
					port, found, err := readPost(c, s.db, wc.f, id)
					if err != nil {
						mu.Lock()
						firstErr = errors.Join(firstErr, err)
						mu.Unlock()
						break
					}
					if !found || port != wc.topo.primary.port {
						mu.Lock()
						back = append(back, time.Since(t0))
						if !found {
							missed++
						}
						mu.Unlock()
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, 0, firstErr
	}
	if len(back) == 0 {
		return nil, 0, fmt.Errorf("%s: no read reached a replica", s.name)
	}
	slices.Sort(back)
	return back, missed, ctx.Err()
}
