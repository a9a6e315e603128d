package rwsplit_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/plugin/dbresolver"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/policy"
)

// TestUsageSafety: ordinary GORM usage never runs a write, a lock or a
// side-effect function on a replica, on real PostgreSQL streaming
// replication. Each case asserts, at the driver, where every statement
// whose SQL contains the marker ran.
func TestUsageSafety(t *testing.T) {
	c, pg := pgCluster(t, clusterOpts{config: rwsplit.Config{Policy: policy.RoundRobin(), PrimaryFunctions: []string{"rtu_touch"}}})
	u := setupRouting(t, c, pg.WaitCaughtUp)
	noErr(t, c.DB.Exec(`CREATE OR REPLACE FUNCTION rtu_touch(i int) RETURNS int LANGUAGE sql AS 'SELECT $1'`).Error)
	noErr(t, c.DB.Exec(`CREATE OR REPLACE FUNCTION rtu_exec(i int) RETURNS int LANGUAGE sql AS 'SELECT $1'`).Error)
	dbtest.Within(t, 10*time.Second, pg.WaitCaughtUp)
	ctx := context.Background()

	runRouting(t, c, []routeCase{
		{name: "Exec of a SELECT calling a function", marker: "rtu_exec", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.Exec("SELECT rtu_exec(?)", 1).Error)
		}},
		{name: "Find with an advisory lock in Where", marker: "pg_try_advisory_lock", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var x []rtUser
			noErr(t, db.Where("pg_try_advisory_lock(id)").Find(&x).Error)
			noErr(t, db.Exec("SELECT pg_advisory_unlock_all()").Error)
		}},
		{name: "Pluck of nextval", marker: "nextval", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var ids []int64
			noErr(t, db.Model(&rtUser{}).Limit(1).Pluck("nextval('rt_users_id_seq')", &ids).Error)
		}},
		{name: "Select of a primary function", marker: "rtu_touch", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var n []int
			noErr(t, db.Model(&rtUser{}).Select("rtu_touch(1)").Find(&n).Error)
		}},
		{name: "subquery FOR UPDATE", marker: "FOR UPDATE", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var x []rtUser
			sub := db.Model(&rtPet{}).Select("owner_id").Clauses(clause.Locking{Strength: "UPDATE"})
			noErr(t, db.Where("id IN (?)", sub).Find(&x).Error)
		}},
		{name: "subquery FOR SHARE", marker: "FOR SHARE", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var x []rtUser
			sub := db.Model(&rtPet{}).Select("owner_id").Clauses(clause.Locking{Strength: "SHARE"})
			noErr(t, db.Where("id IN (?)", sub).Find(&x).Error)
		}},
		{name: "a plain Find still reads a replica", marker: "rt_users", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var x []rtUser
			noErr(t, db.Where("age > ? OR name = ?", 1, "x").Find(&x).Error)
		}},
		{name: "ConnPool.ExecContext after a routed read", marker: "UPDATE", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var x rtUser
			tx := db.First(&x, u.ID)
			noErr(t, tx.Error)
			_, err := tx.Statement.ConnPool.ExecContext(ctx, "UPDATE rt_users SET age = age WHERE id = $1", u.ID)
			noErr(t, err)
		}},
		{name: "ConnPool.ExecContext after a Replica{Name} clause", marker: "UPDATE", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			tx := db.Clauses(rwsplit.Replica{Name: "replica2"})
			_, err := tx.Statement.ConnPool.ExecContext(ctx, "UPDATE rt_users SET age = age WHERE id = $1", u.ID)
			noErr(t, err)
		}},
		{name: "Transaction inside a FindInBatches callback", marker: "rt_pets", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var batch []rtUser
			noErr(t, db.Where("id = ?", u.ID).FindInBatches(&batch, 10, func(tx *gorm.DB, _ int) error {
				return tx.Transaction(func(tx2 *gorm.DB) error {
					return tx2.Create(&rtPet{OwnerID: u.ID, Name: "batch"}).Error
				})
			}).Error)
		}},
		{name: "Transaction inside an AfterFind hook", marker: "rt_pets", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var x rtHookUser
			noErr(t, db.First(&x, u.ID).Error)
		}},
		{name: "SERIALIZABLE READ ONLY transaction", marker: "rt_users", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.Transaction(func(tx *gorm.DB) error {
				var x rtUser
				return tx.First(&x, u.ID).Error
			}, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelSerializable}))
		}},
		{name: "REPEATABLE READ READ ONLY transaction", marker: "rt_users", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.Transaction(func(tx *gorm.DB) error {
				var x rtUser
				return tx.First(&x, u.ID).Error
			}, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}))
		}},
		{name: "dbresolver.Write", marker: "rt_users", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var x rtUser
			noErr(t, db.Clauses(dbresolver.Write).First(&x, u.ID).Error)
		}},
		{name: "dbresolver.Read", marker: "rt_users", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var x rtUser
			noErr(t, db.Clauses(dbresolver.Read).First(&x, u.ID).Error)
		}},
		{name: "Primary clause reaches Preload", marker: "rt_", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var x rtUser
			noErr(t, db.Clauses(rwsplit.Primary).Preload("Pets").First(&x, u.ID).Error)
			if len(x.Pets) < 2 {
				t.Errorf("preloaded %d pets, want >= 2", len(x.Pets))
			}
		}},
		{name: "Replica{Name} clause reaches Preload", marker: "rt_", want: onReplica2, run: func(t *testing.T, db *gorm.DB) {
			var x rtUser
			noErr(t, db.Clauses(rwsplit.Replica{Name: "replica2"}).Preload("Pets").First(&x, u.ID).Error)
		}},
	})
}

// TestReplicaTxRefusesBeforeTheServer: in a transaction on a replica, SQL
// that writes, locks or keeps session state fails with ErrReadOnly before
// it reaches any server, while transaction control passes.
func TestReplicaTxRefusesBeforeTheServer(t *testing.T) {
	c, pg := pgCluster(t, clusterOpts{})
	u := setupRouting(t, c, pg.WaitCaughtUp)
	cases := []struct {
		name   string
		marker string
		run    func(tx *gorm.DB) error
		ok     bool // runs on the replica
	}{
		{name: "GORM Find with an advisory lock", marker: "pg_try_advisory_lock", run: func(tx *gorm.DB) error {
			var x []rtUser
			return tx.Where("pg_try_advisory_lock(id)").Find(&x).Error
		}},
		{name: "locking clause", marker: "FOR UPDATE", run: func(tx *gorm.DB) error {
			var x rtUser
			return tx.Clauses(clause.Locking{Strength: "UPDATE"}).First(&x, u.ID).Error
		}},
		{name: "subquery FOR SHARE", marker: "FOR SHARE", run: func(tx *gorm.DB) error {
			var x []rtUser
			sub := c.DB.Model(&rtPet{}).Select("owner_id").Clauses(clause.Locking{Strength: "SHARE"})
			return tx.Where("id IN (?)", sub).Find(&x).Error
		}},
		{name: "savepoint then commit then insert", marker: "rt_users", run: func(tx *gorm.DB) error {
			return tx.Exec("SAVEPOINT s1; COMMIT; INSERT INTO rt_users (name) VALUES ('x')").Error
		}},
		{name: "Raw Row Scan of an update", marker: "UPDATE rt_users", run: func(tx *gorm.DB) error {
			var n int
			return tx.Raw("UPDATE rt_users SET age = age RETURNING age").Row().Scan(&n)
		}},
		{name: "local set_config", marker: "set_config", ok: true, run: func(tx *gorm.DB) error {
			return tx.Exec("SELECT set_config('application_name', 'rtu', true)").Error
		}},
		{name: "SAVEPOINT", marker: "SAVEPOINT", ok: true, run: func(tx *gorm.DB) error {
			return tx.Exec("SAVEPOINT rtu_sp").Error
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			nodes := c.served(tc.marker, func() {
				txErr := c.DB.Clauses(rwsplit.Replica{}).Transaction(func(tx *gorm.DB) error {
					err = tc.run(tx)
					return err
				})
				if err == nil {
					err = txErr
				}
			})
			switch {
			case tc.ok && (err != nil || !allOn(nodes, isReplica)):
				t.Errorf("err = %v, ran on %v; want it to run on a replica", err, nodes)
			case !tc.ok && !errors.Is(err, rwsplit.ErrReadOnly):
				t.Errorf("err = %v, want ErrReadOnly", err)
			case !tc.ok && len(nodes) > 0:
				t.Errorf("statements with %q reached %v, want none", tc.marker, nodes)
			}
		})
	}
}

// TestRowScanErrors: Row().Scan returns routing errors instead of
// panicking.
func TestRowScanErrors(t *testing.T) {
	c, pg := pgCluster(t, clusterOpts{})
	u := setupRouting(t, c, pg.WaitCaughtUp)
	var name string
	err := c.DB.Clauses(rwsplit.Replica{Name: "nope"}).Model(&rtUser{}).Select("name").Where("id = ?", u.ID).Row().Scan(&name)
	if !errors.Is(err, rwsplit.ErrUnknownReplica) {
		t.Errorf("unknown replica: Row().Scan = %v, want ErrUnknownReplica", err)
	}
	err = c.DB.Clauses(rwsplit.Replica{}).Transaction(func(tx *gorm.DB) error {
		var n int
		return tx.Raw("DELETE FROM rt_pets WHERE name = 'nobody' RETURNING id").Row().Scan(&n)
	})
	if !errors.Is(err, rwsplit.ErrReadOnly) {
		t.Errorf("replica transaction: Row().Scan = %v, want ErrReadOnly", err)
	}
	// Rows() returns the error too.
	_, err = c.DB.Clauses(rwsplit.Replica{Name: "nope"}).Model(&rtUser{}).Rows()
	if !errors.Is(err, rwsplit.ErrUnknownReplica) {
		t.Errorf("unknown replica: Rows() = %v, want ErrUnknownReplica", err)
	}
}

// TestAfterClose: after Plugin.Close, reads and writes alike run on the
// primary, as without the plugin.
func TestAfterClose(t *testing.T) {
	c, pg := pgCluster(t, clusterOpts{})
	u := setupRouting(t, c, pg.WaitCaughtUp)
	noErr(t, c.Plugin.Close())
	nodes := c.served("rt_users", func() {
		var x rtUser
		noErr(t, c.DB.First(&x, u.ID).Error)
		noErr(t, c.DB.Clauses(rwsplit.Replica{}).First(&x, u.ID).Error)
		noErr(t, c.DB.Model(&x).Update("age", 40).Error)
		noErr(t, c.DB.Transaction(func(tx *gorm.DB) error { return tx.First(&x, u.ID).Error }, &sql.TxOptions{ReadOnly: true}))
		noErr(t, c.DB.Clauses(rwsplit.Replica{}).Transaction(func(tx *gorm.DB) error { return tx.First(&x, u.ID).Error }))
	})
	if len(nodes) < 5 || slices.ContainsFunc(nodes, isReplica) {
		t.Errorf("after Close, statements ran on %v; want all on the primary", nodes)
	}
}

// TestUsageSafetyMariaDB: the MySQL-dialect cases on real MariaDB GTID
// replication.
func TestUsageSafetyMariaDB(t *testing.T) {
	c, my := mariaCluster(t, clusterOpts{})
	u := setupRouting(t, c, my.WaitCaughtUp)
	runRouting(t, c, []routeCase{
		{name: "Find with GET_LOCK in Where", marker: "GET_LOCK", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var x []rtUser
			noErr(t, db.Where("GET_LOCK(CONCAT('rtu', id), 0) = 1").Find(&x).Error)
			noErr(t, db.Exec("SELECT RELEASE_ALL_LOCKS()").Error)
		}},
		{name: "Select of LAST_INSERT_ID", marker: "LAST_INSERT_ID", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var ids []int64
			noErr(t, db.Model(&rtUser{}).Select("LAST_INSERT_ID()").Limit(1).Scan(&ids).Error)
		}},
		{name: "Exec of a SELECT", marker: "rtu_exec", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.Exec("SELECT 1 AS rtu_exec").Error)
		}},
		{name: "subquery FOR UPDATE", marker: "FOR UPDATE", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var x []rtUser
			sub := db.Model(&rtPet{}).Select("owner_id").Clauses(clause.Locking{Strength: "UPDATE"})
			noErr(t, db.Where("id IN (?)", sub).Find(&x).Error)
		}},
		{name: "SERIALIZABLE READ ONLY transaction runs on a replica", marker: "rt_users", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.Transaction(func(tx *gorm.DB) error {
				var x rtUser
				return tx.First(&x, u.ID).Error
			}, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelSerializable}))
		}},
		{name: "dbresolver.Write", marker: "rt_users", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var x rtUser
			noErr(t, db.Clauses(dbresolver.Write).First(&x, u.ID).Error)
		}},
	})
}

// rtHookUser is rtUser with an AfterFind hook that writes in a transaction.
type rtHookUser struct {
	ID   uint
	Name string
}

func (rtHookUser) TableName() string { return "rt_users" }

func (u *rtHookUser) AfterFind(tx *gorm.DB) error {
	return tx.Transaction(func(tx2 *gorm.DB) error {
		return tx2.Create(&rtPet{OwnerID: u.ID, Name: "hook"}).Error
	})
}

// TestStickyReadOnlyTx: a sticky user's read-only transaction sees their
// last write while no replica has replayed it.
func TestStickyReadOnlyTx(t *testing.T) {
	c, pg := pgCluster(t, clusterOpts{})
	setupPosts(t, c, pg.WaitCaughtUp)
	for _, r := range pg.Replicas {
		noErr(t, r.PauseReplay(t.Context()))
	}
	ctx := rwsplit.WithUser(context.Background(), "ro-writer")
	for i := range 20 {
		p := rtPost{Author: "ro", Body: strconv.Itoa(i)}
		noErr(t, c.DB.WithContext(ctx).Create(&p).Error)
		var got rtPost
		nodes := c.served("rt_posts", func() {
			noErr(t, c.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				return tx.First(&got, p.ID).Error
			}, &sql.TxOptions{ReadOnly: true}))
		})
		if got.ID != p.ID || !allOn(nodes, func(n string) bool { return n == "primary" }) {
			t.Fatalf("round %d: read-only transaction read %d on %v, want %d on the primary", i, got.ID, nodes, p.ID)
		}
	}
	// Another user's read-only transaction still runs on a replica.
	nodes := c.served("rt_posts", func() {
		noErr(t, c.DB.Transaction(func(tx *gorm.DB) error {
			var x rtPost
			return tx.First(&x, 1).Error
		}, &sql.TxOptions{ReadOnly: true}))
	})
	if !allOn(nodes, isReplica) {
		t.Errorf("a read-only transaction with no user ran on %v, want a replica", nodes)
	}
}

// TestRowScanNoReplica: with FallbackFail and every replica out of
// service, Row().Scan returns ErrNoReplica.
func TestRowScanNoReplica(t *testing.T) {
	c, pg := pgCluster(t, clusterOpts{config: rwsplit.Config{Fallback: rwsplit.FallbackFail}})
	setupPosts(t, c, pg.WaitCaughtUp)
	for _, r := range pg.Replicas {
		noErr(t, r.PauseReplay(t.Context()))
	}
	// The primary must move for a paused replica to fall behind.
	deadline := time.Now().Add(20 * time.Second)
	for evicted := false; !evicted; {
		if time.Now().After(deadline) {
			t.Fatalf("replicas not evicted within 20s: %+v", c.Plugin.Stats().Replicas)
		}
		noErr(t, c.DB.Create(&rtPost{Author: "tick"}).Error)
		evicted = true
		for _, r := range c.Plugin.Stats().Replicas {
			evicted = evicted && !r.Eligible
		}
		time.Sleep(20 * time.Millisecond) // the primary's write rate while waiting
	}
	var n int64
	err := c.DB.Model(&rtPost{}).Select("count(*)").Row().Scan(&n)
	if !errors.Is(err, rwsplit.ErrNoReplica) {
		t.Errorf("Row().Scan = %v, want ErrNoReplica", err)
	}
}

// proxied is a replica reached through a testdb proxy.
type proxied struct {
	node  *testdb.PGNode
	proxy *testdb.Proxy
	t     testing.TB
}

func (p proxied) OpenDB(rec *testdb.Recorder) *sql.DB { return openViaProxy(p.t, p.node, p.proxy, rec) }

// TestRetryKeepsTheBound: a causal read whose replica fails to connect runs
// again only where its bound holds (the primary), not on a replica that
// lacks the user's write.
func TestRetryKeepsTheBound(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	proxy := dbtest.Proxy(t, pg.Replicas[1].Addr())
	newDialector := func(db *sql.DB) gorm.Dialector { return postgres.New(postgres.Config{Conn: db}) }
	// Probes every 2s: the read below runs right after the probe that saw
	// replica2 cover the write, long before the next one. MaxLag 1h keeps
	// the paused replica1 eligible for plain reads.
	c := openOn(t, newDialector, pg.Primary, []node{pg.Replicas[0], proxied{pg.Replicas[1], proxy, t}},
		clusterOpts{config: rwsplit.Config{Lag: lagcheck.Config{Interval: 2 * time.Second, MaxLag: time.Hour}}})
	setupPosts(t, c, pg.WaitCaughtUp)
	noErr(t, pg.Replicas[0].PauseReplay(t.Context()))

	ctx := rwsplit.WithUser(context.Background(), "retry-user")
	p := rtPost{Author: "retry", Body: "x"}
	noErr(t, c.DB.WithContext(ctx).Create(&p).Error)
	// Wait until a causal read of the user is served by replica2.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got rtPost
		nodes := c.served("rt_posts", func() { noErr(t, c.DB.WithContext(ctx).First(&got, p.ID).Error) })
		if slices.Equal(nodes, []string{"replica2"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica2 never served the user's causal read (last on %v)", nodes)
		}
		time.Sleep(10 * time.Millisecond) // poll the next probe's result
	}
	before := c.Plugin.Stats().Routes[rwsplit.ReasonRetry]
	noErr(t, proxy.Close()) // replica2's connections break; new ones are refused
	c.takeRoutes()
	var got rtPost
	nodes := c.served("rt_posts", func() { noErr(t, c.DB.WithContext(ctx).First(&got, p.ID).Error) })
	retries := c.Plugin.Stats().Routes[rwsplit.ReasonRetry] - before
	var routed []string
	for _, r := range c.takeRoutes() {
		routed = append(routed, r.Node)
	}
	// Routed to replica2, which failed, then retried on the primary. The
	// driver sees the attempt on replica2 only when it got as far as the
	// server: pgx pings a connection idle for over a second before
	// reusing it, and database/sql then dials a new one, which is refused.
	if got.ID != p.ID || !slices.Equal(routed, []string{"replica2", "primary"}) || len(nodes) == 0 || nodes[len(nodes)-1] != "primary" || slices.Contains(nodes, "replica1") || retries != 1 {
		t.Errorf("after replica2 failed: read %d routed to %v, run on %v, with %d retries; want %d routed to [replica2 primary], run last on the primary, after 1 retry", got.ID, routed, nodes, retries, p.ID)
	}
}
