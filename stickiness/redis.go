package stickiness

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisPrefix is the default RedisOptions.Prefix.
const DefaultRedisPrefix = "rwsplit:sticky:"

// RedisOptions configures a Redis store. Every zero value means the
// documented default.
type RedisOptions struct {
	// Prefix is prepended to each user key to make the Redis key.
	// Zero means DefaultRedisPrefix ("rwsplit:sticky:").
	Prefix string
}

// Redis is a Store in Redis, shared by every application server. Each
// record is one string key, "<Until in Unix nanoseconds> <Position>", that
// Redis expires at Until (PX). Get is one GET; Set is one script call
// (EVALSHA) when records only grow, which they do when the user's writes
// reach the primary one after the other, and two when they arrive out of
// order.
//
// Redis works with any redis.UniversalClient: a client, a cluster client
// (each record is one key) or a failover client.
type Redis struct {
	client redis.UniversalClient
	prefix string
}

// NewRedis returns a Redis store that uses client. The caller owns client:
// Redis.Close does not close it.
func NewRedis(client redis.UniversalClient, o RedisOptions) *Redis {
	if o.Prefix == "" {
		o.Prefix = DefaultRedisPrefix
	}
	return &Redis{client: client, prefix: o.Prefix}
}

var errNoClient = errors.New("stickiness: nil redis client")

// errContention is returned when Set lost its compare-and-set too often to
// other Sets of the same key.
var errContention = errors.New("stickiness: redis set: too many concurrent updates of the key")

// Get returns the key's record with one GET, and false when it has none
// or it has expired.
func (r *Redis) Get(ctx context.Context, key string) (Record, bool, error) {
	if r.client == nil {
		return Record{}, false, errNoClient
	}
	v, err := r.client.Get(ctx, r.prefix+key).Result()
	if errors.Is(err, redis.Nil) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("stickiness: redis get: %w", err)
	}
	rec, err := decodeValue(v)
	if err != nil {
		return Record{}, false, err
	}
	if !rec.Active(time.Now()) { // PX is in milliseconds: it may lag Until
		return Record{}, false, nil
	}
	return rec, true, nil
}

// setScript stores a record in KEYS[1] for ARGV[3] milliseconds, and
// returns {stored (1 or 0), the value it found (or nil)}.
//
// With ARGV[4] empty, it stores ARGV[1] unless the key holds a record
// whose Until is at least ARGV[2]: a late, older write does not replace a
// newer one. Untils are compared as decimal strings, since Lua numbers are
// doubles and lose nanoseconds. With ARGV[4] set, it is a compare-and-set:
// it stores ARGV[1] only if the key still holds ARGV[4]. Set uses it to
// store a merged record when the positions arrived out of order.
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

// Set merges rec into the key's active record (Record.Merge), and has
// Redis expire the result at its Until.
func (r *Redis) Set(ctx context.Context, key string, rec Record) error {
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
		res, err := setScript.Run(ctx, r.client, k,
			val, strconv.FormatInt(want.Until.UnixNano(), 10), int64(px), expect).Slice()
		if err != nil {
			return fmt.Errorf("stickiness: redis set: %w", err)
		}
		if len(res) != 2 {
			return fmt.Errorf("stickiness: redis set: unexpected script reply %v", res)
		}
		stored, _ := res[0].(int64)
		cur, _ := res[1].(string) // nil when the key was absent
		have := cur
		if stored == 1 {
			have = val
		}
		// The record stored must cover the one found, whichever was
		// stored: the script only compared Untils.
		if cur != "" {
			if old, err := decodeValue(cur); err == nil && old.Active(now) {
				want = want.Merge(old)
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
func (r *Redis) Close() error { return nil }

func encodeValue(rec Record) string {
	return strconv.FormatInt(rec.Until.UnixNano(), 10) + " " + rec.Position.String()
}

func decodeValue(v string) (Record, error) {
	until, pos, ok := strings.Cut(v, " ")
	if !ok {
		return Record{}, fmt.Errorf("stickiness: malformed redis value %q: want <until> <position>", clip(v))
	}
	rec, err := parseRecord(until, pos)
	if err != nil {
		return Record{}, fmt.Errorf("stickiness: malformed redis value %q: %w", clip(v), err)
	}
	return rec, nil
}
