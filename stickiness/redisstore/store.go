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
	"sync/atomic"
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

	// LossHold is how long every user counts as sticky, with an unknown
	// position (reads on the primary), after the Store finds that Redis
	// lost its keys: a restart without persistence, a failover to a
	// replica that had not received the latest writes, a FLUSHALL. Any
	// user's mark may have been among the keys lost. Set it to at least
	// the Tracker's Window. Zero means stickiness.DefaultWindow (30s);
	// negative turns the check off, and Get is then one GET instead of a
	// pipeline of two. See docs/stickiness.md, "When Redis loses its
	// keys".
	LossHold time.Duration
}

// Store is a stickiness.Store in Redis. Each record is one string key that
// Redis expires at the record's Until. Get is one round trip (a pipeline
// of two GETs: the key and a sentinel that tells whether Redis lost its
// keys, see Options.LossHold); Set is one script call when the user's
// writes arrive in order, two otherwise. It works
// with any redis.UniversalClient: a client, a cluster or a failover client.
type Store struct {
	client   redis.UniversalClient
	prefix   string
	epochKey string        // the sentinel key (see epoch)
	lossHold time.Duration // Options.LossHold with its default; < 0: off
	seen     atomic.Int64  // the sentinel's time this Store last read, Unix ns; 0: none yet
	held     atomic.Int64  // the end of a hold this Store found on its own, Unix ns
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
	if o.LossHold == 0 {
		o.LossHold = stickiness.DefaultWindow
	}
	return &Store{client: client, prefix: o.Prefix, epochKey: o.Prefix + epochSuffix, lossHold: o.LossHold}
}

// epochSuffix names the sentinel key after the prefix. User keys do not
// hold NUL bytes in practice, so none collides with it.
const epochSuffix = "\x00epoch"

var errNoClient = errors.New("redisstore: nil client")

// errContention is returned when Set lost its compare-and-set too often to
// other Sets of the same key.
var errContention = errors.New("redisstore: set: too many concurrent updates of the key")

// Get returns the key's record, and false when it has none or it has
// expired. Within LossHold of Redis losing its keys, a key with no record
// gets a record with an unknown position, active until the hold ends.
func (r *Store) Get(ctx context.Context, key string) (stickiness.Record, bool, error) {
	if r.client == nil {
		return stickiness.Record{}, false, errNoClient
	}
	if r.lossHold < 0 {
		v, err := r.client.Get(ctx, r.prefix+key).Result()
		return r.record(v, err, time.Time{})
	}
	pipe := r.client.Pipeline()
	get := pipe.Get(ctx, r.prefix+key)
	ep := pipe.Get(ctx, r.epochKey)
	_, _ = pipe.Exec(ctx) // each command's error is its own
	hold, err := r.epoch(ctx, ep)
	if err != nil {
		return stickiness.Record{}, false, err
	}
	v, err := get.Result()
	return r.record(v, err, hold)
}

// record decodes the reply v, err of a key's GET. hold, if set, is when
// the hold after a loss of keys ends: a key with no active record is
// sticky until then.
func (r *Store) record(v string, err error, hold time.Time) (stickiness.Record, bool, error) {
	now := time.Now()
	switch {
	case errors.Is(err, redis.Nil):
		v = ""
	case err != nil:
		return stickiness.Record{}, false, fmt.Errorf("redisstore: get: %w", err)
	}
	if v != "" {
		rec, err := decodeValue(v)
		if err != nil {
			return stickiness.Record{}, false, err
		}
		if rec.Active(now) { // PX is in milliseconds: it may lag Until
			// Written since the loss, if any: it covers the user's
			// writes before it too (positions only grow).
			return rec, true, nil
		}
	}
	if now.Before(hold) {
		return stickiness.Record{Until: hold}, true, nil
	}
	return stickiness.Record{}, false, nil
}

// epoch reads the sentinel, a key without expiry that tells whether Redis
// kept its keys since this Store last looked, and returns when the hold
// after a loss ends (zero: no hold). Its value is "<Unix ns> <lost>": when
// it was made, and 1 if its maker knew an older one (Redis lost it), 0 for
// a store seen empty by a Store that had never read one (a new
// deployment: no mark can have been lost). A Store that finds the
// sentinel gone, or made again since it last read it, holds for
// LossHold from the new one's time, and sets its lost flag for the
// others. (A Store whose process started after the loss, and that reads
// the store before any Store that read the old sentinel, holds nobody
// until one of those does: docs/stickiness.md.)
func (r *Store) epoch(ctx context.Context, cmd *redis.StringCmd) (time.Time, error) {
	v, err := cmd.Result()
	if errors.Is(err, redis.Nil) {
		now := time.Now()
		lost := r.seen.Load() != 0
		made, err := r.client.SetNX(ctx, r.epochKey, encodeEpoch(now, lost), 0).Result()
		if err != nil {
			return time.Time{}, fmt.Errorf("redisstore: epoch: %w", err)
		}
		if made {
			r.seen.Store(now.UnixNano())
			if lost {
				return r.hold(now.Add(r.lossHold)), nil
			}
			return r.hold(time.Time{}), nil
		}
		// Another Store made it meanwhile: read theirs.
		if v, err = r.client.Get(ctx, r.epochKey).Result(); err != nil {
			return time.Time{}, fmt.Errorf("redisstore: epoch: %w", err)
		}
	} else if err != nil {
		return time.Time{}, fmt.Errorf("redisstore: get: %w", err)
	}
	at, lost, err := decodeEpoch(v)
	if err != nil {
		return time.Time{}, err
	}
	if prev := r.seen.Swap(at.UnixNano()); prev != 0 && prev != at.UnixNano() && !lost {
		// Made again since this Store last read it, by a Store that
		// could not tell a loss from a new deployment: say so in the
		// sentinel, for the Stores that never read the older one.
		lost = true
		if err := markLost.Run(ctx, r.client, []string{r.epochKey}, v, encodeEpoch(at, true)).Err(); err != nil && !errors.Is(err, redis.Nil) {
			return time.Time{}, fmt.Errorf("redisstore: epoch: %w", err)
		}
	}
	if lost {
		return r.hold(at.Add(r.lossHold)), nil
	}
	return r.hold(time.Time{}), nil
}

// hold returns the later of until and the end of the hold this Store
// found before (which the sentinel's value may not say), and keeps it.
func (r *Store) hold(until time.Time) time.Time {
	for {
		old := r.held.Load()
		if until.IsZero() || until.UnixNano() <= old {
			if old == 0 {
				return time.Time{}
			}
			return time.Unix(0, old)
		}
		if r.held.CompareAndSwap(old, until.UnixNano()) {
			return until
		}
	}
}

// markLost sets KEYS[1] to ARGV[2] if it still holds ARGV[1].
var markLost = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2])
end
return false
`)

func encodeEpoch(at time.Time, lost bool) string {
	s := strconv.FormatInt(at.UnixNano(), 10)
	if lost {
		return s + " 1"
	}
	return s + " 0"
}

// decodeEpoch parses "<Unix ns> <0|1>".
func decodeEpoch(v string) (time.Time, bool, error) {
	at, lost, ok := strings.Cut(v, " ")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || n <= 0 || (lost != "0" && lost != "1") {
		return time.Time{}, false, fmt.Errorf("redisstore: malformed sentinel %q: want <time> <0|1>", clip(v))
	}
	return time.Unix(0, n), lost == "1", nil
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
