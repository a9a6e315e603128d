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
// replica and the fix; the DB keeps working on its own pool. So does a
// privilege the lag checker needs that the primary's user lacks: the error
// names the primary, and the GRANT.
func TestStartupMisconfiguration(t *testing.T) {
	type dialect struct {
		open    func(string) gorm.Dialector
		primary string
		good1   string // replica1's DSN
		good    string // replica2's DSN
		badUser string
		badDB   string
		other   gorm.Dialector // a replica of the other dialect
		probe   string         // replica1's DSN as rwsplit_probe, who may read but not monitor
		app     string         // the primary's DSN as rwsplit_app, who may read but not write

		// denyProbe takes from rwsplit_probe, until the test ends, the
		// privilege the replica's probe needs, and allowProbe gives it;
		// denyPrimary takes the one the primary's sample needs from
		// rwsplit_app (nil: a plain user may take it). want* are the
		// GRANTs the errors must name.
		denyProbe, allowProbe, denyPrimary                            func(*testing.T)
		wantProbe, wantPrimary, wantHBWrite, wantHBCreate, wantHBRead string
	}
	pgDialect := func(t *testing.T) dialect {
		pg := dbtest.Postgres(t, 2)
		pgRoles(t, pg)
		dsn := pg.Replicas[0].DSN()
		return dialect{
			open:         postgres.Open,
			primary:      pg.Primary.DSN(),
			good1:        dsn,
			good:         pg.Replicas[1].DSN(),
			badUser:      strings.Replace(dsn, "user=postgres", "user=rwsplit_nobody", 1),
			badDB:        strings.Replace(dsn, "dbname=postgres", "dbname=rwsplit_nowhere", 1),
			other:        mysql.Open("rwsplit:rwsplit@tcp(127.0.0.1:1)/test"),
			probe:        pg.Replicas[0].DSNAs(probeUser),
			app:          pg.Primary.DSNAs(appUser),
			denyProbe:    func(t *testing.T) { pgRevoke(t, pg, "pg_last_wal_replay_lsn()") },
			allowProbe:   func(*testing.T) {}, // PUBLIC may run the probe's functions
			denyPrimary:  func(t *testing.T) { pgRevoke(t, pg, "pg_current_wal_lsn()") },
			wantProbe:    "GRANT EXECUTE ON FUNCTION pg_last_wal_replay_lsn TO " + probeUser,
			wantPrimary:  "GRANT EXECUTE ON FUNCTION pg_current_wal_lsn TO " + appUser,
			wantHBWrite:  "GRANT SELECT, INSERT, UPDATE ON rt_hb_priv TO " + appUser,
			wantHBCreate: "GRANT CREATE ON SCHEMA public TO " + appUser + ", or create the heartbeat table yourself and set Heartbeat.SkipCreate",
			wantHBRead:   "GRANT SELECT ON rt_hb_priv TO " + probeUser,
		}
	}
	mariaDialect := func(t *testing.T) dialect {
		my := dbtest.MariaDB(t, 2)
		mariaAccounts(t, my)
		user, db := my.Replicas[0].Config(), my.Replicas[0].Config()
		user.Passwd = "wrong-password"
		db.DBName = "rwsplit_nowhere"
		return dialect{
			open:         mysql.Open,
			primary:      my.Primary.DSN(),
			good1:        my.Replicas[0].DSN(),
			good:         my.Replicas[1].DSN(),
			badUser:      user.FormatDSN(),
			badDB:        db.FormatDSN(),
			other:        postgres.Open("host=127.0.0.1 port=1 user=postgres dbname=postgres sslmode=disable"),
			probe:        my.Replicas[0].ConfigAs(probeUser, probeUser).FormatDSN(),
			app:          my.Primary.ConfigAs(appUser, appUser).FormatDSN(),
			denyProbe:    func(*testing.T) {}, // rwsplit_probe has no SLAVE MONITOR
			allowProbe:   func(t *testing.T) { mariaMonitor(t, my) },
			wantProbe:    "GRANT SLAVE MONITOR ON *.* TO '" + probeUser + "'@'%'",
			wantHBWrite:  "GRANT SELECT, INSERT, UPDATE ON `test`.`rt_hb_priv` TO '" + appUser + "'@'%'",
			wantHBCreate: "GRANT CREATE ON `test`.`rt_hb_priv` TO '" + appUser + "'@'%', or create the heartbeat table yourself and set Heartbeat.SkipCreate",
			wantHBRead:   "GRANT SELECT ON `test`.`rt_hb_priv` TO '" + probeUser + "'@'%'",
		}
	}
	const replica1, primary = `replica "replica1"`, `primary "primary"`
	heartbeat := func(skipCreate bool) lagcheck.Config {
		return lagcheck.Config{Heartbeat: &lagcheck.Heartbeat{Table: "rt_hb_priv", SkipCreate: skipCreate}}
	}
	tests := []struct {
		name    string
		primary func(dialect) string         // the primary's DSN; nil: d.primary
		replica func(dialect) gorm.Dialector // replica1; nil: d.good1
		lag     lagcheck.Config
		deny    func(dialect) func(*testing.T) // sets the privileges up; nil: as they are
		who     string                         // whom the error names
		want    func(dialect) string
		wantErr error // also wrapped, besides ErrConfig
	}{
		{name: "authentication failed", replica: func(d dialect) gorm.Dialector { return d.open(d.badUser) }, who: replica1,
			want: func(dialect) string { return "authentication failed; check the user and password" }},
		{name: "unknown database", replica: func(d dialect) gorm.Dialector { return d.open(d.badDB) }, who: replica1,
			want: func(dialect) string { return "the database does not exist; check the database name" }},
		{name: "the primary as a replica", replica: func(d dialect) gorm.Dialector { return d.open(d.primary) }, who: replica1,
			want: func(dialect) string { return "not a replica; check that its DSN names a replica, not the primary" }, wantErr: lagcheck.ErrNotReplica},
		{name: "the other dialect", replica: func(d dialect) gorm.Dialector { return d.other }, who: replica1,
			want: func(dialect) string { return "differs from the primary's" }},
		{name: "replica user may not run the probe", replica: func(d dialect) gorm.Dialector { return d.open(d.probe) },
			deny: func(d dialect) func(*testing.T) { return d.denyProbe }, who: replica1,
			want: func(d dialect) string {
				return "its user lacks a privilege the lag checker needs: lagcheck: missing privilege: " + d.wantProbe
			}, wantErr: lagcheck.ErrPrivilege},
		{name: "primary user may not sample", primary: func(d dialect) string { return d.app },
			deny: func(d dialect) func(*testing.T) { return d.denyPrimary }, who: primary,
			want: func(d dialect) string { return d.wantPrimary }, wantErr: lagcheck.ErrPrivilege},
		{name: "heartbeat the primary user may not write", primary: func(d dialect) string { return d.app }, lag: heartbeat(true), who: primary,
			want: func(d dialect) string { return d.wantHBWrite }, wantErr: lagcheck.ErrPrivilege},
		{name: "heartbeat the primary user may not create", primary: func(d dialect) string { return d.app }, lag: heartbeat(false), who: primary,
			want: func(d dialect) string { return d.wantHBCreate }, wantErr: lagcheck.ErrPrivilege},
		{name: "heartbeat the replica user may not read", replica: func(d dialect) gorm.Dialector { return d.open(d.probe) }, lag: heartbeat(true), who: replica1,
			deny: func(d dialect) func(*testing.T) { return d.allowProbe }, // but not SELECT on rt_hb_priv
			want: func(d dialect) string { return d.wantHBRead }, wantErr: lagcheck.ErrPrivilege},
	}
	for _, dl := range []struct {
		name string
		get  func(*testing.T) dialect
	}{{"postgres", pgDialect}, {"mariadb", mariaDialect}} {
		for _, tt := range tests {
			t.Run(dl.name+"/"+tt.name, func(t *testing.T) {
				d := dl.get(t)
				// nil: no privilege is needed here (a MariaDB user
				// without any may take the primary's sample), so db.Use
				// must succeed.
				mayStart := false
				if tt.deny != nil {
					setup := tt.deny(d)
					if mayStart = setup == nil; !mayStart {
						setup(t)
					}
				}
				primaryDSN, replica := d.primary, d.open(d.good1)
				if tt.primary != nil {
					primaryDSN = tt.primary(d)
				}
				if tt.replica != nil {
					replica = tt.replica(d)
				}
				db, err := gorm.Open(d.open(primaryDSN), &gorm.Config{Logger: logger.Discard})
				noErr(t, err)
				t.Cleanup(func() {
					if sqlDB, err := db.DB(); err == nil {
						sqlDB.Close()
					}
				})
				p := rwsplit.New(rwsplit.Config{Lag: tt.lag, Replicas: []rwsplit.Replica{
					{Name: "replica1", Dialector: replica},
					{Name: "replica2", Dialector: d.open(d.good)},
				}})
				t.Cleanup(func() { p.Close() })
				err = db.Use(p)
				if mayStart {
					if err != nil {
						t.Fatalf("db.Use = %v; want nil: %s needs no privilege for this", err, dl.name)
					}
					return
				}
				want := tt.want(d)
				if !errors.Is(err, rwsplit.ErrConfig) || !strings.Contains(err.Error(), tt.who) || !strings.Contains(err.Error(), want) {
					t.Fatalf("db.Use = %v\nwant ErrConfig naming %s and saying %q", err, tt.who, want)
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
