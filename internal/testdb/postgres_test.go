package testdb_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
)

// pgHas reports whether table has a row with key k on the node, over a
// fresh connection.
func pgHas(t *testing.T, n *testdb.PGNode, table, k string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.DSN())
	if err != nil {
		t.Fatalf("connect %s: %v", n.Name, err)
	}
	defer conn.Close(context.Background())
	var found bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+table+" WHERE k = $1)", k).Scan(&found); err != nil {
		t.Fatalf("read %s on %s: %v", k, n.Name, err)
	}
	return found
}

// pgEngine is how the checks shared with TestMariaDB work on PostgreSQL.
var pgEngine = engine[*testdb.PGNode]{
	keyType:  "text",
	nodeName: func(n *testdb.PGNode) string { return n.Name },
	has:      pgHas,
	dial: func(ctx context.Context, n *testdb.PGNode) error {
		conn, err := pgx.Connect(ctx, n.DSN())
		if err == nil {
			conn.Close(context.Background())
		}
		return err
	},
	selectOne: func(ctx context.Context, n *testdb.PGNode) error {
		conn, err := pgx.Connect(ctx, n.DSN())
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		var one int
		return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
	},
	readOnly: func(err error) bool {
		var pgErr *pgconn.PgError
		return errors.As(err, &pgErr) && pgErr.Code == "25006"
	},
	wantReadOnly: "SQLSTATE 25006 (read_only_sql_transaction)",
}

func TestPostgres(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	kv := newKVTable(t, pgEngine, pg.Primary, pg.Replicas, "pg_kv")
	r1, r2 := pg.Replicas[0], pg.Replicas[1]
	if got := []string{pg.Primary.Name, r1.Name, r2.Name}; !slices.Equal(got, []string{"primary", "replica1", "replica2"}) {
		t.Fatalf("node names %v", got)
	}

	t.Run("streaming", func(t *testing.T) {
		var names []string
		rows, err := kv.primary.QueryContext(t.Context(), "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' ORDER BY 1")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			names = append(names, s)
		}
		if !slices.Equal(names, []string{"replica1", "replica2"}) {
			t.Fatalf("streaming replicas %v, want [replica1 replica2]", names)
		}
	})

	t.Run("replicates", func(t *testing.T) {
		kv.checkReplicates(t, pg.WaitCaughtUp, pg.Replicas)
		l, err := r1.ReplayLSN(t.Context())
		dbtest.Must(t, err)
		cur, err := pg.Primary.CurrentLSN(t.Context())
		dbtest.Must(t, err)
		if l < cur-1<<20 || l == 0 {
			t.Errorf("replay LSN %v far from the primary's", l)
		}
	})

	t.Run("pause replay", func(t *testing.T) {
		kv.checkHoldBack(t, r1, r2, r1.PauseReplay, r1.ResumeReplay, "replay is paused", "resume")
	})

	t.Run("apply delay", func(t *testing.T) {
		const delay = 300 * time.Millisecond
		dbtest.Must(t, r1.SetApplyDelay(t.Context(), delay))
		start := time.Now()
		kv.insert(t, "c")
		eventually(t, 10*time.Second, "row c on replica1", func(context.Context) bool { return pgHas(t, r1, kv.table, "c") })
		if took := time.Since(start); took < delay {
			t.Fatalf("row c visible after %v, want >= %v", took, delay)
		}
		dbtest.Must(t, r1.SetApplyDelay(t.Context(), 0))
		db := r1.OpenDB(nil)
		defer db.Close()
		var setting string
		if err := db.QueryRowContext(t.Context(), "SHOW recovery_min_apply_delay").Scan(&setting); err != nil || setting != "0" {
			t.Fatalf("recovery_min_apply_delay = %q (%v) after SetApplyDelay(0)", setting, err)
		}
	})

	t.Run("crash and start", func(t *testing.T) { kv.checkCrashAndStart(t, r2) })

	t.Run("freeze and thaw", func(t *testing.T) { kv.checkFreezeAndThaw(t, r1) })

	t.Run("replica is read-only", func(t *testing.T) { kv.checkReadOnly(t, r1) })

	t.Run("Postgres resets", func(t *testing.T) {
		dbtest.Must(t, r1.PauseReplay(t.Context()))
		dbtest.Must(t, r2.SetApplyDelay(t.Context(), time.Hour))
		kv.insert(t, "e")
		dbtest.Must(t, r1.Freeze(t.Context()))
		again := dbtest.Postgres(t, 2)
		if again != pg {
			t.Fatal("Postgres(t, 2) returned another cluster")
		}
		for _, r := range pg.Replicas {
			if r.Frozen() || !r.Running() {
				t.Fatalf("%s not healthy after reset", r.Name)
			}
			if !pgHas(t, r, kv.table, "e") {
				t.Errorf("%s: row e missing right after reset", r.Name)
			}
		}
	})
}

func TestPGLSN(t *testing.T) {
	tests := []struct {
		give string
		want testdb.LSN
	}{
		{give: "0/0", want: 0},
		{give: "0/3000060", want: 0x3000060},
		{give: "16/B374D848", want: 0x16_B374D848},
	}
	for _, tt := range tests {
		got, err := testdb.ParseLSN(tt.give)
		if err != nil || got != tt.want || got.String() != tt.give {
			t.Errorf("ParseLSN(%q) = %v (%v), %v; want %v", tt.give, uint64(got), got, err, uint64(tt.want))
		}
	}
	for _, bad := range []string{"", "0", "x/1", "1/x", "1/100000000"} {
		if _, err := testdb.ParseLSN(bad); err == nil {
			t.Errorf("ParseLSN(%q) succeeded", bad)
		}
	}
}
