package stickiness

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rwsplit/rwsplit/lagcheck"
)

// storeBackoff is how long a Tracker leaves its Store alone after an error.
const storeBackoff = time.Second

// storeRetryInterval is how often a Tracker retries the Sets that failed.
const storeRetryInterval = 250 * time.Millisecond

// maxRetries bounds the keys a Tracker holds for a retried Set.
const maxRetries = 1 << 16

// maxTables bounds the tables a Tracker remembers in table mode.
const maxTables = 1 << 16

// Tracker decides which reads are sticky and records the writes that make
// them so. It merges the context's carrier, this process's memory, the
// configured Store and, in table mode, the table's last write. A Set the
// Store failed is retried in the background until the record's Until. It
// is safe for concurrent use; Close it to stop the memory stores it
// created and its retries.
type Tracker struct {
	cfg    Config
	local  *Memory // this process's marks
	tables *tables // table mode: the primary's table marks; nil otherwise
	now    func() time.Time

	// storeDownUntil (unix nanoseconds) is set after a Store error.
	storeDownUntil atomic.Int64
	storeFailing   atomic.Bool // for the log: failing since the last success

	// Sets to retry, by key (Store only): the retry loop owns them.
	retryMu   sync.Mutex
	retry     map[string]Record
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once

	marks, notes, storeErrs, storeSkips, storeRetries atomic.Uint64
}

// Stats counts a Tracker's activity.
type Stats struct {
	// Mode is the configured Mode.
	Mode Mode
	// Marks counts writes that made their user sticky; Notes, writes
	// recorded in a context's carrier.
	Marks, Notes uint64
	// StoreErrors counts failed or timed-out Store calls; StoreSkipped,
	// keyed reads sent to the primary without asking the Store during the
	// backoff after an error.
	StoreErrors, StoreSkipped uint64
	// StoreRetries counts Sets retried after the Store failed one: a
	// keyed write made while the Store was down is stored once it is back,
	// unless the record's Until comes first.
	StoreRetries uint64
}

// Write is a write that makes its user, carrier or table sticky once it
// has committed: Tracker.Pending returns it, Tracker.Mark records it.
type Write struct {
	ctx     context.Context
	key     string // "" for none
	carrier *carrier
	tables  []string // table mode: the tables written
	all     bool     // table mode: every table (a schema change)
}

// New validates cfg, applies its defaults and returns a Tracker. Errors
// wrap ErrConfig.
func New(cfg Config) (*Tracker, error) {
	return newTracker(cfg, nil, "")
}

// newTracker is New with a clock for tests (nil: time.Now), and the
// primary whose table marks it shares (NewForPrimary).
func newTracker(cfg Config, now func() time.Time, primary string) (*Tracker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	t := &Tracker{cfg: cfg, now: now}
	if t.now == nil {
		t.now = time.Now
	}
	if t.local, err = NewMemory(MemoryOptions{Now: now}); err != nil {
		return nil, err
	}
	if cfg.Tables {
		t.tables = &tables{tableMarks: acquireTables(primary, now)}
	}
	t.done = make(chan struct{})
	if cfg.Store != nil {
		t.retry = map[string]Record{}
		t.wg.Add(1)
		go t.retryLoop()
	}
	return t, nil
}

// Lookup returns the stickiness of a read of tables run with ctx: sticky is
// false when the read is not sticky. A sticky read with the zero pos must
// go to the primary (ModeWindow, an unknown position, or a Store that
// failed); with a non-zero pos, a replica that covers pos may serve it.
// It neither allocates nor takes a lock of its own unless it asks the
// Store, and reads the clock only for a read that may be sticky.
func (t *Tracker) Lookup(ctx context.Context, tables Tables) (pos lagcheck.Position, sticky bool) {
	rec, sticky, failed := t.record(ctx, tables)
	if !sticky || failed || t.cfg.Mode == ModeWindow {
		return lagcheck.Position{}, sticky
	}
	return rec.Position, true
}

// record returns the merged record of a read, and whether it is sticky.
// failed reports that the Store could not tell: the read is then sticky.
func (t *Tracker) record(ctx context.Context, tables Tables) (rec Record, sticky, failed bool) {
	var now time.Time // read at most once, when needed
	if p := carrierFrom(ctx).load(); p != nil {
		now = t.now()
		if p.Active(now) {
			rec, sticky = *p, true
			// A token is not signed (WithToken): never let one pin
			// reads for longer than a write of ours would.
			if limit := now.Add(t.cfg.Window); rec.Until.After(limit) {
				rec.Until = limit
			}
		}
	}
	if key, ok := t.cfg.Key(ctx); ok && key != "" {
		if r, found, _ := t.local.Get(ctx, key); found {
			rec, sticky = rec.Merge(r), true
		}
		// The Store may hold a newer write, made through another
		// process: this process's record never stands in for it.
		if t.cfg.Store != nil {
			if now.IsZero() {
				now = t.now()
			}
			r, found, failed := t.fromStore(ctx, key, now)
			if failed {
				return Record{}, true, true
			}
			if found {
				rec, sticky = rec.Merge(r), true
			}
		}
	}
	if t.tables != nil {
		if r, found := t.tables.lookup(ctx, tables, rec); found {
			rec, sticky = r, true
		}
	}
	return rec, sticky, false
}

// fromStore asks the Store for key's record, unless it is backing off.
// failed reports that it could not tell.
func (t *Tracker) fromStore(ctx context.Context, key string, now time.Time) (rec Record, found, failed bool) {
	if now.UnixNano() < t.storeDownUntil.Load() {
		t.storeSkips.Add(1)
		return Record{}, false, true
	}
	sctx, cancel := context.WithTimeout(ctx, t.cfg.StoreTimeout)
	rec, found, err := t.cfg.Store.Get(sctx, key)
	cancel()
	switch {
	case err != nil && ctx.Err() == nil:
		t.storeFailed(err)
		t.storeDownUntil.Store(t.now().Add(storeBackoff).UnixNano())
		return Record{}, false, true
	case err != nil: // the caller gave up: not the Store's fault
		return Record{}, false, true
	}
	t.storeAnswered()
	return rec, found && rec.Active(now), false
}

// storeFailed counts a Store error, and logs the first after a success.
func (t *Tracker) storeFailed(err error) {
	t.storeErrs.Add(1)
	if !t.storeFailing.Swap(true) && t.cfg.Logger != nil {
		t.cfg.Logger.Warn("rwsplit: sticky store failing; keyed reads go to the primary", "err", err)
	}
}

// storeAnswered logs the first success after a Store error.
func (t *Tracker) storeAnswered() {
	if t.storeFailing.Load() && t.storeFailing.Swap(false) && t.cfg.Logger != nil {
		t.cfg.Logger.Info("rwsplit: sticky store recovered", "errors", t.storeErrs.Load())
	}
}

// Pending reports whether a write run with ctx on tables marks anything (a
// user key, a carrier, or tables in table mode), and returns what to pass
// to Mark once the write has committed. It copies tables.Names.
func (t *Tracker) Pending(ctx context.Context, tables Tables) (Write, bool) {
	w := Write{ctx: ctx, carrier: carrierFrom(ctx)}
	if key, ok := t.cfg.Key(ctx); ok {
		w.key = key
	}
	if t.tables != nil {
		w.all = tables.All
		if !w.all && len(tables.Names) > 0 {
			w.tables = append([]string(nil), tables.Names...)
		}
	}
	return w, w.key != "" || w.carrier != nil || w.all || len(w.tables) > 0
}

// Causal reports whether Mark needs the primary's position (ModeCausal).
func (t *Tracker) Causal() bool { return t.cfg.Mode == ModeCausal }

// Mark records committed writes. pos is the primary's position taken after
// they committed, or zero if unknown; it is ignored in ModeWindow. Mark
// notes each write's carrier, and sets its key in memory and in the Store
// (a Store error is counted, not returned) and its table in table mode.
func (t *Tracker) Mark(pos lagcheck.Position, ws ...Write) {
	now := t.now()
	rec := Record{Until: now.Add(t.cfg.Window)}
	if t.cfg.Mode == ModeCausal {
		rec.Position = pos
	}
	for _, w := range ws {
		if w.carrier != nil && w.carrier.note(rec, now) {
			t.notes.Add(1)
		}
		if w.key != "" {
			t.marks.Add(1)
			_ = t.local.Set(w.ctx, w.key, rec)
			if t.cfg.Store != nil {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), t.cfg.StoreTimeout)
				if err := t.cfg.Store.Set(sctx, w.key, rec); err != nil {
					t.storeFailed(err)
					t.retryLater(w.key, rec)
				} else {
					t.storeAnswered()
				}
				cancel()
			}
		}
		if t.tables != nil {
			t.tables.mark(&w, rec)
		}
	}
}

// Stats returns the Tracker's counters.
func (t *Tracker) Stats() Stats {
	return Stats{
		Mode:         t.cfg.Mode,
		Marks:        t.marks.Load(),
		Notes:        t.notes.Load(),
		StoreErrors:  t.storeErrs.Load(),
		StoreSkipped: t.storeSkips.Load(),
		StoreRetries: t.storeRetries.Load(),
	}
}

// retryLater queues a Set the Store failed, for retryLoop.
func (t *Tracker) retryLater(key string, rec Record) {
	t.retryMu.Lock()
	if old, ok := t.retry[key]; ok {
		t.retry[key] = old.Merge(rec)
	} else if len(t.retry) < maxRetries {
		t.retry[key] = rec
	}
	t.retryMu.Unlock()
}

// retryLoop retries the failed Sets every storeRetryInterval until Close.
func (t *Tracker) retryLoop() {
	defer t.wg.Done()
	tick := time.NewTicker(storeRetryInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.done:
			return
		case <-tick.C:
			t.retrySets()
		}
	}
}

// retrySets retries each queued Set whose record is still active, and
// queues again those that fail. After a failure it leaves the rest for
// the next round: the Store is likely still down.
func (t *Tracker) retrySets() {
	t.retryMu.Lock()
	pending := t.retry
	if len(pending) == 0 {
		t.retryMu.Unlock()
		return
	}
	t.retry = map[string]Record{}
	t.retryMu.Unlock()
	failed := false
	for key, rec := range pending {
		if !rec.Active(t.now()) {
			continue
		}
		if !failed {
			t.storeRetries.Add(1)
			ctx, cancel := context.WithTimeout(context.Background(), t.cfg.StoreTimeout)
			err := t.cfg.Store.Set(ctx, key, rec)
			cancel()
			if err == nil {
				t.storeAnswered()
				continue
			}
			failed = true
		}
		t.retryLater(key, rec)
	}
}

// Close stops the retries of failed Sets and the memory stores the
// Tracker created; it never closes Config.Store. It is safe to call more
// than once and returns nil.
func (t *Tracker) Close() error {
	t.closeOnce.Do(func() { close(t.done) })
	t.wg.Wait()
	t.local.Close()
	if t.tables != nil {
		t.tables.close()
	}
	return nil
}
