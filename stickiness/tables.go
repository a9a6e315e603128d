package stickiness

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// Tables names the tables a statement writes or reads, for table mode
// (Config.Tables). The zero Tables names none.
type Tables struct {
	// Names are table names as the statement spells them, without schema
	// or quotes. They are compared without regard to case.
	Names []string

	// All stands for every table. For a write: it changed the schema, or
	// its tables are unknown; every table's reads become sticky. For a
	// read: its tables are unknown; it is checked against the newest
	// write of any table.
	All bool
}

// NewForPrimary is New, with the table-mode marks (Config.Tables) shared by
// every Tracker of this process created for the same primary: primary
// identifies the database server the writes go to, so that two Trackers
// of one primary see each other's writes and two of different primaries
// never mix their positions. "" means New: marks of its own.
func NewForPrimary(cfg Config, primary string) (*Tracker, error) {
	return newTracker(cfg, nil, primary)
}

// TableMode reports whether the Tracker is in table mode (Config.Tables).
func (t *Tracker) TableMode() bool { return t.tables != nil }

// tableMarks are the table-mode marks of one primary: each table's last
// write, the last schema-wide write, and the newest write of all.
type tableMarks struct {
	m      *Memory                // folded table name -> last write
	schema atomic.Pointer[Record] // the last schema-wide write
	newest atomic.Pointer[Record] // every write merged: reads of unknown tables
	now    func() time.Time
	id     uint64 // the writer of their pending marks (Pending.Writer)

	key  string // registry key; "" for marks of one Tracker
	refs int    // Trackers holding them, under registry.mu
}

func newTableMarks(now func() time.Time) *tableMarks {
	if now == nil {
		now = time.Now
	}
	m, _ := NewMemory(MemoryOptions{MaxEntries: maxTables, Now: now}) // valid options: no error
	return &tableMarks{m: m, now: now, id: newWriter()}
}

// registry holds the marks of every primary named by a Tracker in this
// process, so that every Tracker of a primary sees every write to it.
var registry struct {
	mu sync.Mutex
	m  map[string]*tableMarks
}

// acquireTables returns the marks of primary, shared with every Tracker of
// the process that holds them; "" gives marks of one's own. Release them.
func acquireTables(primary string, now func() time.Time) *tableMarks {
	if primary == "" {
		return newTableMarks(now)
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if tm := registry.m[primary]; tm != nil {
		tm.refs++
		return tm
	}
	if registry.m == nil {
		registry.m = make(map[string]*tableMarks)
	}
	tm := newTableMarks(now)
	tm.key, tm.refs = primary, 1
	registry.m[primary] = tm
	return tm
}

// release gives up one hold; the last stops the memory's sweeper.
func (tm *tableMarks) release() {
	if tm.key != "" {
		registry.mu.Lock()
		tm.refs--
		last := tm.refs == 0
		if last {
			delete(registry.m, tm.key)
		}
		registry.mu.Unlock()
		if !last {
			return
		}
	}
	tm.m.Close()
}

// tables is one Tracker's hold on a primary's table marks.
type tables struct {
	*tableMarks
	once sync.Once
}

func (h *tables) close() { h.once.Do(h.release) }

// lookup merges into rec the marks that a read of ts must respect, each
// settled by t (Tracker.settle), and reports whether there was any.
func (tm *tableMarks) lookup(ctx context.Context, ts Tables, rec Record, t *Tracker) (Record, bool) {
	sticky := false
	var now time.Time
	active := func(p *Record) bool {
		if p == nil {
			return false
		}
		if now.IsZero() {
			now = tm.now()
		}
		return p.Active(now)
	}
	if ts.All {
		if p := tm.newest.Load(); active(p) {
			rec, sticky = rec.Merge(t.settle(*p)), true
		}
		return rec, sticky
	}
	if len(ts.Names) == 0 {
		return rec, false
	}
	if p := tm.schema.Load(); active(p) {
		rec, sticky = rec.Merge(t.settle(*p)), true
	}
	for _, n := range ts.Names {
		if r, found := tm.m.getHash(tm.hash(n)); found {
			rec, sticky = rec.Merge(t.settle(r)), true
		}
	}
	return rec, sticky
}

// mark records rec as the last write of the tables w names.
func (tm *tableMarks) mark(w *Write, rec Record) {
	if !w.all && len(w.tables) == 0 {
		return
	}
	now := tm.now()
	if w.all {
		mergeInto(&tm.schema, rec, now)
	}
	for _, n := range w.tables {
		tm.m.setHash(tm.hash(n), rec)
	}
	mergeInto(&tm.newest, rec, now)
}

// mergeInto merges rec into the record p holds, dropping it if expired.
func mergeInto(p *atomic.Pointer[Record], rec Record, now time.Time) {
	for {
		old := p.Load()
		next := rec
		if old != nil && old.Active(now) {
			next = old.Merge(rec)
		}
		if p.CompareAndSwap(old, &next) {
			return
		}
	}
}

// foldBuf bounds the names hash folds in one piece on the stack.
const foldBuf = 64

// hash returns the key of a table name: its hash with ASCII letters in
// lower case and every other non-ASCII byte as 0x80. Names that differ in
// case, or only in non-ASCII letters, share a key: a read may be sticky
// for a table it did not read, never the other way round.
func (tm *tableMarks) hash(name string) uint64 {
	seed := tm.m.seed
	plain := true
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= 'A' && c <= 'Z' || c >= 0x80 {
			plain = false
			break
		}
	}
	if plain {
		return maphash.String(seed, name)
	}
	var buf [foldBuf]byte
	if len(name) <= foldBuf {
		return maphash.Bytes(seed, fold(buf[:0], name))
	}
	var h maphash.Hash
	h.SetSeed(seed)
	for len(name) > 0 {
		n := min(len(name), foldBuf)
		_, _ = h.Write(fold(buf[:0], name[:n]))
		name = name[n:]
	}
	return h.Sum64()
}

func fold(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c >= 0x80:
			c = 0x80
		}
		dst = append(dst, c)
	}
	return dst
}
