package rwsplit

import (
	"context"
	"database/sql"
	"time"

	"gorm.io/gorm"

	"github.com/rwsplit/rwsplit/internal/sqlclass"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/stickiness"
)

// WithUser marks the statements run with ctx as the given user's, for
// read-your-own-writes stickiness (Config.Stickiness): after the user
// writes, the user's reads avoid the replicas that have not replayed the
// write. It is stickiness.WithUser. A statement without a user is never
// sticky, unless table mode applies.
func WithUser(ctx context.Context, key string) context.Context {
	return stickiness.WithUser(ctx, key)
}

// positionTimeout bounds the query of the primary's position after a
// write.
const positionTimeout = time.Second

// stickyLookup returns the stickiness verdict for a read of stmt, nil for
// a read-only transaction (see stickiness.Tracker.Lookup); nil tracker:
// not sticky. With the default Config.Stickiness.Key, it looks in ctx only
// once some context may carry a user or a carrier (stickiness.InUse).
func (p *Plugin) stickyLookup(ctx context.Context, stmt *gorm.Statement) (pos lagcheck.Position, sticky bool) {
	switch {
	case p.sticky == nil:
		return lagcheck.Position{}, false
	case p.sticky.TableMode():
		return p.tableLookup(ctx, stmt)
	case p.cfg.Stickiness.Key == nil && !stickiness.InUse():
		return lagcheck.Position{}, false
	}
	return p.sticky.Lookup(ctx, stickiness.Tables{})
}

// chain is the GORM callback chain a mark callback runs in.
type chain uint8

const (
	chainWrite chain = iota // Create, Update, Delete: after GORM's own transaction
	chainRaw                // Exec
	chainQuery              // Find, Scan into a model...: the rows are read and closed
	chainRow                // Row, Rows, Scan: the caller reads the rows later
)

// Mark callbacks, one per chain (see resolver.go).
func (p *Plugin) afterWrite(db *gorm.DB) { p.afterStatement(db, chainWrite) }
func (p *Plugin) afterExec(db *gorm.DB)  { p.afterStatement(db, chainRaw) }
func (p *Plugin) afterQuery(db *gorm.DB) { p.afterStatement(db, chainQuery) }
func (p *Plugin) afterRow(db *gorm.DB)   { p.afterStatement(db, chainRow) }

// afterStatement marks the writer sticky after a write: with the primary's
// position once the write has committed, at commit for one in a
// transaction rwsplit began, and for the whole Window (the zero position)
// when rwsplit cannot see the commit: a transaction begun elsewhere
// (db.Connection, nested prepared sessions), or rows the caller has yet to
// read. SQL text marks whenever it may write, even when it failed: several
// statements may have committed in part. Marking too often is safe;
// marking too little is not.
func (p *Plugin) afterStatement(db *gorm.DB, c chain) {
	if p.sticky == nil || db.Statement == nil {
		return
	}
	stmt := db.Statement
	if _, ok := stmt.ConnPool.(*nodeConn); ok {
		// Routing sent it to a replica, so it is GORM-built SQL (raw SQL
		// that may write goes to the primary at once). If the replica's
		// pool moved it to the primary (a side-effect function), it
		// marks nothing: not worth a scan of every read. A known limit.
		return
	}
	owned, inTx := primaryTxOf(stmt.ConnPool)
	if c == chainWrite && db.Error != nil && !inTx {
		return // GORM's transaction rolled the write back
	}
	if !p.mayWrite(stmt, c) {
		return
	}
	var buf [maxTables]string
	w, ok := p.sticky.Pending(stmt.Context, p.pendingTables(stmt, buf[:0]))
	if !ok {
		return
	}
	switch {
	case owned != nil:
		owned.noteWrite(stmt.Context, w)
	case inTx || c == chainRow:
		p.sticky.Mark(lagcheck.Position{}, w)
	default:
		p.markWrites(stmt.Context, pinnedConn(stmt), w)
	}
}

// mayWrite reports whether the statement may have written: every statement
// of the write chains, and SQL text the classifier cannot prove read-only
// in the others.
func (p *Plugin) mayWrite(stmt *gorm.Statement, c chain) bool {
	switch {
	case c == chainWrite:
		return true
	case c == chainRaw && (stmt.Schema != nil || stmt.Table != ""):
		return true // Exec on a model: not raw SQL
	case c != chainRaw && !suspect(stmt.SQL.String()):
		return false
	}
	cl, _ := sqlclass.Classify(stmt.SQL.String(), p.funcs)
	return cl != sqlclass.Read
}

// pinnedConnKey holds, in Statement.Settings, the connection a write pinned
// with db.Connection ran on: GORM's own transaction puts the pool back in
// Statement.ConnPool when it commits.
type pinnedConnKey struct{}

// pinnedConn returns the pinned connection stmt ran on, or nil.
func pinnedConn(stmt *gorm.Statement) lagcheck.Querier {
	if c, ok := stmt.ConnPool.(*sql.Conn); ok {
		return c
	}
	if v, ok := stmt.Settings.Load(pinnedConnKey{}); ok {
		return v.(*sql.Conn)
	}
	return nil
}

// markWrites records committed writes. By default (the free causal mark)
// it sends nothing to the primary: the position is the one of the lag
// checker's first sample of the primary sent after now, which covers the
// commits (stickiness.Tracker.MarkPending). With Stickiness.ExactMarks, a
// carrier, or a checker that cannot sample commit positions, the
// primary's position is taken once, after the commit, so it covers them:
// q is the connection to take it on (a pinned one, whose pool may have no
// other), nil for the primary's pool.
func (p *Plugin) markWrites(ctx context.Context, q lagcheck.Querier, ws ...stickiness.Write) {
	if !p.sticky.Exact(ws...) {
		p.sticky.MarkPending(ws...)
		return
	}
	var pos lagcheck.Position
	if p.sticky.Causal() && p.checker != nil {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), positionTimeout)
		if got, err := p.checker.CommitPosition(pctx, q); err == nil {
			pos = got
		}
		cancel()
	}
	p.sticky.Mark(pos, ws...)
}

// StickyStats counts read-your-own-writes activity.
type StickyStats = stickiness.Stats
