package rwsplit

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"gorm.io/gorm"

	"github.com/rwsplit/rwsplit/internal/connerr"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/policy"
)

// node is one replica: its pool and prepared-statement store as dbresolver
// opened them, the ConnPool views routing hands to GORM, and its counters.
type node struct {
	r      *router
	idx    int
	name   string
	weight int
	stats  policy.Stats
	notes  *routeNotes               // RouteOf's, one per reason
	routes [numReasons]atomic.Uint64 // decisions that named this replica, by reason (ReplicaStats.Routes)

	sqlDB   *sql.DB              // the replica pool
	dialect gorm.Dialector       // what opened it, to open the checker's pool
	checkDB *sql.DB              // the checker's pool, when rwsplit opened one
	store   *gorm.PreparedStmtDB // its prepared-statement store
	views   [2][numViews]*nodeConn
	openErr error       // why the driver could not reach it at start-up
	drained atomic.Bool // Plugin.Drain: no new reads

	// RemoveReplica: gone is set once the replica is out of the published
	// set; a statement routed to it before then runs elsewhere (enter).
	// txs counts its open transactions, which Remove waits for.
	gone atomic.Bool
	txs  atomic.Int64
}

// errGone is what beginning a transaction on a removed replica fails
// with, before it reaches the server: the caller begins it elsewhere.
var errGone = errors.New("rwsplit: replica removed")

// enter counts a statement on n (Stats.StartSampled) and returns its token,
// or reports false when RemoveReplica has taken n out, counting nothing.
// Remove sets gone before it waits for InFlight to reach zero, and enter
// counts before it reads gone: either Remove sees the statement in flight
// and waits for it, or the statement sees gone and runs elsewhere.
func (n *node) enter() (start int64, ok bool) {
	start = n.stats.StartSampled()
	if n.gone.Load() {
		n.stats.Cancel()
		return 0, false
	}
	return start, true
}

// movable reports whether a transaction that failed to begin on a replica
// may begin elsewhere: nothing ran.
func movable(ctx context.Context, err error) bool {
	return errors.Is(err, errGone) || connerr.Blames(ctx, err)
}

// checkTarget opens the checker's pool for n (see checkpool.go) and
// returns the checker's target.
func (n *node) checkTarget() lagcheck.Target {
	pool, owned := checkPool(n.dialect, n.sqlDB)
	if owned {
		n.checkDB = pool
	}
	return lagcheck.Target{Name: n.name, DB: pool}
}

// close stops n's prepared-statement store (dbresolver's, or rwsplit's
// own) and closes its pools.
func (n *node) close() error {
	stopStore(n.store)
	var errs []error
	for _, pool := range []*sql.DB{n.sqlDB, n.checkDB} {
		if pool != nil {
			errs = append(errs, pool.Close())
		}
	}
	return errors.Join(errs...)
}

// view is how a statement came to a replica.
type view uint8

const (
	viewRouted      view = iota // routing chose it: a connection error may move the read
	viewConstrained             // ... and the read has a bound (causal, MaxStaleness): it moves only to the primary
	viewExplicit                // a Replica{Name} clause: transactions begin here
	viewRetry                   // a read moved here after a connection error
	numViews
)

func newNode(r *router, idx int, rep Replica) *node {
	w := rep.Weight
	if w == 0 {
		w = 1
	}
	return &node{r: r, idx: idx, name: rep.Name, weight: w, notes: newRouteNotes(rep.Name)}
}

// setPools records the replica's pool and statement store and builds the
// views routing chooses from, so that routing allocates nothing.
func (n *node) setPools(db *sql.DB, store *gorm.PreparedStmtDB) {
	n.sqlDB, n.store = db, store
	for v := range numViews {
		n.views[0][v] = &nodeConn{n: n, inner: db, view: v}
		n.views[1][v] = &nodeConn{n: n, inner: store, prepared: true, view: v}
	}
}

// conn returns the ConnPool view for a statement.
func (n *node) conn(prepared bool, v view) *nodeConn { return n.views[b2i(prepared)][v] }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// done folds one statement, run under ctx and begun at start (the token of
// Stats.StartSampled), into the replica's Stats and takes the replica out of service on
// a connection-class error that is the server's doing (connerr.Blames): a
// statement whose own ctx was canceled or ran out counts as neither.
func (n *node) done(ctx context.Context, start int64, err error) {
	failed := err != nil && connerr.Blames(ctx, err)
	n.stats.Done(start, failed)
	if failed {
		n.r.markDown(n, err)
	}
}

// nodeConn is the gorm.ConnPool rwsplit hands to GORM for a statement on a
// replica. It counts the statement in the replica's Stats, takes the
// replica out of service on a connection-class error, and, for reads that
// routing chose it for, serves them again elsewhere when that is safe:
// before any row reached the caller, outside any transaction, and never for
// a write. SQL that the classifier cannot prove read-only never runs here:
// it runs on the primary.
type nodeConn struct {
	n        *node
	inner    gorm.ConnPool // *sql.DB or *gorm.PreparedStmtDB over it
	prepared bool
	view     view
}

var (
	_ gorm.ConnPool         = (*nodeConn)(nil)
	_ gorm.ConnPoolBeginner = (*nodeConn)(nil)
	_ gorm.GetDBConnector   = (*nodeConn)(nil)
)

// GetDBConn returns the primary's *sql.DB, never the replica's: db.DB()
// and db.Connection could otherwise run writes on a replica connection.
// Plugin.ReplicaDB returns a replica's pool.
func (c *nodeConn) GetDBConn() (*sql.DB, error) { return sqlDBOf(c.n.r.primaryPool), nil }

// primary returns the primary's pool when query may not run on a replica,
// and reports the move; nil otherwise.
func (c *nodeConn) primary(ctx context.Context, query string) gorm.ConnPool {
	why, moved := c.n.r.guard(query)
	if !moved {
		return nil
	}
	c.n.r.report(ctx, target{where: toPrimary, reason: why})
	return c.n.r.primaryPool
}

func (c *nodeConn) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	if p := c.primary(ctx, query); p != nil {
		return p.PrepareContext(ctx, query)
	}
	start, ok := c.n.enter()
	if !ok {
		return c.moved(ctx).PrepareContext(ctx, query)
	}
	st, err := c.inner.PrepareContext(ctx, query)
	c.n.done(ctx, start, err)
	return st, err
}

func (c *nodeConn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if p := c.primary(ctx, query); p != nil {
		return p.ExecContext(ctx, query, args...)
	}
	start, ok := c.n.enter()
	if !ok {
		return c.moved(ctx).ExecContext(ctx, query, args...)
	}
	res, err := c.inner.ExecContext(ctx, query, args...)
	c.n.done(ctx, start, err)
	if err != nil && c.view <= viewConstrained {
		if next := c.again(ctx, err, query); next != nil {
			return next.ExecContext(ctx, query, args...)
		}
	}
	return res, err
}

func (c *nodeConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if p := c.primary(ctx, query); p != nil {
		return p.QueryContext(ctx, query, args...)
	}
	start, ok := c.n.enter()
	if !ok {
		return c.moved(ctx).QueryContext(ctx, query, args...)
	}
	rows, err := c.inner.QueryContext(ctx, query, args...)
	c.n.done(ctx, start, err)
	if err != nil && c.view <= viewConstrained {
		if next := c.again(ctx, err, query); next != nil {
			return next.QueryContext(ctx, query, args...)
		}
	}
	return rows, err
}

func (c *nodeConn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if p := c.primary(ctx, query); p != nil {
		return p.QueryRowContext(ctx, query, args...)
	}
	start, ok := c.n.enter()
	if !ok {
		return c.moved(ctx).QueryRowContext(ctx, query, args...)
	}
	row := c.inner.QueryRowContext(ctx, query, args...)
	err := row.Err()
	c.n.done(ctx, start, err)
	if err != nil && c.view <= viewConstrained {
		if next := c.again(ctx, err, query); next != nil {
			return next.QueryRowContext(ctx, query, args...)
		}
	}
	return row
}

// BeginTx starts a transaction. Only an explicit request runs it on this
// replica: a Replica{Name} clause, or sql.TxOptions{ReadOnly: true}. A
// *gorm.DB that routing pointed here for a read (the tx of a
// FindInBatches callback or of a hook) begins on the primary. If the
// replica cannot be reached, nothing has run yet, so the transaction starts
// on another eligible replica, or on the primary.
func (c *nodeConn) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	if c.view != viewExplicit {
		return c.n.r.primaryTx.BeginTx(ctx, opts)
	}
	if iso := isolation(opts); c.n.r.closed.Load() || iso == sql.LevelSerializable && c.n.r.serialRO {
		return c.n.r.beginReadOnly(ctx, opts, c.prepared, txRequest{replica: true})
	}
	tx, err := c.n.beginTx(ctx, opts)
	if err == nil {
		return tx.pool(c.prepared), nil
	}
	if !movable(ctx, err) {
		return nil, err
	}
	return c.n.r.beginReadOnly(ctx, opts, c.prepared, txRequest{skip: c.n, replica: true})
}

// isolation returns opts' isolation level.
func isolation(opts *sql.TxOptions) sql.IsolationLevel {
	if opts == nil {
		return sql.LevelDefault
	}
	return opts.Isolation
}

// moved returns where a read runs that routing sent to c's replica just
// before RemoveReplica took it out: where a retry would (another eligible
// replica, or the primary), reported as ReasonRetry; under FallbackFail
// with no other replica, nowhere (ErrNoReplica).
func (c *nodeConn) moved(ctx context.Context) gorm.ConnPool {
	if pool, _ := c.elsewhere(ctx); pool != nil {
		return pool
	}
	return failPool{ErrNoReplica}
}

// elsewhere returns the pool a read on c's replica runs on instead (the
// retry's view of another eligible replica, or the primary), reported as
// ReasonRetry; or nil and the decision's error when there is none.
func (c *nodeConn) elsewhere(ctx context.Context) (gorm.ConnPool, error) {
	r := c.n.r
	t := r.retryTarget(ctx, c.n, c.view)
	switch t.where {
	case toReplica:
		r.report(ctx, t)
		return t.node.conn(c.prepared, viewRetry), nil
	case toPrimary:
		r.report(ctx, t)
		return r.primaryPool, nil
	}
	return nil, t.err
}

// again decides whether a failed read may be served again, and where. It
// returns nil when the error must reach the caller.
func (c *nodeConn) again(ctx context.Context, err error, query string) gorm.ConnPool {
	if connerr.CallerDone(ctx) {
		return nil // the caller gave up; their deadline covers any retry too
	}
	switch {
	case connerr.Is(err):
		// The server cannot have run the statement: another node may. The
		// retry's view does not retry again.
		pool, why := c.elsewhere(ctx)
		switch {
		case pool != nil:
			return pool
		case why == nil:
			return nil
		}
		// FallbackFail and no other replica: ErrNoReplica, as for a read
		// that found none, with the read's own error.
		return failPool{fmt.Errorf("%w: %w", why, err)}
	case isCachedPlanError(err):
		// PostgreSQL refused a cached plan after DDL changed the result
		// type. pgx has dropped it on that connection; drop it from the
		// statement store too.
		if c.prepared {
			st := c.n.store
			st.Mux.Lock()
			st.Stmts.Delete(query)
			st.Mux.Unlock()
		}
		return cachedPlanRetry{c: c, left: c.n.sqlDB.Stats().OpenConnections + 1}
	case c.prepared && isStmtClosed(err):
		// Another read dropped this statement from the store (above)
		// between our lookup and our use: nothing ran. Prepare again.
		return c.n.conn(true, viewRetry)
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

// cachedPlanRetry runs a read again on the same replica, unprepared and
// with a newline appended to its text, until a connection without the
// stale plan serves it: at most one attempt per open connection, plus one.
// The new text keeps pgx's stdlib from reusing the stale statement it
// keeps per connection for that text. See docs/routing.md.
type cachedPlanRetry struct {
	c    *nodeConn
	left int
}

func (r cachedPlanRetry) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return r.c.PrepareContext(ctx, query)
}

func (r cachedPlanRetry) ExecContext(ctx context.Context, query string, args ...any) (res sql.Result, err error) {
	for range r.left {
		if res, err = r.c.n.conn(false, viewRetry).ExecContext(ctx, query+"\n", args...); !isCachedPlanError(err) {
			break
		}
	}
	return res, err
}

func (r cachedPlanRetry) QueryContext(ctx context.Context, query string, args ...any) (rows *sql.Rows, err error) {
	for range r.left {
		if rows, err = r.c.n.conn(false, viewRetry).QueryContext(ctx, query+"\n", args...); !isCachedPlanError(err) {
			break
		}
	}
	return rows, err
}

func (r cachedPlanRetry) QueryRowContext(ctx context.Context, query string, args ...any) (row *sql.Row) {
	for range r.left {
		if row = r.c.n.conn(false, viewRetry).QueryRowContext(ctx, query+"\n", args...); !isCachedPlanError(row.Err()) {
			break
		}
	}
	return row
}

// readOnly returns opts' isolation level with ReadOnly set.
func readOnly(opts *sql.TxOptions) *sql.TxOptions {
	ro := sql.TxOptions{ReadOnly: true}
	if opts != nil {
		ro.Isolation = opts.Isolation
	}
	return &ro
}

// beginTx starts a read-only transaction on the replica, counted in its
// Stats. rwsplit refuses writes in it before they reach the server
// (ErrReadOnly); READ ONLY makes the server refuse them too.
func (n *node) beginTx(ctx context.Context, opts *sql.TxOptions) (*nodeTx, error) {
	start, ok := n.enter()
	if !ok {
		return nil, errGone
	}
	tx, err := n.sqlDB.BeginTx(ctx, readOnly(opts))
	if err == nil {
		n.txs.Add(1) // before done: Remove reads InFlight, then txs
	}
	n.done(ctx, start, err)
	if err != nil {
		return nil, err
	}
	return &nodeTx{n: n, tx: tx}, nil
}

// beginReadOnly starts a read-only transaction where readOnlyTarget says,
// trying the next replica if one cannot be reached: nothing has run yet, so
// that is safe.
func (r *router) beginReadOnly(ctx context.Context, opts *sql.TxOptions, prepared bool, q txRequest) (gorm.ConnPool, error) {
	q.iso = isolation(opts)
	for tries := 0; ; tries++ {
		t := r.readOnlyTarget(ctx, &q)
		if tries > len(r.replicas().nodes) && t.where == toReplica {
			t = r.noReplica(ReasonNoReplica) // each replica failed: stop
		}
		switch t.where {
		case keep:
			return nil, t.err
		case toPrimary:
			r.report(ctx, t)
			return beginPrimary(ctx, r.primaryPool, readOnly(opts))
		}
		tx, err := t.node.beginTx(ctx, opts)
		if err == nil {
			r.report(ctx, t)
			return tx.pool(prepared), nil
		}
		if !movable(ctx, err) {
			return nil, err
		}
		q.skip = t.node
	}
}

// nodeTx is a transaction on a replica. Every statement in it stays on that
// replica: nothing inside a transaction is ever retried or moved.
type nodeTx struct {
	n        *node
	tx       *sql.Tx
	prepOnce sync.Once
	prep     *gorm.PreparedStmtTX
	ended    atomic.Bool // Commit or Rollback was called: no longer in node.txs
}

var _ gorm.Tx = (*nodeTx)(nil)

// prepared returns this transaction paired with the replica's
// prepared-statement store, made once per transaction.
func (t *nodeTx) prepared() *gorm.PreparedStmtTX {
	t.prepOnce.Do(func() { t.prep = &gorm.PreparedStmtTX{Tx: t, PreparedStmtDB: t.n.store} })
	return t.prep
}

// pool returns the transaction as GORM should hold it: paired with the
// replica's statement store for a prepared session.
func (t *nodeTx) pool(prepared bool) gorm.ConnPool {
	if prepared {
		return t.prepared()
	}
	return t
}

// GetDBConn returns the primary's *sql.DB, as nodeConn.GetDBConn does.
func (t *nodeTx) GetDBConn() (*sql.DB, error) { return sqlDBOf(t.n.r.primaryPool), nil }
func (t *nodeTx) Commit() error {
	defer t.end()
	return t.tx.Commit()
}

func (t *nodeTx) Rollback() error {
	defer t.end()
	return t.tx.Rollback()
}

// end takes the transaction out of its replica's count, once.
func (t *nodeTx) end() {
	if !t.ended.Swap(true) {
		t.n.txs.Add(-1)
	}
}

func (t *nodeTx) StmtContext(ctx context.Context, stmt *sql.Stmt) *sql.Stmt {
	return t.tx.StmtContext(ctx, stmt)
}

// readOnly fails SQL that the classifier cannot prove read-only, but for
// transaction control, before it reaches the replica.
func (t *nodeTx) readOnly(query string) error {
	if _, write := t.n.r.guard(query); write && !txControl(query) {
		return ErrReadOnly
	}
	return nil
}

func (t *nodeTx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	if err := t.readOnly(query); err != nil {
		return nil, err
	}
	start := t.n.stats.StartSampled()
	st, err := t.tx.PrepareContext(ctx, query)
	t.n.done(ctx, start, err)
	return st, err
}

func (t *nodeTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := t.readOnly(query); err != nil {
		return nil, err
	}
	start := t.n.stats.StartSampled()
	res, err := t.tx.ExecContext(ctx, query, args...)
	t.n.done(ctx, start, err)
	return res, err
}

func (t *nodeTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if err := t.readOnly(query); err != nil {
		return nil, err
	}
	start := t.n.stats.StartSampled()
	rows, err := t.tx.QueryContext(ctx, query, args...)
	t.n.done(ctx, start, err)
	return rows, err
}

func (t *nodeTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if err := t.readOnly(query); err != nil {
		return errRow(ctx, err)
	}
	start := t.n.stats.StartSampled()
	row := t.tx.QueryRowContext(ctx, query, args...)
	t.n.done(ctx, start, row.Err())
	return row
}

// anyReplicaPool is the ConnPool a statement carries after
// Clauses(rwsplit.Replica{}) until routing runs. Its BeginTx starts a
// read-only transaction on a replica the policy picks; its reads pick a
// replica per call; its ExecContext runs on the primary.
type anyReplicaPool struct {
	r        *router
	prepared bool
}

var (
	_ gorm.ConnPool         = (*anyReplicaPool)(nil)
	_ gorm.ConnPoolBeginner = (*anyReplicaPool)(nil)
	_ gorm.GetDBConnector   = (*anyReplicaPool)(nil)
)

func (a *anyReplicaPool) pool(ctx context.Context) gorm.ConnPool {
	if a.r.closed.Load() {
		return a.r.primaryPool
	}
	f := a.r.fresh()
	if n, _ := a.r.pick(ctx, nil, &f); n != nil {
		return n.conn(a.prepared, viewRouted)
	}
	return a.r.primaryPool
}

func (a *anyReplicaPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	return a.r.beginReadOnly(ctx, opts, a.prepared, txRequest{replica: true})
}

// GetDBConn returns the primary's *sql.DB: a connection pinned with
// db.Connection may be used for anything, writes included.
func (a *anyReplicaPool) GetDBConn() (*sql.DB, error) { return sqlDBOf(a.r.primaryPool), nil }

func (a *anyReplicaPool) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return a.pool(ctx).PrepareContext(ctx, query)
}

// ExecContext runs on the primary: only routing may send a statement to a
// replica, and it has not run.
func (a *anyReplicaPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return a.r.primaryPool.ExecContext(ctx, query, args...)
}

func (a *anyReplicaPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return a.pool(ctx).QueryContext(ctx, query, args...)
}

func (a *anyReplicaPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return a.pool(ctx).QueryRowContext(ctx, query, args...)
}

// failPool is a ConnPool on which everything fails with err.
type failPool struct{ err error }

var _ gorm.ConnPoolBeginner = failPool{}

func (f failPool) PrepareContext(context.Context, string) (*sql.Stmt, error) { return nil, f.err }
func (f failPool) ExecContext(context.Context, string, ...any) (sql.Result, error) {
	return nil, f.err
}
func (f failPool) QueryContext(context.Context, string, ...any) (*sql.Rows, error) {
	return nil, f.err
}

func (f failPool) QueryRowContext(ctx context.Context, _ string, _ ...any) *sql.Row {
	return errRow(ctx, f.err)
}
func (f failPool) BeginTx(context.Context, *sql.TxOptions) (gorm.ConnPool, error) {
	return nil, f.err
}

// errRow returns a *sql.Row whose Err and Scan return err. database/sql
// makes a *sql.Row with an error only from a failed query, so it runs one
// on a pool whose connector fails with err.
func errRow(ctx context.Context, err error) *sql.Row {
	db := sql.OpenDB(errConnector{err})
	defer db.Close()
	return db.QueryRowContext(context.WithoutCancel(ctx), "")
}

type errConnector struct{ err error }

func (c errConnector) Connect(context.Context) (driver.Conn, error) { return nil, c.err }
func (c errConnector) Driver() driver.Driver                        { return c }
func (c errConnector) Open(string) (driver.Conn, error)             { return nil, c.err }
