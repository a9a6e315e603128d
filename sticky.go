package rwsplit

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
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

// sticky is the plugin's read-your-own-writes state.
type sticky struct {
	cfg    stickiness.Config
	store  stickiness.Store   // the configured store (the caller's), or local
	local  *stickiness.Memory // this process's marks; the store when none is configured
	tables *stickiness.Memory // table mode: table name -> last write, this process only

	// storeDownUntil (unix nanos) is set after a store error: until then
	// keyed reads go to the primary without waiting on the store again.
	storeDownUntil atomic.Int64

	marks, storeErrs, storeSkips, notes atomic.Uint64
}

// storeBackoff is how long the store is left alone after an error.
const storeBackoff = time.Second

// initSticky sets up stickiness from the configuration applyDefaults
// validated and completed.
func (p *Plugin) initSticky() {
	cfg := p.cfg.Stickiness
	s := &sticky{cfg: cfg, local: stickiness.NewMemory(stickiness.MemoryOptions{}), store: cfg.Store}
	if s.store == nil {
		s.store = s.local // the plugin's own: closed with it
	}
	if cfg.Tables {
		s.tables = stickiness.NewMemory(stickiness.MemoryOptions{MaxEntries: 1 << 16})
	}
	p.sticky = s
}

func (s *sticky) close() error {
	s.local.Close()
	if s.tables != nil {
		s.tables.Close()
	}
	return nil
}

// record returns the sticky record that applies to a read: the user's
// (from the context's carrier, this process's marks, then the store) merged
// with the table's in table mode. ok is false when the read is not sticky.
// failed reports a store error: the caller then reads from the primary.
func (s *sticky) record(ctx context.Context, table string) (rec stickiness.Record, ok, failed bool) {
	var now time.Time // read the clock only for a read that may be sticky
	if r, found := stickiness.FromContext(ctx); found {
		now = time.Now()
		// A token is not signed (WithToken): never let one pin reads
		// for longer than a write of ours would.
		if limit := now.Add(s.cfg.Window); r.Until.After(limit) {
			r.Until = limit
		}
		rec, ok = r, true
	}
	if key, has := s.cfg.Key(ctx); has && key != "" {
		if r, found, _ := s.local.Get(ctx, key); found {
			rec, ok = rec.Merge(r), true
		} else if s.store != stickiness.Store(s.local) {
			if time.Now().UnixNano() < s.storeDownUntil.Load() {
				s.storeSkips.Add(1)
				return rec, ok, true
			}
			sctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
			r, found, err := s.store.Get(sctx, key)
			cancel()
			switch {
			case err != nil && ctx.Err() == nil:
				s.storeErrs.Add(1)
				s.storeDownUntil.Store(time.Now().Add(storeBackoff).UnixNano())
				failed = true
			case err != nil:
				failed = true // the caller gave up: not the store's fault
			case found:
				rec, ok = rec.Merge(r), true
			}
		}
	}
	if s.tables != nil && table != "" {
		if r, found, _ := s.tables.Get(ctx, table); found {
			rec, ok = rec.Merge(r), true
		}
	}
	if ok && !rec.Active(time.Now()) {
		ok = false
	}
	return rec, ok, failed
}

// stickyLookup returns the stickiness verdict for a read: not sticky; sticky
// with the zero position (only the primary is known to have the write); or
// sticky with the position a replica must cover.
func (p *Plugin) stickyLookup(ctx context.Context, table string) (pos lagcheck.Position, sticky bool) {
	s := p.sticky
	if s == nil {
		return pos, false
	}
	rec, ok, failed := s.record(ctx, table)
	switch {
	case failed:
		return lagcheck.Position{}, true // fail safe: the store cannot say
	case !ok:
		return pos, false
	case s.cfg.Mode == stickiness.ModeWindow:
		return lagcheck.Position{}, true
	}
	return rec.Position, true
}

// afterWrite marks the writer sticky after a successful write: at once for
// a statement that committed on its own, at commit for one inside a
// transaction.
func (p *Plugin) afterWrite(db *gorm.DB) {
	s := p.sticky
	if s == nil || db.Error != nil || db.Statement == nil {
		return
	}
	stmt := db.Statement
	ctx := stmt.Context
	key, hasKey := s.cfg.Key(ctx)
	hasKey = hasKey && key != ""
	hasCarrier := stickiness.HasCarrier(ctx)
	if !hasKey && !hasCarrier && s.tables == nil {
		return
	}
	if stmt.SQL.Len() > 0 && stmt.Schema == nil && stmt.Table == "" {
		// Raw SQL: a read run through Exec marks nothing.
		if c, _ := sqlclass.Classify(stmt.SQL.String(), p.funcs); c == sqlclass.Read {
			return
		}
	}
	w := pendingWrite{ctx: ctx, key: key, hasKey: hasKey, carrier: hasCarrier, table: stmt.Table}
	if tx := primaryTxOf(stmt.ConnPool); tx != nil {
		tx.noteWrite(w)
		return
	}
	p.markWrites(ctx, []pendingWrite{w})
}

// pendingWrite is one write that makes its user (or table) sticky.
type pendingWrite struct {
	ctx     context.Context
	key     string
	hasKey  bool
	carrier bool
	table   string
}

// markWrites records committed writes: the primary's replication position
// is taken once, after the commit, so it covers them.
func (p *Plugin) markWrites(ctx context.Context, ws []pendingWrite) {
	s := p.sticky
	now := time.Now()
	rec := stickiness.Record{Until: now.Add(s.cfg.Window)}
	if s.cfg.Mode == stickiness.ModeCausal && p.checker != nil {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StoreTimeout+time.Second)
		if pos, err := p.checker.PrimaryPosition(pctx); err == nil {
			rec.Position = pos
		}
		cancel()
	}
	for _, w := range ws {
		if w.carrier && stickiness.Note(w.ctx, rec) {
			s.notes.Add(1)
		}
		if w.hasKey {
			s.marks.Add(1)
			_ = s.local.Set(w.ctx, w.key, rec)
			if s.store != stickiness.Store(s.local) {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), s.cfg.StoreTimeout)
				if err := s.store.Set(sctx, w.key, rec); err != nil {
					s.storeErrs.Add(1)
				}
				cancel()
			}
		}
		if s.tables != nil && w.table != "" {
			_ = s.tables.Set(w.ctx, w.table, rec)
		}
	}
}

// primaryTx is a transaction on the primary. It holds the writes made in
// it and marks their users sticky when it commits.
type primaryTx struct {
	*sql.Tx
	p      *Plugin
	db     *sql.DB
	mu     sync.Mutex
	writes []pendingWrite
}

var _ gorm.Tx = (*primaryTx)(nil)

func primaryTxOf(pool gorm.ConnPool) *primaryTx {
	switch c := pool.(type) {
	case *primaryTx:
		return c
	case *gorm.PreparedStmtTX:
		t, _ := c.Tx.(*primaryTx)
		return t
	}
	return nil
}

func (t *primaryTx) noteWrite(w pendingWrite) {
	t.mu.Lock()
	t.writes = append(t.writes, w)
	t.mu.Unlock()
}

// Commit commits, then marks the transaction's writers sticky.
func (t *primaryTx) Commit() error {
	if err := t.Tx.Commit(); err != nil {
		return err
	}
	t.mu.Lock()
	ws := t.writes
	t.writes = nil
	t.mu.Unlock()
	if len(ws) > 0 {
		t.p.markWrites(ws[0].ctx, ws)
	}
	return nil
}

// GetDBConn keeps db.DB() working inside a transaction.
func (t *primaryTx) GetDBConn() (*sql.DB, error) { return t.db, nil }

// StickyStats counts read-your-own-writes activity.
type StickyStats struct {
	// Mode is the configured stickiness mode.
	Mode stickiness.Mode
	// Marks counts writes that made their user sticky; Notes, writes
	// recorded in a context's carrier (cookie middleware, WithToken).
	Marks, Notes uint64
	// StoreErrors counts failed or timed-out calls to a configured
	// Store; StoreSkipped, keyed reads sent to the primary without asking
	// the store during the second after an error. Neither fails a
	// statement: the read goes to the primary.
	StoreErrors, StoreSkipped uint64
}

func (s *sticky) stats() StickyStats {
	return StickyStats{
		Mode:         s.cfg.Mode,
		Marks:        s.marks.Load(),
		Notes:        s.notes.Load(),
		StoreErrors:  s.storeErrs.Load(),
		StoreSkipped: s.storeSkips.Load(),
	}
}
