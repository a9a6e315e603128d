package rwsplit_test

import (
	"database/sql"
	"database/sql/driver"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/fakedb"
)

// Fakes for the tests and benchmarks that need no server: GORM over
// internal/fakedb, which answers every query from memory. Routing tests
// use real replicas instead.

// benchUser is the row that fakedb connectors answer with (fakeDialector).
type benchUser struct {
	ID        uint
	Name      string
	CreatedAt time.Time
}

// fakeDialector is a PostgreSQL dialector over a fakedb connector: GORM
// builds PostgreSQL SQL, and every query is answered from memory.
func fakeDialector(tb testing.TB) (gorm.Dialector, *fakedb.Connector) {
	c := &fakedb.Connector{
		Columns: []string{"id", "name", "created_at"},
		Row:     []driver.Value{int64(1), "ada", time.Unix(0, 0)},
	}
	sqlDB := sql.OpenDB(c)
	tb.Cleanup(func() { sqlDB.Close() })
	return postgres.New(postgres.Config{Conn: sqlDB}), c
}

// openFake opens GORM over a fakeDialector, without default transactions.
func openFake(tb testing.TB) (*gorm.DB, *fakedb.Connector) {
	d, c := fakeDialector(tb)
	db, err := gorm.Open(d, &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
	if err != nil {
		tb.Fatal(err)
	}
	return db, c
}

// openFakeRWSplit opens a fakedb primary with rwsplit over two fakedb
// replicas. replicas counts the statements the replicas served.
func openFakeRWSplit(tb testing.TB, cfg rwsplit.Config) (db *gorm.DB, p *rwsplit.Plugin, replicas func() int64) {
	db, _ = openFake(tb)
	r1, c1 := fakeDialector(tb)
	r2, c2 := fakeDialector(tb)
	cfg.Replicas = []rwsplit.Replica{{Name: "r1", Dialector: r1}, {Name: "r2", Dialector: r2}}
	cfg.Lag.Probe = rwsplit.FreshProbe
	p = rwsplit.New(cfg)
	if err := db.Use(p); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return db, p, func() int64 { return c1.Queries.Load() + c2.Queries.Load() }
}
