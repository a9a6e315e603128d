package rwsplit_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
	gormmysql "gorm.io/driver/mysql"
	"gorm.io/gorm"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/stickiness"
	"github.com/rwsplit/rwsplit/stickiness/redisstore"
)

// The tests of this file check that every way GORM can write marks its
// user, with a position that covers the write's commit.

// stickyRoutes counts the reads routed as a sticky user's.
func stickyRoutes(c *cluster) uint64 {
	r := c.Plugin.Stats().Routes
	return r[rwsplit.ReasonSticky] + r[rwsplit.ReasonCausal]
}

// readOwn reads post id with ctx and reports whether the row was there.
func readOwn(t *testing.T, db *gorm.DB, ctx context.Context, id int64) bool {
	t.Helper()
	var got rtPost
	err := db.WithContext(ctx).First(&got, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false
	}
	noErr(t, err)
	return true
}

// pausePG pauses replay on every replica until the test ends, so that a
// read on a replica misses every later write.
func pausePG(t *testing.T, pg *testdb.PGCluster) {
	t.Helper()
	for _, r := range pg.Replicas {
		noErr(t, r.PauseReplay(t.Context()))
		t.Cleanup(func() { _ = r.ResumeReplay(context.Background()) })
	}
}

// TestMarkRawReturning: INSERT ... RETURNING through Raw().Scan, Find, Row
// and Rows marks its user, and the user's next read, with the replicas
// paused, sees the row.
func TestMarkRawReturning(t *testing.T) {
	c, pg := pgCluster(t, clusterOpts{})
	setupPosts(t, c, pg.WaitCaughtUp)
	pausePG(t, pg)
	const insert = "INSERT INTO rt_posts (author, body) VALUES (?, 'x') RETURNING id"
	ways := []struct {
		name string
		run  func(db *gorm.DB) int64
	}{
		{"Scan", func(db *gorm.DB) (id int64) {
			noErr(t, db.Raw(insert, "scan").Scan(&id).Error)
			return id
		}},
		{"Find", func(db *gorm.DB) int64 {
			var p rtPost
			noErr(t, db.Raw(insert, "find").Find(&p).Error)
			return p.ID
		}},
		{"Row", func(db *gorm.DB) (id int64) {
			noErr(t, db.Raw(insert, "row").Row().Scan(&id))
			return id
		}},
		{"Rows", func(db *gorm.DB) (id int64) {
			rows, err := db.Raw(insert, "rows").Rows()
			noErr(t, err)
			defer rows.Close()
			for rows.Next() {
				noErr(t, rows.Scan(&id))
			}
			noErr(t, rows.Err())
			return id
		}},
	}
	const rounds = 5
	total := 0
	marks, sticky := c.Plugin.Stats().Sticky.Marks, stickyRoutes(c)
	var misses []string
	for _, w := range ways {
		for i := range rounds {
			ctx := rwsplit.WithUser(context.Background(), fmt.Sprintf("raw-%s-%d", w.name, i))
			id := w.run(c.DB.WithContext(ctx))
			if id == 0 {
				t.Fatalf("%s: no id returned", w.name)
			}
			total++
			if !readOwn(t, c.DB, ctx, id) {
				misses = append(misses, w.name)
			}
		}
	}
	gotMarks, gotSticky := c.Plugin.Stats().Sticky.Marks-marks, stickyRoutes(c)-sticky
	t.Logf("%d raw writes: %d marks, %d sticky reads, misses %v", total, gotMarks, gotSticky, misses)
	if len(misses) > 0 || gotMarks != uint64(total) || gotSticky != uint64(total) {
		t.Errorf("%d of %d reads missed their own write (%v); %d marks and %d sticky reads, want %d each",
			len(misses), total, misses, gotMarks, gotSticky, total)
	}
}

// TestMarkAsyncCommit: with synchronous_commit=off on the primary, 50
// insert-then-read rounds in causal mode never miss, and a causal user's
// reads go back to a replica once it has the write.
func TestMarkAsyncCommit(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	admin := pg.Primary.OpenDB(nil)
	t.Cleanup(func() { admin.Close() })
	setAsync := func(ctx context.Context, v string) error {
		if _, err := admin.ExecContext(ctx, "ALTER SYSTEM SET synchronous_commit = "+v); err != nil {
			return err
		}
		_, err := admin.ExecContext(ctx, "SELECT pg_reload_conf()")
		return err
	}
	noErr(t, setAsync(t.Context(), "off"))
	t.Cleanup(func() {
		dbtest.Within(t, 10*time.Second, func(ctx context.Context) error { return setAsync(ctx, "DEFAULT") })
	})

	c := pgOn(t, pg, clusterOpts{config: rwsplit.Config{Lag: lagcheck.Config{Interval: 100 * time.Millisecond}}})
	setupPosts(t, c, pg.WaitCaughtUp)
	var setting string
	noErr(t, c.DB.Clauses(rwsplit.Primary).Raw("SHOW synchronous_commit").Scan(&setting).Error)
	if setting != "off" {
		t.Fatalf("synchronous_commit = %q on the primary, want off", setting)
	}
	const n = 50
	misses := 0
	var ctx context.Context
	var last rtPost
	for i := range n {
		ctx = rwsplit.WithUser(context.Background(), "async-"+strconv.Itoa(i))
		last = rtPost{Author: "async", Body: "x"}
		noErr(t, c.DB.WithContext(ctx).Create(&last).Error)
		if !readOwn(t, c.DB, ctx, last.ID) {
			misses++
		}
	}
	t.Logf("synchronous_commit=off: %d misses of %d", misses, n)
	if misses != 0 {
		t.Errorf("%d of %d reads missed their own write", misses, n)
	}
	// Once a replica has the write, the user's reads go there again.
	c.takeRoutes()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if !readOwn(t, c.DB, ctx, last.ID) {
			t.Fatal("a read missed the user's write")
		}
		routes := c.takeRoutes()
		if slices.ContainsFunc(routes, func(r rwsplit.Route) bool { return r.Reason == rwsplit.ReasonCausal && isReplica(r.Node) }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the user's reads did not return to a replica within 5s: last routes %v", routes)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// twoRedisServers opens two plugins on pg, as two app servers sharing a
// real Redis store, in causal mode.
func twoRedisServers(t *testing.T, pg *testdb.PGCluster, srv *testdb.RedisServer) (a, b *cluster) {
	t.Helper()
	open := func() *cluster {
		client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
		t.Cleanup(func() { client.Close() })
		return pgOn(t, pg, clusterOpts{config: rwsplit.Config{
			Lag:        lagcheck.Config{Interval: 100 * time.Millisecond},
			Stickiness: stickiness.Config{Store: redisstore.New(client, redisstore.Options{})},
		}})
	}
	return open(), open()
}

// TestMarkStoreNewerWrite: a user writes through A, then through B; A's
// own record of the first write does not hide the second, which A's next
// read sees with the replicas paused.
func TestMarkStoreNewerWrite(t *testing.T) {
	srv := dbtest.Redis(t)
	pg := dbtest.Postgres(t, 2)
	a, b := twoRedisServers(t, pg, srv)
	setupPosts(t, a, pg.WaitCaughtUp)
	for i := range 3 {
		ctx := rwsplit.WithUser(context.Background(), "ab-"+strconv.Itoa(i))
		first := rtPost{Author: "a", Body: "x"}
		noErr(t, a.DB.WithContext(ctx).Create(&first).Error)
		// Wait until A serves the user from a replica again: A knows a
		// replica has the first write.
		a.takeRoutes()
		deadline := time.Now().Add(5 * time.Second)
		for !slices.ContainsFunc(a.takeRoutes(), func(r rwsplit.Route) bool { return r.Reason == rwsplit.ReasonCausal }) {
			if time.Now().After(deadline) {
				t.Fatal("A's reads did not return to a replica within 5s")
			}
			time.Sleep(5 * time.Millisecond)
			readOwn(t, a.DB, ctx, first.ID)
		}
		pausePG(t, pg)
		second := rtPost{Author: "b", Body: "x"}
		noErr(t, b.DB.WithContext(ctx).Create(&second).Error)
		if !readOwn(t, a.DB, ctx, second.ID) {
			t.Fatalf("round %d: a read through A missed the user's write through B", i)
		}
		for _, r := range pg.Replicas {
			noErr(t, r.ResumeReplay(t.Context()))
		}
		dbtest.Within(t, 10*time.Second, pg.WaitCaughtUp)
	}
}

// TestMarkStoreDown: a keyed write made through A while Redis is down
// reaches Redis once it is back, so B treats the user as sticky.
func TestMarkStoreDown(t *testing.T) {
	srv := dbtest.Redis(t)
	pg := dbtest.Postgres(t, 2)
	a, b := twoRedisServers(t, pg, srv)
	setupPosts(t, a, pg.WaitCaughtUp)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	store := redisstore.New(client, redisstore.Options{})

	noErr(t, srv.Stop(t.Context()))
	const user = "down-user"
	ctx := rwsplit.WithUser(context.Background(), user)
	p := rtPost{Author: "down", Body: "x"}
	noErr(t, a.DB.WithContext(ctx).Create(&p).Error)
	if s := a.Plugin.Stats().Sticky; s.StoreErrors == 0 {
		t.Fatalf("the Set with Redis down did not fail: %+v", s)
	}
	noErr(t, srv.Start(t.Context()))
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, found, err := store.Get(t.Context(), user)
		if err == nil && found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the record of the write made with Redis down never reached Redis (last error %v); A: %+v", err, a.Plugin.Stats().Sticky)
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := stickyRoutes(b)
	if !readOwn(t, b.DB, ctx, p.ID) {
		t.Error("a read through B missed the write")
	}
	s := a.Plugin.Stats().Sticky
	t.Logf("A: store errors %d, retries %d, resolved %d; B's read sticky: %v", s.StoreErrors, s.StoreRetries, s.Resolved, stickyRoutes(b) > before)
	if stickyRoutes(b) == before {
		t.Error("B did not treat the user as sticky")
	}
	// With the free mark, A's resolution of the record, at its checker's
	// next sample, may reach Redis before the retry of the failed Set.
	if s.StoreRetries == 0 && s.Resolved == 0 {
		t.Error("Stats.StoreRetries = 0 and Stats.Resolved = 0: nothing set the record once Redis was back")
	}
}

// TestMarkForeignTransaction: a write in a transaction rwsplit did not
// begin (db.Connection, nested prepared sessions) is never marked with a
// position taken before its commit.
func TestMarkForeignTransaction(t *testing.T) {
	cases := []struct {
		name string
		gorm gorm.Config
		tx   func(db *gorm.DB, fc func(*gorm.DB) error) error
	}{
		{name: "Connection then Transaction", tx: func(db *gorm.DB, fc func(*gorm.DB) error) error {
			return db.Connection(func(c *gorm.DB) error { return c.Transaction(fc) })
		}},
		{name: "PrepareStmt at Open and in the Session", gorm: gorm.Config{PrepareStmt: true}, tx: func(db *gorm.DB, fc func(*gorm.DB) error) error {
			return db.Session(&gorm.Session{PrepareStmt: true}).Transaction(fc)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, pg := pgCluster(t, clusterOpts{gorm: tc.gorm})
			setupPosts(t, c, pg.WaitCaughtUp)
			admin := pg.Primary.OpenDB(nil)
			t.Cleanup(func() { admin.Close() })
			ctx := stickiness.WithCarrier(rwsplit.WithUser(context.Background(), "foreign-"+tc.name))
			var beforeCommit string
			p := rtPost{Author: "foreign", Body: "x"}
			noErr(t, tc.tx(c.DB.WithContext(ctx), func(tx *gorm.DB) error {
				if err := tx.Create(&p).Error; err != nil {
					return err
				}
				// Everything the primary has inserted before the commit.
				return admin.QueryRowContext(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&beforeCommit)
			}))
			rec, ok := stickiness.FromContext(ctx)
			pre, err := lagcheck.ParseLSN(beforeCommit)
			noErr(t, err)
			t.Logf("mark %q (until %v); insert position before the commit %s", rec.Position, rec.Until.Round(time.Second), pre)
			if !ok || rec.Until.IsZero() {
				t.Fatal("the write did not mark its user")
			}
			if !rec.Position.IsZero() && (!rec.Position.Covers(pre) || rec.Position.Equal(pre)) {
				t.Errorf("the mark's position %s was taken before the commit (insert position then %s)", rec.Position, pre)
			}
			if !readOwn(t, c.DB, ctx, p.ID) {
				t.Error("the user's read missed the write")
			}
		})
	}
}

// TestMarkPartialMultiStatement: raw SQL of several statements whose
// first committed and whose last failed still marks its user.
func TestMarkPartialMultiStatement(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		c, pg := pgCluster(t, clusterOpts{})
		setupPosts(t, c, pg.WaitCaughtUp)
		pausePG(t, pg)
		// Simple protocol (no arguments): COMMIT ends the implicit
		// transaction, so the first INSERT stays when the last fails.
		partialWrite(t, c, "INSERT INTO rt_posts (author, body) VALUES ('partial-pg', 'x'); COMMIT; INSERT INTO rt_posts (id, author, body) VALUES (1, 'dup', 'x')")
	})
	t.Run("mariadb", func(t *testing.T) {
		my := dbtest.MariaDB(t, 2)
		replicas := make([]node, len(my.Replicas))
		for i, r := range my.Replicas {
			replicas[i] = multiStatements{r}
		}
		c := openOn(t, func(db *sql.DB) gorm.Dialector { return gormmysql.New(gormmysql.Config{Conn: db}) }, multiStatements{my.Primary}, replicas, clusterOpts{})
		setupPosts(t, c, my.WaitCaughtUp)
		for _, r := range my.Replicas {
			noErr(t, r.StopSQLThread(t.Context()))
			t.Cleanup(func() { _ = r.StartSQLThread(context.Background()) })
		}
		partialWrite(t, c, "INSERT INTO rt_posts (author, body) VALUES ('partial-maria', 'x'); INSERT INTO rt_posts (id, author, body) VALUES (1, 'dup', 'x')")
	})
}

func partialWrite(t *testing.T, c *cluster, sql string) {
	t.Helper()
	ctx := rwsplit.WithUser(context.Background(), "partial")
	marks := c.Plugin.Stats().Sticky.Marks
	if err := c.DB.WithContext(ctx).Exec(sql).Error; err == nil {
		t.Fatal("the last statement did not fail")
	}
	var got rtPost
	err := c.DB.WithContext(ctx).Where("author LIKE ?", "partial-%").First(&got).Error
	t.Logf("marks %d; the user's read: %v", c.Plugin.Stats().Sticky.Marks-marks, err)
	if c.Plugin.Stats().Sticky.Marks == marks {
		t.Error("the partly committed write did not mark its user")
	}
	if err != nil {
		t.Errorf("the user's read missed the committed part: %v", err)
	}
}

// multiStatements opens a MariaDB node with multiStatements=true.
type multiStatements struct{ n *testdb.MariaNode }

func (m multiStatements) OpenDB(r *testdb.Recorder) *sql.DB {
	cfg := m.n.Config()
	cfg.MultiStatements = true
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		panic(err)
	}
	return sql.OpenDB(r.Connector(m.n.Name, conn))
}

// TestMarkPinnedConnSaturated: a keyed write on a db.Connection whose pool
// has no other connection (SetMaxOpenConns(1)) takes its mark's position
// on the pinned connection: it costs about what a write without a user
// does, instead of waiting for the pool.
func TestMarkPinnedConnSaturated(t *testing.T) {
	c, pg := pgCluster(t, clusterOpts{})
	setupPosts(t, c, pg.WaitCaughtUp)
	sqlDB, err := c.DB.DB()
	noErr(t, err)
	sqlDB.SetMaxOpenConns(1)
	const n = 9
	var plain, keyed []time.Duration
	marks := c.Plugin.Stats().Sticky.Marks
	noErr(t, c.DB.Connection(func(conn *gorm.DB) error {
		for i := range 2 * n {
			ctx := context.Background()
			if i%2 == 1 {
				ctx = rwsplit.WithUser(ctx, "pinned")
			}
			start := time.Now()
			if err := conn.WithContext(ctx).Create(&rtPost{Author: "pinned", Body: "x"}).Error; err != nil {
				return err
			}
			if d := time.Since(start); i%2 == 1 {
				keyed = append(keyed, d)
			} else {
				plain = append(plain, d)
			}
		}
		return nil
	}))
	slices.Sort(plain)
	slices.Sort(keyed)
	p50, k50 := plain[n/2], keyed[n/2]
	t.Logf("saturated pool, pinned connection: write without a user p50 %v, keyed write + mark p50 %v; %d marks",
		p50, k50, c.Plugin.Stats().Sticky.Marks-marks)
	if c.Plugin.Stats().Sticky.Marks-marks != n {
		t.Errorf("%d marks, want %d", c.Plugin.Stats().Sticky.Marks-marks, n)
	}
	if bound := 4 * p50; k50 > bound {
		t.Errorf("keyed write + mark p50 %v, want <= 4 x the plain write's %v", k50, p50)
	}
}
