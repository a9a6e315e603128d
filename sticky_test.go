package rwsplit_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/stickiness"
	"github.com/rwsplit/rwsplit/stickiness/redisstore"
)

type rtPost struct {
	ID     int64
	Author string
	Body   string
}

func setupPosts(t testing.TB, c *cluster, waitCaughtUp func(context.Context) error) {
	t.Helper()
	noErr(t, c.DB.Migrator().DropTable(&rtPost{}))
	noErr(t, c.DB.AutoMigrate(&rtPost{}))
	noErr(t, c.DB.Create(&rtPost{Author: "seed", Body: "seed"}).Error)
	dbtest.Within(t, 10*time.Second, waitCaughtUp)
}

// routeCounter counts, by node, the reads of users whose key starts with
// "other" (never sticky), as OnRoute reports them.
type routeCounter struct {
	mu    sync.Mutex
	nodes map[string]int
}

type otherKey struct{}

func (rc *routeCounter) hook(cfg rwsplit.Config) rwsplit.Config {
	rc.nodes = map[string]int{}
	cfg.OnRoute = func(ctx context.Context, r rwsplit.Route) {
		if ctx.Value(otherKey{}) != nil {
			rc.mu.Lock()
			rc.nodes[r.Node]++
			rc.mu.Unlock()
		}
	}
	return cfg
}

func (rc *routeCounter) replicaShare() (float64, map[string]int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	total, onReplicas := 0, 0
	for n, k := range rc.nodes {
		total += k
		if isReplica(n) {
			onReplicas += k
		}
	}
	if total == 0 {
		return 0, maps(rc.nodes)
	}
	return float64(onReplicas) / float64(total), maps(rc.nodes)
}

func maps(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// readYourWrites runs n iterations of: a user inserts a post, and reads it
// back at once. It returns how many reads missed the row. Meanwhile two
// readers that never write read the seed post.
func readYourWrites(t *testing.T, db *gorm.DB, n int) (misses int) {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			ctx := context.WithValue(context.Background(), otherKey{}, true)
			if i == 0 {
				ctx = rwsplit.WithUser(ctx, "other-reader")
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				var p rtPost
				if err := db.WithContext(ctx).First(&p, 1).Error; err != nil {
					t.Errorf("other reader: %v", err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	for i := range n {
		user := "user-" + strconv.Itoa(i%20)
		ctx := rwsplit.WithUser(context.Background(), user)
		p := rtPost{Author: user, Body: "hello"}
		noErr(t, db.WithContext(ctx).Create(&p).Error)
		var got rtPost
		err := db.WithContext(ctx).First(&got, p.ID).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			misses++
		case err != nil:
			t.Fatal(err)
		}
	}
	return misses
}

// TestReadYourWrites: 2000 times, a user inserts then reads at once, in
// window and causal mode, on a healthy cluster, with one replica's apply
// delayed 200ms, and with one replica paused: 0 misses, while at least 90%
// of the reads by users who do not write still go to replicas.
func TestReadYourWrites(t *testing.T) {
	const n = 2000
	conditions := []struct {
		name   string
		inject func(pg *testdb.PGCluster)
	}{
		{"healthy", func(*testdb.PGCluster) {}},
		{"replica1 apply delay 200ms", func(pg *testdb.PGCluster) { noErr(t, pg.Replicas[0].SetApplyDelay(t.Context(), 200*time.Millisecond)) }},
		{"replica1 paused", func(pg *testdb.PGCluster) { noErr(t, pg.Replicas[0].PauseReplay(t.Context())) }},
	}
	for _, mode := range []stickiness.Mode{stickiness.ModeCausal, stickiness.ModeWindow} {
		for _, cond := range conditions {
			t.Run(mode.String()+"/"+cond.name, func(t *testing.T) {
				var rc routeCounter
				c, pg := pgCluster(t, clusterOpts{config: rc.hook(rwsplit.Config{Stickiness: stickiness.Config{Mode: mode}})})
				setupPosts(t, c, pg.WaitCaughtUp)
				cond.inject(pg)
				before := c.Plugin.Stats().Routes
				start := time.Now()
				misses := readYourWrites(t, c.DB, n)
				s := c.Plugin.Stats()
				share, nodes := rc.replicaShare()
				t.Logf("%d misses of %d in %v; sticky reads: %d on the primary, %d on a replica that had the write; other users' reads: %.1f%% on replicas %v",
					misses, n, time.Since(start).Round(time.Millisecond),
					s.Routes[rwsplit.ReasonSticky]-before[rwsplit.ReasonSticky], s.Routes[rwsplit.ReasonCausal]-before[rwsplit.ReasonCausal], 100*share, nodes)
				if misses != 0 {
					t.Errorf("%d of %d reads missed the user's own write", misses, n)
				}
				if share < 0.9 {
					t.Errorf("%.1f%% of other users' reads went to replicas, want >= 90%%", 100*share)
				}
				if s.Sticky.Marks < n {
					t.Errorf("Stats.Sticky.Marks = %d, want >= %d", s.Sticky.Marks, n)
				}
				if mode == stickiness.ModeWindow && s.Routes[rwsplit.ReasonCausal] > 0 {
					t.Errorf("window mode served %d sticky reads from replicas", s.Routes[rwsplit.ReasonCausal])
				}
			})
		}
	}
}

// TestBackToReplicas measures, in causal mode, how long after a write its
// user's reads are served by a replica again: about the time until the
// checker's next probe sees the replica's replay position pass the write.
func TestBackToReplicas(t *testing.T) {
	lag := lagcheck.Config{Interval: 100 * time.Millisecond}
	t.Run("postgres", func(t *testing.T) {
		var last atomic.Value
		c, pg := pgCluster(t, clusterOpts{config: rwsplit.Config{Lag: lag, OnRoute: func(_ context.Context, r rwsplit.Route) { last.Store(r) }}})
		setupPosts(t, c, pg.WaitCaughtUp)
		backToReplicas(t, c, &last, 60, lag.Interval)
	})
	t.Run("mariadb", func(t *testing.T) {
		var last atomic.Value
		c, my := mariaCluster(t, clusterOpts{config: rwsplit.Config{Lag: lag, OnRoute: func(_ context.Context, r rwsplit.Route) { last.Store(r) }}})
		setupPosts(t, c, my.WaitCaughtUp)
		backToReplicas(t, c, &last, 30, lag.Interval)
	})
}

func backToReplicas(t *testing.T, c *cluster, last *atomic.Value, n int, interval time.Duration) {
	var took []time.Duration
	for i := range n {
		// Start at a random point of the checker's cycle.
		time.Sleep(time.Duration(rand.Int64N(int64(interval))))
		ctx := rwsplit.WithUser(context.Background(), "back-"+strconv.Itoa(i))
		p := rtPost{Author: "back", Body: "x"}
		noErr(t, c.DB.WithContext(ctx).Create(&p).Error)
		wrote := time.Now()
		for {
			var got rtPost
			noErr(t, c.DB.WithContext(ctx).First(&got, p.ID).Error)
			if r := last.Load().(rwsplit.Route); isReplica(r.Node) {
				if r.Reason != rwsplit.ReasonCausal {
					t.Fatalf("a sticky read went to %s as %v", r.Node, r.Reason)
				}
				took = append(took, time.Since(wrote))
				break
			}
			if time.Since(wrote) > 5*time.Second {
				t.Fatal("reads did not return to a replica within 5s")
			}
			time.Sleep(time.Millisecond)
		}
	}
	slices.Sort(took)
	p50, p99 := took[len(took)/2], took[len(took)*99/100]
	t.Logf("write -> the user's reads back on a replica: p50 %v, p99 %v (Lag.Interval %v, %d writes)",
		p50.Round(time.Millisecond), p99.Round(time.Millisecond), interval, n)
	// The user is back on replicas at the first probe after the write:
	// about one Interval. The median must show it. The slowest round waits
	// for probes that a loaded 2-core machine (go test runs packages in
	// parallel, with -race) can delay by hundreds of milliseconds, so its
	// bound is 20 Intervals: still two orders of magnitude under the 30s
	// Window that a user would stay on the primary without causal marks.
	if bound := 2 * interval; p50 > bound {
		t.Errorf("p50 %v, want <= 2 x Interval = %v", p50, bound)
	}
	if bound := 20 * interval; took[len(took)-1] > bound {
		t.Errorf("slowest %v, want <= 20 x Interval = %v", took[len(took)-1], bound)
	}
}

// TestReadYourWritesMariaDB: the same with GTID positions.
func TestReadYourWritesMariaDB(t *testing.T) {
	for _, mode := range []stickiness.Mode{stickiness.ModeCausal, stickiness.ModeWindow} {
		t.Run(mode.String(), func(t *testing.T) {
			var rc routeCounter
			c, my := mariaCluster(t, clusterOpts{config: rc.hook(rwsplit.Config{Stickiness: stickiness.Config{Mode: mode}})})
			setupPosts(t, c, my.WaitCaughtUp)
			misses := readYourWrites(t, c.DB, 1000)
			s := c.Plugin.Stats()
			share, nodes := rc.replicaShare()
			t.Logf("%d misses of 1000; sticky %d, causal %d; other users %.1f%% on replicas %v",
				misses, s.Routes[rwsplit.ReasonSticky], s.Routes[rwsplit.ReasonCausal], 100*share, nodes)
			if misses != 0 || share < 0.9 {
				t.Errorf("%d misses, %.1f%% of other reads on replicas", misses, 100*share)
			}
		})
	}
}

// TestTwoAppServersRedis: two *gorm.DB, each with its own plugin, share
// stickiness through one Redis. A write through A, then a read through B,
// never misses. With Redis down, B's keyed reads go to the primary.
func TestTwoAppServersRedis(t *testing.T) {
	srv := dbtest.Redis(t)
	pg := dbtest.Postgres(t, 2)
	open := func() *cluster {
		client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
		t.Cleanup(func() { client.Close() })
		return pgOn(t, pg, clusterOpts{config: rwsplit.Config{Stickiness: stickiness.Config{
			Store: redisstore.New(client, redisstore.Options{}),
		}}})
	}
	a, b := open(), open()
	setupPosts(t, a, pg.WaitCaughtUp)

	misses := 0
	for i := range 500 {
		ctx := rwsplit.WithUser(context.Background(), "shared-"+strconv.Itoa(i%20))
		p := rtPost{Author: "a", Body: "x"}
		noErr(t, a.DB.WithContext(ctx).Create(&p).Error)
		var got rtPost
		if err := b.DB.WithContext(ctx).First(&got, p.ID).Error; errors.Is(err, gorm.ErrRecordNotFound) {
			misses++
		} else {
			noErr(t, err)
		}
	}
	sb := b.Plugin.Stats()
	t.Logf("write via A, read via B: %d misses of 500; B: sticky %d, causal %d, store errors %d",
		misses, sb.Routes[rwsplit.ReasonSticky], sb.Routes[rwsplit.ReasonCausal], sb.Sticky.StoreErrors)
	if misses != 0 {
		t.Errorf("%d of 500 reads through B missed A's write", misses)
	}
	if sb.Routes[rwsplit.ReasonSticky]+sb.Routes[rwsplit.ReasonCausal] < 500 {
		t.Errorf("B did not see A's users as sticky")
	}

	// Redis down: fail safe to the primary, never an error.
	noErr(t, srv.Stop(t.Context()))
	ctx := rwsplit.WithUser(context.Background(), "shared-1")
	nodes := b.served("rt_posts", func() {
		for range 20 {
			var got rtPost
			noErr(t, b.DB.WithContext(ctx).First(&got, 1).Error)
		}
	})
	sb = b.Plugin.Stats()
	t.Logf("Redis down: keyed reads on %v; store errors %d, skipped %d", nodes, sb.Sticky.StoreErrors, sb.Sticky.StoreSkipped)
	for _, n := range nodes {
		if n != "primary" {
			t.Fatalf("with the store down a keyed read ran on %s, want the primary", n)
		}
	}
	if sb.Sticky.StoreErrors == 0 {
		t.Error("store errors not counted")
	}
	// A read with no user never needs the store.
	nodes = b.served("rt_posts", func() {
		var got rtPost
		noErr(t, b.DB.First(&got, 1).Error)
	})
	if len(nodes) != 1 || !isReplica(nodes[0]) {
		t.Errorf("a read without a user ran on %v with Redis down, want a replica", nodes)
	}
}

// TestCookieMiddleware: two app servers without Redis carry stickiness
// in a signed cookie: a POST to A, then a GET to B, never misses.
func TestCookieMiddleware(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	secret := []byte("0123456789abcdef0123456789abcdef")
	server := func(c *cluster) (*httptest.Server, *stickiness.CookieMiddleware) {
		mw, err := stickiness.NewCookieMiddleware(stickiness.CookieOptions{Secret: secret})
		noErr(t, err)
		mux := http.NewServeMux()
		mux.HandleFunc("POST /posts", func(w http.ResponseWriter, r *http.Request) {
			p := rtPost{Author: "web", Body: "x"}
			if err := c.DB.WithContext(r.Context()).Create(&p).Error; err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			fmt.Fprint(w, p.ID)
		})
		mux.HandleFunc("GET /posts/{id}", func(w http.ResponseWriter, r *http.Request) {
			var p rtPost
			err := c.DB.WithContext(r.Context()).First(&p, r.PathValue("id")).Error
			switch {
			case errors.Is(err, gorm.ErrRecordNotFound):
				http.NotFound(w, r)
			case err != nil:
				http.Error(w, err.Error(), 500)
			}
		})
		srv := httptest.NewServer(mw.Handler(mux))
		t.Cleanup(srv.Close)
		return srv, mw
	}
	a, b := pgOn(t, pg, clusterOpts{}), pgOn(t, pg, clusterOpts{})
	setupPosts(t, a, pg.WaitCaughtUp)
	srvA, _ := server(a)
	srvB, mwB := server(b)

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	t.Cleanup(client.CloseIdleConnections)
	misses := 0
	for range 300 {
		resp, err := client.Post(srvA.URL+"/posts", "text/plain", nil)
		noErr(t, err)
		var id int64
		_, _ = fmt.Fscan(resp.Body, &id)
		resp.Body.Close()
		if resp.StatusCode != 200 || id == 0 {
			t.Fatalf("POST: %s", resp.Status)
		}
		resp, err = client.Get(srvB.URL + "/posts/" + strconv.FormatInt(id, 10))
		noErr(t, err)
		resp.Body.Close()
		switch resp.StatusCode {
		case 200:
		case 404:
			misses++
		default:
			t.Fatalf("GET: %s", resp.Status)
		}
	}
	st := mwB.Stats()
	sb := b.Plugin.Stats()
	t.Logf("POST to A, GET from B with the cookie: %d misses of 300; B's middleware accepted %d cookies; B: sticky %d, causal %d",
		misses, st.Accepted, sb.Routes[rwsplit.ReasonSticky], sb.Routes[rwsplit.ReasonCausal])
	if misses != 0 {
		t.Errorf("%d of 300 GETs missed the POST", misses)
	}
	if st.Accepted < 300 {
		t.Errorf("B accepted %d cookies, want 300", st.Accepted)
	}
}

// TestTableMode: with Stickiness.Tables, reads of a table written moments
// ago, with no user at all, avoid replicas that lack the write; reads of
// other tables keep using replicas.
func TestTableMode(t *testing.T) {
	c, pg := pgCluster(t, clusterOpts{config: rwsplit.Config{Stickiness: stickiness.Config{Tables: true}}})
	setupPosts(t, c, pg.WaitCaughtUp)
	noErr(t, c.DB.Migrator().DropTable(&rtUser{}))
	noErr(t, c.DB.AutoMigrate(&rtUser{}))
	dbtest.Within(t, 10*time.Second, pg.WaitCaughtUp)
	noErr(t, pg.Replicas[0].SetApplyDelay(t.Context(), 200*time.Millisecond))
	misses := 0
	for range 500 {
		p := rtPost{Author: "nobody", Body: "x"}
		noErr(t, c.DB.Create(&p).Error)
		var got rtPost
		if err := c.DB.First(&got, p.ID).Error; errors.Is(err, gorm.ErrRecordNotFound) {
			misses++
		} else {
			noErr(t, err)
		}
	}
	nodes := c.served("rt_users", func() {
		for range 20 {
			var n int64
			noErr(t, c.DB.Model(&rtUser{}).Count(&n).Error)
		}
	})
	t.Logf("table mode: %d misses of 500; reads of an unwritten table on %v", misses, nodes)
	if misses != 0 {
		t.Errorf("%d of 500 reads missed a write to their table", misses)
	}
	if !allOn(nodes, isReplica) {
		t.Errorf("reads of an unwritten table ran on %v, want replicas", nodes)
	}
}

// TestStickyTransaction: a write inside a transaction makes its user
// sticky when the transaction commits; a rolled-back one does not.
func TestStickyTransaction(t *testing.T) {
	c, pg := pgCluster(t, clusterOpts{config: rwsplit.Config{Stickiness: stickiness.Config{Mode: stickiness.ModeWindow}}})
	setupPosts(t, c, pg.WaitCaughtUp)
	ctx := rwsplit.WithUser(context.Background(), "tx-user")
	marks := c.Plugin.Stats().Sticky.Marks
	rollback := errors.New("rollback")
	err := c.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		noErr(t, tx.Create(&rtPost{Author: "tx", Body: "x"}).Error)
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatal(err)
	}
	if got := c.Plugin.Stats().Sticky.Marks; got != marks {
		t.Fatalf("a rolled-back transaction marked its user (%d marks)", got-marks)
	}
	nodes := c.served("rt_posts", func() {
		var p rtPost
		noErr(t, c.DB.WithContext(ctx).First(&p, 1).Error)
	})
	if len(nodes) != 1 || !isReplica(nodes[0]) {
		t.Fatalf("after a rollback the user's read ran on %v, want a replica", nodes)
	}

	var id int64
	for _, prepared := range []bool{false, true} {
		db := c.DB.Session(&gorm.Session{PrepareStmt: prepared})
		noErr(t, db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			p := rtPost{Author: "tx", Body: "x"}
			err := tx.Create(&p).Error
			id = p.ID
			return err
		}))
		nodes = c.served("rt_posts", func() {
			var p rtPost
			noErr(t, c.DB.WithContext(ctx).First(&p, id).Error)
		})
		if len(nodes) != 1 || nodes[0] != "primary" {
			t.Fatalf("PrepareStmt=%v: after a commit the user's read ran on %v, want the primary", prepared, nodes)
		}
	}
}
