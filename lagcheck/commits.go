package lagcheck

import (
	"sync/atomic"
	"time"
)

// commitSample is one sample of the primary, for CommitAfter: start is
// when its query was about to be sent (nanoseconds since epoch, on the
// monotonic clock), pos a position that covers every transaction whose
// commit had returned by then.
type commitSample struct {
	start int64
	pos   Position
}

// commits publishes the recent commit samples as an immutable snapshot,
// for lock-free readers. Only the sample loop (round) appends.
type commits struct {
	snap atomic.Pointer[[]commitSample] // oldest first
	buf  []commitSample                 // the round's; entries past a published length are not yet read
	keep int

	// sampled is closed, and replaced, after each sample is published.
	sampled atomic.Pointer[chan struct{}]
}

func newCommits(keep int) *commits {
	c := &commits{buf: make([]commitSample, 0, 2*keep), keep: keep}
	ch := make(chan struct{})
	c.sampled.Store(&ch)
	return c
}

// add publishes a sample that started at start. Readers hold slices of buf
// that end before the entry written, so the append races with nothing;
// when buf is full, the last keep samples move to a new array.
func (c *commits) add(start time.Time, pos Position) {
	if len(c.buf) == cap(c.buf) {
		nb := make([]commitSample, c.keep, 2*c.keep)
		copy(nb, c.buf[len(c.buf)-c.keep:])
		c.buf = nb
	}
	c.buf = append(c.buf, commitSample{start: int64(start.Sub(epoch)), pos: pos})
	s := c.buf
	c.snap.Store(&s)
	next := make(chan struct{})
	close(*c.sampled.Swap(&next))
}

// after returns the first sample that started strictly after t
// (nanoseconds since epoch).
func (c *commits) after(t int64) (commitSample, bool) {
	p := c.snap.Load()
	if p == nil {
		return commitSample{}, false
	}
	s := *p
	lo, hi := 0, len(s)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if s[mid].start > t {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if lo == len(s) {
		return commitSample{}, false
	}
	return s[lo], true
}

// CommitAfter returns the commit position of the first sample of the
// primary whose query was sent after t, and when that sample started: it
// covers every transaction whose commit had returned by t, whatever its
// durability (the position CommitPosition reads: the WAL insert position
// on PostgreSQL, the GTIDs on MariaDB and MySQL). t must be read from this
// process's clock (time.Now, which carries the monotonic reading), after
// the commit returned. ok is false until such a sample exists: the
// Checker has not sampled the primary since t, its samples failed, or it
// does not sample commits (SamplesCommits). Later samples are never
// returned while the first is kept; the snapshot keeps the samples of the
// history's span (4×MaxLag, at least 30s), and once the first is dropped
// the oldest kept one, which covers more, stands for it.
//
// It takes no lock and does not allocate: a binary search over an
// immutable snapshot published at each sample.
func (c *Checker) CommitAfter(t time.Time) (pos Position, start time.Time, ok bool) {
	s, ok := c.commits.after(int64(t.Sub(epoch)))
	if !ok {
		return Position{}, time.Time{}, false
	}
	return s.pos, epoch.Add(time.Duration(s.start)), true
}

// Sampled returns a channel that is closed once the next sample of the
// primary is published for CommitAfter (a failed sample, or one without a
// commit position, publishes nothing).
func (c *Checker) Sampled() <-chan struct{} { return *c.commits.sampled.Load() }

// SamplesCommits reports whether the Checker's samples of the primary
// carry commit positions for CommitAfter: true with the built-in probes of
// PostgreSQL, MariaDB and MySQL (with or without Config.Heartbeat), false
// with a custom Config.Probe or a heartbeat alone. It costs nothing: the
// sample reads the commit position in the statement that reads the
// position it measures lag against.
func (c *Checker) SamplesCommits() bool { return c.sampleCommits }
