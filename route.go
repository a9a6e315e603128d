package rwsplit

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/rwsplit/rwsplit/internal/sqlclass"
	"github.com/rwsplit/rwsplit/lagcheck"
)

// Reason says why a statement went to the node it went to.
type Reason uint8

// Reasons, in the order routing checks them.
const (
	_ Reason = iota
	// ReasonTransaction: the statement runs inside a transaction, which
	// keeps every statement on the node it began on.
	ReasonTransaction
	// ReasonWrite: Create, Update or Delete (and associations).
	ReasonWrite
	// ReasonRawWrite: raw SQL the classifier could not prove read-only.
	ReasonRawWrite
	// ReasonLocking: a query with a locking clause (FOR UPDATE/SHARE).
	ReasonLocking
	// ReasonForcedPrimary: db.Clauses(rwsplit.Primary).
	ReasonForcedPrimary
	// ReasonMigrator: a query run by GORM's Migrator / AutoMigrate.
	ReasonMigrator
	// ReasonForcedReplica: db.Clauses(rwsplit.Replica{...}).
	ReasonForcedReplica
	// ReasonRead: a read served by a replica the policy chose.
	ReasonRead
	// ReasonReadOnlyTx: a transaction begun read-only, on a replica.
	ReasonReadOnlyTx
	// ReasonNoReplica: a read sent to the primary because no replica was
	// eligible (see Config.Fallback).
	ReasonNoReplica
	// ReasonRetry: a read served again on another node after a
	// connection error on the first.
	ReasonRetry
	// ReasonStale: a read with a freshness bound (MaxStaleness) that no
	// eligible replica met, sent to the primary.
	ReasonStale
	// ReasonSticky: a read by a user who wrote recently (or of a table
	// written recently, in table mode), sent to the primary because no
	// eligible replica had replayed the write (see Config.Stickiness).
	ReasonSticky
	// ReasonCausal: a read by a sticky user served by a replica that had
	// replayed the user's last write.
	ReasonCausal
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonTransaction:   "transaction",
	ReasonWrite:         "write",
	ReasonRawWrite:      "raw-write",
	ReasonLocking:       "locking",
	ReasonForcedPrimary: "forced-primary",
	ReasonMigrator:      "migrator",
	ReasonForcedReplica: "forced-replica",
	ReasonRead:          "read",
	ReasonReadOnlyTx:    "read-only-tx",
	ReasonNoReplica:     "no-replica",
	ReasonRetry:         "retry",
	ReasonStale:         "stale",
	ReasonSticky:        "sticky",
	ReasonCausal:        "causal",
}

func (r Reason) String() string {
	if r < numReasons && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return "unknown"
}

// Route is one routing decision, as reported to Config.OnRoute.
type Route struct {
	// Node is the name of the node that runs the statement: the primary's
	// (Config.PrimaryName) or a replica's. It is empty for a statement on a
	// connection the caller pinned with db.Connection.
	Node string
	// Reason says why.
	Reason Reason
}

// statement kinds, by GORM callback chain.
type kind uint8

const (
	kindWrite kind = iota // Create, Update, Delete chains
	kindQuery             // Query and Row chains
	kindRaw               // Raw chain (db.Exec)
)

func (p *Plugin) registerCallbacks(db *gorm.DB) error {
	cb := db.Callback()
	for _, r := range []struct {
		proc interface {
			Replace(string, func(*gorm.DB)) error
		}
		fn func(*gorm.DB)
	}{
		{cb.Create().Before("*"), p.routeWrite},
		{cb.Update().Before("*"), p.routeWrite},
		{cb.Delete().Before("*"), p.routeWrite},
		{cb.Query().Before("*"), p.routeQuery},
		{cb.Row().Before("*"), p.routeQuery},
		{cb.Raw().Before("*"), p.routeRaw},
	} {
		// dbresolver registered its resolver under this name in every
		// chain, Before("*"); rwsplit's decision takes its place. The
		// replacement must be Before("*") too: GORM sorts callbacks
		// without it ahead of those with it, and then runs whichever
		// entry of a duplicated name sorts last, which would be
		// dbresolver's.
		if err := r.proc.Replace("gorm:db_resolver", r.fn); err != nil {
			return err
		}
	}
	// Stickiness marks a writer after the write commits: after GORM's
	// own transaction (if any) in the write chains, after the statement
	// in the raw chain.
	for _, err := range []error{
		cb.Create().After("gorm:commit_or_rollback_transaction").Register("rwsplit:sticky", p.afterWrite),
		cb.Update().After("gorm:commit_or_rollback_transaction").Register("rwsplit:sticky", p.afterWrite),
		cb.Delete().After("gorm:commit_or_rollback_transaction").Register("rwsplit:sticky", p.afterWrite),
		cb.Raw().After("gorm:raw").Register("rwsplit:sticky", p.afterWrite),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *Plugin) routeWrite(db *gorm.DB) { p.decide(db, kindWrite) }
func (p *Plugin) routeQuery(db *gorm.DB) { p.decide(db, kindQuery) }
func (p *Plugin) routeRaw(db *gorm.DB)   { p.decide(db, kindRaw) }

// decide routes one statement: it sets db.Statement.ConnPool. It is the
// per-query hot path: no allocation, no lock, no I/O.
func (p *Plugin) decide(db *gorm.DB, k kind) {
	stmt := db.Statement
	ctx := stmt.Context

	// A transaction, or a connection pinned with db.Connection, keeps
	// every statement: nothing inside is moved or retried.
	if p.pinned(db, k) {
		return
	}

	// Writes, and anything that may write or lock, go to the primary.
	if k == kindWrite {
		p.toPrimary(db, ReasonWrite)
		return
	}
	// Everything a Migrator runs, reads included: schema reads must see
	// schema writes.
	if rc := routeCtxOf(ctx); rc != nil && rc.primary {
		p.toPrimary(db, ReasonMigrator)
		return
	}
	if k == kindRaw || stmt.SQL.Len() > 0 {
		if c, why := sqlclass.Classify(stmt.SQL.String(), p.funcs); c != sqlclass.Read {
			if why == sqlclass.ReasonLocking {
				p.toPrimary(db, ReasonLocking)
			} else {
				p.toPrimary(db, ReasonRawWrite)
			}
			return
		}
	}
	if _, locking := stmt.Clauses["FOR"]; locking {
		p.toPrimary(db, ReasonLocking)
		return
	}

	// Reads: explicit clauses first, then the policy.
	if c, ok := stmt.Clauses[directiveKey]; ok {
		switch d := c.Expression.(type) {
		case primaryClause:
			p.toPrimary(db, ReasonForcedPrimary)
			return
		case Replica:
			if d.Name != "" {
				n := p.byName[d.Name]
				if n == nil { // ModifyStatement has added ErrUnknownReplica
					return
				}
				stmt.ConnPool = n.conn(db.PrepareStmt, false)
				p.route(ctx, n.name, ReasonForcedReplica)
				return
			}
			p.toReplica(db, ReasonForcedReplica)
			return
		case maxStaleness:
			f := filter{maxLag: time.Duration(d), bounded: true}
			if !p.stickyRoute(db, &f) {
				p.toFreshReplica(db, f)
			}
			return
		}
	}
	f := p.fresh
	if p.stickyRoute(db, &f) {
		return
	}
	if f.causal {
		p.toFreshReplica(db, f)
		return
	}
	p.toReplica(db, ReasonRead)
}

// pinned reports whether the statement runs on a transaction or a
// dedicated connection, and enforces the read-only rule of replica
// transactions.
func (p *Plugin) pinned(db *gorm.DB, k kind) bool {
	stmt := db.Statement
	switch c := stmt.ConnPool.(type) {
	case *nodeTx:
		p.inReplicaTx(db, c, k)
		return true
	case *gorm.PreparedStmtTX:
		if t, ok := c.Tx.(*nodeTx); ok {
			// A read-only transaction begun through a prepared session of
			// the primary got the primary's statement store; give it the
			// replica's, whose statements belong to that replica.
			if c.PreparedStmtDB != t.n.store() {
				stmt.ConnPool = t.prepared()
			}
			p.inReplicaTx(db, t, k)
		} else {
			p.route(stmt.Context, p.primaryName, ReasonTransaction)
		}
		return true
	case gorm.TxCommitter:
		p.route(stmt.Context, p.primaryName, ReasonTransaction)
		return true
	case *sql.Conn:
		p.route(stmt.Context, "", ReasonTransaction)
		return true
	}
	return false
}

// inReplicaTx fails a write inside a replica transaction before it reaches
// the replica. Transaction control (SAVEPOINT, SET LOCAL, ...) passes.
func (p *Plugin) inReplicaTx(db *gorm.DB, t *nodeTx, k kind) {
	p.route(db.Statement.Context, t.n.name, ReasonTransaction)
	switch {
	case k == kindWrite:
		_ = db.AddError(ErrReadOnly)
	case k == kindRaw || db.Statement.SQL.Len() > 0:
		sql := db.Statement.SQL.String()
		if c, _ := sqlclass.Classify(sql, p.funcs); c != sqlclass.Read && !txControl(sql) {
			_ = db.AddError(ErrReadOnly)
		}
	}
}

// txControl reports statements a read-only transaction may run: GORM's
// nested-transaction savepoints and transaction-local settings.
func txControl(sql string) bool {
	s := strings.TrimLeft(sql, " \t\r\n")
	for _, prefix := range [...]string{"SAVEPOINT ", "RELEASE ", "ROLLBACK TO ", "SET LOCAL ", "SET TRANSACTION "} {
		if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
			return true
		}
	}
	return false
}

// toPrimary sends the statement to the primary pool of its session.
func (p *Plugin) toPrimary(db *gorm.DB, r Reason) {
	db.Statement.ConnPool = db.Config.ConnPool
	p.route(db.Statement.Context, p.primaryName, r)
}

// toReplica sends a read to the replica the policy picks, or follows
// Config.Fallback when none is eligible.
func (p *Plugin) toReplica(db *gorm.DB, r Reason) {
	ctx := db.Statement.Context
	n := p.pick(ctx, nil, &p.fresh)
	if n == nil {
		if n = p.fallback(); n == nil {
			if p.cfg.Fallback == FallbackFail {
				_ = db.AddError(ErrNoReplica)
				return
			}
			p.toPrimary(db, ReasonNoReplica)
			return
		}
		r = ReasonNoReplica
	}
	db.Statement.ConnPool = n.conn(db.PrepareStmt, true)
	p.route(ctx, n.name, r)
}

// toFreshReplica sends a read to an eligible replica that passes f, or to
// the primary: a freshness bound is never traded for availability.
func (p *Plugin) toFreshReplica(db *gorm.DB, f filter) {
	ctx := db.Statement.Context
	if n := p.pick(ctx, nil, &f); n != nil {
		db.Statement.ConnPool = n.conn(db.PrepareStmt, true)
		r := ReasonRead
		if f.causal {
			r = ReasonCausal
		}
		p.route(ctx, n.name, r)
		return
	}
	if f.causal {
		p.toPrimary(db, ReasonSticky)
		return
	}
	p.toPrimary(db, ReasonStale)
}

// filter narrows the replicas a read may use beyond eligibility.
type filter struct {
	bounded   bool          // maxLag applies
	maxLag    time.Duration // the staleness bound now (LagNow) must be at most this
	unknownOK bool          // a replica whose lag is unknown passes maxLag
	causal    bool          // pos applies
	pos       lagcheck.Position
}

func (f *filter) ok(n *node) bool {
	if f == nil {
		return true
	}
	if f.bounded {
		if lag, known := n.lagNow(); known && lag > f.maxLag || !known && !f.unknownOK {
			return false
		}
	}
	if f.causal && !n.p.checker.Covers(n.idx, f.pos) {
		return false
	}
	return true
}

// pick asks the current picker for an eligible replica other than skip
// that passes f (nil: any). When the policy's choices fail f, the first
// eligible replica that passes it is used.
func (p *Plugin) pick(ctx context.Context, skip *node, f *filter) *node {
	snap := p.picker.Load()
	if snap == nil {
		return nil
	}
	for range len(snap.nodes) {
		i := snap.picker.Pick(ctx)
		if i < 0 || i >= len(snap.nodes) {
			break
		}
		if n := snap.nodes[i]; n != skip && f.ok(n) {
			return n
		}
	}
	if f == nil && skip == nil {
		return nil
	}
	for _, n := range snap.nodes {
		if n != skip && f.ok(n) {
			return n
		}
	}
	return nil
}

// fallback returns the replica a read uses when none is eligible, under
// FallbackLeastLagged: the one with the least known lag. It returns nil
// otherwise, or when no replica's lag is known (none answers).
func (p *Plugin) fallback() *node {
	if p.cfg.Fallback != FallbackLeastLagged {
		return nil
	}
	var best *node
	var bestLag time.Duration
	for _, n := range p.nodes {
		if lag, known := n.lag(); known && (best == nil || lag < bestLag) {
			best, bestLag = n, lag
		}
	}
	return best
}

// retryTarget returns where a read that failed to reach replica failed
// may run again: another eligible replica, or the primary. The returned
// pool never retries again.
func (p *Plugin) retryTarget(ctx context.Context, failed *node, prepared bool) gorm.ConnPool {
	if n := p.pick(ctx, failed, &p.fresh); n != nil {
		p.route(ctx, n.name, ReasonRetry)
		return n.conn(prepared, false)
	}
	if p.cfg.Fallback == FallbackFail {
		return nil
	}
	p.route(ctx, p.primaryName, ReasonRetry)
	return p.primaryPool
}

func (p *Plugin) route(ctx context.Context, node string, r Reason) {
	p.counts[r].Add(1)
	if p.cfg.OnRoute != nil {
		p.cfg.OnRoute(ctx, Route{Node: node, Reason: r})
	}
}
