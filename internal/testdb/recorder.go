package testdb

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"strings"
	"sync"
)

// Recorder records, at the database/sql driver level, every statement
// executed through the connectors it wraps, with the name of the node that
// executed it. Tests use it to assert which node served a statement,
// independently of the routing plugin's own bookkeeping. The zero value is
// ready to use; it is safe for concurrent use.
type Recorder struct {
	// Observe, if set, is called with each statement as it is recorded,
	// with the context it ran with (COMMIT and ROLLBACK: the context their
	// transaction began with; a statement run without one:
	// context.Background()) and its error. It runs on the statement's
	// path: it must be fast and safe for concurrent use. Set it before use.
	Observe func(ctx context.Context, e Exec, err error)
	// Discard, if set, keeps no statement: Observe sees each one, Since and
	// Find none. A long test that counts statements itself keeps its
	// memory flat. Set it before use.
	Discard bool

	mu    sync.Mutex
	execs []Exec
}

// Exec is one statement executed on a node: a query, an exec, an execution
// of a prepared statement (recorded with the prepared SQL, once per
// execution), or a transaction boundary, recorded as "BEGIN", "COMMIT" or
// "ROLLBACK". Preparing and pinging are not recorded. A statement that
// failed on the server is recorded too: the node did receive it.
type Exec struct {
	Node string
	SQL  string
}

func (r *Recorder) record(ctx context.Context, node, sql string, err error) {
	e := Exec{Node: node, SQL: sql}
	if r.Observe != nil {
		r.Observe(ctx, e, err)
	}
	if r.Discard {
		return
	}
	r.mu.Lock()
	r.execs = append(r.execs, e)
	r.mu.Unlock()
}

// Mark returns a position in the record, for Since.
func (r *Recorder) Mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.execs)
}

// Since returns the statements recorded after mark, in the order they
// finished.
func (r *Recorder) Since(mark int) []Exec {
	r.mu.Lock()
	defer r.mu.Unlock()
	if mark < 0 {
		mark = 0
	}
	if mark >= len(r.execs) {
		return nil
	}
	return append([]Exec(nil), r.execs[mark:]...)
}

// All returns every statement recorded since the last Reset.
func (r *Recorder) All() []Exec { return r.Since(0) }

// Find returns the recorded statements whose SQL contains sub.
func (r *Recorder) Find(sub string) []Exec {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Exec
	for _, e := range r.execs {
		if strings.Contains(e.SQL, sub) {
			out = append(out, e)
		}
	}
	return out
}

// Nodes returns, in order, the node of each recorded statement whose SQL
// contains sub.
func (r *Recorder) Nodes(sub string) []string {
	var out []string
	for _, e := range r.Find(sub) {
		out = append(out, e.Node)
	}
	return out
}

// Reset forgets every statement; marks taken before are void.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.execs = nil
	r.mu.Unlock()
}

// Connector wraps c so that every statement run through its connections is
// recorded under node. The connections keep the optional interfaces of the
// wrapped driver's connections (QueryerContext, ExecerContext,
// ConnPrepareContext, ConnBeginTx, NamedValueChecker, Pinger,
// SessionResetter, Validator): where the wrapped connection lacks one, the
// wrapper answers as database/sql does without it (driver.ErrSkip, or a
// no-op). In sql.Conn.Raw, the wrapped connection is reachable through the
// method Unwrap() driver.Conn.
func (r *Recorder) Connector(node string, c driver.Connector) driver.Connector {
	return &recConnector{r: r, node: node, c: c}
}

type recConnector struct {
	r    *Recorder
	node string
	c    driver.Connector
}

func (rc *recConnector) Connect(ctx context.Context) (driver.Conn, error) {
	c, err := rc.c.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &recConn{r: rc.r, node: rc.node, c: c}, nil
}

func (rc *recConnector) Driver() driver.Driver { return &recDriver{rc: rc} }

// Close closes the wrapped connector if it is an io.Closer (sql.DB.Close
// calls it).
func (rc *recConnector) Close() error {
	if c, ok := rc.c.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// recDriver is the wrapped connector's driver, with its connections
// recorded too.
type recDriver struct{ rc *recConnector }

func (d *recDriver) Open(name string) (driver.Conn, error) {
	c, err := d.rc.c.Driver().Open(name)
	if err != nil {
		return nil, err
	}
	return &recConn{r: d.rc.r, node: d.rc.node, c: c}, nil
}

var (
	_ driver.Conn               = (*recConn)(nil)
	_ driver.QueryerContext     = (*recConn)(nil)
	_ driver.ExecerContext      = (*recConn)(nil)
	_ driver.ConnPrepareContext = (*recConn)(nil)
	_ driver.ConnBeginTx        = (*recConn)(nil)
	_ driver.NamedValueChecker  = (*recConn)(nil)
	_ driver.Pinger             = (*recConn)(nil)
	_ driver.SessionResetter    = (*recConn)(nil)
	_ driver.Validator          = (*recConn)(nil)
	_ driver.StmtQueryContext   = (*recStmt)(nil)
	_ driver.StmtExecContext    = (*recStmt)(nil)
	_ driver.NamedValueChecker  = (*recStmt)(nil)
)

type recConn struct {
	r    *Recorder
	node string
	c    driver.Conn
}

func (c *recConn) record(ctx context.Context, sql string, err error) {
	if !errors.Is(err, driver.ErrSkip) { // ErrSkip: database/sql retries another way, recorded then
		c.r.record(ctx, c.node, sql, err)
	}
}

func (c *recConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *recConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var st driver.Stmt
	var err error
	if p, ok := c.c.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		st, err = c.c.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	return &recStmt{conn: c, s: st, query: query}, nil
}

func (c *recConn) Close() error { return c.c.Close() }

// Unwrap returns the wrapped connection (for sql.Conn.Raw users such as
// pgx's CopyFrom through *stdlib.Conn).
func (c *recConn) Unwrap() driver.Conn { return c.c }

func (c *recConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *recConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	var tx driver.Tx
	var err error
	if b, ok := c.c.(driver.ConnBeginTx); ok {
		tx, err = b.BeginTx(ctx, opts)
	} else {
		// What database/sql does for a driver without ConnBeginTx.
		if opts.Isolation != driver.IsolationLevel(0) || opts.ReadOnly {
			return nil, errors.New("testdb: recorded driver does not support non-default isolation or read-only transactions")
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		tx, err = c.c.Begin() //nolint:staticcheck // the fallback database/sql uses too
	}
	c.record(ctx, "BEGIN", err)
	if err != nil {
		return nil, err
	}
	return &recTx{conn: c, tx: tx, ctx: ctx}, nil
}

func (c *recConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.c.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	rows, err := q.QueryContext(ctx, query, args)
	c.record(ctx, query, err)
	return rows, err
}

func (c *recConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.c.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	res, err := e.ExecContext(ctx, query, args)
	c.record(ctx, query, err)
	return res, err
}

// CheckNamedValue passes argument conversion to the wrapped connection: pgx
// accepts types that database/sql's default converter would refuse.
func (c *recConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.c.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func (c *recConn) Ping(ctx context.Context) error {
	if p, ok := c.c.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *recConn) ResetSession(ctx context.Context) error {
	if rs, ok := c.c.(driver.SessionResetter); ok {
		return rs.ResetSession(ctx)
	}
	return nil
}

func (c *recConn) IsValid() bool {
	if v, ok := c.c.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

type recTx struct {
	conn *recConn
	tx   driver.Tx
	ctx  context.Context // the transaction's, from BeginTx
}

func (t *recTx) Commit() error {
	err := t.tx.Commit()
	t.conn.record(t.ctx, "COMMIT", err)
	return err
}

func (t *recTx) Rollback() error {
	err := t.tx.Rollback()
	t.conn.record(t.ctx, "ROLLBACK", err)
	return err
}

// recStmt is a prepared statement; each execution is recorded.
type recStmt struct {
	conn  *recConn
	s     driver.Stmt
	query string
}

func (s *recStmt) Close() error  { return s.s.Close() }
func (s *recStmt) NumInput() int { return s.s.NumInput() }

func (s *recStmt) Exec(args []driver.Value) (driver.Result, error) {
	res, err := s.s.Exec(args) //nolint:staticcheck // delegating the deprecated method
	s.conn.record(context.Background(), s.query, err)
	return res, err
}

func (s *recStmt) Query(args []driver.Value) (driver.Rows, error) {
	rows, err := s.s.Query(args) //nolint:staticcheck // delegating the deprecated method
	s.conn.record(context.Background(), s.query, err)
	return rows, err
}

func (s *recStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	var res driver.Result
	var err error
	if e, ok := s.s.(driver.StmtExecContext); ok {
		res, err = e.ExecContext(ctx, args)
	} else {
		var vals []driver.Value
		if vals, err = namedToValues(args); err == nil {
			if err = ctx.Err(); err == nil {
				res, err = s.s.Exec(vals) //nolint:staticcheck // the fallback database/sql uses too
			}
		}
	}
	s.conn.record(ctx, s.query, err)
	return res, err
}

func (s *recStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	var rows driver.Rows
	var err error
	if q, ok := s.s.(driver.StmtQueryContext); ok {
		rows, err = q.QueryContext(ctx, args)
	} else {
		var vals []driver.Value
		if vals, err = namedToValues(args); err == nil {
			if err = ctx.Err(); err == nil {
				rows, err = s.s.Query(vals) //nolint:staticcheck // the fallback database/sql uses too
			}
		}
	}
	s.conn.record(ctx, s.query, err)
	return rows, err
}

// CheckNamedValue asks the wrapped statement, else the wrapped connection:
// the order in which database/sql asks them.
func (s *recStmt) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := s.s.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return s.conn.CheckNamedValue(nv)
}

func namedToValues(named []driver.NamedValue) ([]driver.Value, error) {
	vals := make([]driver.Value, len(named))
	for i, nv := range named {
		if nv.Name != "" {
			return nil, errors.New("testdb: recorded driver does not support named parameters")
		}
		vals[i] = nv.Value
	}
	return vals, nil
}
