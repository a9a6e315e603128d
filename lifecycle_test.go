package rwsplit_test

import (
	"fmt"
	"testing"

	"go.uber.org/goleak"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
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
