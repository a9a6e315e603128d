package rwsplit

import (
	"database/sql"

	"gorm.io/gorm"
	gormlogger "gorm.io/gorm/logger"

	"github.com/rwsplit/rwsplit/internal/connerr"
)

// The lag checker's connections. The checker samples the primary and
// probes each replica on connections of its own: rwsplit opens, for each
// server, a pool from the same dialector as the application's pool, and
// the checker holds one connection of it. An application pool that is
// saturated (SetMaxOpenConns and slow queries, or a burst) then never
// makes a probe wait: waiting for the application's pools once evicted
// caught-up replicas and left every lag unknown.
//
// A dialector built on an existing *sql.DB (postgres.Config{Conn: db},
// mysql.Config{Conn: db}) cannot open another pool. The checker then holds
// one connection of that pool, so the application has one fewer; of a
// pool capped below 4 open connections it takes one for each probe
// instead. It takes it before a probe and again after a probe fails on it;
// a wait for it that runs out of the probe Timeout is a reading of
// lagcheck.ErrPoolBusy, which neither evicts nor readmits a replica, and
// bounds no lag: the replica's staleness bound keeps growing, and reads
// leave it once the bound passes MaxLag.

// checkPoolIdle is how many idle connections a pool opened for the checker
// keeps: the one the checker holds between probes, and one for
// lagcheck.Checker.CommitPosition and PrimaryPosition, which do not go
// through it. The pool has no cap on open connections, so the checker
// always holds one (see lagcheck.Checker).
const checkPoolIdle = 2

// checkPool returns the pool the checker uses for the server that d opens
// and whose application pool is app: a pool of its own, or app itself when
// d hands out app (an existing *sql.DB) or cannot open another pool. owned
// says whether rwsplit opened it, and must close it.
func checkPool(d gorm.Dialector, app *sql.DB) (pool *sql.DB, owned bool) {
	c := &captureDialector{Dialector: d}
	if _, err := gorm.Open(c, &gorm.Config{Logger: gormlogger.Discard, DisableAutomaticPing: true}); err != nil || c.pool == nil {
		return app, false
	}
	if c.pool == app {
		return app, false
	}
	c.pool.SetMaxIdleConns(checkPoolIdle)
	return c.pool, true
}

// captureDialector opens a pool with its Dialector and keeps it, also when
// the server cannot be reached yet (the MySQL driver asks the server for
// its version while it initializes): the pool connects when it can.
type captureDialector struct {
	gorm.Dialector
	pool *sql.DB
}

func (d *captureDialector) Initialize(db *gorm.DB) error {
	err := d.Dialector.Initialize(db)
	d.pool = sqlDBOf(db.ConnPool)
	if err != nil && d.pool != nil && connerr.Is(err) {
		return nil
	}
	return err
}
