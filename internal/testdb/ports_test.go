package testdb

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// TestPortTakenRetries makes each server's first port already taken, as
// when another test binary binds it between our check and the server's
// bind: the start must notice "Address already in use" and go on with
// another port.
func TestPortTakenRetries(t *testing.T) {
	tests := []struct {
		name  string
		start func(ctx context.Context, logf func(string, ...any)) (port int, close func() error, err error)
	}{
		{"postgres", func(ctx context.Context, logf func(string, ...any)) (int, func() error, error) {
			c, err := StartPostgres(ctx, 0, logf)
			if err != nil {
				return 0, nil, err
			}
			return c.Primary.Port, c.Close, c.Primary.ping(ctx)
		}},
		{"mariadb", func(ctx context.Context, logf func(string, ...any)) (int, func() error, error) {
			c, err := StartMariaDB(ctx, 0, logf)
			if err != nil {
				return 0, nil, err
			}
			db := c.Primary.OpenDB(nil)
			defer db.Close()
			return c.Primary.Port, c.Close, db.PingContext(ctx)
		}},
		{"redis", func(ctx context.Context, logf func(string, ...any)) (int, func() error, error) {
			s, err := StartRedis(ctx, logf)
			if err != nil {
				return 0, nil, err
			}
			return s.Port, s.Close, redisPing(ctx, "tcp", s.Addr())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			taken, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer taken.Close()
			takenPort := taken.Addr().(*net.TCPAddr).Port
			ports.Lock()
			ports.forced = []int{takenPort}
			ports.Unlock()
			defer func() {
				ports.Lock()
				ports.forced = nil
				ports.Unlock()
			}()

			var log []string
			logf := func(format string, args ...any) { log = append(log, format) }
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			port, closeFn, err := tt.start(ctx, logf)
			if closeFn != nil {
				defer closeFn()
			}
			if err != nil {
				t.Fatal(err)
			}
			if port == takenPort {
				t.Fatalf("server on the taken port %d", port)
			}
			if !strings.Contains(strings.Join(log, "\n"), "taken, retrying") {
				t.Errorf("no retry in the start-up log: %q", log)
			}
		})
	}
}
