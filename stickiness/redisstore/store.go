// Package redisstore is a stickiness.Store in Redis, shared by every
// application server. It is a package of its own so that applications
// without Redis do not link go-redis.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/stickiness"
)

// DefaultPrefix is the default Options.Prefix.
const DefaultPrefix = "rwsplit:sticky:"

// Options configures a Store. The zero Options is ready to use.
type Options struct {
	// Prefix is prepended to each user key to make the Redis key.
	// Zero means DefaultPrefix ("rwsplit:sticky:").
	Prefix string
}

// Store is a stickiness.Store in Redis. Each record is one string key that
// Redis expires at the record's Until. Get is one GET; Set is one script
// call when the user's writes arrive in order, two otherwise. It works
// with any redis.UniversalClient: a client, a cluster or a failover client.
type Store struct {
	client redis.UniversalClient
	prefix string
}

var _ stickiness.Store = (*Store)(nil)

// New returns a Store that uses client. The caller owns client: Close does
// not close it. A nil client (also a nil *redis.Client) makes every call
// fail with an error, which the Tracker counts and answers by sending the
// user's reads to the primary.
func New(client redis.UniversalClient, o Options) *Store {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if v := reflect.ValueOf(client); client != nil && v.Kind() == reflect.Pointer && v.IsNil() {
		client = nil
	}
	return &Store{client: client, prefix: o.Prefix}
}

var errNoClient = errors.New("redisstore: nil client")

// errContention is returned when Set lost its compare-and-set too often to
// other Sets of the same key.
var errContention = errors.New("redisstore: set: too many concurrent updates of the key")

// Get returns the key's record, and false when it has none or it has
// expired.
func (r *Store) Get(ctx context.Context, key string) (stickiness.Record, bool, error) {
	if r.client == nil {
		return stickiness.Record{}, false, errNoClient
	}
	v, err := r.client.Get(ctx, r.prefix+key).Result()
	if errors.Is(err, redis.Nil) {
		return stickiness.Record{}, false, nil
	}
	if err != nil {
		return stickiness.Record{}, false, fmt.Errorf("redisstore: get: %w", err)
	}
	rec, err := decodeValue(v)
	if err != nil {
		return stickiness.Record{}, false, err
	}
	if !rec.Active(time.Now()) { // PX is in milliseconds: it may lag Until
		return stickiness.Record{}, false, nil
	}
	return rec, true, nil
}

// setScript stores ARGV[1] in KEYS[1] for ARGV[3] milliseconds, unless
// the key holds a record whose Until is at least ARGV[2], or, with ARGV[4]
// set, unless the key no longer holds ARGV[4] (compare-and-set). It returns
// {stored (1 or 0), the value found (or nil)}. docs/stickiness.md explains.
var setScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if ARGV[4] ~= '' then
  if cur ~= ARGV[4] then
    return {0, cur}
  end
elseif cur then
  local u = string.match(cur, '^(%d+) ')
  if u and (#u > #ARGV[2] or (#u == #ARGV[2] and u >= ARGV[2])) then
    return {0, cur}
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return {1, cur}
`)

// maxSetAttempts bounds Set's script calls.
const maxSetAttempts = 4

// Set merges rec into the key's active record (stickiness.Record.Merge),
// and has Redis expire the result at its Until.
func (r *Store) Set(ctx context.Context, key string, rec stickiness.Record) error {
	if r.client == nil {
		return errNoClient
	}
	k := []string{r.prefix + key}
	want, expect := rec, ""
	for range maxSetAttempts {
		now := time.Now()
		ttl := want.Until.Sub(now)
		if ttl <= 0 {
			return nil
		}
		val := encodeValue(want)
		px := (ttl + time.Millisecond - 1) / time.Millisecond
		until := strconv.FormatInt(want.Until.UnixNano(), 10)
		if want.Pending.Resolved {
			// A resolution replaces no record whole: it is stored as
			// is only where the key is absent, else merged below.
			until = "0"
		}
		res, err := setScript.Run(ctx, r.client, k,
			val, until, int64(px), expect).Slice()
		if err != nil {
			return fmt.Errorf("redisstore: set: %w", err)
		}
		if len(res) != 2 {
			return fmt.Errorf("redisstore: set: unexpected script reply %v", res)
		}
		stored, _ := res[0].(int64)
		cur, _ := res[1].(string) // nil when the key was absent
		have := cur
		if stored == 1 {
			have = val
		}
		// The script compared only Untils: merge what it found.
		if cur != "" {
			if old, err := decodeValue(cur); err == nil && old.Active(now) {
				want = want.Merge(old)
				if rec.Pending.Resolved {
					// A resolution holds whatever it is merged with:
					// apply it again to what another Set brought back.
					want = want.Merge(rec)
				}
			}
		}
		if v := encodeValue(want); v == have {
			return nil
		}
		expect = have // "": the key is gone, store if still absent
	}
	return errContention
}

// Close does nothing: the caller owns the client. It returns nil.
func (r *Store) Close() error { return nil }

// encodeValue encodes rec as "<Until in Unix nanoseconds> <Position>",
// followed by " p<Writer in hex>.<At>" when a write is pending. A
// resolution (Pending.Resolved) is encoded as the record of its position.
func encodeValue(rec stickiness.Record) string {
	v := strconv.FormatInt(rec.Until.UnixNano(), 10) + " " + rec.Position.String()
	if p := rec.Pending; !p.IsZero() && !p.Resolved {
		v += " p" + strconv.FormatUint(p.Writer, 16) + "." + strconv.FormatInt(p.At, 10)
	}
	return v
}

// decodeValue parses what encodeValue makes.
func decodeValue(v string) (stickiness.Record, error) {
	until, rest, ok := strings.Cut(v, " ")
	n, err := strconv.ParseInt(until, 10, 64)
	if !ok || err != nil || n <= 0 {
		return stickiness.Record{}, fmt.Errorf("redisstore: malformed value %q: want <until> <position>", clip(v))
	}
	pos, pend, hasPend := strings.Cut(rest, " ")
	p, err := lagcheck.ParsePosition(pos)
	if err != nil {
		return stickiness.Record{}, fmt.Errorf("redisstore: malformed value %q: %w", clip(v), err)
	}
	rec := stickiness.Record{Until: time.Unix(0, n), Position: p}
	if hasPend {
		w, at, ok := strings.Cut(strings.TrimPrefix(pend, "p"), ".")
		rec.Pending.Writer, err = strconv.ParseUint(w, 16, 64)
		if err == nil {
			rec.Pending.At, err = strconv.ParseInt(at, 10, 64)
		}
		if !ok || !strings.HasPrefix(pend, "p") || err != nil || rec.Pending.Writer == 0 {
			return stickiness.Record{}, fmt.Errorf("redisstore: malformed value %q: want <until> <position> p<writer>.<at>", clip(v))
		}
	}
	return rec, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
