package rwsplit_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/stickiness"
	"github.com/rwsplit/rwsplit/stickiness/redisstore"
)

// The tests of this file check the free causal mark (the default): a
// keyed write's reads wait for the checker's next sample of the primary,
// and then go to a replica that covers it; never to one that does not.

// freeMarkCluster is one database's cluster for these tests, and how to
// stop and restart replay on a replica.
type freeMarkCluster struct {
	c             *cluster
	sample        string // the checker's sample of the primary, as recorded
	pause, resume func(i int)
}

// freeMarkClusters opens PostgreSQL and MariaDB with cfg, posts created.
func freeMarkClusters(t *testing.T, db string, cfg rwsplit.Config) freeMarkCluster {
	t.Helper()
	if db == "postgres" {
		c, pg := pgCluster(t, clusterOpts{config: cfg})
		setupPosts(t, c, pg.WaitCaughtUp)
		return freeMarkCluster{c: c, sample: "pg_current_wal_insert_lsn",
			pause: func(i int) {
				noErr(t, pg.Replicas[i].PauseReplay(t.Context()))
				t.Cleanup(func() { _ = pg.Replicas[i].ResumeReplay(context.Background()) })
			},
			resume: func(i int) { noErr(t, pg.Replicas[i].ResumeReplay(t.Context())) }}
	}
	c, my := mariaCluster(t, clusterOpts{config: cfg})
	setupPosts(t, c, my.WaitCaughtUp)
	return freeMarkCluster{c: c, sample: "@@GLOBAL.gtid_binlog_pos",
		pause: func(i int) {
			noErr(t, my.Replicas[i].StopSQLThread(t.Context()))
			t.Cleanup(func() { _ = my.Replicas[i].StartSQLThread(context.Background()) })
		},
		resume: func(i int) { noErr(t, my.Replicas[i].StartSQLThread(t.Context())) }}
}

// sampledSince reports whether the checker sampled the primary since mark
// (the recorder records a statement when it ends: a sample that started
// before mark may count, never one that has not run).
func (f freeMarkCluster) sampledSince(mark int) bool {
	return slices.ContainsFunc(f.c.rec.Since(mark), func(e testdb.Exec) bool {
		return e.Node == "primary" && strings.Contains(e.SQL, f.sample)
	})
}

// readUntilReplica reads post id as ctx's user until a replica serves the
// read, up to 5s (a loaded machine; the checker's Interval is 300ms), and
// returns the nodes that served each read. Every read must see the row.
func readUntilReplica(t *testing.T, c *cluster, ctx context.Context, id int64) []string {
	t.Helper()
	var all []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		var seen bool
		nodes := c.served("rt_posts", func() { seen = readOwn(t, c.DB, ctx, id) })
		all = append(all, nodes...)
		if !seen {
			t.Fatalf("a read on %v missed the user's write (reads so far on %v)", nodes, all)
		}
		if allOn(nodes, isReplica) {
			return all
		}
		if time.Now().After(deadline) {
			t.Fatalf("the user's reads did not return to a replica within 5s: %v", all)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// freeMarkLag: MaxLag well above the pauses of these tests, so that a
// paused replica stays in service and only the causal check keeps reads
// away from it.
var freeMarkLag = lagcheck.Config{Interval: 300 * time.Millisecond, MaxLag: 30 * time.Second}

// TestFreeMark: right after a keyed write, before the checker has sampled
// the primary, the user's read goes to the primary; after the next sample
// and a probe that covers it, to a replica. With replica1's replay
// stopped, the user's reads never go to replica1, and do go to replica2.
func TestFreeMark(t *testing.T) {
	for _, db := range []string{"postgres", "mariadb"} {
		t.Run(db, func(t *testing.T) {
			f := freeMarkClusters(t, db, rwsplit.Config{Lag: freeMarkLag})
			c := f.c
			const rounds = 20
			first := 0
			for i := range rounds {
				ctx := rwsplit.WithUser(context.Background(), db+"-free-"+strconv.Itoa(i))
				p := rtPost{Author: "free", Body: "x"}
				mark := c.rec.Mark()
				noErr(t, c.DB.WithContext(ctx).Create(&p).Error)
				nodes := readUntilReplica(t, c, ctx, p.ID)
				switch {
				case nodes[0] == "primary":
					first++
				case !f.sampledSince(mark):
					t.Fatalf("round %d: the first read after the write ran on %s before any sample of the primary", i, nodes[0])
				}
			}
			// A sample falls between the write and the read about once
			// in Interval/(the gap, a millisecond or so); a loaded
			// machine widens the gap, so half the rounds is the bound.
			t.Logf("first read after the write on the primary in %d of %d rounds", first, rounds)
			if first < rounds/2 {
				t.Errorf("first read on the primary in %d of %d rounds, want most", first, rounds)
			}
			if got := c.Plugin.Stats().Sticky.Marks; got < rounds {
				t.Errorf("Sticky.Marks = %d, want >= %d", got, rounds)
			}

			f.pause(0)
			for i := range rounds {
				ctx := rwsplit.WithUser(context.Background(), db+"-paused-"+strconv.Itoa(i))
				p := rtPost{Author: "paused", Body: "x"}
				noErr(t, c.DB.WithContext(ctx).Create(&p).Error)
				nodes := readUntilReplica(t, c, ctx, p.ID)
				if slices.Contains(nodes, "replica1") {
					t.Fatalf("round %d: a read ran on replica1, whose replay is stopped: %v", i, nodes)
				}
			}
			f.resume(0)
		})
	}
}

// TestExactMarks: Stickiness.ExactMarks still works: no misses with a
// replica stopped, back on the other replica.
func TestExactMarks(t *testing.T) {
	for _, db := range []string{"postgres", "mariadb"} {
		t.Run(db, func(t *testing.T) {
			f := freeMarkClusters(t, db, rwsplit.Config{Lag: freeMarkLag, Stickiness: stickiness.Config{ExactMarks: true}})
			c := f.c
			f.pause(0)
			for i := range 10 {
				ctx := rwsplit.WithUser(context.Background(), db+"-exact-"+strconv.Itoa(i))
				p := rtPost{Author: "exact", Body: "x"}
				noErr(t, c.DB.WithContext(ctx).Create(&p).Error)
				nodes := readUntilReplica(t, c, ctx, p.ID)
				if slices.Contains(nodes, "replica1") {
					t.Fatalf("round %d: a read ran on replica1, whose replay is stopped: %v", i, nodes)
				}
			}
			f.resume(0)
		})
	}
}

// TestFreeMarkRedis: app server A writes, app server B reads through the
// same Redis. B's reads go to the primary while the record is pending,
// and to a replica once A resolved it; with both replicas stopped, never
// to a replica; 0 misses.
func TestFreeMarkRedis(t *testing.T) {
	srv := dbtest.Redis(t)
	pg := dbtest.Postgres(t, 2)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	open := func() *cluster {
		return pgOn(t, pg, clusterOpts{config: rwsplit.Config{
			Lag:        freeMarkLag,
			Stickiness: stickiness.Config{Store: redisstore.New(client, redisstore.Options{Prefix: "free:"})},
		}})
	}
	a, b := open(), open()
	setupPosts(t, a, pg.WaitCaughtUp)
	pendingSeen := 0
	const rounds = 20
	for i := range rounds {
		key := "redis-free-" + strconv.Itoa(i)
		ctx := rwsplit.WithUser(context.Background(), key)
		p := rtPost{Author: "a", Body: "x"}
		noErr(t, a.DB.WithContext(ctx).Create(&p).Error)
		v, err := client.Get(t.Context(), "free:"+key).Result()
		noErr(t, err)
		pending := strings.Contains(v, " p")
		var nodes []string
		if pending {
			pendingSeen++
			nodes = b.served("rt_posts", func() {
				if !readOwn(t, b.DB, ctx, p.ID) {
					t.Fatalf("round %d: B missed A's write", i)
				}
			})
			// B read after the record was seen pending; it may have been
			// resolved in between, so only a replica without a
			// resolution in Redis would be wrong: checked below.
		}
		all := readUntilReplica(t, b, ctx, p.ID)
		if v, _ := client.Get(t.Context(), "free:"+key).Result(); strings.Contains(v, " p") {
			t.Fatalf("round %d: B read on a replica while the record is still pending (%q): %v %v", i, v, nodes, all)
		}
	}
	t.Logf("record seen pending right after the write in %d of %d rounds; A resolved %d", pendingSeen, rounds, a.Plugin.Stats().Sticky.Resolved)
	if pendingSeen < rounds/2 {
		t.Errorf("record pending right after the write in %d of %d rounds, want most", pendingSeen, rounds)
	}
	if a.Plugin.Stats().Sticky.Resolved == 0 {
		t.Error("A resolved no record")
	}

	// Both replicas stopped: B never reads on a replica, whatever A resolves.
	pausePG(t, pg)
	for i := range 5 {
		ctx := rwsplit.WithUser(context.Background(), "redis-paused-"+strconv.Itoa(i))
		p := rtPost{Author: "a", Body: "x"}
		noErr(t, a.DB.WithContext(ctx).Create(&p).Error)
		deadline := time.Now().Add(3 * freeMarkLag.Interval) // a few samples and resolutions
		for time.Now().Before(deadline) {
			nodes := b.served("rt_posts", func() {
				if !readOwn(t, b.DB, ctx, p.ID) {
					t.Fatalf("B missed A's write with the replicas stopped")
				}
			})
			if !allOn(nodes, func(n string) bool { return n == "primary" }) {
				t.Fatalf("B read on %v with every replica stopped", nodes)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
