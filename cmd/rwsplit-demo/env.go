package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/counter"
	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/stickiness"
)

// maxLag is the staleness rwsplit is configured to tolerate.
const maxLag = 500 * time.Millisecond

// env holds the cluster and one GORM DB per plugin.
type env struct {
	ctx     context.Context
	cluster *testdb.PGCluster
	proxy   *testdb.Proxy
	o       options

	primary *sql.DB // direct, for the counter writer
	dbr     *gorm.DB
	split   *gorm.DB
	plugin  *rwsplit.Plugin
}

// Post is what the read-your-writes workload writes and reads back.
type Post struct {
	ID     int64
	Author string
	Body   string
}

// Counter is the row the fault workloads read while the primary updates it.
type Counter struct {
	ID int
	V  int64
}

func (e *env) replicaDSNs() []string {
	r2 := e.cluster.Replicas[1].DSN()
	r2 = strings.Replace(r2, "port="+strconv.Itoa(e.cluster.Replicas[1].Port), "port="+strconv.Itoa(e.proxy.Port()), 1)
	return []string{e.cluster.Replicas[0].DSN(), r2}
}

func (e *env) setup() error {
	dsns := e.replicaDSNs()
	gcfg := func() *gorm.Config { return &gorm.Config{Logger: logger.Discard} }

	// Plain dbresolver, as its README sets it up.
	dbr, err := gorm.Open(postgres.Open(e.cluster.Primary.DSN()), gcfg())
	if err != nil {
		return err
	}
	if err := dbr.Use(dbresolver.Register(dbresolver.Config{
		Replicas: []gorm.Dialector{postgres.Open(dsns[0]), postgres.Open(dsns[1])},
	})); err != nil {
		return err
	}
	e.dbr = dbr

	// rwsplit with its defaults, MaxLag 500ms, and causal stickiness.
	split, err := gorm.Open(postgres.Open(e.cluster.Primary.DSN()), gcfg())
	if err != nil {
		return err
	}
	e.plugin = rwsplit.New(rwsplit.Config{
		Replicas: []rwsplit.Replica{
			{Name: "replica1", Dialector: postgres.Open(dsns[0])},
			{Name: "replica2", Dialector: postgres.Open(dsns[1])},
		},
		Lag:        lagcheck.Config{MaxLag: maxLag},
		Stickiness: stickiness.Config{Mode: stickiness.ModeCausal},
	})
	if err := split.Use(e.plugin); err != nil {
		return err
	}
	e.split = split

	e.primary, err = sql.Open("pgx", e.cluster.Primary.DSN())
	if err != nil {
		return err
	}
	if err := split.Migrator().DropTable(&Post{}, &Counter{}); err != nil {
		return err
	}
	if err := split.AutoMigrate(&Post{}, &Counter{}); err != nil {
		return err
	}
	if err := split.Create(&Counter{ID: 1}).Error; err != nil {
		return err
	}
	return e.cluster.WaitCaughtUp(e.ctx)
}

func (e *env) close() {
	e.plugin.Close()
	for _, db := range []*gorm.DB{e.dbr, e.split} {
		if s, err := db.DB(); err == nil {
			s.Close()
		}
	}
	e.primary.Close()
}

func (e *env) both(f func(name string, db *gorm.DB) (string, error)) (a, b string, err error) {
	if a, err = f("dbresolver", e.dbr); err != nil {
		return
	}
	b, err = f("rwsplit", e.split)
	return
}

// readYourWrites: each iteration, one user inserts a post and reads it
// back by primary key at once.
func (e *env) readYourWrites() (result, error) {
	fmt.Printf("1. Read your own write: %d times, insert a post then read it back at once.\n", e.o.writes)
	r := result{name: "read your own write", measure: "reads that missed the row just written"}
	var err error
	r.dbresolver, r.split, err = e.both(func(name string, db *gorm.DB) (string, error) {
		misses := 0
		for i := range e.o.writes {
			user := "user-" + strconv.Itoa(i%50)
			ctx := rwsplit.WithUser(e.ctx, user)
			p := Post{Author: user, Body: "hello"}
			if err := db.WithContext(ctx).Create(&p).Error; err != nil {
				return "", err
			}
			var got Post
			err := db.WithContext(ctx).First(&got, p.ID).Error
			switch {
			case errors.Is(err, gorm.ErrRecordNotFound):
				misses++
			case err != nil:
				return "", err
			}
		}
		s := fmt.Sprintf("%d of %d (%.1f%%)", misses, e.o.writes, pct(misses, e.o.writes))
		fmt.Printf("   %-10s %s missed\n", name, s)
		return s, nil
	})
	if err == nil {
		s := e.plugin.Stats()
		fmt.Printf("   rwsplit sent the user's reads to the primary only until a replica had replayed the write: %d reads on replicas, %d sticky on the primary\n",
			s.Routes[rwsplit.ReasonRead], s.Routes[rwsplit.ReasonSticky])
	}
	return r, err
}

// pausedReplica: replica1 stops replaying WAL while the primary updates
// a counter every 10ms and readers read it.
func (e *env) pausedReplica() (result, error) {
	fmt.Printf("2. replica1 stops replaying WAL for %v while the primary updates a row every 10ms.\n", e.o.fault)
	r := result{name: "replica replay paused", measure: fmt.Sprintf("reads older than %v (worst)", maxLag)}
	var err error
	r.dbresolver, r.split, err = e.both(func(name string, db *gorm.DB) (string, error) {
		reads, err := e.underFault(db, 0,
			e.cluster.Replicas[0].PauseReplay, e.cluster.Replicas[0].ResumeReplay)
		if err != nil {
			return "", err
		}
		stale, worst := 0, time.Duration(0)
		for _, rd := range reads {
			worst = max(worst, rd.stale)
			if rd.stale > maxLag {
				stale++
			}
		}
		s := fmt.Sprintf("%.1f%% (%v)", pct(stale, len(reads)), worst.Round(time.Millisecond))
		fmt.Printf("   %-10s %d reads, %s older than %v\n", name, len(reads), s, maxLag)
		return s, nil
	})
	return r, err
}

// crashedReplica: replica2 is killed, and restarted after the fault.
func (e *env) crashedReplica() (result, error) {
	fmt.Printf("3. replica2 crashes (immediate shutdown) for %v under %d readers.\n", e.o.fault, e.o.readers)
	r := result{name: "replica crashed", measure: "reads that failed"}
	var err error
	r.dbresolver, r.split, err = e.both(func(name string, db *gorm.DB) (string, error) {
		reads, err := e.underFault(db, 0,
			e.cluster.Replicas[1].Crash, e.cluster.Replicas[1].Start)
		if err != nil {
			return "", err
		}
		failed := 0
		for _, rd := range reads {
			if rd.err != nil {
				failed++
			}
		}
		s := fmt.Sprintf("%d of %d (%.1f%%)", failed, len(reads), pct(failed, len(reads)))
		fmt.Printf("   %-10s %s failed\n", name, s)
		return s, nil
	})
	return r, err
}

// slowReplica: replica2's proxy adds 20ms to every request.
func (e *env) slowReplica() (result, error) {
	fmt.Printf("4. replica2 answers 20ms late for %v under %d readers.\n", e.o.fault, e.o.readers)
	r := result{name: "replica 20ms slower", measure: "reads over 10ms, p99, reads/s"}
	var err error
	r.dbresolver, r.split, err = e.both(func(name string, db *gorm.DB) (string, error) {
		reads, err := e.underFault(db, 0,
			func(context.Context) error { e.proxy.SetLatency(20 * time.Millisecond); return nil },
			func(context.Context) error { e.proxy.SetLatency(0); return nil })
		if err != nil {
			return "", err
		}
		slow := 0
		lat := make([]time.Duration, 0, len(reads))
		for _, rd := range reads {
			if rd.took > 10*time.Millisecond {
				slow++
			}
			lat = append(lat, rd.took)
		}
		slices.Sort(lat)
		p99 := lat[len(lat)*99/100]
		s := fmt.Sprintf("%.1f%%, %v, %.0f/s", pct(slow, len(reads)), p99.Round(10*time.Microsecond), float64(len(reads))/e.o.fault.Seconds())
		fmt.Printf("   %-10s %d reads: %s\n", name, len(reads), s)
		return s, nil
	})
	return r, err
}

type read struct {
	took  time.Duration
	stale time.Duration
	err   error
}

// underFault runs the readers and the counter writer, injects the fault,
// keeps it for o.fault, and returns the reads made while it lasted. It
// heals the fault and waits for the replicas before returning.
func (e *env) underFault(db *gorm.DB, timeout time.Duration, inject, heal func(context.Context) error) ([]read, error) {
	w := counter.Start(e.ctx, e.primary, "counters")
	defer w.Stop()
	time.Sleep(500 * time.Millisecond) // settle

	var (
		collecting atomic.Bool
		stop       atomic.Bool
		mu         sync.Mutex
		reads      []read
		wg         sync.WaitGroup
	)
	for range e.o.readers {
		wg.Go(func() {
			for !stop.Load() {
				start := time.Now()
				var c Counter
				err := db.WithContext(e.ctx).First(&c, 1).Error
				rd := read{took: time.Since(start), err: err}
				if err == nil {
					rd.stale = w.Staleness(c.V, start)
				}
				if collecting.Load() {
					mu.Lock()
					reads = append(reads, rd)
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	if err := inject(e.ctx); err != nil {
		stop.Store(true)
		wg.Wait()
		return nil, err
	}
	collecting.Store(true)
	time.Sleep(e.o.fault)
	collecting.Store(false)
	herr := heal(e.ctx)
	stop.Store(true)
	wg.Wait()
	if herr != nil {
		return nil, herr
	}
	if err := e.cluster.WaitCaughtUp(e.ctx); err != nil {
		return nil, err
	}
	time.Sleep(time.Second) // let the replicas come back into service
	return reads, e.ctx.Err()
}

func pct(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}
