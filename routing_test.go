package rwsplit_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/policy"
)

// rtUser and rtPet are the models of the routing tests.
type rtUser struct {
	ID   uint
	Name string
	Age  int
	Pets []rtPet `gorm:"foreignKey:OwnerID"`
}

type rtPet struct {
	ID      uint
	OwnerID uint
	Owner   *rtUser
	Name    string
}

// want says where a case's statements must run.
type want int

const (
	onPrimary  want = iota
	onReplica       // any replica
	onReplica2      // replica2 exactly
)

func (w want) String() string {
	return [...]string{"primary", "a replica", "replica2"}[w]
}

func (w want) ok(node string) bool {
	switch w {
	case onPrimary:
		return node == "primary"
	case onReplica:
		return isReplica(node)
	default:
		return node == "replica2"
	}
}

// routeCase is one statement (or a few) and where it must run. Every
// statement recorded at the driver whose SQL contains marker is checked.
type routeCase struct {
	name   string
	marker string // default "rt_"
	want   want
	run    func(t *testing.T, db *gorm.DB)
}

// setupRouting creates the routing schema on the primary with one user and
// two pets, and waits until the replicas have it (waitCaughtUp, within 10s).
func setupRouting(t *testing.T, c *cluster, waitCaughtUp func(context.Context) error) rtUser {
	t.Helper()
	m := c.DB.Migrator()
	if err := m.DropTable(&rtPet{}, &rtUser{}); err != nil {
		t.Fatal(err)
	}
	if err := c.DB.AutoMigrate(&rtUser{}, &rtPet{}); err != nil {
		t.Fatal(err)
	}
	u := rtUser{Name: "ada", Age: 36, Pets: []rtPet{{Name: "rex"}, {Name: "tom"}}}
	if err := c.DB.Create(&u).Error; err != nil {
		t.Fatal(err)
	}
	dbtest.Within(t, 10*time.Second, waitCaughtUp)
	return u
}

// commonCases hold for every dialect.
func commonCases(u rtUser) []routeCase {
	id := u.ID
	return []routeCase{
		// Writes.
		{name: "Create", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.Create(&rtUser{Name: "c"}).Error)
		}},
		{name: "Create with associations", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.Create(&rtUser{Name: "c", Pets: []rtPet{{Name: "p"}}}).Error)
		}},
		{name: "CreateInBatches", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.CreateInBatches([]rtUser{{Name: "b1"}, {Name: "b2"}, {Name: "b3"}}, 2).Error)
		}},
		{name: "Save", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.Save(&rtUser{ID: id, Name: "ada", Age: 36}).Error)
		}},
		{name: "Update", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.Model(&rtUser{ID: id}).Update("age", 37).Error)
		}},
		{name: "Updates", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.Model(&rtUser{ID: id}).Updates(map[string]any{"age": 36}).Error)
		}},
		{name: "UpdateColumn", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.Model(&rtUser{ID: id}).UpdateColumn("age", gorm.Expr("age + 0")).Error)
		}},
		{name: "Delete", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.Where("name = ?", "nobody").Delete(&rtUser{}).Error)
		}},
		{name: "Association Append", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.Model(&rtUser{ID: id}).Association("Pets").Append(&rtPet{Name: "new"}))
		}},
		{name: "Association Clear", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var x rtUser
			noErr(t, db.Create(&x).Error)
			noErr(t, db.Model(&x).Association("Pets").Clear())
		}},
		{name: "generics Create", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, gorm.G[rtUser](db).Create(context.Background(), &rtUser{Name: "g"}))
		}},
		{name: "generics Update", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			_, err := gorm.G[rtUser](db).Where("id = ?", id).Update(context.Background(), "age", 36)
			noErr(t, err)
		}},

		// Reads.
		{name: "First", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var x rtUser
			noErr(t, db.First(&x, id).Error)
		}},
		{name: "Find", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var x []rtUser
			noErr(t, db.Where("age > ?", 1).Find(&x).Error)
		}},
		{name: "Take", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var x rtUser
			noErr(t, db.Take(&x).Error)
		}},
		{name: "Last", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var x rtUser
			noErr(t, db.Last(&x).Error)
		}},
		{name: "Count", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var n int64
			noErr(t, db.Model(&rtUser{}).Count(&n).Error)
		}},
		{name: "Pluck", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var names []string
			noErr(t, db.Model(&rtUser{}).Pluck("name", &names).Error)
		}},
		{name: "Scan", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var r struct{ Name string }
			noErr(t, db.Model(&rtUser{}).Select("name").Where("id = ?", id).Scan(&r).Error)
		}},
		{name: "Preload", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var x rtUser
			noErr(t, db.Preload("Pets").First(&x, id).Error)
			if len(x.Pets) < 2 {
				t.Errorf("preloaded %d pets, want >= 2", len(x.Pets))
			}
		}},
		{name: "Joins", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var pets []rtPet
			noErr(t, db.Joins("Owner").Find(&pets).Error)
		}},
		{name: "Association Find", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var pets []rtPet
			noErr(t, db.Model(&rtUser{ID: id}).Association("Pets").Find(&pets))
		}},
		{name: "Row", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var name string
			noErr(t, db.Model(&rtUser{}).Select("name").Where("id = ?", id).Row().Scan(&name))
		}},
		{name: "Rows", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			rows, err := db.Model(&rtUser{}).Select("name").Rows()
			noErr(t, err)
			for rows.Next() {
			}
			noErr(t, rows.Close())
		}},
		{name: "FindInBatches", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var batch []rtUser
			noErr(t, db.FindInBatches(&batch, 1, func(*gorm.DB, int) error { return nil }).Error)
		}},
		{name: "generics First", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			_, err := gorm.G[rtUser](db).Where("id = ?", id).First(context.Background())
			noErr(t, err)
		}},
		{name: "generics Find", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			_, err := gorm.G[rtUser](db).Find(context.Background())
			noErr(t, err)
		}},
		{name: "WithContext", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var x rtUser
			noErr(t, db.WithContext(context.Background()).First(&x, id).Error)
		}},
		{name: "Session", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var x rtUser
			s := db.Session(&gorm.Session{})
			noErr(t, s.First(&x, id).Error)
			noErr(t, s.First(&x, id).Error)
		}},
		{name: "Scopes", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var x []rtUser
			adults := func(d *gorm.DB) *gorm.DB { return d.Where("age >= ?", 18) }
			noErr(t, db.Scopes(adults).Find(&x).Error)
		}},
		{name: "Raw Scan", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var n int64
			noErr(t, db.Raw("SELECT count(*) FROM rt_users").Scan(&n).Error)
		}},
		{name: "Raw comment and parentheses", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var n []int64
			noErr(t, db.Raw("/* report */ (SELECT id FROM rt_users) UNION (SELECT id FROM rt_pets)").Scan(&n).Error)
		}},
		{name: "Raw WITH SELECT", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var n int64
			noErr(t, db.Raw("WITH a AS (SELECT id FROM rt_users) SELECT count(*) FROM a").Scan(&n).Error)
		}},
		{name: "Raw Rows", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			rows, err := db.Raw("SELECT name FROM rt_users").Rows()
			noErr(t, err)
			noErr(t, rows.Close())
		}},
		{name: "Raw Row", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var n int64
			noErr(t, db.Raw("SELECT count(*) FROM rt_users").Row().Scan(&n))
		}},
		{name: "Raw EXPLAIN", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			rows, err := db.Raw("EXPLAIN SELECT * FROM rt_users").Rows()
			noErr(t, err)
			noErr(t, rows.Close())
		}},

		// Reads that must run on the primary.
		{name: "locking FOR UPDATE clause", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var x rtUser
			noErr(t, db.Clauses(clause.Locking{Strength: "UPDATE"}).First(&x, id).Error)
		}},
		{name: "locking FOR SHARE clause", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var x rtUser
			noErr(t, db.Clauses(clause.Locking{Strength: "SHARE"}).First(&x, id).Error)
		}},
		{name: "Raw FOR UPDATE", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var n []int64
			noErr(t, db.Raw("SELECT id FROM rt_users WHERE id = ? FOR UPDATE", id).Scan(&n).Error)
		}},
		{name: "Raw FOR UPDATE NOWAIT", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var n []int64
			noErr(t, db.Raw("SELECT id FROM rt_users WHERE id = ? FOR UPDATE NOWAIT", id).Scan(&n).Error)
		}},
		{name: "Clauses(Primary) First", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var x rtUser
			noErr(t, db.Clauses(rwsplit.Primary).First(&x, id).Error)
		}},
		{name: "Clauses(Primary) Raw", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var n int64
			noErr(t, db.Clauses(rwsplit.Primary).Raw("SELECT count(*) FROM rt_users").Scan(&n).Error)
		}},
		{name: "Clauses(Primary) Count", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var n int64
			noErr(t, db.Clauses(rwsplit.Primary).Model(&rtUser{}).Count(&n).Error)
		}},
		{name: "Clauses(Primary) generics", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			_, err := gorm.G[rtUser](db, rwsplit.Primary).Where("id = ?", id).First(context.Background())
			noErr(t, err)
		}},
		{name: "Clauses(Replica) by name", want: onReplica2, run: func(t *testing.T, db *gorm.DB) {
			for range 4 {
				var x rtUser
				noErr(t, db.Clauses(rwsplit.Replica{Name: "replica2"}).First(&x, id).Error)
			}
		}},
		{name: "Raw Exec UPDATE", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.Exec("UPDATE rt_users SET age = age WHERE id = ?", id).Error)
		}},
		{name: "Raw Scan of a writing statement", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var n []int64
			noErr(t, db.Raw("DELETE FROM rt_pets WHERE name = 'nobody'").Scan(&n).Error)
		}},

		// Transactions.
		{name: "Transaction", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.Transaction(func(tx *gorm.DB) error {
				var x rtUser
				if err := tx.First(&x, id).Error; err != nil {
					return err
				}
				var n int64
				if err := tx.Raw("SELECT count(*) FROM rt_users").Scan(&n).Error; err != nil {
					return err
				}
				return tx.Model(&x).Update("age", 36).Error
			}))
		}},
		{name: "nested Transaction", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.Transaction(func(tx *gorm.DB) error {
				return tx.Transaction(func(tx2 *gorm.DB) error {
					var x []rtUser
					return tx2.Find(&x).Error
				})
			}))
		}},
		{name: "Begin", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			tx := db.Begin()
			noErr(t, tx.Error)
			var x []rtUser
			noErr(t, tx.Find(&x).Error)
			noErr(t, tx.Commit().Error)
		}},
		{name: "Begin with Clauses(Replica) in tx still primary", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			tx := db.Begin()
			var x []rtUser
			noErr(t, tx.Clauses(rwsplit.Replica{}).Find(&x).Error)
			noErr(t, tx.Rollback().Error)
		}},
		{name: "Connection", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.Connection(func(tx *gorm.DB) error {
				var x []rtUser
				return tx.Find(&x).Error
			}))
		}},

		// The Migrator's schema reads see its schema writes.
		{name: "AutoMigrate", marker: "rt_", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.AutoMigrate(&rtUser{}, &rtPet{}))
		}},
		{name: "Migrator HasTable", marker: "information_schema", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			if !db.Migrator().HasTable(&rtUser{}) {
				t.Error("HasTable = false")
			}
		}},
		{name: "Migrator ColumnTypes", marker: "rt_users", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			_, err := db.Migrator().ColumnTypes(&rtUser{})
			noErr(t, err)
		}},
	}
}

func pgCases(u rtUser) []routeCase {
	return []routeCase{
		{name: "Raw TABLE", marker: "TABLE rt_", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var x []rtUser
			noErr(t, db.Raw("TABLE rt_users").Scan(&x).Error)
		}},
		{name: "Raw VALUES", marker: "rt_values", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var n []int64
			noErr(t, db.Raw("VALUES (1) /* rt_values */").Scan(&n).Error)
		}},
		{name: "Raw SHOW", marker: "rt_show", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			var v string
			noErr(t, db.Raw("SHOW server_version /* rt_show */").Scan(&v).Error)
		}},
		{name: "Raw FOR SHARE", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var n []int64
			noErr(t, db.Raw("SELECT id FROM rt_users FOR SHARE").Scan(&n).Error)
		}},
		{name: "Raw FOR NO KEY UPDATE SKIP LOCKED", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var n []int64
			noErr(t, db.Raw("SELECT id FROM rt_users FOR NO KEY UPDATE SKIP LOCKED").Scan(&n).Error)
		}},
		{name: "Raw FOR KEY SHARE OF", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var n []int64
			noErr(t, db.Raw("SELECT u.id FROM rt_users u FOR KEY SHARE OF u").Scan(&n).Error)
		}},
		{name: "Raw nextval", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var n int64
			noErr(t, db.Raw("SELECT nextval('rt_users_id_seq')").Scan(&n).Error)
		}},
		{name: "Raw writing CTE", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var n int64
			noErr(t, db.Raw("WITH d AS (DELETE FROM rt_pets WHERE name = 'nobody' RETURNING id) SELECT count(*) FROM d").Scan(&n).Error)
		}},
		{name: "Raw SELECT INTO", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.Exec("DROP TABLE IF EXISTS rt_copy").Error)
			noErr(t, db.Exec("SELECT * INTO rt_copy FROM rt_users").Error)
		}},
		{name: "Raw advisory lock", marker: "rt_lock", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var ok bool
			noErr(t, db.Raw("SELECT pg_try_advisory_lock(42) /* rt_lock */").Scan(&ok).Error)
			noErr(t, db.Raw("SELECT pg_advisory_unlock(42) /* rt_lock */").Scan(&ok).Error)
		}},
		{name: "Raw EXPLAIN ANALYZE", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			rows, err := db.Raw("EXPLAIN ANALYZE SELECT * FROM rt_users").Rows()
			noErr(t, err)
			noErr(t, rows.Close())
		}},
		{name: "Raw set_config", marker: "rt_cfg", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var s string
			noErr(t, db.Raw("SELECT set_config('application_name', 'rt_cfg', false)").Scan(&s).Error)
		}},
	}
}

func mariaCases(u rtUser) []routeCase {
	return []routeCase{
		{name: "Raw SHOW", marker: "rt_users", want: onReplica, run: func(t *testing.T, db *gorm.DB) {
			rows, err := db.Raw("SHOW COLUMNS FROM rt_users").Rows()
			noErr(t, err)
			noErr(t, rows.Close())
		}},
		{name: "Raw LOCK IN SHARE MODE", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var n []int64
			noErr(t, db.Raw("SELECT id FROM rt_users LOCK IN SHARE MODE").Scan(&n).Error)
		}},
		{name: "Raw GET_LOCK", marker: "rt_lock", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var n int
			noErr(t, db.Raw("SELECT GET_LOCK('rt_lock', 0)").Scan(&n).Error)
			noErr(t, db.Raw("SELECT RELEASE_LOCK('rt_lock')").Scan(&n).Error)
		}},
		{name: "Raw LAST_INSERT_ID", marker: "rt_lid", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			var n int64
			noErr(t, db.Raw("SELECT LAST_INSERT_ID() AS rt_lid").Scan(&n).Error)
		}},
		{name: "Raw nextval", marker: "rt_seq", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.Exec("CREATE SEQUENCE IF NOT EXISTS rt_seq").Error)
			var n int64
			noErr(t, db.Raw("SELECT NEXTVAL(rt_seq)").Scan(&n).Error)
		}},
		{name: "Raw SELECT INTO variable", marker: "rt_users", want: onPrimary, run: func(t *testing.T, db *gorm.DB) {
			noErr(t, db.Exec("SELECT count(*) INTO @rt_n FROM rt_users").Error)
		}},
	}
}

// runRouting runs every case and checks, at the driver, which node ran each
// of its statements.
func runRouting(t *testing.T, c *cluster, cases []routeCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			marker := tc.marker
			if marker == "" {
				marker = "rt_"
			}
			nodes := c.served(marker, func() { tc.run(t, c.DB) })
			if len(nodes) == 0 {
				t.Fatalf("no statement containing %q reached any node", marker)
			}
			for _, n := range nodes {
				if !tc.want.ok(n) {
					t.Fatalf("served by %v, want every statement on %v", nodes, tc.want)
				}
			}
		})
	}
}

// TestRouting runs every routing case on PostgreSQL and on MariaDB, with
// and without GORM's PrepareStmt.
func TestRouting(t *testing.T) {
	for _, db := range []struct {
		name  string
		open  func(t *testing.T, o clusterOpts) (*cluster, func(context.Context) error)
		cases func(rtUser) []routeCase
	}{
		{"postgres", func(t *testing.T, o clusterOpts) (*cluster, func(context.Context) error) {
			c, pg := pgCluster(t, o)
			return c, pg.WaitCaughtUp
		}, pgCases},
		{"mariadb", func(t *testing.T, o clusterOpts) (*cluster, func(context.Context) error) {
			c, my := mariaCluster(t, o)
			return c, my.WaitCaughtUp
		}, mariaCases},
	} {
		for _, prepare := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/PrepareStmt=%v", db.name, prepare), func(t *testing.T) {
				c, wait := db.open(t, clusterOpts{gorm: gorm.Config{PrepareStmt: prepare}, config: rwsplit.Config{Policy: policy.RoundRobin()}})
				u := setupRouting(t, c, wait)
				runRouting(t, c, append(commonCases(u), db.cases(u)...))
				t.Run("both replicas serve reads", func(t *testing.T) { bothReplicasServe(t, c, u) })
				t.Run("read-only transactions", func(t *testing.T) { readOnlyTx(t, c, u) })
			})
		}
	}
}

// bothReplicasServe checks that reads are spread over the replicas and that
// the routing record names the node that really ran each statement.
func bothReplicasServe(t *testing.T, c *cluster, u rtUser) {
	c.takeRoutes()
	nodes := c.served("rt_users", func() {
		for range 40 {
			var x rtUser
			noErr(t, c.DB.First(&x, u.ID).Error)
		}
	})
	routes := c.takeRoutes()
	if len(nodes) != 40 || len(routes) != 40 {
		t.Fatalf("%d statements and %d routes, want 40 of each", len(nodes), len(routes))
	}
	for i, r := range routes {
		if r.Node != nodes[i] || r.Reason != rwsplit.ReasonRead {
			t.Fatalf("route %d = %+v, but the driver saw %s", i, r, nodes[i])
		}
	}
	for _, name := range []string{"replica1", "replica2"} {
		if !slices.Contains(nodes, name) {
			t.Errorf("%s served none of 40 reads: %v", name, nodes)
		}
	}
}

// readOnlyTx checks transactions that run on a replica: all their
// statements on one replica, and a write inside fails with ErrReadOnly
// without reaching any server.
func readOnlyTx(t *testing.T, c *cluster, u rtUser) {
	begins := map[string]func(fn func(tx *gorm.DB) error) error{
		"Clauses(Replica).Transaction": func(fn func(tx *gorm.DB) error) error {
			return c.DB.Clauses(rwsplit.Replica{}).Transaction(fn)
		},
		"TxOptions ReadOnly": func(fn func(tx *gorm.DB) error) error {
			return c.DB.Transaction(fn, &sql.TxOptions{ReadOnly: true})
		},
		"Clauses(Replica).Begin": func(fn func(tx *gorm.DB) error) error {
			tx := c.DB.Clauses(rwsplit.Replica{}).Begin()
			if tx.Error != nil {
				return tx.Error
			}
			err := fn(tx)
			if rerr := tx.Rollback().Error; err == nil {
				err = rerr
			}
			return err
		},
	}
	for name, begin := range begins {
		t.Run(name, func(t *testing.T) {
			for range 6 { // several times, so that a per-statement pick would show
				var writeErr, execErr error
				nodes := c.served("rt_", func() {
					noErr(t, begin(func(tx *gorm.DB) error {
						var x rtUser
						if err := tx.First(&x, u.ID).Error; err != nil {
							return err
						}
						var n int64
						if err := tx.Model(&rtUser{}).Count(&n).Error; err != nil {
							return err
						}
						writeErr = tx.Create(&rtUser{Name: "rt_never"}).Error
						execErr = tx.Exec("UPDATE rt_users SET name = 'rt_never' WHERE id = ?", u.ID).Error
						var names []string
						return tx.Model(&rtUser{}).Pluck("name", &names).Error
					}))
				})
				if len(nodes) != 3 || !isReplica(nodes[0]) || nodes[1] != nodes[0] || nodes[2] != nodes[0] {
					t.Fatalf("statements ran on %v, want 3 on one replica", nodes)
				}
				if !errors.Is(writeErr, rwsplit.ErrReadOnly) || !errors.Is(execErr, rwsplit.ErrReadOnly) {
					t.Fatalf("writes in a replica transaction: Create err %v, Exec err %v; want ErrReadOnly", writeErr, execErr)
				}
			}
			if got := c.rec.Find("rt_never"); len(got) != 0 {
				t.Fatalf("a write in a replica transaction reached %v", got)
			}
		})
	}
}

// TestFirstOrCreate documents what GORM's read-then-write helpers do: the
// read goes to a replica and the write to the primary, so on a replica
// that has not replayed the row yet, FirstOrCreate inserts it again. Run
// both on the primary with Clauses(rwsplit.Primary).
func TestFirstOrCreate(t *testing.T) {
	c, pg := pgCluster(t, clusterOpts{config: rwsplit.Config{Policy: policy.RoundRobin()}})
	u := setupRouting(t, c, pg.WaitCaughtUp)
	_ = u
	for _, r := range pg.Replicas {
		noErr(t, r.PauseReplay(t.Context()))
	}
	noErr(t, c.DB.Create(&rtUser{Name: "rt_foc"}).Error)

	// Plain: the replica does not have the row, so GORM inserts a second.
	var got rtUser
	nodes := c.served("rt_users", func() {
		noErr(t, c.DB.Where(rtUser{Name: "rt_foc"}).FirstOrCreate(&got).Error)
	})
	if len(nodes) != 2 || !isReplica(nodes[0]) || nodes[1] != "primary" {
		t.Fatalf("FirstOrCreate ran on %v, want [replica primary]", nodes)
	}
	var n int64
	noErr(t, c.DB.Clauses(rwsplit.Primary).Model(&rtUser{}).Where("name = ?", "rt_foc").Count(&n).Error)
	if n != 2 {
		t.Fatalf("%d rows named rt_foc, want 2 (the documented duplicate)", n)
	}

	// With Clauses(rwsplit.Primary) the read sees the row: no insert.
	nodes = c.served("rt_users", func() {
		var x rtUser
		noErr(t, c.DB.Clauses(rwsplit.Primary).Where(rtUser{Name: "rt_foc"}).FirstOrCreate(&x).Error)
		if x.ID == 0 {
			t.Error("FirstOrCreate on the primary found nothing")
		}
		var y rtUser
		noErr(t, c.DB.Clauses(rwsplit.Primary).Where(rtUser{Name: "rt_foi"}).FirstOrInit(&y).Error)
	})
	if want := []string{"primary", "primary"}; !slices.Equal(nodes, want) {
		t.Fatalf("Clauses(Primary).FirstOrCreate + FirstOrInit ran %v, want %v", nodes, want)
	}

	// FirstOrInit never writes: it reads on a replica.
	nodes = c.served("rt_users", func() {
		var y rtUser
		noErr(t, c.DB.Where(rtUser{Name: "rt_foi"}).FirstOrInit(&y).Error)
		if y.ID != 0 || y.Name != "rt_foi" {
			t.Errorf("FirstOrInit = %+v", y)
		}
	})
	if len(nodes) != 1 || !isReplica(nodes[0]) {
		t.Fatalf("FirstOrInit ran on %v, want one replica", nodes)
	}
	for _, r := range pg.Replicas {
		noErr(t, r.ResumeReplay(t.Context()))
	}
}
