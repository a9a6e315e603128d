package rwsplit_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/policy"
)

type loadRow struct {
	ID int64
	N  int64
}

// TestLoad: 1000 goroutines read and write through the plugin for a bounded
// time (3s, RWSPLIT_LOAD_SECONDS to change it), on a real PostgreSQL
// cluster with 2 replicas, with P2C and RoundRobin. No statement fails, no
// goroutine is stuck, Stats counts every statement once, and every
// application pool stays within its limit. Run with -race, as CI does.
func TestLoad(t *testing.T) {
	seconds := 3
	if s, err := strconv.Atoi(os.Getenv("RWSPLIT_LOAD_SECONDS")); err == nil && s > 0 {
		seconds = s
	}
	p2c, err := policy.P2C(policy.P2CConfig{})
	noErr(t, err)
	pg := dbtest.Postgres(t, 2)
	dbtest.Within(t, 10*time.Second, pg.WaitCaughtUp)
	for _, pol := range []policy.Policy{p2c, policy.RoundRobin()} {
		t.Run(pol.Name(), func(t *testing.T) {
			const (
				goroutines = 1000
				poolCap    = 16 // each application pool
				rows       = 100
			)
			c := openPorts(t, pg, rwsplit.Config{Policy: pol}, nil) // the default Lag settings
			noErr(t, c.db.Migrator().DropTable(&loadRow{}))
			noErr(t, c.db.AutoMigrate(&loadRow{}))
			for i := range int64(rows) {
				noErr(t, c.db.Create(&loadRow{ID: i + 1}).Error)
			}
			dbtest.Within(t, 10*time.Second, pg.WaitCaughtUp)
			primary, err := c.db.DB()
			noErr(t, err)
			pools := map[string]interface{ SetMaxOpenConns(int) }{"primary": primary}
			for _, r := range c.plugin.Stats().Replicas {
				pools[r.Name] = c.plugin.ReplicaDB(r.Name)
			}
			for _, p := range pools {
				p.SetMaxOpenConns(poolCap)
			}
			before := c.plugin.Stats()

			var (
				reads, writes, errs atomic.Int64
				firstErr            atomic.Value
				maxOpen             sync.Map // pool name → highest OpenConnections seen
				wg                  sync.WaitGroup
			)
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds)*time.Second)
			defer cancel()
			// A sampler of the pools' open connections while the load runs.
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					note := func(name string, open int) {
						if v, ok := maxOpen.Load(name); !ok || v.(int) < open {
							maxOpen.Store(name, open)
						}
					}
					note("primary", primary.Stats().OpenConnections)
					for _, r := range c.plugin.Stats().Replicas {
						note(r.Name, c.plugin.ReplicaDB(r.Name).Stats().OpenConnections)
					}
				}
			}()
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ctx.Err() == nil; i++ {
						var err error
						id := int64((g+i)%rows) + 1
						if (g+i)%10 == 0 { // one statement in ten writes
							err = c.db.Model(&loadRow{ID: id}).Update("n", int64(i)).Error
							writes.Add(1)
						} else {
							var r loadRow
							err = c.db.First(&r, id).Error
							reads.Add(1)
						}
						if err != nil {
							errs.Add(1)
							firstErr.CompareAndSwap(nil, fmt.Sprintf("goroutine %d: %v", g, err))
						}
					}
				}()
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(time.Duration(seconds)*time.Second + 60*time.Second):
				// Each goroutine stops after its statement in flight; a
				// minute more is a deadlock, not a slow machine.
				t.Fatal("goroutines still running a minute after the load ended")
			}

			after := c.plugin.Stats()
			routed := map[rwsplit.Reason]uint64{}
			var total uint64
			for r, n := range after.Routes {
				routed[r] = n - before.Routes[r]
				if r != rwsplit.ReasonRetry {
					total += routed[r]
				}
			}
			t.Logf("%s: %d goroutines, %ds: %d reads, %d writes (%.0f statements/s), %d errors; routes %v; pools' most open connections %v",
				pol.Name(), goroutines, seconds, reads.Load(), writes.Load(), float64(reads.Load()+writes.Load())/float64(seconds), errs.Load(), routed, syncMapString(&maxOpen))
			if n := errs.Load(); n > 0 {
				t.Errorf("%d statements failed, e.g. %v", n, firstErr.Load())
			}
			// A floor, not a throughput bound: under -race beside other
			// work, 1000 goroutines managed 762 reads in 3s.
			if reads.Load() < 200 || writes.Load() < 20 {
				t.Fatalf("only %d reads and %d writes: nothing measured", reads.Load(), writes.Load())
			}
			// Every statement is routed, and counted, once.
			if want := uint64(reads.Load() + writes.Load()); total != want {
				t.Errorf("Stats counts %d routed statements, %d were issued", total, want)
			}
			if got, want := routed[rwsplit.ReasonWrite], uint64(writes.Load()); got != want {
				t.Errorf("%d writes routed as writes, %d issued", got, want)
			}
			var onReplicas uint64
			for _, r := range after.Replicas {
				for _, b := range before.Replicas {
					if b.Name == r.Name {
						onReplicas += r.Served - b.Served
					}
				}
			}
			if got := routed[rwsplit.ReasonRead]; got != onReplicas || got+routed[rwsplit.ReasonNoReplica] != uint64(reads.Load()) {
				t.Errorf("%d reads routed to replicas, the replicas served %d, %d fell back; %d issued", got, onReplicas, routed[rwsplit.ReasonNoReplica], reads.Load())
			}
			maxOpen.Range(func(k, v any) bool {
				if v.(int) > poolCap {
					t.Errorf("%s's pool had %d connections open, over its cap of %d", k, v, poolCap)
				}
				return true
			})
			for i, r := range after.Replicas {
				t.Logf("%s: %d evictions under the load (%d before); last lag %v (known %v), last error %v",
					r.Name, r.Health.Evictions-before.Replicas[i].Health.Evictions, before.Replicas[i].Health.Evictions, r.Health.Lag, r.Health.LagKnown, r.Health.LastErr)
			}
		})
	}
}

// syncMapString formats a sync.Map of string → int.
func syncMapString(m *sync.Map) string {
	out := map[string]int{}
	m.Range(func(k, v any) bool { out[k.(string)] = v.(int); return true })
	return fmt.Sprint(out)
}
