package rwsplit_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/stickiness"
)

// Table-mode tests: the replicas stop applying (PostgreSQL: replay paused;
// MariaDB: a 5s apply delay) while staying eligible (MaxLag 1h), so a
// read that a replica serves misses every write made after the pause. A
// read in table mode of a table written since must run on the primary:
// each case asserts that at the driver.

// tableModeConfig is table mode with replicas that stay eligible however
// far behind they are.
func tableModeConfig() rwsplit.Config {
	return rwsplit.Config{
		Stickiness: stickiness.Config{Tables: true},
		Lag:        lagcheck.Config{MaxLag: time.Hour},
	}
}

type rtTmOwner struct {
	ID    int64
	Name  string
	Items []rtTmItem `gorm:"foreignKey:OwnerID"`
}

type rtTmItem struct {
	ID      int64
	OwnerID int64
	Name    string
}

// plainDB opens a node without rwsplit, so that setting up marks nothing.
func plainDB(t *testing.T, d gorm.Dialector) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(d, &gorm.Config{Logger: logger.Discard})
	noErr(t, err)
	t.Cleanup(func() {
		if s, err := db.DB(); err == nil {
			s.Close()
		}
	})
	return db
}

// setupTableMode creates, on the primary and without rwsplit, the tables
// rt_tm_owners and rt_tm_items with one owner and one item, and plain
// tables rt_tm_<name> (id, name) with one row named "seed"; it waits for
// the replicas to replay them.
func setupTableMode(t *testing.T, db *gorm.DB, waitCaughtUp func(context.Context) error, names ...string) {
	t.Helper()
	m := db.Migrator()
	noErr(t, m.DropTable(&rtTmItem{}, &rtTmOwner{}))
	noErr(t, db.AutoMigrate(&rtTmOwner{}, &rtTmItem{}))
	noErr(t, db.Create(&rtTmOwner{Name: "seed", Items: []rtTmItem{{Name: "seed"}}}).Error)
	for _, n := range names {
		tbl := "rt_tm_" + n
		noErr(t, db.Exec("DROP TABLE IF EXISTS "+tbl).Error)
		noErr(t, db.Exec("CREATE TABLE "+tbl+" (id int PRIMARY KEY, name varchar(50))").Error)
		noErr(t, db.Exec("INSERT INTO "+tbl+" (id, name) VALUES (1, 'seed')").Error)
	}
	dbtest.Within(t, 10*time.Second, waitCaughtUp)
}

// ranOnPrimary runs fn and fails unless each statement naming marker ran on
// the primary (the replicas are behind: a replica would miss the write).
func ranOnPrimary(t *testing.T, c *cluster, marker string, fn func()) {
	t.Helper()
	if nodes := c.served(marker, fn); !allOn(nodes, func(n string) bool { return n == "primary" }) {
		t.Errorf("reads of %s ran on %v, want the primary", marker, nodes)
	}
}

// count returns the rows of table named name, read through c.
func count(t *testing.T, db *gorm.DB, table, name string) int64 {
	t.Helper()
	var n int64
	if err := db.Table(table).Where("name = ?", name).Count(&n).Error; err != nil {
		t.Errorf("count %s: %v", table, err)
	}
	return n
}

func pgTableMode(t *testing.T, names ...string) *cluster {
	t.Helper()
	pg := dbtest.Postgres(t, 2)
	setupTableMode(t, plainDB(t, postgres.New(postgres.Config{Conn: pg.Primary.OpenDB(nil)})), pg.WaitCaughtUp, names...)
	for _, r := range pg.Replicas {
		noErr(t, r.PauseReplay(t.Context()))
	}
	return pgOn(t, pg, clusterOpts{config: tableModeConfig()})
}

// TestTableModeRawWrites: raw writes and DDL run through Exec or
// Raw().Scan mark the tables they write; DDL marks every table.
func TestTableModeRawWrites(t *testing.T) {
	c := pgTableMode(t, "insert", "update", "delete", "truncate", "returning", "alter", "other")
	db := c.DB
	cases := []struct {
		name  string
		write func() error
		read  func(t *testing.T)
	}{
		{"exec insert", func() error { return db.Exec("INSERT INTO rt_tm_insert (id, name) VALUES (2, 'new')").Error },
			func(t *testing.T) {
				if n := count(t, db, "rt_tm_insert", "new"); n != 1 {
					t.Errorf("read %d inserted rows, want 1", n)
				}
			}},
		{"exec update", func() error { return db.Exec("UPDATE rt_tm_update SET name = 'changed' WHERE id = 1").Error },
			func(t *testing.T) {
				if n := count(t, db, "rt_tm_update", "changed"); n != 1 {
					t.Errorf("read %d updated rows, want 1", n)
				}
			}},
		{"exec delete", func() error { return db.Exec("DELETE FROM rt_tm_delete WHERE id = 1").Error },
			func(t *testing.T) {
				if n := count(t, db, "rt_tm_delete", "seed"); n != 0 {
					t.Errorf("read %d deleted rows, want 0", n)
				}
			}},
		{"exec truncate", func() error { return db.Exec("TRUNCATE rt_tm_truncate").Error },
			func(t *testing.T) {
				if n := count(t, db, "rt_tm_truncate", "seed"); n != 0 {
					t.Errorf("read %d rows after TRUNCATE, want 0", n)
				}
			}},
		{"raw insert returning scan", func() error {
			var id int64
			return db.Raw("INSERT INTO rt_tm_returning (id, name) VALUES (2, 'new') RETURNING id").Scan(&id).Error
		}, func(t *testing.T) {
			if n := count(t, db, "rt_tm_returning", "new"); n != 1 {
				t.Errorf("read %d inserted rows, want 1", n)
			}
		}},
		// DDL last: its mark covers every table.
		{"exec alter table", func() error { return db.Exec("ALTER TABLE rt_tm_alter ADD COLUMN extra text").Error },
			func(t *testing.T) {
				var extra []sql.NullString
				if err := db.Raw("SELECT extra FROM rt_tm_alter").Scan(&extra).Error; err != nil {
					t.Errorf("read of the new column: %v", err)
				}
				if n := count(t, db, "rt_tm_other", "seed"); n != 1 {
					t.Errorf("read %d rows of another table, want 1", n)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ranOnPrimary(t, c, "rt_tm_", func() {
				noErr(t, tc.write())
				tc.read(t)
			})
		})
	}
}

// TestTableModeReads: reads are checked against every table they read:
// raw SQL (FROM, JOIN, subqueries; a read whose tables are unknown against
// the newest write of any table), and GORM's Joins, subqueries and
// Preload. Reads of other tables keep using the replicas.
func TestTableModeReads(t *testing.T) {
	c := pgTableMode(t, "unwritten")
	db := c.DB
	item := rtTmItem{OwnerID: 1, Name: "new"}
	noErr(t, db.Create(&item).Error)
	countRaw := func(q string) func(t *testing.T) {
		return func(t *testing.T) {
			var n int64
			noErr(t, db.Raw(q, "new").Scan(&n).Error)
			if n != 1 {
				t.Errorf("%s: %d, want 1", q, n)
			}
		}
	}
	countOwners := func(q *gorm.DB) func(t *testing.T) {
		return func(t *testing.T) {
			var n int64
			noErr(t, q.Model(&rtTmOwner{}).Count(&n).Error)
			if n != 1 {
				t.Errorf("%d owners, want 1", n)
			}
		}
	}
	cases := []struct {
		name string
		read func(t *testing.T)
	}{
		{"raw from", countRaw("SELECT count(*) FROM rt_tm_items WHERE name = ?")},
		{"raw join", countRaw("SELECT count(*) FROM rt_tm_owners o JOIN rt_tm_items i ON i.owner_id = o.id WHERE i.name = ?")},
		{"raw subquery", countRaw("SELECT count(*) FROM rt_tm_owners WHERE id IN (SELECT owner_id FROM rt_tm_items WHERE name = ?)")},
		{"raw lateral (tables unknown)", countRaw("SELECT c.n FROM rt_tm_owners o, LATERAL (SELECT count(*) AS n FROM rt_tm_items i WHERE i.owner_id = o.id AND i.name = ?) c")},
		{"gorm joins", countOwners(db.Joins("JOIN rt_tm_items ON rt_tm_items.owner_id = rt_tm_owners.id").Where("rt_tm_items.name = ?", "new"))},
		{"gorm where subquery", countOwners(db.Where("id IN (?)", db.Table("rt_tm_items").Select("owner_id").Where("name = ?", "new")))},
		{"gorm raw where select", countOwners(db.Where("id IN (SELECT owner_id FROM rt_tm_items WHERE name = ?)", "new"))},
		{"gorm preload", func(t *testing.T) {
			var o rtTmOwner
			noErr(t, db.Preload("Items").First(&o, 1).Error)
			if len(o.Items) != 2 {
				t.Errorf("preloaded %d items, want 2", len(o.Items))
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { ranOnPrimary(t, c, "rt_tm_items", func() { tc.read(t) }) })
	}
	nodes := c.served("rt_tm_unwritten", func() { count(t, db, "rt_tm_unwritten", "seed") })
	if !allOn(nodes, isReplica) {
		t.Errorf("a read of an unwritten table ran on %v, want a replica", nodes)
	}
}

// TestTableModeNames: Table("t as a") checks t, and names match without
// regard to case.
func TestTableModeNames(t *testing.T) {
	c := pgTableMode(t, "upper", "lower")
	db := c.DB
	noErr(t, db.Create(&rtTmItem{OwnerID: 1, Name: "new"}).Error)
	for _, table := range []string{"rt_tm_items as i", "rt_tm_items AS i", "rt_tm_items i", "public.rt_tm_items"} {
		t.Run(table, func(t *testing.T) {
			ranOnPrimary(t, c, "rt_tm_items", func() {
				if n := count(t, db, table, "new"); n != 1 {
					t.Errorf("read %d rows, want 1", n)
				}
			})
		})
	}
	t.Run("raw write in upper case", func(t *testing.T) {
		ranOnPrimary(t, c, "rt_tm_upper", func() {
			noErr(t, db.Exec("UPDATE RT_TM_UPPER SET name = 'changed'").Error)
			if n := count(t, db, "rt_tm_upper", "changed"); n != 1 {
				t.Errorf("read %d updated rows, want 1", n)
			}
		})
	})
	t.Run("raw read in upper case", func(t *testing.T) {
		ranOnPrimary(t, c, "_TM_LOWER", func() {
			noErr(t, db.Table("rt_tm_lower").Where("id = 1").Update("name", "changed").Error)
			var n int64
			noErr(t, db.Raw("SELECT count(*) FROM RT_TM_LOWER WHERE name = 'changed'").Scan(&n).Error)
			if n != 1 {
				t.Errorf("read %d updated rows, want 1", n)
			}
		})
	})
}

// TestTableModeShared: two plugins on one primary share their marks (a
// write through one makes the other's reads sticky); a plugin on another
// primary does not see them.
func TestTableModeShared(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	setupTableMode(t, plainDB(t, postgres.New(postgres.Config{Conn: pg.Primary.OpenDB(nil)})), pg.WaitCaughtUp)
	other := dbtest.Postgres(t, 1)
	setupTableMode(t, plainDB(t, postgres.New(postgres.Config{Conn: other.Primary.OpenDB(nil)})), other.WaitCaughtUp)
	for _, r := range pg.Replicas {
		noErr(t, r.PauseReplay(t.Context()))
	}
	a := pgOn(t, pg, clusterOpts{config: tableModeConfig()})
	b := pgOn(t, pg, clusterOpts{config: tableModeConfig()})
	c := pgOn(t, other, clusterOpts{config: tableModeConfig()})

	// A write through c, on the other primary, leaves b's reads alone.
	noErr(t, c.DB.Create(&rtTmItem{OwnerID: 1, Name: "other"}).Error)
	nodes := b.served("rt_tm_items", func() { count(t, b.DB, "rt_tm_items", "seed") })
	if !allOn(nodes, isReplica) {
		t.Errorf("after a write to another primary, a read ran on %v, want a replica", nodes)
	}

	item := rtTmItem{OwnerID: 1, Name: "new"}
	noErr(t, a.DB.Create(&item).Error)
	ranOnPrimary(t, b, "rt_tm_items", func() {
		var got rtTmItem
		if err := b.DB.First(&got, item.ID).Error; errors.Is(err, gorm.ErrRecordNotFound) {
			t.Error("a read through another plugin of the primary missed the write")
		} else {
			noErr(t, err)
		}
	})
}

// TestTableModeMariaDB: MySQL syntax (backquotes, REPLACE, multi-table
// UPDATE, ON DUPLICATE KEY UPDATE) and DDL on MariaDB GTID replicas that
// apply 5s late.
func TestTableModeMariaDB(t *testing.T) {
	my := dbtest.MariaDB(t, 2)
	setupTableMode(t, plainDB(t, mysql.New(mysql.Config{Conn: my.Primary.OpenDB(nil)})), my.WaitCaughtUp,
		"replace", "multi", "upsert", "quoted", "create")
	for _, r := range my.Replicas {
		noErr(t, r.SetDelay(t.Context(), 5*time.Second))
	}
	t.Cleanup(func() {
		for _, r := range my.Replicas {
			_ = r.SetDelay(context.Background(), 0)
		}
	})
	c := mariaOn(t, my, clusterOpts{config: tableModeConfig()})
	db := c.DB
	cases := []struct {
		name  string
		write string
		table string
		want  string
	}{
		{"replace into", "REPLACE INTO `rt_tm_replace` (id, name) VALUES (1, 'changed')", "rt_tm_replace", "changed"},
		{"multi-table update", "UPDATE rt_tm_multi m JOIN rt_tm_owners o ON o.id = m.id SET m.name = 'changed'", "rt_tm_multi", "changed"},
		{"on duplicate key update", "INSERT INTO rt_tm_upsert (id, name) VALUES (1, 'x') ON DUPLICATE KEY UPDATE name = 'changed'", "rt_tm_upsert", "changed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ranOnPrimary(t, c, tc.table, func() {
				noErr(t, db.Exec(tc.write).Error)
				if n := count(t, db, tc.table, tc.want); n != 1 {
					t.Errorf("read %d changed rows, want 1", n)
				}
			})
		})
	}
	t.Run("backquoted raw read", func(t *testing.T) {
		ranOnPrimary(t, c, "rt_tm_quoted", func() {
			noErr(t, db.Table("rt_tm_quoted").Where("id = 1").Update("name", "changed").Error)
			var n int64
			noErr(t, db.Raw("SELECT count(*) FROM `rt_tm_quoted` AS `q` WHERE `q`.`name` = 'changed'").Scan(&n).Error)
			if n != 1 {
				t.Errorf("read %d changed rows, want 1", n)
			}
		})
	})
	t.Run("create table", func(t *testing.T) {
		ranOnPrimary(t, c, "rt_tm_created", func() {
			noErr(t, db.Exec("DROP TABLE IF EXISTS rt_tm_created").Error)
			noErr(t, db.Exec("CREATE TABLE rt_tm_created (id int PRIMARY KEY, name varchar(50))").Error)
			if n := count(t, db, "rt_tm_created", "x"); n != 0 {
				t.Errorf("read %d rows of the new table, want 0", n)
			}
		})
	})
}
