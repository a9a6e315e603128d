package rwsplit_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
)

// TestCloseLeavesNoGoroutine: Use and Close, again and again, leave no
// goroutine behind: not the checker's, not the pools', not those of the
// prepared-statement stores dbresolver made, with or without PrepareStmt.
func TestCloseLeavesNoGoroutine(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	for _, prepare := range []bool{false, true} {
		t.Run(fmt.Sprintf("PrepareStmt=%v", prepare), func(t *testing.T) {
			before := goleak.IgnoreCurrent()
			for range 5 {
				db, err := gorm.Open(postgres.Open(pg.Primary.DSN()), &gorm.Config{Logger: logger.Discard, PrepareStmt: prepare})
				noErr(t, err)
				p := rwsplit.New(rwsplit.Config{Replicas: []rwsplit.Replica{
					{Name: "replica1", Dialector: postgres.Open(pg.Replicas[0].DSN())},
					{Name: "replica2", Dialector: postgres.Open(pg.Replicas[1].DSN())},
				}})
				noErr(t, db.Use(p))
				var n int
				for range 4 { // reads on the replicas, prepared or not
					noErr(t, db.Raw("SELECT 1").Scan(&n).Error)
				}
				noErr(t, p.Close())
				// What remains is the user's: their pool, and with
				// PrepareStmt their own statement store.
				sqlDB, err := db.DB()
				noErr(t, err)
				noErr(t, sqlDB.Close())
				if prepare && !rwsplit.StopUserStore(db) {
					t.Fatal("could not stop the user's statement store")
				}
			}
			if err := goleak.Find(before); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCloseInOnStateChange: a Lag.OnStateChange callback may call
// Plugin.Close: Close returns, the callback returns, and nothing the plugin
// started is left running.
func TestCloseInOnStateChange(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	before := goleak.IgnoreCurrent()
	db, err := gorm.Open(postgres.Open(pg.Primary.DSN()), &gorm.Config{Logger: logger.Discard})
	noErr(t, err)
	t.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
	})
	var (
		p        *rwsplit.Plugin
		once     sync.Once
		closeErr = make(chan error, 1)
		returned = make(chan struct{})
	)
	p = rwsplit.New(rwsplit.Config{
		Replicas: []rwsplit.Replica{
			{Name: "replica1", Dialector: postgres.Open(pg.Replicas[0].DSN())},
			{Name: "replica2", Dialector: postgres.Open(pg.Replicas[1].DSN())},
		},
		Lag: lagcheck.Config{Interval: 20 * time.Millisecond, MaxLag: 100 * time.Millisecond, OnStateChange: func(ch lagcheck.Change) {
			if ch.Replica != "replica1" || ch.To != lagcheck.Evicted {
				return
			}
			once.Do(func() {
				defer close(returned)
				closeErr <- p.Close()
			})
		}},
	})
	noErr(t, db.Use(p))
	t.Cleanup(func() { p.Close() })

	noErr(t, pg.Replicas[0].PauseReplay(t.Context()))
	noErr(t, db.Exec("CREATE TABLE IF NOT EXISTS rt_close_cb (id int)").Error)
	noErr(t, db.Exec("INSERT INTO rt_close_cb VALUES (1)").Error)
	select {
	case err := <-closeErr:
		noErr(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("no eviction, or Close called from OnStateChange did not return")
	}
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("the callback that called Close did not return")
	}
	noErr(t, p.Close()) // and from here: returns once everything stopped
	sqlDB, err := db.DB()
	noErr(t, err)
	noErr(t, sqlDB.Close())
	if err := goleak.Find(before); err != nil {
		t.Fatal(err)
	}
}
