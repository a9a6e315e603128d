package testdb_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rwsplit/rwsplit/internal/testdb"
)

// myHas reports whether table has a row with key k on the node, over a
// fresh connection.
func myHas(t *testing.T, n *testdb.MariaNode, table, k string) bool {
	t.Helper()
	db := n.OpenDB(nil)
	defer db.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var found bool
	if err := db.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM "+table+" WHERE k = ?)", k).Scan(&found); err != nil {
		t.Fatalf("read %s on %s: %v", k, n.Name, err)
	}
	return found
}

func myExec(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(t.Context(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func TestMariaDB(t *testing.T) {
	my := testdb.MariaDB(t, 2)
	if len(my.Replicas) != 2 {
		t.Fatalf("got %d replicas, want 2", len(my.Replicas))
	}
	r1, r2 := my.Replicas[0], my.Replicas[1]
	primary := my.Primary.OpenDB(nil)
	defer primary.Close()
	table := tableName("my_kv")
	myExec(t, primary, "CREATE TABLE "+table+" (k VARCHAR(20) PRIMARY KEY)")

	t.Run("server ids", func(t *testing.T) {
		for i, n := range []*testdb.MariaNode{my.Primary, r1, r2} {
			db := n.OpenDB(nil)
			var id int
			var ro bool
			err := db.QueryRowContext(t.Context(), "SELECT @@server_id, @@read_only").Scan(&id, &ro)
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			if id != i+1 || id != n.ServerID || ro != (i > 0) {
				t.Errorf("%s: server_id=%d read_only=%v", n.Name, id, ro)
			}
		}
	})

	t.Run("replicates", func(t *testing.T) {
		myExec(t, primary, "INSERT INTO "+table+" VALUES ('a')")
		my.WaitCaughtUp(t, 10*time.Second)
		for _, r := range my.Replicas {
			if !myHas(t, r, table, "a") {
				t.Errorf("%s: row a missing after WaitCaughtUp", r.Name)
			}
		}
	})

	t.Run("stop SQL thread", func(t *testing.T) {
		r1.StopSQLThread(t)
		if st := r1.SlaveStatus(t); st["Slave_SQL_Running"] != "No" || st["Slave_IO_Running"] != "Yes" {
			t.Fatalf("after StopSQLThread: SQL=%s IO=%s", st["Slave_SQL_Running"], st["Slave_IO_Running"])
		}
		myExec(t, primary, "INSERT INTO "+table+" VALUES ('b')")
		r2.WaitCaughtUp(t, 10*time.Second)
		if !myHas(t, r2, table, "b") {
			t.Fatal("replica2: row b missing after WaitCaughtUp")
		}
		if myHas(t, r1, table, "b") {
			t.Fatal("replica1: row b visible while its SQL thread is stopped")
		}
		r1.StartSQLThread(t)
		r1.WaitCaughtUp(t, 10*time.Second)
		if !myHas(t, r1, table, "b") {
			t.Fatal("replica1: row b missing after StartSQLThread")
		}
	})

	t.Run("replica is read-only", func(t *testing.T) {
		db := r1.OpenDB(nil)
		defer db.Close()
		_, err := db.ExecContext(t.Context(), "INSERT INTO "+table+" VALUES ('x')")
		var myErr *mysql.MySQLError
		if !errors.As(err, &myErr) || myErr.Number != 1290 {
			t.Fatalf("write on replica1: %v, want error 1290 (read-only)", err)
		}
	})

	t.Run("delay", func(t *testing.T) {
		// MASTER_DELAY counts from the event's timestamp, which has whole
		// seconds: a 2 s delay shows as 1 to 2 s.
		r1.SetDelay(t, 2*time.Second)
		if st := r1.SlaveStatus(t); st["SQL_Delay"] != "2" {
			t.Fatalf("SQL_Delay = %q, want 2", st["SQL_Delay"])
		}
		start := time.Now()
		myExec(t, primary, "INSERT INTO "+table+" VALUES ('c')")
		eventually(t, 10*time.Second, "row c on replica1", func(context.Context) bool { return myHas(t, r1, table, "c") })
		if took := time.Since(start); took < time.Second {
			t.Fatalf("row c visible after %v, want >= 1s", took)
		}
		r1.SetDelay(t, 0)
		if st := r1.SlaveStatus(t); st["SQL_Delay"] != "0" {
			t.Fatalf("SQL_Delay = %q after reset, want 0", st["SQL_Delay"])
		}
	})

	t.Run("crash and start", func(t *testing.T) {
		r2.Crash(t)
		if r2.Running() {
			t.Fatal("replica2 still running after Crash")
		}
		db := r2.OpenDB(nil)
		err := db.PingContext(t.Context())
		db.Close()
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("ping crashed replica2: %v, want connection refused", err)
		}
		myExec(t, primary, "INSERT INTO "+table+" VALUES ('d')")
		r2.Start(t)
		r2.WaitCaughtUp(t, 10*time.Second)
		if !myHas(t, r2, table, "d") {
			t.Fatal("replica2: row d missing after restart")
		}
	})

	t.Run("freeze and thaw", func(t *testing.T) {
		r1.Freeze(t)
		db := r1.OpenDB(nil)
		defer db.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		var one int
		err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
		if err == nil || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("query on frozen replica1: err=%v ctx=%v, want a timeout", err, ctx.Err())
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("query on frozen replica1 took %v to give up", took)
		}
		r1.Thaw(t)
		if !myHas(t, r1, table, "a") {
			t.Fatal("replica1: row a missing after thaw")
		}
	})

	t.Run("MariaDB resets", func(t *testing.T) {
		r1.StopSQLThread(t)
		myExec(t, primary, "INSERT INTO "+table+" VALUES ('e')")
		r2.Crash(t)
		again := testdb.MariaDB(t, 2)
		if again != my {
			t.Fatal("MariaDB(t, 2) returned another cluster")
		}
		for _, r := range my.Replicas {
			st := r.SlaveStatus(t)
			if !r.Running() || st["Slave_SQL_Running"] != "Yes" || st["Slave_IO_Running"] != "Yes" {
				t.Fatalf("%s not healthy after reset: %v", r.Name, st)
			}
			if !myHas(t, r, table, "e") {
				t.Errorf("%s: row e missing right after reset", r.Name)
			}
		}
	})

	t.Run("DSN", func(t *testing.T) {
		cfg, err := mysql.ParseDSN(r1.DSN())
		if err != nil {
			t.Fatal(err)
		}
		if cfg.User != testdb.MariaUser || cfg.Addr != r1.Addr() || cfg.DBName != testdb.MariaDatabase || !cfg.ParseTime {
			t.Fatalf("DSN %q", r1.DSN())
		}
		if !slices.Contains([]string{"replica1", "replica2"}, r1.Name) {
			t.Fatalf("name %q", r1.Name)
		}
	})
}
