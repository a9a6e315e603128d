package rwsplit

import (
	"database/sql"
	"fmt"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// directiveKey is where a routing clause lives in Statement.Clauses. The
// last routing clause given wins. Routing passes it on to derived queries
// (Preload, associations) through the statement's context.
const directiveKey = "rwsplit:route"

// Primary is a query clause that sends the statement to the primary:
//
//	db.Clauses(rwsplit.Primary).First(&user)
var Primary clause.Expression = primaryClause{}

type primaryClause struct{}

// Build implements clause.Expression; the clause adds no SQL.
func (primaryClause) Build(clause.Builder) {}

// ModifyStatement implements gorm.StatementModifier.
func (c primaryClause) ModifyStatement(stmt *gorm.Statement) {
	setDirective(stmt, c)
	if !isPinned(stmt.ConnPool) && stmt.DB != nil {
		stmt.ConnPool = stmt.DB.Config.ConnPool
	}
}

// Build implements clause.Expression, so that a Replica value is a query
// clause; it adds no SQL.
func (Replica) Build(clause.Builder) {}

// ModifyStatement implements gorm.StatementModifier. A read runs on a
// replica even when it would otherwise go to the primary (for example
// while its user is sticky). A transaction begun from the statement runs on
// one replica, read-only: a write inside it fails with ErrReadOnly. With
// Name set, that replica is used whatever its health.
//
// A write never goes to a replica: Create, Update, Delete and raw SQL that
// may write still run on the primary.
func (r Replica) ModifyStatement(stmt *gorm.Statement) {
	setDirective(stmt, Replica{Name: r.Name})
	if isPinned(stmt.ConnPool) || stmt.DB == nil {
		return
	}
	p, _ := stmt.DB.Config.Plugins[pluginName].(*Plugin)
	if p == nil || p.closed.Load() {
		return
	}
	prepared := stmt.DB.PrepareStmt
	if r.Name != "" {
		n := p.replicas().byName[r.Name]
		if n == nil {
			err := fmt.Errorf("%w: %q", ErrUnknownReplica, r.Name)
			_ = stmt.DB.AddError(err)
			stmt.ConnPool = failPool{err} // nothing may begin or run
			return
		}
		if !n.drained.Load() {
			stmt.ConnPool = n.conn(prepared, viewExplicit)
			return
		}
	}
	stmt.ConnPool = p.anyReplica[b2i(prepared)]
}

const pluginName = "rwsplit"

func isPinned(pool gorm.ConnPool) bool {
	switch pool.(type) {
	case gorm.TxCommitter, *sql.Conn:
		return true
	}
	return false
}

// MaxStaleness returns a query clause that bounds how stale the read may
// be: it runs on a replica whose measured replication lag is at most d, and
// on the primary when no eligible replica is known to be that fresh.
//
//	db.Clauses(rwsplit.MaxStaleness(100 * time.Millisecond)).Find(&orders)
//
// The bound is the checker's last measurement of the replica's lag plus
// the time since it was taken (see lagcheck.Checker.LagNow), so it holds
// even if the replica stopped replaying right after its last probe, or
// the primary cannot be sampled; a replica whose lag was never bounded
// never meets it. A
// healthy replica meets a d of about Lag.Interval plus its lag; a smaller d
// is met only right after a probe, and otherwise sends the read to the
// primary. A d of zero or less is met by no replica: the read runs on the
// primary (ReasonStale). While the primary is down, replicas that lost it
// too serve such reads anyway (see Stats.PrimaryErr).
func MaxStaleness(d time.Duration) clause.Expression { return maxStaleness(d) }

type maxStaleness time.Duration

// Build implements clause.Expression; the clause adds no SQL.
func (maxStaleness) Build(clause.Builder) {}

// ModifyStatement implements gorm.StatementModifier.
func (m maxStaleness) ModifyStatement(stmt *gorm.Statement) {
	setDirective(stmt, m)
}

// setDirective records a routing clause, replacing any routing clause
// given before it.
func setDirective(stmt *gorm.Statement, d clause.Expression) {
	if !directivesUsed.Load() {
		directivesUsed.Store(true)
	}
	stmt.Clauses[directiveKey] = clause.Clause{Name: directiveKey, Expression: d}
}

// directivesUsed is set by the first routing clause in the process: until
// then no statement has one, and routing does not look for it.
var directivesUsed atomic.Bool

// directiveOf returns stmt's routing clause, if it has one.
func directiveOf(stmt *gorm.Statement) (clause.Clause, bool) {
	if !directivesUsed.Load() {
		return clause.Clause{}, false
	}
	c, ok := stmt.Clauses[directiveKey]
	return c, ok
}
