package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/rwsplit/rwsplit"
)

// runExternal runs a mixed workload through rwsplit on the user's own
// servers and prints where the statements went and why.
func runExternal(ctx context.Context, o options) error {
	if len(o.replicas) == 0 {
		return errors.New("-primary needs at least one -replica")
	}
	var open func(string) gorm.Dialector
	switch o.driver {
	case "postgres":
		open = postgres.Open
	case "mysql":
		open = mysql.Open
	default:
		return fmt.Errorf("-driver %q: want postgres or mysql", o.driver)
	}
	db, err := gorm.Open(open(o.primary), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return err
	}
	if s, err := db.DB(); err == nil {
		defer s.Close()
	}
	cfg := rwsplit.Config{}
	for i, dsn := range o.replicas {
		cfg.Replicas = append(cfg.Replicas, rwsplit.Replica{Name: "replica" + strconv.Itoa(i+1), Dialector: open(dsn)})
	}
	p := rwsplit.New(cfg)
	if err := db.Use(p); err != nil {
		return err
	}
	defer p.Close()
	status, err := serveStatus(o.http, p)
	if err != nil {
		return err
	}
	defer status.stop()
	fmt.Printf("Status page of rwsplit: %s\n\n", status.url)
	if o.watch {
		return watch(ctx, db, p, nil, status.url, o.readers)
	}

	type demoPost struct {
		ID     int64
		Author string
		Body   string
	}
	if err := db.AutoMigrate(&demoPost{}); err != nil {
		return err
	}
	fmt.Printf("Mixed workload: %d users, %d iterations of write-then-read, with reads by other users in between.\n", 50, o.writes)
	misses := 0
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < o.writes; i += 4 {
				uctx := rwsplit.WithUser(ctx, "user-"+strconv.Itoa(i%50))
				post := demoPost{Author: "demo", Body: "hello"}
				if err := db.WithContext(uctx).Create(&post).Error; err != nil {
					return
				}
				var got demoPost
				if err := db.WithContext(uctx).First(&got, post.ID).Error; errors.Is(err, gorm.ErrRecordNotFound) {
					mu.Lock()
					misses++
					mu.Unlock()
				}
				for range 4 { // other users browse
					var recent []demoPost
					other := rwsplit.WithUser(ctx, "reader-"+strconv.Itoa(rand.IntN(1000)))
					db.WithContext(other).Order("id desc").Limit(10).Find(&recent)
				}
			}
		})
	}
	wg.Wait()
	fmt.Printf("  %d of %d reads of the user's own write missed the row\n", misses, o.writes)
	printStats(p)
	return ctx.Err()
}

// printStats prints how many statements each node served and why.
func printStats(p *rwsplit.Plugin) {
	s := p.Stats()
	fmt.Printf("\nrwsplit, where its statements went (policy %s):\n", s.Policy)
	reasons := make([]rwsplit.Reason, 0, len(s.Routes))
	for r := range s.Routes {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	for _, r := range reasons {
		fmt.Printf("  %-15s %8d\n", r, s.Routes[r])
	}
	fmt.Println("replicas:")
	for _, r := range s.Replicas {
		lag := "unknown"
		if r.Health.LagKnown {
			lag = r.Health.Lag.Round(100 * time.Microsecond).String()
		}
		fmt.Printf("  %-9s %-9s served %8d  failed %5d  evictions %3d  lag %s\n",
			r.Name, r.Health.State, r.Served, r.Failed, r.Health.Evictions, lag)
		if r.Health.LastErr != nil {
			fmt.Printf("            last probe: %v\n", r.Health.LastErr)
		}
	}
	fmt.Printf("stickiness: %d writes marked their user\n", s.Sticky.Marks)
}
