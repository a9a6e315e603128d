package rwsplit_test

import (
	"errors"
	"strings"
	"testing"

	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
)

// TestStartupMisconfiguration: a replica whose configuration is wrong in a
// way that waiting cannot fix makes db.Use fail with ErrConfig, naming the
// replica and the fix; the DB keeps working on its own pool.
func TestStartupMisconfiguration(t *testing.T) {
	type dialect struct {
		open    func(string) gorm.Dialector
		primary string
		good    string // replica2's DSN
		badUser string
		badDB   string
		other   gorm.Dialector // a replica of the other dialect
	}
	pgDialect := func(t *testing.T) dialect {
		pg := dbtest.Postgres(t, 2)
		dsn := pg.Replicas[0].DSN()
		return dialect{
			open:    postgres.Open,
			primary: pg.Primary.DSN(),
			good:    pg.Replicas[1].DSN(),
			badUser: strings.Replace(dsn, "user=postgres", "user=rwsplit_nobody", 1),
			badDB:   strings.Replace(dsn, "dbname=postgres", "dbname=rwsplit_nowhere", 1),
			other:   mysql.Open("rwsplit:rwsplit@tcp(127.0.0.1:1)/test"),
		}
	}
	mariaDialect := func(t *testing.T) dialect {
		my := dbtest.MariaDB(t, 2)
		user, db := my.Replicas[0].Config(), my.Replicas[0].Config()
		user.Passwd = "wrong-password"
		db.DBName = "rwsplit_nowhere"
		return dialect{
			open:    mysql.Open,
			primary: my.Primary.DSN(),
			good:    my.Replicas[1].DSN(),
			badUser: user.FormatDSN(),
			badDB:   db.FormatDSN(),
			other:   postgres.Open("host=127.0.0.1 port=1 user=postgres dbname=postgres sslmode=disable"),
		}
	}
	tests := []struct {
		name    string
		replica func(dialect) gorm.Dialector
		want    string
		wantErr error // also wrapped, besides ErrConfig
	}{
		{"authentication failed", func(d dialect) gorm.Dialector { return d.open(d.badUser) }, "authentication failed; check the user and password", nil},
		{"unknown database", func(d dialect) gorm.Dialector { return d.open(d.badDB) }, "the database does not exist; check the database name", nil},
		{"the primary as a replica", func(d dialect) gorm.Dialector { return d.open(d.primary) }, "not a replica; check that its DSN names a replica, not the primary", lagcheck.ErrNotReplica},
		{"the other dialect", func(d dialect) gorm.Dialector { return d.other }, "differs from the primary's", nil},
	}
	for _, dl := range []struct {
		name string
		get  func(*testing.T) dialect
	}{{"postgres", pgDialect}, {"mariadb", mariaDialect}} {
		for _, tt := range tests {
			t.Run(dl.name+"/"+tt.name, func(t *testing.T) {
				d := dl.get(t)
				db, err := gorm.Open(d.open(d.primary), &gorm.Config{Logger: logger.Discard})
				noErr(t, err)
				t.Cleanup(func() {
					if sqlDB, err := db.DB(); err == nil {
						sqlDB.Close()
					}
				})
				p := rwsplit.New(rwsplit.Config{Replicas: []rwsplit.Replica{
					{Name: "replica1", Dialector: tt.replica(d)},
					{Name: "replica2", Dialector: d.open(d.good)},
				}})
				t.Cleanup(func() { p.Close() })
				err = db.Use(p)
				if !errors.Is(err, rwsplit.ErrConfig) || !strings.Contains(err.Error(), `replica "replica1"`) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("db.Use = %v\nwant ErrConfig naming replica1 and saying %q", err, tt.want)
				}
				t.Logf("db.Use: %v", err)
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("db.Use = %v, want it to wrap %v", err, tt.wantErr)
				}
				var n int
				noErr(t, db.Raw("SELECT 1").Scan(&n).Error)
			})
		}
	}
}

// clauseDialector is a replica dialector that, like gorm.io/driver/mysql,
// registers clause builders as it initializes: its ON CONFLICT becomes
// MySQL's ON DUPLICATE KEY UPDATE.
type clauseDialector struct{ gorm.Dialector }

func (d clauseDialector) Initialize(db *gorm.DB) error {
	if err := d.Dialector.Initialize(db); err != nil {
		return err
	}
	db.ClauseBuilders["ON CONFLICT"] = func(c clause.Clause, b clause.Builder) {
		b.WriteString("ON DUPLICATE KEY UPDATE ")
	}
	return nil
}

// TestReplicaCannotChangePrimarySQL: opening the replicas (dbresolver
// shares the primary's gorm.Config with them) never changes the SQL GORM
// builds for the primary.
func TestReplicaCannotChangePrimarySQL(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	type rtUpsert struct {
		ID   int
		Name string
	}
	upsertSQL := func(db *gorm.DB) string {
		stmt := db.Session(&gorm.Session{DryRun: true}).Clauses(clause.OnConflict{UpdateAll: true}).Create(&rtUpsert{ID: 1, Name: "a"}).Statement
		return stmt.SQL.String()
	}
	open := func(t *testing.T) *gorm.DB {
		db, err := gorm.Open(postgres.Open(pg.Primary.DSN()), &gorm.Config{Logger: logger.Discard})
		noErr(t, err)
		t.Cleanup(func() {
			if sqlDB, err := db.DB(); err == nil {
				sqlDB.Close()
			}
		})
		return db
	}
	want := upsertSQL(open(t))
	if !strings.Contains(want, "ON CONFLICT") {
		t.Fatalf("upsert without the plugin: %s", want)
	}
	tests := []struct {
		name    string
		replica func(dsn string) gorm.Dialector
	}{
		{"postgres replicas", postgres.Open},
		{"replicas that register clause builders", func(dsn string) gorm.Dialector { return clauseDialector{postgres.Open(dsn)} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := open(t)
			p := rwsplit.New(rwsplit.Config{Replicas: []rwsplit.Replica{
				{Name: "replica1", Dialector: tt.replica(pg.Replicas[0].DSN())},
				{Name: "replica2", Dialector: tt.replica(pg.Replicas[1].DSN())},
			}})
			t.Cleanup(func() { p.Close() })
			noErr(t, db.Use(p))
			if got := upsertSQL(db); got != want {
				t.Fatalf("upsert with the plugin:\n%s\nwant, as without it:\n%s", got, want)
			}
		})
	}
}
