package rwsplit_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/policy"
	"github.com/rwsplit/rwsplit/stickiness"
)

// TestConfigErrors checks that bad configuration is an error from db.Use,
// never a panic, and that the DB keeps working without the plugin.
func TestConfigErrors(t *testing.T) {
	replica := func(name string) rwsplit.Replica {
		d, _ := fakeDialector(t)
		return rwsplit.Replica{Name: name, Dialector: d}
	}
	tests := []struct {
		name string
		cfg  rwsplit.Config
		want string
	}{
		{"no replicas", rwsplit.Config{}, "no replicas"},
		{"unnamed replica", rwsplit.Config{Replicas: []rwsplit.Replica{replica("")}}, "has no Name"},
		{"duplicate name", rwsplit.Config{Replicas: []rwsplit.Replica{replica("a"), replica("a")}}, `duplicate name "a"`},
		{"replica named like the primary", rwsplit.Config{Replicas: []rwsplit.Replica{replica("primary")}}, `duplicate name "primary"`},
		{"nil dialector", rwsplit.Config{Replicas: []rwsplit.Replica{{Name: "a"}}}, "has no Dialector"},
		{"negative weight", rwsplit.Config{Replicas: []rwsplit.Replica{{Name: "a", Dialector: replica("a").Dialector, Weight: -1}}}, "negative Weight"},
		{"bad primary function", rwsplit.Config{Replicas: []rwsplit.Replica{replica("a")}, PrimaryFunctions: []string{"drop table x;"}}, "PrimaryFunctions"},
		{"unknown fallback", rwsplit.Config{Replicas: []rwsplit.Replica{replica("a")}, Fallback: 9}, "unknown Fallback"},
		{"negative startup timeout", rwsplit.Config{Replicas: []rwsplit.Replica{replica("a")}, StartupTimeout: -time.Second}, "negative StartupTimeout"},
		{"replica with empty DSN", rwsplit.Config{Replicas: []rwsplit.Replica{{Name: "a", Dialector: postgres.Open("")}}}, "empty DSN"},
		// Nested configurations are validated by their own packages.
		{"negative Lag.Interval", rwsplit.Config{Replicas: []rwsplit.Replica{replica("a")}, Lag: lagcheck.Config{Interval: -time.Second}}, "Interval is negative"},
		{"Lag.Interval not below MaxLag", rwsplit.Config{Replicas: []rwsplit.Replica{replica("a")}, Lag: lagcheck.Config{Interval: time.Second, MaxLag: time.Second}}, "is not above Interval"},
		{"Lag.ReadmitLag above MaxLag", rwsplit.Config{Replicas: []rwsplit.Replica{replica("a")}, Lag: lagcheck.Config{MaxLag: time.Second, ReadmitLag: 2 * time.Second}}, "ReadmitLag"},
		{"negative Lag.EvictAfter", rwsplit.Config{Replicas: []rwsplit.Replica{replica("a")}, Lag: lagcheck.Config{EvictAfter: -1}}, "EvictAfter is negative"},
		{"Lag.Heartbeat table not an identifier", rwsplit.Config{Replicas: []rwsplit.Replica{replica("a")}, Lag: lagcheck.Config{Heartbeat: &lagcheck.Heartbeat{Table: "x; DROP TABLE y"}}}, "Heartbeat"},
		{"unknown Stickiness.Mode", rwsplit.Config{Replicas: []rwsplit.Replica{replica("a")}, Stickiness: stickiness.Config{Mode: 7}}, "unknown Mode"},
		{"negative Stickiness.Window", rwsplit.Config{Replicas: []rwsplit.Replica{replica("a")}, Stickiness: stickiness.Config{Window: -time.Second}}, "negative Window"},
		{"negative Stickiness.StoreTimeout", rwsplit.Config{Replicas: []rwsplit.Replica{replica("a")}, Stickiness: stickiness.Config{StoreTimeout: -time.Second}}, "negative StoreTimeout"},
		{"Stickiness.ExactMarks in window mode", rwsplit.Config{Replicas: []rwsplit.Replica{replica("a")}, Stickiness: stickiness.Config{Mode: stickiness.ModeWindow, ExactMarks: true}}, "ExactMarks needs ModeCausal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, fake := openFake(t)
			err := db.Use(rwsplit.New(tt.cfg))
			if !errors.Is(err, rwsplit.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("db.Use = %v, want ErrConfig mentioning %q", err, tt.want)
			}
			// The DB still works, on its own pool.
			var u benchUser
			before := fake.Queries.Load()
			if err := db.First(&u, 1).Error; err != nil {
				t.Fatal(err)
			}
			if fake.Queries.Load() != before+1 {
				t.Fatal("the primary did not serve the read")
			}
		})
	}
}

func TestUseTwiceAndAfterClose(t *testing.T) {
	d, _ := fakeDialector(t)
	p := rwsplit.New(rwsplit.Config{Replicas: []rwsplit.Replica{{Name: "a", Dialector: d}}})
	db1, _ := openFake(t)
	if err := db1.Use(p); err != nil {
		t.Fatal(err)
	}
	db2, _ := openFake(t)
	if err := db2.Use(p); !errors.Is(err, rwsplit.ErrConfig) {
		t.Fatalf("the same plugin on a second DB: %v, want ErrConfig", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	p2 := rwsplit.New(rwsplit.Config{Replicas: []rwsplit.Replica{{Name: "a", Dialector: d}}})
	p2.Close()
	db3, _ := openFake(t)
	if err := db3.Use(p2); !errors.Is(err, rwsplit.ErrClosed) {
		t.Fatalf("Use after Close: %v, want ErrClosed", err)
	}
}

// TestCachedPlanAfterDDL: pgx caches prepared statements per connection;
// after DDL changes a table's columns, a cached SELECT * fails on the
// replica with "cached plan must not change result type" (0A000). rwsplit
// serves such a read again, so the caller never sees it.
func TestCachedPlanAfterDDL(t *testing.T) {
	for _, prepare := range []bool{false, true} {
		t.Run(fmt.Sprintf("PrepareStmt=%v", prepare), func(t *testing.T) {
			c, pg := pgCluster(t, clusterOpts{gorm: gorm.Config{PrepareStmt: prepare}, config: rwsplit.Config{Policy: policy.RoundRobin()}})
			type rtPlan struct {
				ID int
				A  int
			}
			noErr(t, c.DB.Migrator().DropTable(&rtPlan{}))
			noErr(t, c.DB.AutoMigrate(&rtPlan{}))
			noErr(t, c.DB.Create(&rtPlan{ID: 1, A: 1}).Error)
			dbtest.Within(t, 10*time.Second, pg.WaitCaughtUp)

			readAll := func() (errs []error) {
				var mu sync.Mutex
				var wg sync.WaitGroup
				for range 4 { // several connections per replica
					wg.Go(func() {
						for range 10 {
							var rows []rtPlan
							if err := c.DB.Find(&rows).Error; err != nil {
								mu.Lock()
								errs = append(errs, err)
								mu.Unlock()
							}
						}
					})
				}
				wg.Wait()
				return errs
			}
			if errs := readAll(); len(errs) > 0 {
				t.Fatal(errs[0])
			}
			noErr(t, c.DB.Exec("ALTER TABLE rt_plans ADD COLUMN b int").Error)
			dbtest.Within(t, 10*time.Second, pg.WaitCaughtUp)
			nodes := c.served("rt_plans", func() {
				if errs := readAll(); len(errs) > 0 {
					t.Fatalf("%d of 40 reads failed after DDL, first: %v", len(errs), errs[0])
				}
			})
			for _, n := range nodes {
				if !isReplica(n) {
					t.Fatalf("a read after DDL ran on %s; want replicas only", n)
				}
			}
		})
	}
}

// TestReplicaDownAtStartup: a replica that is down when db.Use runs does
// not fail it; reads skip that replica.
func TestReplicaDownAtStartup(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		pg := dbtest.Postgres(t, 2)
		noErr(t, pg.Replicas[0].Crash(t.Context()))
		c := pgOn(t, pg, clusterOpts{config: rwsplit.Config{StartupTimeout: time.Second}})
		checkOnlyReplica2(t, c)
	})
	t.Run("postgres Open(dsn)", func(t *testing.T) {
		pg := dbtest.Postgres(t, 2)
		noErr(t, pg.Replicas[0].Crash(t.Context()))
		p := openDSN(t, postgres.Open, pg.Primary.DSN(), pg.Replicas[0].DSN(), pg.Replicas[1].DSN())
		s := p.Stats()
		if s.Replicas[0].Eligible || !s.Replicas[1].Eligible || s.Replicas[0].Health.LastErr == nil {
			t.Fatalf("stats %+v: want replica1 out with an error, replica2 in", s.Replicas)
		}
	})
	t.Run("mariadb", func(t *testing.T) {
		my := dbtest.MariaDB(t, 2)
		noErr(t, my.Replicas[0].Crash(t.Context()))
		c := mariaOn(t, my, clusterOpts{config: rwsplit.Config{StartupTimeout: time.Second}})
		checkOnlyReplica2(t, c)
	})
	t.Run("mariadb Open(dsn)", func(t *testing.T) {
		my := dbtest.MariaDB(t, 2)
		noErr(t, my.Replicas[0].Crash(t.Context()))
		p := openDSN(t, mysql.Open, my.Primary.DSN(), my.Replicas[0].DSN(), my.Replicas[1].DSN())
		if s := p.Stats(); s.Replicas[0].Eligible || !s.Replicas[1].Eligible {
			t.Fatalf("stats %+v: want replica1 out, replica2 in", s.Replicas)
		}
	})
	t.Run("all down, fallback primary", func(t *testing.T) {
		pg := dbtest.Postgres(t, 2)
		noErr(t, pg.Replicas[0].Crash(t.Context()))
		noErr(t, pg.Replicas[1].Crash(t.Context()))
		c := pgOn(t, pg, clusterOpts{config: rwsplit.Config{StartupTimeout: time.Second}})
		c.takeRoutes()
		nodes := c.served("SELECT 1", func() {
			var n int
			noErr(t, c.DB.Raw("SELECT 1").Scan(&n).Error)
		})
		if len(nodes) != 1 || nodes[0] != "primary" {
			t.Fatalf("read ran on %v, want the primary", nodes)
		}
		if r := c.takeRoutes(); len(r) != 1 || r[0].Reason != rwsplit.ReasonNoReplica {
			t.Fatalf("routes %v, want one no-replica", r)
		}
	})
	t.Run("all down, fallback fail", func(t *testing.T) {
		pg := dbtest.Postgres(t, 2)
		noErr(t, pg.Replicas[0].Crash(t.Context()))
		noErr(t, pg.Replicas[1].Crash(t.Context()))
		c := pgOn(t, pg, clusterOpts{config: rwsplit.Config{StartupTimeout: time.Second, Fallback: rwsplit.FallbackFail}})
		nodes := c.served("SELECT 1", func() {
			var n int
			if err := c.DB.Raw("SELECT 1").Scan(&n).Error; !errors.Is(err, rwsplit.ErrNoReplica) {
				t.Errorf("read error %v, want ErrNoReplica", err)
			}
			if err := c.DB.Exec("UPDATE pg_stat_statements_none SET x = 1 WHERE false AND 'SELECT 1' = ''").Error; errors.Is(err, rwsplit.ErrNoReplica) {
				t.Errorf("a write failed with ErrNoReplica")
			}
		})
		if len(nodes) != 1 || nodes[0] != "primary" {
			t.Fatalf("statements ran on %v, want only the write, on the primary", nodes)
		}
	})
}

func checkOnlyReplica2(t *testing.T, c *cluster) {
	t.Helper()
	s := c.Plugin.Stats()
	if s.Replicas[0].Eligible || !s.Replicas[1].Eligible {
		t.Fatalf("stats %+v: want replica1 out, replica2 in", s.Replicas)
	}
	nodes := c.served("SELECT 1", func() {
		for range 20 {
			var n int
			noErr(t, c.DB.Raw("SELECT 1").Scan(&n).Error)
		}
	})
	if len(nodes) != 20 {
		t.Fatalf("%d statements recorded, want 20", len(nodes))
	}
	for _, n := range nodes {
		if n != "replica2" {
			t.Fatalf("reads ran on %v, want replica2 only", nodes)
		}
	}
}

// openDSN opens the primary and replicas (named replica1, replica2, ...)
// the way an application does, with the driver's Open(dsn), and installs
// rwsplit. Everything is closed when the test ends.
func openDSN(t *testing.T, open func(string) gorm.Dialector, primary string, replicas ...string) *rwsplit.Plugin {
	t.Helper()
	db, err := gorm.Open(open(primary), &gorm.Config{})
	noErr(t, err)
	t.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
	})
	cfg := rwsplit.Config{}
	for i, dsn := range replicas {
		cfg.Replicas = append(cfg.Replicas, rwsplit.Replica{Name: fmt.Sprintf("replica%d", i+1), Dialector: open(dsn)})
	}
	p := rwsplit.New(cfg)
	noErr(t, db.Use(p))
	t.Cleanup(func() { p.Close() })
	return p
}

// TestNoWriteEscapesToAReplica: db.DB() and db.Connection on a statement
// that a Replica clause pointed at a replica, or inside a replica
// transaction, hand out the primary's pool: a connection pinned that way
// may run anything, so it must never be a replica's.
func TestNoWriteEscapesToAReplica(t *testing.T) {
	c, pg := pgCluster(t, clusterOpts{})
	u := setupRouting(t, c, pg.WaitCaughtUp)
	write := func(tx *gorm.DB) error {
		return tx.Exec("UPDATE rt_users SET age = age WHERE id = ?", u.ID).Error
	}
	nodes := c.served("UPDATE rt_users", func() {
		noErr(t, c.DB.Clauses(rwsplit.Replica{Name: "replica2"}).Connection(write))
		noErr(t, c.DB.Clauses(rwsplit.Replica{}).Connection(write))
		noErr(t, c.DB.Clauses(rwsplit.Replica{}).Transaction(func(tx *gorm.DB) error {
			return tx.Connection(write)
		}))
	})
	if want := []string{"primary", "primary", "primary"}; !slices.Equal(nodes, want) {
		t.Fatalf("writes on pinned connections ran on %v, want %v", nodes, want)
	}
	for _, db := range []*gorm.DB{c.DB.Clauses(rwsplit.Replica{Name: "replica2"}), c.DB.Clauses(rwsplit.Replica{})} {
		got, err := db.DB()
		noErr(t, err)
		want, _ := c.DB.DB()
		if got != want {
			t.Errorf("db.DB() after a Replica clause is not the primary's pool")
		}
	}
}

// TestUnknownReplicaName: a Replica clause naming no configured replica is
// an error, for a read and for a transaction; nothing runs.
func TestUnknownReplicaName(t *testing.T) {
	c, _ := pgCluster(t, clusterOpts{})
	nodes := c.served("rt_unknown", func() {
		var n int
		err := c.DB.Clauses(rwsplit.Replica{Name: "nope"}).Raw("SELECT 1 AS rt_unknown").Scan(&n).Error
		if !errors.Is(err, rwsplit.ErrUnknownReplica) {
			t.Errorf("read: %v, want ErrUnknownReplica", err)
		}
		err = c.DB.Clauses(rwsplit.Replica{Name: "nope"}).Transaction(func(tx *gorm.DB) error {
			return tx.Raw("SELECT 2 AS rt_unknown").Scan(&n).Error
		})
		if !errors.Is(err, rwsplit.ErrUnknownReplica) {
			t.Errorf("transaction: %v, want ErrUnknownReplica", err)
		}
	})
	if len(nodes) != 0 {
		t.Fatalf("statements ran on %v", nodes)
	}
}
