package stickiness

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rwsplit/rwsplit/lagcheck"
)

// Record is the sticky state of one user: the user's last write. The zero
// Record is empty: it is never active.
type Record struct {
	// Until is when the record stops making reads sticky.
	Until time.Time

	// Position is the primary's replication position right after the
	// write (lagcheck.Checker.PrimaryPosition). The zero Position means
	// unknown: the user's reads go to the primary until Until, unless
	// Pending is set.
	Position lagcheck.Position

	// Pending, when set (Writer not zero), is a write whose position its
	// writer has yet to learn (a free causal mark, see
	// Config.ExactMarks): the user's reads go to the primary until the
	// writer resolves it. Position is then what the record's other writes
	// need (zero: none). With Resolved set, the record is not a state but
	// a resolution, which only Store.Set receives: Position covers every
	// write Writer marked before At.
	Pending Pending
}

// Pending names a write marked without its position: the Tracker that
// marked it (Writer, a random number), and when, on that Tracker's
// process's monotonic clock (At, nanoseconds from an origin of its own).
// Only the writer's process can compare At with a time.
type Pending struct {
	Writer   uint64
	At       int64
	Resolved bool
}

// IsZero reports whether p names no write.
func (p Pending) IsZero() bool { return p.Writer == 0 }

// pending reports whether r waits for its writer's resolution.
func (r Record) pending() bool { return r.Pending.Writer != 0 && !r.Pending.Resolved }

// resolution reports whether r is a resolution (Pending.Resolved).
func (r Record) resolution() bool { return r.Pending.Writer != 0 && r.Pending.Resolved }

// Active reports whether r is still sticky at now: now is before r.Until.
func (r Record) Active(now time.Time) bool { return now.Before(r.Until) }

// Equal reports whether r and o are the same record.
func (r Record) Equal(o Record) bool {
	return r.Until.Equal(o.Until) && r.Position.Equal(o.Position) && r.Pending == o.Pending
}

// Merge returns a record that is sticky whenever r or o is: it has the
// later Until, and the position of the two that covers the other. When
// neither covers the other (positions of different databases, or one of
// them unknown), the merged Position is zero, which sends reads to the
// primary until Until: merging never makes a user less sticky.
//
// Pending writes (Record.Pending) merge so that reads wait for every one:
// two of one writer keep the later, whose resolution covers both; two of
// different writers make the position unknown (the primary until Until),
// as does a pending write merged with an unknown position. A resolution
// (Pending.Resolved) clears its writer's pending write marked before it,
// and sets the position; it changes nothing else, and merged into no
// record it is a record of its Position.
//
// Merge does not look at the clock: drop an expired record (Active) before
// merging, or its position will still count. An empty record (zero Until)
// is ignored.
func (r Record) Merge(o Record) Record {
	switch {
	case o.Until.IsZero():
		return r.settled()
	case r.Until.IsZero():
		return o.settled()
	case r.resolution() && o.resolution():
		return mergeResolutions(r, o)
	case o.resolution():
		return r.resolve(o)
	case r.resolution():
		return o.resolve(r)
	}
	m := Record{Until: later(r.Until, o.Until)}
	switch {
	case r.pending() && o.pending() && r.Pending.Writer != o.Pending.Writer:
		return m // two writers wait: unknown
	case r.pending() || o.pending():
		if r.unknown() || o.unknown() {
			return m
		}
		m.Pending = r.Pending
		if !r.pending() || (o.pending() && o.Pending.At > r.Pending.At) {
			m.Pending = o.Pending
		}
		var ok bool
		if m.Position, ok = join(r.Position, o.Position); !ok {
			return Record{Until: m.Until}
		}
		return m
	}
	m.Position = cover(r.Position, o.Position)
	return m
}

// unknown reports whether r is an unknown position: no position, nothing
// pending.
func (r Record) unknown() bool { return r.Position.IsZero() && r.Pending.IsZero() }

// settled returns r, a resolution turned into the record of its position.
func (r Record) settled() Record {
	if r.resolution() {
		r.Pending = Pending{}
	}
	return r
}

// resolve applies the resolution res to r.
func (r Record) resolve(res Record) Record {
	m := r
	m.Until = later(r.Until, res.Until)
	switch {
	case r.unknown():
	case !r.pending():
		m.Position = cover(r.Position, res.Position)
	case r.Pending.Writer == res.Pending.Writer && r.Pending.At < res.Pending.At:
		m.Pending = Pending{}
		var ok bool
		if m.Position, ok = join(r.Position, res.Position); !ok {
			m.Position = lagcheck.Position{}
		}
	}
	return m
}

// mergeResolutions merges two resolutions: of one writer, the later if its
// position covers the other's; else the earlier of the two (dropping a
// resolution only keeps reads on the primary longer).
func mergeResolutions(r, o Record) Record {
	switch {
	case r.Pending.Writer == o.Pending.Writer && r.Pending.At < o.Pending.At && o.Position.Covers(r.Position):
		r, o = o, r
	case r.Pending.Writer == o.Pending.Writer && o.Pending.At < r.Pending.At && r.Position.Covers(o.Position):
	case o.Pending.Writer < r.Pending.Writer || (o.Pending.Writer == r.Pending.Writer && o.Pending.At < r.Pending.At):
		r, o = o, r
	}
	r.Until = later(r.Until, o.Until)
	return r
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// cover returns the position of a and b that covers the other, zero
// (unknown) if neither does or either is zero.
func cover(a, b lagcheck.Position) lagcheck.Position {
	switch {
	case a.IsZero() || b.IsZero():
	case b.Covers(a):
		return b
	case a.Covers(b):
		return a
	}
	return lagcheck.Position{}
}

// join is cover where a zero position means none (a pending record's):
// ok is false when a and b are both set and neither covers the other.
func join(a, b lagcheck.Position) (lagcheck.Position, bool) {
	switch {
	case a.IsZero():
		return b, true
	case b.IsZero():
		return a, true
	}
	p := cover(a, b)
	return p, !p.IsZero()
}

// ErrToken is wrapped by every error of ParseToken.
var ErrToken = errors.New("stickiness: malformed token")

// tokenPrefix is the version tag of the token format.
const tokenPrefix = "v1."

// maxTokenLen bounds the tokens ParseToken accepts.
const maxTokenLen = 4096

// Token encodes r as text that ParseToken decodes:
// "v1.<Until in Unix nanoseconds>.<Position.String()>". The token is not
// signed: accept tokens only from where you trust them (a job queue), or
// sign them (the cookie middleware does). The zero Record's token is "".
//
// A record with a pending write (Record.Pending) encodes as unknown: no
// one else can resolve it.
func (r Record) Token() string {
	if r.Until.IsZero() {
		return ""
	}
	if !r.Pending.IsZero() {
		r = Record{Until: r.Until}
	}
	return tokenPrefix + strconv.FormatInt(r.Until.UnixNano(), 10) + "." + r.Position.String()
}

// ParseToken decodes a token made by Record.Token. Errors wrap ErrToken.
func ParseToken(tok string) (Record, error) {
	if len(tok) > maxTokenLen {
		return Record{}, fmt.Errorf("%w: %d bytes, more than %d", ErrToken, len(tok), maxTokenLen)
	}
	rest, ok := strings.CutPrefix(tok, tokenPrefix)
	if !ok {
		return Record{}, badToken(tok, errors.New("want a v1. prefix"))
	}
	until, pos, ok := strings.Cut(rest, ".")
	if !ok {
		return Record{}, badToken(tok, errors.New("want v1.<until>.<position>"))
	}
	rec, err := parseRecord(until, pos)
	if err != nil {
		return Record{}, badToken(tok, err)
	}
	return rec, nil
}

// parseRecord parses the Until (decimal Unix nanoseconds, positive) and
// the Position of an encoded record.
func parseRecord(until, pos string) (Record, error) {
	n, err := strconv.ParseInt(until, 10, 64)
	if err != nil || n <= 0 {
		return Record{}, errors.New("until is not a positive number of Unix nanoseconds")
	}
	p, err := lagcheck.ParsePosition(pos)
	if err != nil {
		return Record{}, err
	}
	return Record{Until: time.Unix(0, n), Position: p}, nil
}

func badToken(tok string, err error) error {
	return fmt.Errorf("%w %q: %w", ErrToken, clip(tok), err)
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
