package rwsplit_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/fakedb"
	"github.com/rwsplit/rwsplit/lagcheck"
)

// freshProbe reports every replica fresh, for fakedb replicas, which cannot
// answer a real probe.
type freshProbe struct{}

func (freshProbe) Primary(context.Context, *sql.DB) (lagcheck.Position, error) {
	return lagcheck.Position{}, nil
}

func (freshProbe) Replica(context.Context, *sql.DB, lagcheck.Position) (lagcheck.Replay, error) {
	return lagcheck.Replay{LagAtMostKnown: true}, nil
}

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

func openFake(tb testing.TB) (*gorm.DB, *fakedb.Connector) {
	d, c := fakeDialector(tb)
	db, err := gorm.Open(d, &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
	if err != nil {
		tb.Fatal(err)
	}
	return db, c
}

// BenchmarkRead measures one First(&u) through plain GORM, GORM with
// dbresolver, and GORM with rwsplit, over the no-network fakedb driver, so
// the differences are the plugins' own cost. The sub-benchmarks run in
// turn in one process; compare them with -count and benchstat.
func BenchmarkRead(b *testing.B) {
	b.Run("gorm", func(b *testing.B) {
		db, _ := openFake(b)
		benchFirst(b, db)
	})
	b.Run("dbresolver", func(b *testing.B) {
		db, _ := openFake(b)
		r1, _ := fakeDialector(b)
		r2, _ := fakeDialector(b)
		if err := db.Use(dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{r1, r2}})); err != nil {
			b.Fatal(err)
		}
		benchFirst(b, db)
	})
	b.Run("rwsplit", func(b *testing.B) {
		db, _ := openFake(b)
		r1, c1 := fakeDialector(b)
		r2, c2 := fakeDialector(b)
		p := rwsplit.New(rwsplit.Config{
			Replicas: []rwsplit.Replica{{Name: "r1", Dialector: r1}, {Name: "r2", Dialector: r2}},
			Lag:      lagcheck.Config{Probe: freshProbe{}},
		})
		if err := db.Use(p); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { p.Close() })
		before := c1.Queries.Load() + c2.Queries.Load()
		benchFirst(b, db)
		if served := c1.Queries.Load() + c2.Queries.Load() - before; served < int64(b.N) {
			b.Fatalf("replicas served %d of %d reads", served, b.N)
		}
	})
}

func benchFirst(b *testing.B, db *gorm.DB) {
	b.ReportAllocs()
	var u benchUser
	for b.Loop() {
		if err := db.First(&u, 1).Error; err != nil {
			b.Fatal(err)
		}
	}
}
