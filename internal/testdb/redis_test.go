package testdb_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
)

// quietLogger drops go-redis's log lines: its pool reports the failed dials
// that TestRedis causes on purpose.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestRedis(t *testing.T) {
	redis.SetLogger(quietLogger{})
	s := dbtest.Redis(t)
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	ctx := t.Context()

	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	dbtest.Must(t, s.Stop(ctx))
	if s.Running() {
		t.Fatal("Running() after Stop")
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded on a stopped server")
	}
	dbtest.Must(t, s.Start(ctx))
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
	if err := c.Get(ctx, "k").Err(); err != redis.Nil {
		t.Fatalf("GET k after restart: %v, want redis.Nil (no persistence)", err)
	}
	if other := dbtest.Redis(t); other.Port == s.Port {
		t.Fatal("two Redis servers on one port")
	}
}
