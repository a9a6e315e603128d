package rwsplit_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"
	"gorm.io/plugin/dbresolver"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/stickiness"
	"github.com/rwsplit/rwsplit/stickiness/redisstore"
)

// BenchmarkRead measures one First(&u) through plain GORM, GORM with
// dbresolver, and GORM with rwsplit (every feature on: lag bound, sticky
// check, P2C), over the no-network fakedb driver, so the differences are
// the plugins' own cost. It is paired: each iteration reads once through
// each of the three, in a rotating order, and times each read, so that
// drift on a noisy machine hits all three alike. It reports ns per read
// for each and the plugins' overhead over plain GORM; allocs/op is the
// sum of the three reads.
func BenchmarkRead(b *testing.B) {
	plain, _ := openFake(b)
	dbr, _ := openFake(b)
	r1, _ := fakeDialector(b)
	r2, _ := fakeDialector(b)
	resolver := dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{r1, r2}})
	if err := dbr.Use(resolver); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rwsplit.StopResolverStores(resolver) })
	split, _, replicas := openFakeRWSplit(b, rwsplit.Config{})
	dbs := [3]*gorm.DB{plain, dbr, split}
	var took [3]time.Duration
	var u benchUser
	before := replicas()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		for k := range 3 {
			j := (i + k) % 3
			start := time.Now()
			if err := dbs[j].First(&u, 1).Error; err != nil {
				b.Fatal(err)
			}
			took[j] += time.Since(start)
		}
		i++
	}
	if served := replicas() - before; served < int64(b.N) {
		b.Fatalf("replicas served %d of %d reads", served, b.N)
	}
	n := float64(b.N)
	ns := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / n }
	b.ReportMetric(ns(took[0]), "gorm-ns/read")
	b.ReportMetric(ns(took[1]), "dbresolver-ns/read")
	b.ReportMetric(ns(took[2]), "rwsplit-ns/read")
	b.ReportMetric(ns(took[1]-took[0]), "dbresolver-overhead-ns")
	b.ReportMetric(ns(took[2]-took[0]), "rwsplit-overhead-ns")
}

// BenchmarkReadAllocs reports each configuration's allocations per read
// on its own (BenchmarkRead's allocs/op is their sum).
func BenchmarkReadAllocs(b *testing.B) {
	b.Run("gorm", func(b *testing.B) {
		db, _ := openFake(b)
		benchFirst(b, db, context.Background())
	})
	b.Run("dbresolver", func(b *testing.B) {
		db, _ := openFake(b)
		r1, _ := fakeDialector(b)
		r2, _ := fakeDialector(b)
		resolver := dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{r1, r2}})
		if err := db.Use(resolver); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { rwsplit.StopResolverStores(resolver) })
		benchFirst(b, db, context.Background())
	})
	b.Run("rwsplit", func(b *testing.B) {
		db, _, _ := openFakeRWSplit(b, rwsplit.Config{})
		benchFirst(b, db, context.Background())
	})
}

// BenchmarkStickyRead measures the cost of the stickiness check on a read,
// over fakedb, beside plain GORM in the same process: a read with no user
// (no store lookup), a user who has not written (one Memory lookup, or one
// Redis GET with a shared store), and a sticky user (routed to the
// primary).
func BenchmarkStickyRead(b *testing.B) {
	user := rwsplit.WithUser(context.Background(), "user-1")
	b.Run("gorm", func(b *testing.B) {
		db, _ := openFake(b)
		benchFirst(b, db, context.Background())
	})
	b.Run("no-user", func(b *testing.B) {
		db, _, _ := openFakeRWSplit(b, rwsplit.Config{})
		benchFirst(b, db, context.Background())
	})
	b.Run("memory/not-sticky", func(b *testing.B) {
		db, _, replicas := openFakeRWSplit(b, rwsplit.Config{})
		before := replicas()
		benchFirst(b, db, user)
		if replicas()-before < int64(b.N) {
			b.Fatal("reads of a user who never wrote left the replicas")
		}
	})
	b.Run("memory/sticky", func(b *testing.B) {
		db, p, _ := openFakeRWSplit(b, rwsplit.Config{Stickiness: stickiness.Config{Mode: stickiness.ModeWindow}})
		if err := db.WithContext(user).Exec("UPDATE t SET x = 1").Error; err != nil {
			b.Fatal(err)
		}
		benchFirst(b, db, user)
		if p.Stats().Routes[rwsplit.ReasonSticky] < uint64(b.N) {
			b.Fatal("a sticky user's reads were not sent to the primary")
		}
	})
	b.Run("redis/not-sticky", func(b *testing.B) {
		srv := dbtest.Redis(b)
		client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		b.Cleanup(func() { client.Close() })
		db, p, _ := openFakeRWSplit(b, rwsplit.Config{Stickiness: stickiness.Config{Store: redisstore.New(client, redisstore.Options{})}})
		benchFirst(b, db, user)
		if s := p.Stats().Sticky; s.StoreErrors > 0 {
			b.Fatalf("%d store errors", s.StoreErrors)
		}
	})
}

func benchFirst(b *testing.B, db *gorm.DB, ctx context.Context) {
	b.ReportAllocs()
	var u benchUser
	db = db.WithContext(ctx)
	for b.Loop() {
		if err := db.First(&u, 1).Error; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStickyWrite measures what marking a user costs a write, on real
// PostgreSQL, paired: each iteration makes one insert without a user and
// one by a user in causal mode, alternating which goes first, through the
// same plugin. It reports both means and their difference, for the free
// mark (the default: nothing more is sent to the primary) and for
// Stickiness.ExactMarks (one query for the primary's WAL position after
// the commit). -benchmem counts the allocations of both inserts.
func BenchmarkStickyWrite(b *testing.B) {
	for _, exact := range []bool{false, true} {
		name := "free"
		if exact {
			name = "exact"
		}
		b.Run(name, func(b *testing.B) {
			user := rwsplit.WithUser(context.Background(), "writer")
			c, pg := pgCluster(b, clusterOpts{config: rwsplit.Config{Stickiness: stickiness.Config{ExactMarks: exact}}})
			setupPosts(b, c, pg.WaitCaughtUp)
			plain, sticky := c.DB.WithContext(context.Background()), c.DB.WithContext(user)
			insert := func(db *gorm.DB) time.Duration {
				start := time.Now()
				if err := db.Create(&rtPost{Author: "w", Body: "x"}).Error; err != nil {
					b.Fatal(err)
				}
				return time.Since(start)
			}
			var tPlain, tSticky time.Duration
			diffs := make([]time.Duration, 0, 1<<16) // per iteration, for the median: the mean follows outliers on a shared machine
			i := 0
			for b.Loop() {
				var dp, ds time.Duration
				if i%2 == 0 {
					dp = insert(plain)
					ds = insert(sticky)
				} else {
					ds = insert(sticky)
					dp = insert(plain)
				}
				tPlain, tSticky = tPlain+dp, tSticky+ds
				if len(diffs) < cap(diffs) {
					diffs = append(diffs, ds-dp)
				}
				i++
			}
			slices.Sort(diffs)
			b.ReportMetric(float64(diffs[len(diffs)/2].Nanoseconds()), "extra-ns/write(p50)")
			n := float64(b.N)
			b.ReportMetric(float64(tPlain.Nanoseconds())/n, "plain-ns/write")
			b.ReportMetric(float64(tSticky.Nanoseconds())/n, "causal-ns/write")
			b.ReportMetric(float64((tSticky-tPlain).Nanoseconds())/n, "extra-ns/write")
			if c.Plugin.Stats().Sticky.Marks < uint64(b.N) {
				b.Fatal("the user's writes were not marked")
			}
		})
	}
}
