package stickiness

import (
	"context"
	"math/rand/v2"
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
	id     uint64  // the writer of this Tracker's pending marks (Pending.Writer)
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

	// The free marks (Config.ExactMarks false): where their positions
	// come from, and, with a Store, the keys whose record there waits for
	// this process to resolve it (the resolve loop owns them).
	samples   atomic.Pointer[Samples]
	resolveMu sync.Mutex
	toResolve map[string]pendingMark
	resolving bool // the resolve loop was started (under resolveMu)
	closed    bool // under resolveMu

	marks, notes, storeErrs, storeSkips, storeRetries, resolved atomic.Uint64
}

// Samples is where free causal marks (Config.ExactMarks false) find their
// positions: *lagcheck.Checker implements it.
type Samples interface {
	// CommitAfter returns the commit position of the first sample of the
	// primary sent after t, a time.Now reading of this process, and when
	// that sample started; false until there is one.
	CommitAfter(t time.Time) (pos lagcheck.Position, start time.Time, ok bool)
	// Sampled returns a channel closed once the next sample is published.
	Sampled() <-chan struct{}
}

// pendingMark is a key's newest pending mark, for the resolve loop.
type pendingMark struct {
	until time.Time
	at    int64
}

// monoEpoch is the origin of Pending.At in this process.
var monoEpoch = time.Now()

// mono returns the time since monoEpoch, on the monotonic clock.
func mono() int64 { return int64(time.Since(monoEpoch)) }

// newWriter returns a random, non-zero Pending.Writer.
func newWriter() uint64 { return rand.Uint64() | 1 }

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
	// Resolved counts records of free marks this process resolved in the
	// Store (Config.ExactMarks false, with a Store), once the checker
	// sampled the primary after the write.
	Resolved uint64
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
	t := &Tracker{cfg: cfg, now: now, id: newWriter()}
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
		t.toResolve = map[string]pendingMark{}
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
	if !sticky || failed || t.cfg.Mode == ModeWindow || rec.pending() {
		return lagcheck.Position{}, sticky
	}
	return rec.Position, true
}

// settle resolves r's pending write if this process marked it and the
// checker has sampled the primary since: the record of the sample's
// commit position (with r's other position). Otherwise r is returned as
// it is: still pending, its reads go to the primary.
func (t *Tracker) settle(r Record) Record {
	if !r.pending() || (r.Pending.Writer != t.id && (t.tables == nil || r.Pending.Writer != t.tables.id)) {
		return r
	}
	s := t.samples.Load()
	if s == nil {
		return r
	}
	pos, _, ok := (*s).CommitAfter(monoEpoch.Add(time.Duration(r.Pending.At)))
	if !ok {
		return r
	}
	p, ok := join(r.Position, pos)
	if !ok {
		p = lagcheck.Position{}
	}
	return Record{Until: r.Until, Position: p}
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
			rec, sticky = rec.Merge(t.settle(r)), true
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
				rec, sticky = rec.Merge(t.settle(r)), true
			}
		}
	}
	if t.tables != nil {
		if r, found := t.tables.lookup(ctx, tables, rec, t); found {
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

// Exact reports whether ws must be marked with Mark and the primary's
// position read after their commit (ModeCausal with Config.ExactMarks, no
// Samples, or a write whose record leaves the process in a carrier), and
// not with MarkPending.
func (t *Tracker) Exact(ws ...Write) bool {
	if t.cfg.Mode != ModeCausal {
		return false
	}
	if t.cfg.ExactMarks || t.samples.Load() == nil {
		return true
	}
	for i := range ws {
		if ws[i].carrier != nil {
			return true
		}
	}
	return false
}

// SetSamples gives the Tracker the source of its free marks' positions
// (Config.ExactMarks false): until it is set, Exact is true in ModeCausal.
// With a Store, it starts the goroutine that resolves this process's
// pending records there (Close stops it). Call it once, before the first
// mark; later calls do nothing.
func (t *Tracker) SetSamples(s Samples) {
	if s == nil || !t.samples.CompareAndSwap(nil, &s) || t.cfg.Store == nil {
		return
	}
	t.resolveMu.Lock()
	defer t.resolveMu.Unlock()
	if t.closed || t.resolving {
		return
	}
	t.resolving = true
	t.wg.Add(1)
	go t.resolveLoop(s)
}

// MarkPending records committed writes without their position (the free
// causal mark): each user, and each table in table mode, reads from the
// primary until the checker's first sample of the primary sent after now,
// and then from the replicas that cover that sample's position. Call it
// after the writes committed, in the process that ran them. In this
// process Lookup resolves the mark itself; in the Store the record waits,
// pending, until this Tracker's goroutine resolves it there after that
// sample (a resolution that fails is retried, and meanwhile the record
// keeps reads on the primary). In ModeWindow it is Mark.
func (t *Tracker) MarkPending(ws ...Write) {
	if t.cfg.Mode != ModeCausal {
		t.Mark(lagcheck.Position{}, ws...)
		return
	}
	at := mono() // after the commits returned: CommitAfter compares with it
	now := t.now()
	rec := Record{Until: now.Add(t.cfg.Window), Pending: Pending{Writer: t.id, At: at}}
	for _, w := range ws {
		if w.carrier != nil && w.carrier.note(Record{Until: rec.Until}, now) {
			t.notes.Add(1) // carriers leave the process: unknown (Exact avoids this)
		}
		if w.key != "" {
			t.marks.Add(1)
			_ = t.local.Set(w.ctx, w.key, rec)
			if t.cfg.Store != nil {
				t.setStore(w.ctx, w.key, rec)
				t.resolveLater(w.key, rec.Until, at)
			}
		}
		if t.tables != nil {
			tr := rec
			tr.Pending.Writer = t.tables.id
			t.tables.mark(&w, tr)
		}
	}
}

// setStore sets rec in the Store, bounded by StoreTimeout, and queues it
// for a retry if that fails.
func (t *Tracker) setStore(ctx context.Context, key string, rec Record) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.cfg.StoreTimeout)
	defer cancel()
	if err := t.cfg.Store.Set(sctx, key, rec); err != nil {
		t.storeFailed(err)
		t.retryLater(key, rec)
		return
	}
	t.storeAnswered()
}

// resolveLater queues key's pending mark for the resolve loop: a newer
// mark of the key replaces an older one, whose resolution it covers.
func (t *Tracker) resolveLater(key string, until time.Time, at int64) {
	t.resolveMu.Lock()
	defer t.resolveMu.Unlock()
	if old, ok := t.toResolve[key]; ok {
		t.toResolve[key] = pendingMark{until: later(old.until, until), at: max(old.at, at)}
	} else if len(t.toResolve) < maxRetries {
		t.toResolve[key] = pendingMark{until: until, at: at}
	} // else: the record stays pending in the Store: the primary, until Until
}

// resolveLoop resolves the queued pending marks at each sample, until
// Close.
func (t *Tracker) resolveLoop(s Samples) {
	defer t.wg.Done()
	for {
		next := s.Sampled() // before resolveDue: no sample is missed
		t.resolveDue(s)
		select {
		case <-t.done:
			return
		case <-next:
		}
	}
}

// resolveDue sets in the Store the resolution of each queued mark that a
// sample now covers, and drops the expired ones. A Set that fails is
// retried with the Sets retryLoop retries; meanwhile the record stays
// pending, which keeps reads on the primary.
func (t *Tracker) resolveDue(s Samples) {
	type due struct {
		key string
		res Record
	}
	var ready []due
	now := t.now()
	t.resolveMu.Lock()
	for key, m := range t.toResolve {
		if !now.Before(m.until) {
			delete(t.toResolve, key)
			continue
		}
		pos, start, ok := s.CommitAfter(monoEpoch.Add(time.Duration(m.at)))
		if !ok {
			continue
		}
		delete(t.toResolve, key)
		if pos.IsZero() {
			continue // nothing to resolve with: pending until Until
		}
		ready = append(ready, due{key, Record{Until: m.until, Position: pos,
			Pending: Pending{Writer: t.id, At: int64(start.Sub(monoEpoch)), Resolved: true}}})
	}
	t.resolveMu.Unlock()
	for _, d := range ready {
		select {
		case <-t.done:
			return
		default:
		}
		t.resolveRetry(d.key, d.res)
		ctx, cancel := context.WithTimeout(context.Background(), t.cfg.StoreTimeout)
		err := t.cfg.Store.Set(ctx, d.key, d.res)
		cancel()
		if err != nil {
			t.storeFailed(err)
			t.retryLater(d.key, d.res)
			continue
		}
		t.resolved.Add(1)
		t.storeAnswered()
	}
}

// resolveRetry applies a resolution to a Set of key queued for a retry,
// so that a retried pending record does not undo the resolution.
func (t *Tracker) resolveRetry(key string, res Record) {
	t.retryMu.Lock()
	if old, ok := t.retry[key]; ok {
		t.retry[key] = old.Merge(res)
	}
	t.retryMu.Unlock()
}

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
		Resolved:     t.resolved.Load(),
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
	t.resolveMu.Lock()
	t.closed = true
	t.resolveMu.Unlock()
	t.closeOnce.Do(func() { close(t.done) })
	t.wg.Wait()
	t.local.Close()
	if t.tables != nil {
		t.tables.close()
	}
	return nil
}
