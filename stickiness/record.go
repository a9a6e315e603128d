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
	// unknown: the user's reads go to the primary until Until.
	Position lagcheck.Position
}

// Active reports whether r is still sticky at now: now is before r.Until.
func (r Record) Active(now time.Time) bool { return now.Before(r.Until) }

// Equal reports whether r and o are the same record.
func (r Record) Equal(o Record) bool {
	return r.Until.Equal(o.Until) && r.Position.Equal(o.Position)
}

// Merge returns a record that is sticky whenever r or o is: it has the
// later Until, and the position of the two that covers the other. When
// neither covers the other (positions of different databases, or one of
// them unknown), the merged Position is zero, which sends reads to the
// primary until Until: merging never makes a user less sticky.
//
// Merge does not look at the clock: drop an expired record (Active) before
// merging, or its position will still count. An empty record (zero Until)
// is ignored.
func (r Record) Merge(o Record) Record {
	switch {
	case o.Until.IsZero():
		return r
	case r.Until.IsZero():
		return o
	}
	m := Record{Until: r.Until}
	if o.Until.After(r.Until) {
		m.Until = o.Until
	}
	switch {
	case r.Position.IsZero() || o.Position.IsZero():
	case o.Position.Covers(r.Position):
		m.Position = o.Position
	case r.Position.Covers(o.Position):
		m.Position = r.Position
	}
	return m
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
func (r Record) Token() string {
	if r.Until.IsZero() {
		return ""
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
