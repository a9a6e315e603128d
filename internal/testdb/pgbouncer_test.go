package testdb_test

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
)

// simple is the DSN setting that works through PgBouncer 1.18 in
// transaction mode: no named prepared statements.
const simple = "default_query_exec_mode=simple_protocol"

func TestBouncer(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	r1, r2 := pg.Replicas[0], pg.Replicas[1]

	t.Run("one server", func(t *testing.T) {
		b := dbtest.PgBouncer(t, r1)
		if b.Name != "pgbouncer(replica1)" {
			t.Errorf("Name %q", b.Name)
		}
		db := b.OpenDB(nil, simple)
		defer db.Close()
		for range 5 {
			var name string
			var port int
			dbtest.Must(t, db.QueryRowContext(t.Context(), "SELECT current_setting('cluster_name'), inet_server_port()").Scan(&name, &port))
			if name != "replica1" || port != r1.Port {
				t.Fatalf("served by %s on port %d, want replica1 on %d", name, port, r1.Port)
			}
		}
	})

	t.Run("several servers as one database", func(t *testing.T) {
		b := dbtest.PgBouncer(t, r1, r2)
		db := b.OpenDB(nil, simple)
		defer db.Close()
		conn, err := db.Conn(t.Context())
		dbtest.Must(t, err)
		defer conn.Close()
		// min_pool_size opens a server connection per host in the
		// background, once the pool exists (after the first login).
		var seen []string
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		for len(seen) < 2 {
			var name string
			if err := conn.QueryRowContext(ctx, "SELECT current_setting('cluster_name')").Scan(&name); err != nil {
				t.Fatalf("after %v: %v", seen, err)
			}
			if !slices.Contains(seen, name) {
				seen = append(seen, name)
			}
			time.Sleep(5 * time.Millisecond) // a poll, bounded by ctx: the pool fills in the background
		}
		slices.Sort(seen)
		if !slices.Equal(seen, []string{"replica1", "replica2"}) {
			t.Fatalf("one client connection reached %v", seen)
		}
		// Once both server connections exist, transactions alternate.
		var names []string
		for range 6 {
			var name string
			dbtest.Must(t, conn.QueryRowContext(t.Context(), "SELECT current_setting('cluster_name')").Scan(&name))
			names = append(names, name)
		}
		for i := 1; i < len(names); i++ {
			if names[i] == names[i-1] {
				t.Errorf("successive transactions on one client connection: %v, want alternating servers", names)
				break
			}
		}
		n, err := b.ServerConns(t.Context())
		dbtest.Must(t, err)
		t.Logf("servers seen in turn: %v; server connections: %d", names, n)
	})

	t.Run("close", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		b, err := testdb.StartBouncer(ctx, []*testdb.PGNode{r1}, nil)
		dbtest.Must(t, err)
		addr := b.Addr()
		dbtest.Must(t, b.Close())
		if b.Running() {
			t.Error("running after Close")
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Close", addr)
		}
		dbtest.Must(t, b.Close())
	})
}
