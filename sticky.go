package rwsplit

import (
	"context"
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
// not sticky.
func (p *Plugin) stickyLookup(ctx context.Context, stmt *gorm.Statement) (pos lagcheck.Position, sticky bool) {
	switch {
	case p.sticky == nil:
		return lagcheck.Position{}, false
	case p.sticky.TableMode():
		return p.tableLookup(ctx, stmt)
	}
	return p.sticky.Lookup(ctx, stickiness.Tables{})
}

// afterWrite marks the writer sticky after a successful write: at once for
// a statement that committed on its own, at commit for one inside a
// transaction.
func (p *Plugin) afterWrite(db *gorm.DB) {
	if p.sticky == nil || db.Error != nil || db.Statement == nil {
		return
	}
	stmt := db.Statement
	var buf [maxTables]string
	w, ok := p.sticky.Pending(stmt.Context, p.pendingTables(stmt, buf[:0]))
	if !ok {
		return
	}
	if stmt.SQL.Len() > 0 && stmt.Schema == nil && stmt.Table == "" {
		// Raw SQL: a read run through Exec marks nothing.
		if c, _ := sqlclass.Classify(stmt.SQL.String(), p.funcs); c == sqlclass.Read {
			return
		}
	}
	if tx := primaryTxOf(stmt.ConnPool); tx != nil {
		tx.noteWrite(stmt.Context, w)
		return
	}
	p.markWrites(stmt.Context, w)
}

// markWrites records committed writes: the primary's replication position
// is taken once, after the commit, so it covers them.
func (p *Plugin) markWrites(ctx context.Context, ws ...stickiness.Write) {
	var pos lagcheck.Position
	if p.sticky.Causal() && p.checker != nil {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), positionTimeout)
		if got, err := p.checker.PrimaryPosition(pctx); err == nil {
			pos = got
		}
		cancel()
	}
	p.sticky.Mark(pos, ws...)
}

// StickyStats counts read-your-own-writes activity.
type StickyStats = stickiness.Stats
