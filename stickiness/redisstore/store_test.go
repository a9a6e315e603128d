package redisstore

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/stickiness"
	"github.com/rwsplit/rwsplit/stickiness/internal/storetest"
)

// newRedisStore starts a redis-server for the test and returns it, a
// client to it, and a Redis store with options o.
func newRedisStore(tb testing.TB, o Options) (*testdb.RedisServer, *redis.Client, *Store) {
	tb.Helper()
	srv := dbtest.Redis(tb)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	tb.Cleanup(func() { client.Close() })
	s := New(client, o)
	tb.Cleanup(func() { s.Close() })
	return srv, client, s
}

func TestRedisGetSet(t *testing.T) {
	_, _, s := newRedisStore(t, Options{})
	ctx := context.Background()
	until := time.Now().Add(time.Minute)
	tests := []struct {
		name string
		give string // position
	}{
		{name: "unknown position", give: ""},
		{name: "postgres", give: "16/B374D848"},
		{name: "mariadb", give: "0-1-100,1-2-7"},
		{name: "mariadb empty", give: "mariadb:"},
		{name: "mysql", give: storetest.UUIDA + ":1-100:102-110"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "user-" + strconv.Itoa(i)
			rec := stickiness.Record{Until: until, Position: pos(t, tt.give)}
			if err := s.Set(ctx, key, rec); err != nil {
				t.Fatalf("Set: %v", err)
			}
			got, ok, err := s.Get(ctx, key)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			wantRecord(t, got, ok, rec)
			if got.Position.Kind() != rec.Position.Kind() {
				t.Errorf("kind %v, want %v", got.Position.Kind(), rec.Position.Kind())
			}
		})
	}
	if _, ok, err := s.Get(ctx, "nobody"); ok || err != nil {
		t.Errorf("Get(nobody) = %v, %v; want false, nil", ok, err)
	}
}

func TestRedisMerge(t *testing.T) {
	_, _, s := newRedisStore(t, Options{})
	ctx := context.Background()
	base := time.Now()
	cases := append(storetest.MergeCases[:len(storetest.MergeCases):len(storetest.MergeCases)], storetest.PendingCases...)
	for i, tt := range cases {
		t.Run(tt.Name, func(t *testing.T) {
			key := "merge-" + strconv.Itoa(i)
			if tt.Old.Until != 0 {
				if err := s.Set(ctx, key, at(t, tt.Old, base)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Set(ctx, key, at(t, tt.Give, base)); err != nil {
				t.Fatal(err)
			}
			rec, ok, err := s.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			wantRecord(t, rec, ok, at(t, tt.Want, base))
		})
	}
}

func TestRedisTTL(t *testing.T) {
	_, client, s := newRedisStore(t, Options{})
	ctx := context.Background()
	rec := stickiness.Record{Until: time.Now().Add(300 * time.Millisecond), Position: lagcheck.LSNPosition(1)}
	if err := s.Set(ctx, "u", rec); err != nil {
		t.Fatal(err)
	}
	ttl, err := client.PTTL(ctx, DefaultPrefix+"u").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > 300*time.Millisecond {
		t.Errorf("PTTL = %v, want in (0, 300ms]", ttl)
	}
	// Gets do not extend the record.
	for range 3 {
		if _, ok, err := s.Get(ctx, "u"); !ok || err != nil {
			t.Fatalf("Get = %v, %v; want true, nil", ok, err)
		}
	}
	time.Sleep(time.Until(rec.Until) + 50*time.Millisecond)
	if _, ok, err := s.Get(ctx, "u"); ok || err != nil {
		t.Errorf("Get after Until = %v, %v; want false, nil", ok, err)
	}
	if n, err := client.Exists(ctx, DefaultPrefix+"u").Result(); n != 0 || err != nil {
		t.Errorf("EXISTS after Until = %d, %v; want 0: Redis did not expire the key", n, err)
	}
	// An expired record is not stored at all.
	if err := s.Set(ctx, "u", stickiness.Record{Until: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if n, err := client.Exists(ctx, DefaultPrefix+"u").Result(); n != 0 || err != nil {
		t.Errorf("EXISTS after an expired Set = %d, %v; want 0", n, err)
	}
}

func TestRedisPrefix(t *testing.T) {
	ctx := context.Background()
	rec := stickiness.Record{Until: time.Unix(4_000_000_000, 5), Position: lagcheck.LSNPosition(0x16B374D848)}
	tests := []struct {
		name string
		give string
		want string // the Redis key of user u1
	}{
		{name: "default", give: "", want: "rwsplit:sticky:u1"},
		{name: "custom", give: "app1:", want: "app1:u1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, client, s := newRedisStore(t, Options{Prefix: tt.give})
			if err := s.Set(ctx, "u1", rec); err != nil {
				t.Fatal(err)
			}
			v, err := client.Get(ctx, tt.want).Result()
			if err != nil {
				t.Fatalf("GET %s: %v", tt.want, err)
			}
			if want := "4000000000000000005 16/B374D848"; v != want {
				t.Errorf("value %q, want %q", v, want)
			}
		})
	}
}

func TestRedisMalformedValue(t *testing.T) {
	_, client, s := newRedisStore(t, Options{})
	ctx := context.Background()
	if err := client.Set(ctx, DefaultPrefix+"u", "garbage", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Get(ctx, "u"); ok || err == nil {
		t.Errorf("Get of a malformed value = %v, %v; want false and an error", ok, err)
	}
	rec := stickiness.Record{Until: time.Now().Add(time.Minute), Position: lagcheck.LSNPosition(3)}
	if err := s.Set(ctx, "u", rec); err != nil { // replaces it
		t.Fatal(err)
	}
	got, ok, err := s.Get(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	wantRecord(t, got, ok, rec)
}

// TestRedisConcurrentSet has writers set increasing positions for one key,
// out of order: the key must end with the newest.
func TestRedisConcurrentSet(t *testing.T) {
	_, _, s := newRedisStore(t, Options{})
	ctx := context.Background()
	const writers, writes = 8, 50
	base := time.Now().Add(time.Minute)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range writes {
				n := uint64(i*writers + w + 1)
				// Untils and positions disagree on the order half the time.
				until := base.Add(time.Duration(n ^ 1))
				if err := s.Set(ctx, "u", stickiness.Record{Until: until, Position: lagcheck.LSNPosition(n)}); err != nil {
					t.Errorf("Set: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	const last = writers * writes
	got, ok, err := s.Get(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	wantRecord(t, got, ok, stickiness.Record{Until: base.Add(last ^ 1), Position: lagcheck.LSNPosition(last)})
}

// TestRedisOutage stops redis-server: calls fail fast, within their
// context's deadline, and work again once it is back.
func TestRedisOutage(t *testing.T) {
	srv, _, s := newRedisStore(t, Options{})
	ctx := context.Background()
	rec := stickiness.Record{Until: time.Now().Add(time.Minute), Position: lagcheck.LSNPosition(9)}
	if err := s.Set(ctx, "u", rec); err != nil {
		t.Fatal(err)
	}

	dbtest.Must(t, srv.Stop(t.Context()))
	const timeout = 200 * time.Millisecond
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{name: "Get", call: func(ctx context.Context) error { _, _, err := s.Get(ctx, "u"); return err }},
		{name: "Set", call: func(ctx context.Context) error { return s.Set(ctx, "u", rec) }},
	}
	for _, c := range calls {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		start := time.Now()
		err := c.call(ctx)
		elapsed := time.Since(start)
		cancel()
		if err == nil {
			t.Errorf("%s with redis-server stopped: no error", c.name)
		}
		if elapsed > timeout+500*time.Millisecond {
			t.Errorf("%s took %v, want at most the %v timeout", c.name, elapsed, timeout)
		}
		t.Logf("%s: %v after %v", c.name, err, elapsed)
	}

	dbtest.Must(t, srv.Start(t.Context())) // every key is lost
	if err := s.Set(ctx, "u", rec); err != nil {
		t.Fatalf("Set after restart: %v", err)
	}
	got, ok, err := s.Get(ctx, "u")
	if err != nil {
		t.Fatalf("Get after restart: %v", err)
	}
	wantRecord(t, got, ok, rec)
}

func TestRedisNilClient(t *testing.T) {
	var typed *redis.Client // nil, in a non-nil interface
	for name, client := range map[string]redis.UniversalClient{"nil": nil, "nil *redis.Client": typed} {
		s := New(client, Options{})
		ctx := context.Background()
		if _, _, err := s.Get(ctx, "u"); err == nil {
			t.Errorf("%s: Get: no error", name)
		}
		if err := s.Set(ctx, "u", stickiness.Record{Until: time.Now().Add(time.Minute)}); err == nil {
			t.Errorf("%s: Set: no error", name)
		}
	}
}

func TestRedisCloseKeepsClient(t *testing.T) {
	verifyNoLeaks(t)
	_, client, s := newRedisStore(t, Options{})
	ctx := context.Background()
	for range 2 {
		if err := s.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	}
	if err := client.Ping(ctx).Err(); err != nil {
		t.Errorf("client after Close: %v", err)
	}
}

// TestRedisLosesItsKeys: after Redis loses its keys (a restart without
// persistence, or FLUSHALL), every user counts as sticky with an unknown
// position for LossHold, in the Store that wrote the lost marks, in another
// that had read the store before, and in one made after the loss. A new
// store (a new deployment) holds nobody; a mark written after the loss is
// returned as it is; the hold ends on time; a negative LossHold turns the
// check off.
func TestRedisLosesItsKeys(t *testing.T) {
	for _, how := range []string{"restart", "flushall"} {
		t.Run(how, func(t *testing.T) {
			const hold = 2 * time.Second
			srv, client, writer := newRedisStore(t, Options{LossHold: hold})
			other := New(client, Options{LossHold: hold})
			off := New(client, Options{LossHold: -1})
			ctx := context.Background()
			for _, s := range []*Store{writer, other, off} {
				if _, ok, err := s.Get(ctx, "nobody"); ok || err != nil {
					t.Fatalf("a new store: Get = %v, %v; want no record (a new deployment holds nobody)", ok, err)
				}
			}
			mark := stickiness.Record{Until: time.Now().Add(time.Minute), Position: pos(t, "0/100")}
			dbtest.Must(t, writer.Set(ctx, "ada", mark))

			lost := time.Now()
			switch how {
			case "restart":
				dbtest.Must(t, srv.Stop(ctx))
				dbtest.Must(t, srv.Start(ctx))
			case "flushall":
				dbtest.Must(t, client.FlushAll(ctx).Err())
			}
			// A process started after the loss, that reads the store
			// first, cannot tell it from a new deployment; it holds
			// once a Store that read the old sentinel has read the new.
			late := New(client, Options{LossHold: hold})
			if _, ok, err := late.Get(ctx, "nobody"); ok || err != nil {
				t.Fatalf("late, first after the loss: Get = %v, %v; want no record", ok, err)
			}
			for _, tt := range []struct {
				name string
				s    *Store
			}{{"writer", writer}, {"other", other}, {"late", late}} {
				name, s := tt.name, tt.s
				for _, key := range []string{"ada", "nobody"} {
					rec, ok, err := s.Get(ctx, key)
					switch {
					case err != nil:
						t.Fatalf("%s: Get(%q) after the loss: %v", name, key, err)
					case !ok || !rec.Position.IsZero() || rec.Until.Before(lost.Add(hold)) || rec.Until.After(time.Now().Add(hold)):
						t.Errorf("%s: Get(%q) after the loss = %v %q (ok=%v), want an unknown position until about %v", name, key, rec.Until, rec.Position, ok, lost.Add(hold))
					}
				}
			}
			if _, ok, err := off.Get(ctx, "ada"); ok || err != nil {
				t.Errorf("LossHold < 0: Get after the loss = %v, %v; want no record", ok, err)
			}
			again := stickiness.Record{Until: time.Now().Add(time.Minute), Position: pos(t, "0/200")}
			dbtest.Must(t, writer.Set(ctx, "ada", again))
			rec, ok, err := other.Get(ctx, "ada")
			dbtest.Must(t, err)
			wantRecord(t, rec, ok, again)

			// The hold ends: wait for it (the event), then nobody is held.
			end, _, _ := late.Get(ctx, "nobody")
			time.Sleep(time.Until(end.Until) + 10*time.Millisecond)
			for name, s := range map[string]*Store{"writer": writer, "other": other, "late": late} {
				if rec, ok, err := s.Get(ctx, "nobody"); ok || err != nil {
					t.Errorf("%s: Get after the hold = %v (ok=%v), %v; want no record", name, rec.Until, ok, err)
				}
			}
		})
	}
}
