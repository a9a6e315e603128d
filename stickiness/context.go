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
	return context.WithValue(ctx, userKey{}, key)
}

// User returns the user key WithUser put in ctx, and false if there is
// none. It does not allocate.
func User(ctx context.Context) (string, bool) {
	k, _ := ctx.Value(userKey{}).(string)
	return k, k != ""
}

// carrier holds the record of the last write that a request or a job
// made or received. Note replaces the record with a merged copy, so that
// readers load it with one atomic read and never see a partial update.
type carrier struct {
	rec atomic.Pointer[Record] // nil while empty
}

type carrierKey struct{}

func carrierFrom(ctx context.Context) *carrier {
	c, _ := ctx.Value(carrierKey{}).(*carrier)
	return c
}

func withCarrier(ctx context.Context, rec *Record) (context.Context, *carrier) {
	c := new(carrier)
	c.rec.Store(rec)
	return context.WithValue(ctx, carrierKey{}, c), c
}

// WithCarrier returns a copy of ctx with a new, empty carrier: a place
// where Note records the writes made with the context (and its children),
// and where FromContext and Token find them. Use it for work that is not
// an HTTP request under the cookie middleware, which installs its own.
func WithCarrier(ctx context.Context) context.Context {
	ctx, _ = withCarrier(ctx, nil)
	return ctx
}

// WithToken returns a copy of ctx with a new carrier that holds the record
// encoded in tok (Token, Record.Token), for a background job that must see
// the writes of the request that started it. A malformed token is ignored:
// the carrier is then empty, as with "".
//
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

// Token returns the token of the record ctx carries (FromContext),
// including the writes Note recorded during this request, and "" when
// there is none or it has expired.
func Token(ctx context.Context) string {
	rec, ok := FromContext(ctx)
	if !ok {
		return ""
	}
	return rec.Token()
}

// FromContext returns the record ctx carries, and false when ctx has no
// carrier, the carrier is empty or its record has expired. It does not
// allocate.
func FromContext(ctx context.Context) (Record, bool) {
	c := carrierFrom(ctx)
	if c == nil {
		return Record{}, false
	}
	p := c.rec.Load()
	if p == nil || !p.Active(time.Now()) {
		return Record{}, false
	}
	return *p, true
}

// Note merges rec into the record that ctx's carrier holds (Record.Merge;
// an expired record is replaced), and reports whether ctx has a carrier.
// rwsplit calls it after each write. It is safe for concurrent use.
func Note(ctx context.Context, rec Record) bool {
	c := carrierFrom(ctx)
	if c == nil {
		return false
	}
	now := time.Now()
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

// HasCarrier reports whether ctx has a carrier (WithCarrier, WithToken, or
// the cookie middleware), empty or not: a write made with ctx is then
// recorded in it. It does not allocate.
func HasCarrier(ctx context.Context) bool { return carrierFrom(ctx) != nil }
