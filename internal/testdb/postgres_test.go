package testdb_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rwsplit/rwsplit/internal/testdb"
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

func pgExec(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(t.Context(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func TestPostgres(t *testing.T) {
	pg := testdb.Postgres(t, 2)
	if len(pg.Replicas) != 2 {
		t.Fatalf("got %d replicas, want 2", len(pg.Replicas))
	}
	r1, r2 := pg.Replicas[0], pg.Replicas[1]
	if got := []string{pg.Primary.Name, r1.Name, r2.Name}; !slices.Equal(got, []string{"primary", "replica1", "replica2"}) {
		t.Fatalf("node names %v", got)
	}
	primary := pg.Primary.OpenDB(nil)
	defer primary.Close()
	table := tableName("pg_kv")
	pgExec(t, primary, "CREATE TABLE "+table+" (k text PRIMARY KEY)")

	t.Run("streaming", func(t *testing.T) {
		var names []string
		rows, err := primary.QueryContext(t.Context(), "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' ORDER BY 1")
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
		pgExec(t, primary, "INSERT INTO "+table+" VALUES ('a')")
		pg.WaitCaughtUp(t, 10*time.Second)
		for _, r := range pg.Replicas {
			if !pgHas(t, r, table, "a") {
				t.Errorf("%s: row a missing after WaitCaughtUp", r.Name)
			}
		}
		if l := r1.ReplayLSN(t); l < pg.Primary.CurrentLSN(t)-1<<20 || l == 0 {
			t.Errorf("replay LSN %v far from the primary's", l)
		}
	})

	t.Run("pause replay", func(t *testing.T) {
		r1.PauseReplay(t)
		pgExec(t, primary, "INSERT INTO "+table+" VALUES ('b')")
		r2.WaitCaughtUp(t, 10*time.Second)
		if !pgHas(t, r2, table, "b") {
			t.Fatal("replica2: row b missing after WaitCaughtUp")
		}
		if pgHas(t, r1, table, "b") {
			t.Fatal("replica1: row b visible while replay is paused")
		}
		r1.ResumeReplay(t)
		r1.WaitCaughtUp(t, 10*time.Second)
		if !pgHas(t, r1, table, "b") {
			t.Fatal("replica1: row b missing after resume")
		}
	})

	t.Run("apply delay", func(t *testing.T) {
		const delay = 300 * time.Millisecond
		r1.SetApplyDelay(t, delay)
		start := time.Now()
		pgExec(t, primary, "INSERT INTO "+table+" VALUES ('c')")
		eventually(t, 10*time.Second, "row c on replica1", func(context.Context) bool { return pgHas(t, r1, table, "c") })
		if took := time.Since(start); took < delay {
			t.Fatalf("row c visible after %v, want >= %v", took, delay)
		}
		r1.SetApplyDelay(t, 0)
		db := r1.OpenDB(nil)
		defer db.Close()
		var setting string
		if err := db.QueryRowContext(t.Context(), "SHOW recovery_min_apply_delay").Scan(&setting); err != nil || setting != "0" {
			t.Fatalf("recovery_min_apply_delay = %q (%v) after SetApplyDelay(0)", setting, err)
		}
	})

	t.Run("crash and start", func(t *testing.T) {
		r2.Crash(t)
		if r2.Running() {
			t.Fatal("replica2 still running after Crash")
		}
		_, err := pgx.Connect(t.Context(), r2.DSN())
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("connect to crashed replica2: %v, want connection refused", err)
		}
		pgExec(t, primary, "INSERT INTO "+table+" VALUES ('d')")
		r2.Start(t)
		r2.WaitCaughtUp(t, 10*time.Second)
		if !pgHas(t, r2, table, "d") {
			t.Fatal("replica2: row d missing after restart")
		}
	})

	t.Run("freeze and thaw", func(t *testing.T) {
		r1.Freeze(t)
		if !r1.Frozen() {
			t.Fatal("Frozen() = false after Freeze")
		}
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := func() error {
			conn, err := pgx.Connect(ctx, r1.DSN())
			if err != nil {
				return err
			}
			defer conn.Close(context.Background())
			var one int
			return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
		}()
		if err == nil || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("query on frozen replica1: err=%v ctx=%v, want a timeout", err, ctx.Err())
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("query on frozen replica1 took %v to give up", took)
		}
		r1.Thaw(t)
		if !pgHas(t, r1, table, "a") {
			t.Fatal("replica1: row a missing after thaw")
		}
	})

	t.Run("replica is read-only", func(t *testing.T) {
		db := r1.OpenDB(nil)
		defer db.Close()
		_, err := db.ExecContext(t.Context(), "INSERT INTO "+table+" VALUES ('x')")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
			t.Fatalf("write on replica1: %v, want SQLSTATE 25006 (read_only_sql_transaction)", err)
		}
	})

	t.Run("Postgres resets", func(t *testing.T) {
		r1.PauseReplay(t)
		r2.SetApplyDelay(t, time.Hour)
		pgExec(t, primary, "INSERT INTO "+table+" VALUES ('e')")
		r1.Freeze(t)
		again := testdb.Postgres(t, 2)
		if again != pg {
			t.Fatal("Postgres(t, 2) returned another cluster")
		}
		for _, r := range pg.Replicas {
			if r.Frozen() || !r.Running() {
				t.Fatalf("%s not healthy after reset", r.Name)
			}
			if !pgHas(t, r, table, "e") {
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
