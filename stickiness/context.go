package stickiness

import (
	"context"
	"sync/atomic"
	"time"
)

type userKey struct{}

// WithUser returns a copy of ctx that carries the key of the user the
// statements run for, which the default Config.Key returns. An empty key
// means no user.
func WithUser(ctx context.Context, key string) context.Context {
	if key != "" {
		markInUse()
	}
	return context.WithValue(ctx, userKey{}, key)
}

// inUse is set by the first WithUser with a key and the first carrier.
var inUse atomic.Bool

func markInUse() {
	if !inUse.Load() {
		inUse.Store(true)
	}
}

// InUse reports whether a context may carry a user or a carrier: whether
// WithUser with a key, WithCarrier, WithToken or a CookieMiddleware has
// made one in this process. Until then, no context has anything for the
// default Config.Key (User) or for a carrier to return.
func InUse() bool { return inUse.Load() }

// User returns the user key WithUser put in ctx, and false if there is
// none. It does not allocate.
func User(ctx context.Context) (string, bool) {
	k, _ := ctx.Value(userKey{}).(string)
	return k, k != ""
}

// carrier holds the last write that a request or job made or received.
// note replaces the record with a merged copy, so a reader loads it with
// one atomic read and never sees a partial update.
type carrier struct {
	rec atomic.Pointer[Record] // nil while empty
}

type carrierKey struct{}

func carrierFrom(ctx context.Context) *carrier {
	c, _ := ctx.Value(carrierKey{}).(*carrier)
	return c
}

// load returns the carried record, expired or not; nil when c is nil or
// empty.
func (c *carrier) load() *Record {
	if c == nil {
		return nil
	}
	return c.rec.Load()
}

func withCarrier(ctx context.Context, rec *Record) (context.Context, *carrier) {
	markInUse()
	c := new(carrier)
	c.rec.Store(rec)
	return context.WithValue(ctx, carrierKey{}, c), c
}

// WithCarrier returns a copy of ctx with a new, empty carrier, in which a
// Tracker records the writes made with ctx (and its children), and where
// FromContext and Token find them. The cookie middleware installs its own.
func WithCarrier(ctx context.Context) context.Context {
	ctx, _ = withCarrier(ctx, nil)
	return ctx
}

// WithToken returns a copy of ctx with a new carrier that holds the record
// encoded in tok (Token, Record.Token): a background job then sees the
// writes of the request that started it. A malformed token is ignored.
// The token is not verified: pass only tokens from where you trust them.
func WithToken(ctx context.Context, tok string) context.Context {
	var rec *Record
	if tok != "" {
		if r, err := ParseToken(tok); err == nil {
			rec = &r
		}
	}
	ctx, _ = withCarrier(ctx, rec)
	return ctx
}

// Token returns the token of the record ctx carries (FromContext), and ""
// when there is none.
func Token(ctx context.Context) string {
	rec, ok := FromContext(ctx)
	if !ok {
		return ""
	}
	return rec.Token()
}

// FromContext returns the record ctx carries, and false when ctx has no
// carrier, or its record is empty or expired. It does not allocate.
func FromContext(ctx context.Context) (Record, bool) {
	p := carrierFrom(ctx).load()
	if p == nil || !p.Active(time.Now()) {
		return Record{}, false
	}
	return *p, true
}

// note merges rec into ctx's carrier, and reports whether ctx has one.
func note(ctx context.Context, rec Record) bool {
	c := carrierFrom(ctx)
	return c != nil && c.note(rec, time.Now())
}

// note merges rec into the carried record (Record.Merge; an expired one
// is replaced) and returns true. It is safe for concurrent use.
func (c *carrier) note(rec Record, now time.Time) bool {
	if !rec.Active(now) {
		return true
	}
	for {
		old := c.rec.Load()
		merged := rec
		if old != nil && old.Active(now) {
			merged = old.Merge(rec)
			if merged.Equal(*old) {
				return true
			}
		}
		if c.rec.CompareAndSwap(old, &merged) {
			return true
		}
	}
}
