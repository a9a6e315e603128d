package rwsplit

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/rwsplit/rwsplit/internal/connerr"
	"github.com/rwsplit/rwsplit/stickiness"
)

// primaryConn wraps the primary's pool so that a transaction begun with
// sql.TxOptions{ReadOnly: true} runs on a replica, and a transaction on the
// primary marks its writers sticky when it commits. Everything else passes
// through unchanged.
type primaryConn struct {
	p     *Plugin
	inner gorm.ConnPool
}

var (
	_ gorm.ConnPool         = (*primaryConn)(nil)
	_ gorm.ConnPoolBeginner = (*primaryConn)(nil)
	_ gorm.GetDBConnector   = (*primaryConn)(nil)
)

func (c *primaryConn) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	st, err := c.inner.PrepareContext(ctx, query)
	return st, unreachable(ctx, err)
}

func (c *primaryConn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := c.inner.ExecContext(ctx, query, args...)
	return res, unreachable(ctx, err)
}

func (c *primaryConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := c.inner.QueryContext(ctx, query, args...)
	return rows, unreachable(ctx, err)
}

// unreachable wraps a connection error that is the primary's doing in
// ErrPrimaryUnreachable; it returns any other error as it is.
func unreachable(ctx context.Context, err error) error {
	if err != nil && connerr.Blames(ctx, err) {
		return fmt.Errorf("%w: %w", ErrPrimaryUnreachable, err)
	}
	return err
}

func (c *primaryConn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return c.inner.QueryRowContext(ctx, query, args...)
}

// GetDBConn implements gorm.GetDBConnector, so db.DB() keeps returning the
// primary's *sql.DB.
func (c *primaryConn) GetDBConn() (*sql.DB, error) {
	if db := sqlDBOf(c.inner); db != nil {
		return db, nil
	}
	return nil, gorm.ErrInvalidDB
}

// Ping keeps gorm's and dbresolver's pings working on the primary.
func (c *primaryConn) Ping() error {
	db, err := c.GetDBConn()
	if err != nil {
		return err
	}
	return db.Ping()
}

// BeginTx begins on the primary, unless opts asks for a read-only
// transaction: that one runs on a replica.
func (c *primaryConn) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	if opts != nil && opts.ReadOnly {
		// A sticky user's transaction must see their last write.
		q := txRequest{}
		q.pos, q.sticky = c.p.stickyLookup(ctx, nil) // its tables are unknown
		return c.p.beginReadOnly(ctx, opts, false, q)
	}
	pool, err := beginPrimary(ctx, c.inner, opts)
	if err != nil {
		return nil, unreachable(ctx, err)
	}
	if tx, ok := pool.(*sql.Tx); ok && err == nil && c.p.sticky != nil {
		// Hold the transaction's writes until it commits (stickiness).
		return &primaryTx{Tx: tx, p: c.p, db: sqlDBOf(c.inner)}, nil
	}
	return pool, err
}

// primaryTx is a transaction on the primary. It holds the writes made in
// it and marks their users sticky when it commits.
type primaryTx struct {
	*sql.Tx
	p      *Plugin
	db     *sql.DB
	mu     sync.Mutex
	ctx    context.Context // the first write's
	writes []stickiness.Write
}

var _ gorm.Tx = (*primaryTx)(nil)

// primaryTxOf returns the transaction rwsplit began that pool runs in,
// through any number of prepared-statement wrappers (a prepared session of
// a prepared DB nests two), and whether pool is a transaction at all.
func primaryTxOf(pool gorm.ConnPool) (owned *primaryTx, inTx bool) {
	if c, ok := pool.(*gorm.PreparedStmtTX); ok {
		pool = innermostTx(c)
	}
	switch c := pool.(type) {
	case *primaryTx:
		return c, true
	case gorm.TxCommitter:
		return nil, true
	}
	return nil, false
}

func (t *primaryTx) noteWrite(ctx context.Context, w stickiness.Write) {
	t.mu.Lock()
	if len(t.writes) == 0 {
		t.ctx = ctx
	}
	t.writes = append(t.writes, w)
	t.mu.Unlock()
}

// Commit commits, then marks the transaction's writers sticky.
func (t *primaryTx) Commit() error {
	if err := t.Tx.Commit(); err != nil {
		return err
	}
	t.mu.Lock()
	ctx, ws := t.ctx, t.writes
	t.ctx, t.writes = nil, nil
	t.mu.Unlock()
	if len(ws) > 0 {
		t.p.markWrites(ctx, nil, ws...)
	}
	return nil
}

// GetDBConn keeps db.DB() working inside a transaction.
func (t *primaryTx) GetDBConn() (*sql.DB, error) { return t.db, nil }

// beginPrimary begins a transaction on a primary pool.
func beginPrimary(ctx context.Context, pool gorm.ConnPool, opts *sql.TxOptions) (gorm.ConnPool, error) {
	switch b := pool.(type) {
	case gorm.TxBeginner:
		tx, err := b.BeginTx(ctx, opts)
		if err != nil {
			return nil, err
		}
		return tx, nil
	case gorm.ConnPoolBeginner:
		return b.BeginTx(ctx, opts)
	}
	return nil, gorm.ErrInvalidTransaction
}

// primaryDialector wraps the primary's dialector so that every statement a
// Migrator runs goes to the primary: schema reads must see schema writes,
// which a replica may not have replayed yet.
type primaryDialector struct {
	gorm.Dialector
}

var (
	_ gorm.ErrorTranslator               = primaryDialector{}
	_ gorm.SavePointerDialectorInterface = primaryDialector{}
)

// Migrator implements gorm.Dialector.
func (d primaryDialector) Migrator(db *gorm.DB) gorm.Migrator {
	return d.Dialector.Migrator(db.WithContext(withPrimary(db.Statement.Context)))
}

// Translate keeps gorm.Config.TranslateError working.
func (d primaryDialector) Translate(err error) error {
	if t, ok := d.Dialector.(gorm.ErrorTranslator); ok {
		return t.Translate(err)
	}
	return err
}

// SavePoint keeps nested transactions working.
func (d primaryDialector) SavePoint(tx *gorm.DB, name string) error {
	if s, ok := d.Dialector.(gorm.SavePointerDialectorInterface); ok {
		return s.SavePoint(tx, name)
	}
	return gorm.ErrUnsupportedDriver
}

// RollbackTo keeps nested transactions working.
func (d primaryDialector) RollbackTo(tx *gorm.DB, name string) error {
	if s, ok := d.Dialector.(gorm.SavePointerDialectorInterface); ok {
		return s.RollbackTo(tx, name)
	}
	return gorm.ErrUnsupportedDriver
}

// Unwrap returns the driver's dialector.
func (d primaryDialector) Unwrap() gorm.Dialector { return d.Dialector }

// wrapPrimary installs the primary-side wrappers: the dialector (Migrator
// queries to the primary) and the pool (read-only transactions to a
// replica, sticky marks at commit). It keeps *gorm.PreparedStmtDB
// outermost, where GORM's Migrator looks for it.
func (p *Plugin) wrapPrimary(db *gorm.DB) {
	p.primaryPool = db.ConnPool
	pc := &primaryConn{p: p, inner: db.ConnPool}
	if pdb, ok := db.ConnPool.(*gorm.PreparedStmtDB); ok {
		pc.inner = pdb.ConnPool
		db.ConnPool = &gorm.PreparedStmtDB{ConnPool: pc, Mux: pdb.Mux, Stmts: pdb.Stmts}
	} else {
		db.ConnPool = pc
	}
	p.primaryTx = pc
	p.serialRO = db.Dialector.Name() == "postgres"
	if db.Statement != nil {
		db.Statement.ConnPool = db.ConnPool
	}
	if _, ok := db.Dialector.(primaryDialector); !ok {
		db.Dialector = primaryDialector{Dialector: db.Dialector}
	}
}

// routeCtx carries routing instructions in a context, which GORM passes on
// to the queries it derives from a statement (Preload, associations).
type routeCtx struct {
	migrator bool              // every statement to the primary (Migrator)
	dir      clause.Expression // a routing clause of the statement derived from
}

type routeCtxKey struct{}

func withPrimary(ctx context.Context) context.Context {
	if ctx == nil {
		ctx = context.Background()
	}
	rc := routeCtx{migrator: true}
	if old := routeCtxOf(ctx); old != nil {
		rc.dir = old.dir
	}
	return context.WithValue(ctx, routeCtxKey{}, &rc)
}

// withDirective returns ctx carrying the routing clause d.
func withDirective(ctx context.Context, rc *routeCtx, d clause.Expression) context.Context {
	n := routeCtx{dir: d}
	if rc != nil {
		n.migrator = rc.migrator
	}
	return context.WithValue(ctx, routeCtxKey{}, &n)
}

func routeCtxOf(ctx context.Context) *routeCtx {
	if ctx == nil {
		return nil
	}
	rc, _ := ctx.Value(routeCtxKey{}).(*routeCtx)
	return rc
}
