package rwsplit_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/policy"
)

// rtRole is the row the role tests read; the recorder finds its
// statements by "rt_roles".
type rtRole struct {
	ID     int64
	Marker string
}

// roleTest is a cluster opened through rwsplit for the role and privilege
// tests: round robin over the replicas (so that both serve while healthy),
// every state change and log record kept.
type roleTest struct {
	*cluster
	changes *stateLog
	logs    *logBuffer
}

func roleConfig(lag lagcheck.Config) (rwsplit.Config, *stateLog, *logBuffer) {
	changes, logs := newStateLog(), &logBuffer{}
	cfg := healthConfig(changes, lag)
	cfg.Policy = policy.RoundRobin()
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	return cfg, changes, logs
}

// read reads row id through the plugin n times and returns, per statement
// recorded at the driver, the node that served it.
func (r roleTest) read(t *testing.T, id int64, n int) []string {
	t.Helper()
	return r.served("rt_roles", func() {
		for range n {
			var x rtRole
			noErr(t, r.DB.First(&x, id).Error)
		}
	})
}

func countNodes(nodes []string) map[string]int {
	m := map[string]int{}
	for _, n := range nodes {
		m[n]++
	}
	return m
}

// evictedRecords returns replica's "replica evicted" log records.
func (r roleTest) evictedRecords(t *testing.T, replica string) []map[string]any {
	t.Helper()
	return slices.DeleteFunc(r.logs.records(t, "rwsplit: replica evicted"), func(m map[string]any) bool { return m["replica"] != replica })
}

// checkReason fails the test unless err is, and the log record and
// replica1's Stats say, what want names.
func (r roleTest) checkReason(t *testing.T, ev stateChange, sentinel error, want string) {
	t.Helper()
	if !errors.Is(ev.err, sentinel) || !strings.Contains(ev.err.Error(), want) {
		t.Errorf("eviction's reading error %v\nwant %v containing %q", ev.err, sentinel, want)
	}
	st := r.Plugin.Stats().Replicas[0]
	if st.Eligible || st.Health.State != lagcheck.Evicted || !errors.Is(st.Health.LastErr, sentinel) || !strings.Contains(st.Health.LastErr.Error(), want) {
		t.Errorf("Stats: eligible %v, state %v, LastErr %v\nwant evicted, LastErr %v containing %q", st.Eligible, st.Health.State, st.Health.LastErr, sentinel, want)
	}
	recs := r.evictedRecords(t, "replica1")
	if len(recs) != 1 {
		t.Fatalf("%d eviction records for replica1, want 1: %v", len(recs), recs)
	}
	if msg, _ := recs[0]["err"].(string); !strings.Contains(msg, want) {
		t.Errorf("eviction record's err %q, want it to contain %q", msg, want)
	}
}

// checkBothServe fails the test unless both replicas, and only they,
// served reads.
func checkBothServe(t *testing.T, nodes []string) {
	t.Helper()
	by := countNodes(nodes)
	if by["replica1"] == 0 || by["replica2"] == 0 || by["replica1"]+by["replica2"] != len(nodes) {
		t.Fatalf("healthy cluster: reads served by %v, want both replicas and nothing else", by)
	}
}

// checkAvoids fails the test if replica1 served a read, or replica2 none.
func checkAvoids(t *testing.T, nodes []string) {
	t.Helper()
	if by := countNodes(nodes); by["replica1"] > 0 || by["replica2"] == 0 {
		t.Errorf("after the eviction: reads served by %v, want none by replica1, and replica2 still serving", by)
	}
}

// rolesLag probes every 100ms, and evicts only after 50 bad readings in a
// row (5s): within the 3s the promotion tests wait, only the rule that a
// server that is not a replica is evicted at once can evict.
var rolesLag = lagcheck.Config{Interval: 100 * time.Millisecond, Timeout: 250 * time.Millisecond, MaxLag: 500 * time.Millisecond, EvictAfter: 50}

// TestPromotedReplica: replica1 of a cluster of the test's own is promoted
// (PostgreSQL pg_promote(); MariaDB STOP SLAVE; RESET SLAVE ALL;
// read_only=OFF). It is evicted at the first probe that sees it, without
// waiting for EvictAfter bad readings, with a reason that says it was
// promoted, in the log and Stats; reads through the plugin stop going to
// it, while replica2 keeps serving them, new rows included.
func TestPromotedReplica(t *testing.T) {
	type opened struct {
		c                   *cluster
		promote             func(context.Context) error // replica1
		caughtUp, caughtUp2 func(context.Context) error // every replica; replica2
	}
	tests := []struct {
		name   string
		open   func(*testing.T, clusterOpts) opened
		detail string
	}{
		{"postgres", func(t *testing.T, o clusterOpts) opened {
			pg := dbtest.PrivatePostgres(t, 2)
			return opened{pgOn(t, pg, o), pg.Replicas[0].Promote, pg.WaitCaughtUp, pg.Replicas[1].WaitCaughtUp}
		}, "server is not a replica: pg_is_in_recovery() is false"},
		{"mariadb", func(t *testing.T, o clusterOpts) opened {
			my := dbtest.PrivateMariaDB(t, 2)
			return opened{mariaOn(t, my, o), my.Replicas[0].Promote, my.WaitCaughtUp, my.Replicas[1].WaitCaughtUp}
		}, "server is not a replica: replica status is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, changes, logs := roleConfig(rolesLag)
			o := tt.open(t, clusterOpts{config: cfg})
			r := roleTest{o.c, changes, logs}
			noErr(t, r.DB.AutoMigrate(&rtRole{}))
			noErr(t, r.DB.Create(&rtRole{ID: 1, Marker: "before"}).Error)
			dbtest.Within(t, 10*time.Second, o.caughtUp)
			checkBothServe(t, r.read(t, 1, 20))

			start := time.Now()
			dbtest.Within(t, time.Minute, o.promote)
			promoted := time.Now()
			ev := changes.waitChange(t, "replica1", lagcheck.Evicted, start, 3*time.Second)
			t.Logf("evicted %v after Promote was called (it took %v): %v",
				ev.at.Sub(start).Round(time.Millisecond), promoted.Sub(start).Round(time.Millisecond), ev.err)
			r.checkReason(t, ev, lagcheck.ErrPromoted, "replica promoted, or its replication removed (an earlier probe saw it replicate): "+tt.detail)
			if !errors.Is(ev.err, lagcheck.ErrNotReplica) {
				t.Errorf("%v: want it to be ErrNotReplica too", ev.err)
			}

			// A row written after the promotion is on replica2, and never
			// on replica1: reads of it, and of the old row, avoid replica1.
			noErr(t, r.DB.Create(&rtRole{ID: 2, Marker: "after"}).Error)
			dbtest.Within(t, 10*time.Second, o.caughtUp2)
			after := append(r.read(t, 2, 20), r.read(t, 1, 20)...)
			t.Logf("after the eviction: reads by node %v", countNodes(after))
			checkAvoids(t, after)
			if n := r.Plugin.Stats().Replicas[0].Health.Evictions; n != 1 {
				t.Errorf("replica1 evicted %d times, want 1", n)
			}
		})
	}
}

// pgAs opens a PostgreSQL node as another role.
type pgAs struct {
	n    *testdb.PGNode
	user string
}

func (p pgAs) OpenDB(r *testdb.Recorder) *sql.DB { return p.n.OpenDBAs(r, p.user) }

// mariaAs opens a MariaDB node as another account.
type mariaAs struct {
	n              *testdb.MariaNode
	user, password string
}

func (m mariaAs) OpenDB(r *testdb.Recorder) *sql.DB { return m.n.OpenDBAs(r, m.user, m.password) }

// The accounts of the privilege tests: rwsplit_probe opens replicas,
// rwsplit_app the primary. Neither has more than a test grants it.
const (
	probeUser = "rwsplit_probe"
	appUser   = "rwsplit_app"
)

// pgRoles creates the roles (LOGIN, no privilege beyond PUBLIC's) and the
// tables, with rwsplit_probe allowed to read rt_roles and rwsplit_app to
// read rt_roles and rt_hb_priv, but not to write rt_hb_priv.
func pgRoles(t *testing.T, pg *testdb.PGCluster) {
	t.Helper()
	var stmts []string
	for _, u := range []string{probeUser, appUser} {
		stmts = append(stmts, `DO $$BEGIN CREATE ROLE `+u+` LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END$$`)
	}
	stmts = append(stmts,
		`CREATE TABLE IF NOT EXISTS rt_roles (id bigint PRIMARY KEY, marker text)`,
		`CREATE TABLE IF NOT EXISTS rt_hb_priv (id BIGINT NOT NULL PRIMARY KEY, ts BIGINT NOT NULL)`,
		`GRANT SELECT ON rt_roles TO `+probeUser+`, `+appUser,
		`GRANT SELECT ON rt_hb_priv TO `+appUser)
	dbtest.Within(t, 10*time.Second, func(ctx context.Context) error { return pg.Primary.Admin(ctx, stmts...) })
	dbtest.Within(t, 10*time.Second, pg.WaitCaughtUp)
}

// pgRevoke revokes EXECUTE on fn from PUBLIC, so that no role but a
// superuser may call it, until the test ends.
func pgRevoke(t *testing.T, pg *testdb.PGCluster, fn string) {
	t.Helper()
	admin := func(stmt string) func(context.Context) error {
		return func(ctx context.Context) error {
			if err := pg.Primary.Admin(ctx, stmt); err != nil {
				return err
			}
			return pg.WaitCaughtUp(ctx)
		}
	}
	t.Cleanup(func() { dbtest.Within(t, 10*time.Second, admin("GRANT EXECUTE ON FUNCTION "+fn+" TO PUBLIC")) })
	dbtest.Within(t, 10*time.Second, admin("REVOKE EXECUTE ON FUNCTION "+fn+" FROM PUBLIC"))
}

// mariaAccounts creates the accounts and the tables on the primary (the
// replicas apply them): rwsplit_probe may read rt_roles and rt_probe_seen
// (so that it may use the database) and rt_hb, and has no SLAVE MONITOR
// (see mariaMonitor); rwsplit_app may read the database and nothing more.
func mariaAccounts(t *testing.T, my *testdb.MariaCluster) {
	t.Helper()
	db := testdb.MariaDatabase
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ` + db + `.rt_roles (id BIGINT PRIMARY KEY, marker VARCHAR(64))`,
		`CREATE TABLE IF NOT EXISTS ` + db + `.rt_hb (id BIGINT NOT NULL PRIMARY KEY, ts BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + db + `.rt_hb_priv (id BIGINT NOT NULL PRIMARY KEY, ts BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + db + `.rt_probe_seen (id INT)`,
	}
	for _, u := range []string{probeUser, appUser} {
		stmts = append(stmts, `CREATE USER IF NOT EXISTS '`+u+`'@'%' IDENTIFIED BY '`+u+`'`)
	}
	stmts = append(stmts,
		`REVOKE ALL PRIVILEGES, GRANT OPTION FROM '`+probeUser+`'@'%'`,
		`GRANT SELECT ON `+db+`.rt_roles TO '`+probeUser+`'@'%'`,
		`GRANT SELECT ON `+db+`.rt_probe_seen TO '`+probeUser+`'@'%'`,
		`GRANT SELECT ON `+db+`.rt_hb TO '`+probeUser+`'@'%'`,
		`GRANT SELECT ON `+db+`.* TO '`+appUser+`'@'%'`)
	dbtest.Within(t, 10*time.Second, func(ctx context.Context) error { return my.Primary.Admin(ctx, stmts...) })
	dbtest.Within(t, 10*time.Second, my.WaitCaughtUp)
}

// mariaMonitor grants rwsplit_probe SLAVE MONITOR until the test ends.
func mariaMonitor(t *testing.T, my *testdb.MariaCluster) {
	t.Helper()
	admin := func(stmt string) func(context.Context) error {
		return func(ctx context.Context) error {
			if err := my.Primary.Admin(ctx, stmt); err != nil {
				return err
			}
			return my.WaitCaughtUp(ctx)
		}
	}
	t.Cleanup(func() {
		dbtest.Within(t, 10*time.Second, admin("REVOKE SLAVE MONITOR ON *.* FROM '"+probeUser+"'@'%'"))
	})
	dbtest.Within(t, 10*time.Second, admin("GRANT SLAVE MONITOR ON *.* TO '"+probeUser+"'@'%'"))
}

// TestPrivilegeLostWhileRunning: a privilege the probe needs is revoked
// from replica1's user while the plugin runs. replica1 is evicted (after
// EvictAfter bad readings: its data is as fresh as it was, only no longer
// measured), and the log and Stats name the GRANT that fixes it; reads stop
// going to it, and the GRANT readmits it. replica2's user keeps the
// privilege.
//
// PostgreSQL: EXECUTE on pg_last_wal_replay_lsn() revoked from PUBLIC
// (replica2's user is a superuser). MariaDB: SELECT on the heartbeat table
// revoked on replica1 alone. (A revoked SLAVE MONITOR would not do:
// MariaDB applies a change of global privileges to new sessions only, so
// the probe's held connection keeps it until it is reopened.)
func TestPrivilegeLostWhileRunning(t *testing.T) {
	type opened struct {
		c             *cluster
		revoke, grant func(context.Context) error
		caughtUp      func(context.Context) error
	}
	tests := []struct {
		name string
		open func(*testing.T, rwsplit.Config) opened
		want string
	}{
		{"postgres", func(t *testing.T, cfg rwsplit.Config) opened {
			pg := dbtest.Postgres(t, 2)
			pgRoles(t, pg)
			const fn = "pg_last_wal_replay_lsn()"
			admin := func(stmt string) func(context.Context) error {
				return func(ctx context.Context) error { return pg.Primary.Admin(ctx, stmt) }
			}
			grant := admin("GRANT EXECUTE ON FUNCTION " + fn + " TO PUBLIC")
			t.Cleanup(func() { dbtest.Within(t, 10*time.Second, grant) })
			newDialector := func(db *sql.DB) gorm.Dialector { return postgres.New(postgres.Config{Conn: db}) }
			c := openOn(t, newDialector, pg.Primary, []node{pgAs{pg.Replicas[0], probeUser}, pg.Replicas[1]}, clusterOpts{config: cfg})
			return opened{c, admin("REVOKE EXECUTE ON FUNCTION " + fn + " FROM PUBLIC"), grant, pg.WaitCaughtUp}
		}, "GRANT EXECUTE ON FUNCTION pg_last_wal_replay_lsn TO " + probeUser},
		{"mariadb", func(t *testing.T, cfg rwsplit.Config) opened {
			my := dbtest.MariaDB(t, 2)
			mariaAccounts(t, my)
			mariaMonitor(t, my)
			admin := func(stmt string) func(context.Context) error {
				return func(ctx context.Context) error { return my.Replicas[0].Admin(ctx, stmt) }
			}
			on := "ON " + testdb.MariaDatabase + ".rt_hb"
			grant := admin("GRANT SELECT " + on + " TO '" + probeUser + "'@'%'")
			t.Cleanup(func() { dbtest.Within(t, 10*time.Second, grant) })
			cfg.Lag.Heartbeat = &lagcheck.Heartbeat{Table: "rt_hb", SkipCreate: true}
			newDialector := func(db *sql.DB) gorm.Dialector { return mysql.New(mysql.Config{Conn: db}) }
			c := openOn(t, newDialector, my.Primary, []node{mariaAs{my.Replicas[0], probeUser, probeUser}, my.Replicas[1]}, clusterOpts{config: cfg})
			return opened{c, admin("REVOKE SELECT " + on + " FROM '" + probeUser + "'@'%'"), grant, my.WaitCaughtUp}
		}, "GRANT SELECT ON `test`.`rt_hb` TO '" + probeUser + "'@'%'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, changes, logs := roleConfig(healthLag)
			o := tt.open(t, cfg)
			r := roleTest{o.c, changes, logs}
			noErr(t, r.DB.Exec("DELETE FROM rt_roles").Error)
			noErr(t, r.DB.Create(&rtRole{ID: 1, Marker: "before"}).Error)
			dbtest.Within(t, 10*time.Second, o.caughtUp)
			checkBothServe(t, r.read(t, 1, 20))

			start := time.Now()
			dbtest.Within(t, 10*time.Second, o.revoke)
			ev := changes.waitChange(t, "replica1", lagcheck.Evicted, start, 5*time.Second)
			t.Logf("evicted %v after the REVOKE: %v", ev.at.Sub(start).Round(time.Millisecond), ev.err)
			r.checkReason(t, ev, lagcheck.ErrPrivilege, tt.want)
			after := r.read(t, 1, 20)
			t.Logf("after the eviction: reads by node %v", countNodes(after))
			checkAvoids(t, after)

			start = time.Now()
			dbtest.Within(t, 10*time.Second, o.grant)
			back := changes.wait(t, "replica1", lagcheck.Healthy, start, 5*time.Second)
			t.Logf("readmitted %v after the GRANT", back.Sub(start).Round(time.Millisecond))
		})
	}
}
