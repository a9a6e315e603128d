package rwsplit

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"

	"github.com/rwsplit/rwsplit/internal/connerr"
	"github.com/rwsplit/rwsplit/policy"
)

// node is one replica: its pool as dbresolver opened it, the ConnPool views
// routing hands to GORM, and its live counters.
type node struct {
	p      *Plugin
	idx    int
	name   string
	weight int
	stats  policy.Stats

	sqlDB   *sql.DB                  // the replica pool, opened by dbresolver
	views   [2]*nodeConn             // unprepared views, [retry]
	prep    atomic.Pointer[prepared] // dbresolver's statement store and views over it
	prepMu  sync.Mutex
	openErr error // why the driver could not reach it at start-up
}

func newNode(p *Plugin, idx int, r Replica) *node {
	w := r.Weight
	if w == 0 {
		w = 1
	}
	return &node{p: p, idx: idx, name: r.Name, weight: w}
}

// opened records the pool that the replica's dialector opened.
func (n *node) opened(db *sql.DB) {
	n.sqlDB = db
}

// initViews builds the unprepared ConnPool views routing chooses from, so
// routing allocates nothing.
func (n *node) initViews() {
	for retry := range 2 {
		n.views[retry] = &nodeConn{n: n, inner: n.sqlDB, retry: retry == 1}
	}
}

// conn returns the ConnPool view for a statement.
func (n *node) conn(prepared, retry bool) *nodeConn {
	if !prepared {
		return n.views[b2i(retry)]
	}
	return n.preparedViews().views[b2i(retry)]
}

// preparedViews returns the replica's prepared-statement store and the views
// over it, made on first use.
func (n *node) preparedViews() *prepared {
	if pv := n.prep.Load(); pv != nil {
		return pv
	}
	n.prepMu.Lock()
	defer n.prepMu.Unlock()
	if pv := n.prep.Load(); pv != nil {
		return pv
	}
	pv := &prepared{store: n.p.replicaStore(n)}
	for retry := range 2 {
		pv.views[retry] = &nodeConn{n: n, inner: pv.store, prepared: true, retry: retry == 1}
	}
	n.prep.Store(pv)
	return pv
}

// store returns the replica's prepared-statement store.
func (n *node) store() *gorm.PreparedStmtDB { return n.preparedViews().store }

// prepared is a replica's prepared-statement store with its views.
type prepared struct {
	store *gorm.PreparedStmtDB
	views [2]*nodeConn // [retry]
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// eligible reports whether the node may serve reads: the checker's verdict.
func (n *node) eligible() bool {
	c := n.p.checker
	return c == nil || c.State(n.idx).Eligible()
}

// lag returns the node's last measured lag, and whether it is known.
func (n *node) lag() (time.Duration, bool) {
	if c := n.p.checker; c != nil {
		return c.Lag(n.idx)
	}
	return 0, false
}

// lagNow returns an upper bound on the node's staleness now (see
// lagcheck.Checker.LagNow), and whether it is known.
func (n *node) lagNow() (time.Duration, bool) {
	if c := n.p.checker; c != nil {
		return c.LagNow(n.idx)
	}
	return 0, false
}

// nodeConn is the gorm.ConnPool rwsplit hands to GORM for a statement on a
// replica. It counts the statement in the replica's Stats, takes the
// replica out of service on a connection-class error, and, for reads that
// rwsplit routed itself (retry), serves them again elsewhere when that is
// safe: before any row reached the caller, outside any transaction, and
// never for a write.
type nodeConn struct {
	n        *node
	inner    gorm.ConnPool // *sql.DB or *gorm.PreparedStmtDB over it
	prepared bool
	retry    bool
}

var (
	_ gorm.ConnPool         = (*nodeConn)(nil)
	_ gorm.ConnPoolBeginner = (*nodeConn)(nil)
	_ gorm.GetDBConnector   = (*nodeConn)(nil)
)

// GetDBConn implements gorm.GetDBConnector. It returns the primary's
// *sql.DB, not the replica's: db.DB() and db.Connection on a statement a
// Replica clause pointed here would otherwise hand out a replica
// connection, on which anything, writes included, could run. Use
// Plugin.ReplicaDB for a replica's pool.
func (c *nodeConn) GetDBConn() (*sql.DB, error) { return sqlDBOf(c.n.p.primaryPool), nil }

func (c *nodeConn) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	start := c.n.stats.Start()
	st, err := c.inner.PrepareContext(ctx, query)
	c.done(start, err)
	return st, err
}

func (c *nodeConn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	start := c.n.stats.Start()
	res, err := c.inner.ExecContext(ctx, query, args...)
	c.done(start, err)
	if err != nil && c.retry {
		if next := c.again(ctx, err, query); next != nil {
			return next.ExecContext(ctx, query, args...)
		}
	}
	return res, err
}

func (c *nodeConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	start := c.n.stats.Start()
	rows, err := c.inner.QueryContext(ctx, query, args...)
	c.done(start, err)
	if err != nil && c.retry {
		if next := c.again(ctx, err, query); next != nil {
			return next.QueryContext(ctx, query, args...)
		}
	}
	return rows, err
}

func (c *nodeConn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	start := c.n.stats.Start()
	row := c.inner.QueryRowContext(ctx, query, args...)
	err := row.Err()
	c.done(start, err)
	if err != nil && c.retry {
		if next := c.again(ctx, err, query); next != nil {
			return next.QueryRowContext(ctx, query, args...)
		}
	}
	return row
}

// BeginTx starts a transaction on this replica. If the replica cannot be
// reached, nothing has run yet, so the transaction starts on another
// eligible replica, or on the primary as a read-only transaction.
func (c *nodeConn) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	tx, err := c.n.beginTx(ctx, opts)
	if err == nil {
		return tx.pool(c.prepared), nil
	}
	if !connerr.Is(err) || ctx.Err() != nil {
		return nil, err
	}
	return c.n.p.beginReadOnly(ctx, opts, c.prepared, c.n)
}

func (c *nodeConn) done(start int64, err error) { c.n.done(start, err) }

// done folds one statement (begun at start, Stats.Start's token) into the
// replica's Stats and takes the replica out of service on a
// connection-class error.
func (n *node) done(start int64, err error) {
	failed := err != nil && connerr.Is(err)
	n.stats.Done(start, failed)
	if failed {
		n.p.markDown(n, err)
	}
}

// readOnly returns opts' isolation level with ReadOnly set.
func readOnly(opts *sql.TxOptions) *sql.TxOptions {
	ro := sql.TxOptions{ReadOnly: true}
	if opts != nil {
		ro.Isolation = opts.Isolation
	}
	return &ro
}

// again decides whether a failed read may be served again, and where. It
// returns nil when the error must reach the caller.
func (c *nodeConn) again(ctx context.Context, err error, query string) gorm.ConnPool {
	if ctx.Err() != nil {
		return nil // the caller gave up; their deadline covers any retry too
	}
	switch {
	case connerr.Is(err):
		// The server cannot have run the statement: another node may.
		// Never retried twice: the next node's view does not retry.
		return c.n.p.retryTarget(ctx, c.n, c.prepared)
	case isCachedPlanError(err):
		// PostgreSQL refused a cached plan after DDL changed the result
		// type. pgx has dropped the cached statement on that connection;
		// with PrepareStmt the store still has it, so drop it there too.
		if c.prepared {
			st := c.n.store()
			st.Mux.Lock()
			st.Stmts.Delete(query)
			st.Mux.Unlock()
		}
		return cachedPlanRetry{c: c, left: c.n.sqlDB.Stats().OpenConnections + 1}
	case c.prepared && isStmtClosed(err):
		// Another read dropped this statement from the store (above)
		// between our lookup and our use: nothing ran. Prepare again.
		return c.n.conn(true, false)
	}
	return nil
}

// isStmtClosed reports database/sql's error for a *sql.Stmt used after
// Close, which it does not export.
func isStmtClosed(err error) bool {
	return err != nil && err.Error() == "sql: statement is closed"
}

// isCachedPlanError reports PostgreSQL's "cached plan must not change result
// type" (SQLSTATE 0A000), raised when a prepared statement outlives DDL
// that changed its result columns.
func isCachedPlanError(err error) bool {
	var s interface{ SQLState() string }
	return errors.As(err, &s) && s.SQLState() == "0A000"
}

// cachedPlanRetry runs a read again on the same replica until a connection
// without the stale plan serves it. It runs the statement unprepared, with
// a trailing newline added to its text. The statement means the same, but
// the driver sees new SQL: pgx's stdlib keeps a prepared statement per
// connection keyed by its SQL text, and reuses it for unprepared queries of
// the same text as long as any *sql.Stmt refers to it, so the original text
// could meet the stale plan again. pgx drops a stale entry of its own
// statement cache on the connection that failed, so at most one attempt
// per open connection (plus one) is made. Dropping the statement from
// GORM's store (see again) closes it, and the next prepared read prepares
// afresh once no connection holds the stale statement.
type cachedPlanRetry struct {
	c    *nodeConn
	left int
}

func (r cachedPlanRetry) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return r.c.PrepareContext(ctx, query)
}

func (r cachedPlanRetry) ExecContext(ctx context.Context, query string, args ...any) (res sql.Result, err error) {
	for range r.left {
		if res, err = r.c.n.conn(false, false).ExecContext(ctx, query+"\n", args...); !isCachedPlanError(err) {
			break
		}
	}
	return res, err
}

func (r cachedPlanRetry) QueryContext(ctx context.Context, query string, args ...any) (rows *sql.Rows, err error) {
	for range r.left {
		if rows, err = r.c.n.conn(false, false).QueryContext(ctx, query+"\n", args...); !isCachedPlanError(err) {
			break
		}
	}
	return rows, err
}

func (r cachedPlanRetry) QueryRowContext(ctx context.Context, query string, args ...any) (row *sql.Row) {
	for range r.left {
		if row = r.c.n.conn(false, false).QueryRowContext(ctx, query+"\n", args...); !isCachedPlanError(row.Err()) {
			break
		}
	}
	return row
}

// beginTx starts a read-only transaction on the replica, counted in its
// Stats. rwsplit refuses writes in it before they reach the server
// (ErrReadOnly); READ ONLY makes the server refuse them too, should the
// replica accept writes (a MySQL replica without read_only).
func (n *node) beginTx(ctx context.Context, opts *sql.TxOptions) (*nodeTx, error) {
	start := n.stats.Start()
	tx, err := n.sqlDB.BeginTx(ctx, readOnly(opts))
	n.done(start, err)
	if err != nil {
		return nil, err
	}
	return &nodeTx{n: n, tx: tx}, nil
}

// nodeTx is a transaction on a replica. Every statement in it stays on that
// replica: nothing inside a transaction is ever retried or moved.
type nodeTx struct {
	n        *node
	tx       *sql.Tx
	prepOnce sync.Once
	prep     *gorm.PreparedStmtTX
}

var _ gorm.Tx = (*nodeTx)(nil)

// prepared returns this transaction paired with the replica's
// prepared-statement store, made once per transaction.
func (t *nodeTx) prepared() *gorm.PreparedStmtTX {
	t.prepOnce.Do(func() { t.prep = &gorm.PreparedStmtTX{Tx: t, PreparedStmtDB: t.n.store()} })
	return t.prep
}

// GetDBConn returns the primary's *sql.DB, as nodeConn.GetDBConn does.
func (t *nodeTx) GetDBConn() (*sql.DB, error) { return sqlDBOf(t.n.p.primaryPool), nil }
func (t *nodeTx) Commit() error               { return t.tx.Commit() }
func (t *nodeTx) Rollback() error             { return t.tx.Rollback() }

func (t *nodeTx) StmtContext(ctx context.Context, stmt *sql.Stmt) *sql.Stmt {
	return t.tx.StmtContext(ctx, stmt)
}

func (t *nodeTx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	start := t.n.stats.Start()
	st, err := t.tx.PrepareContext(ctx, query)
	t.done(start, err)
	return st, err
}

func (t *nodeTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	start := t.n.stats.Start()
	res, err := t.tx.ExecContext(ctx, query, args...)
	t.done(start, err)
	return res, err
}

func (t *nodeTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	start := t.n.stats.Start()
	rows, err := t.tx.QueryContext(ctx, query, args...)
	t.done(start, err)
	return rows, err
}

func (t *nodeTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	start := t.n.stats.Start()
	row := t.tx.QueryRowContext(ctx, query, args...)
	t.done(start, row.Err())
	return row
}

func (t *nodeTx) done(start int64, err error) { t.n.done(start, err) }

// pool returns the transaction as GORM should hold it: paired with the
// replica's statement store for a prepared session.
func (t *nodeTx) pool(prepared bool) gorm.ConnPool {
	if prepared {
		return t.prepared()
	}
	return t
}

// primaryConn wraps the primary's pool so that a transaction begun with
// sql.TxOptions{ReadOnly: true} runs on a replica. Everything else passes
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
	return c.inner.PrepareContext(ctx, query)
}

func (c *primaryConn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return c.inner.ExecContext(ctx, query, args...)
}

func (c *primaryConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return c.inner.QueryContext(ctx, query, args...)
}

func (c *primaryConn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return c.inner.QueryRowContext(ctx, query, args...)
}

// GetDBConn implements gorm.GetDBConnector, so db.DB() keeps returning the
// primary's *sql.DB.
func (c *primaryConn) GetDBConn() (*sql.DB, error) {
	switch in := c.inner.(type) {
	case *sql.DB:
		return in, nil
	case gorm.GetDBConnector:
		return in.GetDBConn()
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
		return c.p.beginReadOnly(ctx, opts, false, nil)
	}
	pool, err := c.p.beginPrimary(ctx, c.inner, opts)
	if tx, ok := pool.(*sql.Tx); ok && err == nil && c.p.sticky != nil {
		// Hold the transaction's writes until it commits (stickiness).
		return &primaryTx{Tx: tx, p: c.p, db: sqlDBOf(c.inner)}, nil
	}
	return pool, err
}

func (p *Plugin) beginPrimary(ctx context.Context, pool gorm.ConnPool, opts *sql.TxOptions) (gorm.ConnPool, error) {
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

// beginReadOnly starts a read-only transaction on an eligible replica other
// than skip, trying the next one if a replica cannot be reached (nothing has
// run yet, so that is safe). With no replica left it follows
// Config.Fallback: a read-only transaction on the primary, or ErrNoReplica.
func (p *Plugin) beginReadOnly(ctx context.Context, opts *sql.TxOptions, prepared bool, skip *node) (gorm.ConnPool, error) {
	for range len(p.nodes) {
		n := p.pick(ctx, skip, &p.fresh)
		if n == nil {
			break
		}
		tx, err := n.beginTx(ctx, opts)
		if err == nil {
			p.route(ctx, n.name, ReasonReadOnlyTx)
			return tx.pool(prepared), nil
		}
		if !connerr.Is(err) || ctx.Err() != nil {
			return nil, err
		}
		skip = n
	}
	if n := p.fallback(); n != nil {
		if tx, err := n.beginTx(ctx, opts); err == nil {
			p.route(ctx, n.name, ReasonNoReplica)
			return tx.pool(prepared), nil
		}
	}
	if p.cfg.Fallback == FallbackFail {
		return nil, ErrNoReplica
	}
	p.route(ctx, p.primaryName, ReasonNoReplica)
	return p.beginPrimary(ctx, p.primaryPool, readOnly(opts))
}
