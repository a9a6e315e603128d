package stickiness

import (
	"context"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/rwsplit/rwsplit/lagcheck"
)

// Defaults of MemoryOptions' zero values.
const (
	DefaultMaxEntries    = 1 << 20
	DefaultSweepInterval = time.Second
)

// MemoryOptions configures a Memory. The zero MemoryOptions is ready to use.
type MemoryOptions struct {
	// MaxEntries bounds the records kept; when full, Set evicts those that
	// expire soonest. Zero means DefaultMaxEntries (1<<20, about 85 MB).
	// Negative is an error.
	MaxEntries int

	// SweepInterval is how often expired records are deleted; they are
	// never returned meanwhile. Zero means DefaultSweepInterval (1s).
	// Negative is an error.
	SweepInterval time.Duration

	// Now returns the current time. Nil means time.Now. For tests.
	Now func() time.Time
}

// Memory is a Store in the process's memory, bounded by
// MemoryOptions.MaxEntries. It is safe for concurrent use and Get does not
// allocate. Two keys whose 64-bit hashes collide share a record, which can
// only make reads go to the primary more. A goroutine deletes expired
// records; Close stops it.
type Memory struct {
	seed     maphash.Seed
	shards   []paddedShard
	shift    uint // a key's shard is hash >> shift
	perShard int
	base     time.Time        // entries' times are nanoseconds since base
	now      func() time.Time // nil: time.Since(base), one clock read
	evicted  atomic.Uint64

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

type shard struct {
	mu      sync.RWMutex
	m       map[uint64]entry
	last    *lagcheck.Position            // the GTID set stored last, shared when equal
	mariaDB map[uint64]*lagcheck.Position // one-domain templates by domain<<32 | server
	writers map[uint64]*lagcheck.Position // pending writes' writer tags by writer
	both    map[uint64]Record             // the records of entries whose pos is bothMark
}

// maxTemplates bounds shard.mariaDB; past it, the map starts over.
const maxTemplates = 64

// paddedShard keeps each shard's lock on its own cache lines.
type paddedShard struct {
	shard
	_ [64 - unsafe.Sizeof(shard{})%64]byte
}

// entry is a Record in 24 bytes (docs/stickiness.md).
type entry struct {
	until int64  // Record.Until in nanoseconds since Memory.base
	lsn   uint64 // the LSN when pos is lsnMark; the seq when pos is a template; Pending.At when pos is a writer tag
	// pos: nil (zero Position), lsnMark, a one-domain MariaDB template, a
	// shared, immutable GTID position, or the shard's tag of a pending
	// write's writer: an LSN position (an LSN is otherwise kept inline)
	// whose value is Pending.Writer; or bothMark: the record, a pending
	// write with a position, is in shard.both.
	pos *lagcheck.Position
}

// bothMark is entry.pos of a record kept whole in shard.both: a pending
// write merged with a position (a shared Store, when the user writes
// again after a resolution), not worth a wider entry for every record.
var bothMark = new(lagcheck.Position)

// lsnMark is entry.pos of a PostgreSQL LSN; only its address matters.
var lsnMark = new(lagcheck.Position)

func (m *Memory) record(e *entry) Record {
	r := Record{Until: m.base.Add(time.Duration(e.until))}
	switch e.pos {
	case nil:
	case lsnMark:
		r.Position = lagcheck.LSNPosition(e.lsn)
	default:
		if w, ok := e.pos.LSN(); ok {
			r.Pending = Pending{Writer: w, At: int64(e.lsn)}
		} else if domain, server, _, ok := e.pos.MariaDB(); ok {
			r.Position = lagcheck.MariaDBPosition(domain, server, e.lsn)
		} else {
			r.Position = *e.pos
		}
	}
	return r
}

// encode makes the entry of rec, under s.mu. reuse, if not nil, is a
// stored position to share if it equals rec's.
func (m *Memory) encode(s *shard, h uint64, rec Record, reuse *lagcheck.Position) entry {
	e := entry{until: m.since(rec.Until)}
	p := rec.Position
	if !rec.Pending.IsZero() { // never Resolved here: setHash settles it
		if p.IsZero() {
			e.lsn, e.pos = uint64(rec.Pending.At), s.writer(rec.Pending.Writer)
		} else {
			if s.both == nil {
				s.both = make(map[uint64]Record)
			}
			s.both[h] = rec
			e.pos = bothMark
		}
		return e
	}
	switch p.Kind() {
	case lagcheck.NoPosition:
	case lagcheck.PostgresLSN:
		e.lsn, _ = p.LSN()
		e.pos = lsnMark
	default:
		if domain, server, seq, ok := p.MariaDB(); ok {
			e.lsn, e.pos = seq, s.template(domain, server)
			break
		}
		switch {
		case reuse != nil && reuse != lsnMark && reuse.Equal(p):
			e.pos = reuse
		case s.last != nil && s.last.Equal(p):
			e.pos = s.last
		default:
			np := new(lagcheck.Position)
			*np = p
			e.pos, s.last = np, np
		}
	}
	return e
}

// template returns the shard's template of one-domain MariaDB positions
// of domain and server, under s.mu.
func (s *shard) template(domain, server uint32) *lagcheck.Position {
	k := uint64(domain)<<32 | uint64(server)
	if t, ok := s.mariaDB[k]; ok {
		return t
	}
	switch {
	case s.mariaDB == nil:
		s.mariaDB = make(map[uint64]*lagcheck.Position)
	case len(s.mariaDB) >= maxTemplates:
		clear(s.mariaDB)
	}
	t := new(lagcheck.Position)
	*t = lagcheck.MariaDBPosition(domain, server, 0)
	s.mariaDB[k] = t
	return t
}

// delete deletes key k's record, under s.mu.
func (s *shard) delete(k uint64) {
	if s.m[k].pos == bothMark {
		delete(s.both, k)
	}
	delete(s.m, k)
}

// writer returns the shard's tag of pending writes of writer w, under
// s.mu: a process has a few writers (its Trackers), so the map starts
// over past maxTemplates.
func (s *shard) writer(w uint64) *lagcheck.Position {
	if t, ok := s.writers[w]; ok {
		return t
	}
	switch {
	case s.writers == nil:
		s.writers = make(map[uint64]*lagcheck.Position)
	case len(s.writers) >= maxTemplates:
		clear(s.writers)
	}
	t := new(lagcheck.Position)
	*t = lagcheck.LSNPosition(w)
	s.writers[w] = t
	return t
}

// NewMemory returns a Memory and starts its sweeper; Close stops it.
func NewMemory(o MemoryOptions) (*Memory, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	// Up to 64 shards, of at least 64 records each, so that small stores
	// are bounded exactly.
	n, bits := 64, uint(6)
	for n > 1 && o.MaxEntries/n < 64 {
		n, bits = n/2, bits-1
	}
	m := &Memory{
		seed:     maphash.MakeSeed(),
		shards:   make([]paddedShard, n),
		shift:    64 - bits,
		perShard: o.MaxEntries / n,
		base:     time.Now(),
		now:      o.Now,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if m.now != nil {
		m.base = m.now()
	}
	for i := range m.shards {
		m.shards[i].m = make(map[uint64]entry)
	}
	go m.sweepLoop(o.SweepInterval)
	return m, nil
}

// withDefaults validates o and returns it with its zero values replaced by
// their defaults. Errors wrap ErrConfig.
func (o MemoryOptions) withDefaults() (MemoryOptions, error) {
	switch {
	case o.MaxEntries < 0:
		return o, fmt.Errorf("%w: negative MaxEntries %d", ErrConfig, o.MaxEntries)
	case o.SweepInterval < 0:
		return o, fmt.Errorf("%w: negative SweepInterval %v", ErrConfig, o.SweepInterval)
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	return o, nil
}

// clock returns the current time in nanoseconds since m.base.
func (m *Memory) clock() int64 {
	if m.now == nil {
		return int64(time.Since(m.base))
	}
	return m.since(m.now())
}

// since returns t in nanoseconds since m.base, saturated to ±292 years.
func (m *Memory) since(t time.Time) int64 { return int64(t.Sub(m.base)) }

func (m *Memory) shard(h uint64) *shard {
	return &m.shards[h>>m.shift].shard // shift is 64 with one shard: index 0
}

// Get returns the key's record, and false when it has none or it has
// expired. It never fails and does not allocate.
func (m *Memory) Get(ctx context.Context, key string) (Record, bool, error) {
	r, ok := m.getHash(maphash.String(m.seed, key))
	return r, ok, nil
}

// getHash is Get of the key whose hash is h.
func (m *Memory) getHash(h uint64) (Record, bool) {
	s := m.shard(h)
	s.mu.RLock()
	e, ok := s.m[h]
	if ok && e.pos == bothMark {
		r := s.both[h]
		s.mu.RUnlock()
		return r, e.until > m.clock()
	}
	s.mu.RUnlock()
	if !ok || e.until <= m.clock() {
		return Record{}, false
	}
	return m.record(&e), true
}

// Set merges rec into the key's active record (Record.Merge) and keeps the
// result until its Until. It never fails.
func (m *Memory) Set(ctx context.Context, key string, rec Record) error {
	m.setHash(maphash.String(m.seed, key), rec)
	return nil
}

// setHash is Set of the key whose hash is h.
func (m *Memory) setHash(h uint64, rec Record) {
	now := m.clock()
	if m.since(rec.Until) <= now {
		return
	}
	s := m.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.m[h]
	var reuse *lagcheck.Position
	switch {
	case ok && old.until > now:
		if old.pos == bothMark {
			rec = s.both[h].Merge(rec)
		} else {
			rec = m.record(&old).Merge(rec)
		}
		reuse = old.pos
	default:
		rec = rec.settled()
		if !ok && len(s.m) >= m.perShard {
			m.evict(s, now)
		}
	}
	if old.pos == bothMark {
		delete(s.both, h)
	}
	s.m[h] = m.encode(s, h, rec, reuse)
}

// evictSamples is how many records evict looks at.
const evictSamples = 8

// evict makes room in the full shard s, under s.mu: it deletes the expired
// records among a few, or else the one of them that expires soonest.
func (m *Memory) evict(s *shard, now int64) {
	var (
		victim  uint64
		soonest int64 = math.MaxInt64
		expired bool
		n       int
	)
	for k, e := range s.m {
		if e.until <= now {
			s.delete(k)
			expired = true
		} else if e.until < soonest {
			victim, soonest = k, e.until
		}
		if n++; n == evictSamples {
			break
		}
	}
	if !expired {
		s.delete(victim)
		m.evicted.Add(1)
	}
}

// Len returns the number of records the store holds, including expired
// ones the sweeper has not deleted yet.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Evicted returns the number of records Set evicted before they expired
// to stay within MemoryOptions.MaxEntries. If it grows, raise MaxEntries.
func (m *Memory) Evicted() uint64 { return m.evicted.Load() }

// Close stops the sweeper and waits for it to exit. The store remains
// usable, but expired records are then only deleted to make room. Close is
// safe to call more than once and always returns nil.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.done
	})
	return nil
}

func (m *Memory) sweepLoop(interval time.Duration) {
	defer close(m.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	var buf []uint64
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			buf = m.sweep(buf)
		}
	}
}

// sweep deletes the expired records, finding them under the read lock.
func (m *Memory) sweep(buf []uint64) []uint64 {
	now := m.clock()
	for i := range m.shards {
		s := &m.shards[i]
		buf = buf[:0]
		s.mu.RLock()
		for k, e := range s.m {
			if e.until <= now {
				buf = append(buf, k)
			}
		}
		s.mu.RUnlock()
		if len(buf) == 0 {
			continue
		}
		s.mu.Lock()
		for _, k := range buf {
			if e, ok := s.m[k]; ok && e.until <= now { // not renewed meanwhile
				s.delete(k)
			}
		}
		s.mu.Unlock()
	}
	return buf
}
