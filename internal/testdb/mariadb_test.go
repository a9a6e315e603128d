package testdb_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
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

// mariaEngine is how the checks shared with TestPostgres work on MariaDB.
var mariaEngine = engine[*testdb.MariaNode]{
	keyType:  "VARCHAR(20)",
	nodeName: func(n *testdb.MariaNode) string { return n.Name },
	has:      myHas,
	dial: func(ctx context.Context, n *testdb.MariaNode) error {
		db := n.OpenDB(nil)
		defer db.Close()
		return db.PingContext(ctx)
	},
	selectOne: func(ctx context.Context, n *testdb.MariaNode) error {
		db := n.OpenDB(nil)
		defer db.Close()
		var one int
		return db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
	},
	readOnly: func(err error) bool {
		var myErr *mysql.MySQLError
		return errors.As(err, &myErr) && myErr.Number == 1290
	},
	wantReadOnly: "error 1290 (read-only)",
}

func TestMariaDB(t *testing.T) {
	my := dbtest.MariaDB(t, 2)
	kv := newKVTable(t, mariaEngine, my.Primary, my.Replicas, "my_kv")
	r1, r2 := my.Replicas[0], my.Replicas[1]

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

	t.Run("replicates", func(t *testing.T) { kv.checkReplicates(t, my.WaitCaughtUp, my.Replicas) })

	t.Run("stop SQL thread", func(t *testing.T) {
		stop := func(ctx context.Context) error {
			dbtest.Must(t, r1.StopSQLThread(ctx))
			if st := slaveStatus(t, r1); st["Slave_SQL_Running"] != "No" || st["Slave_IO_Running"] != "Yes" {
				t.Fatalf("after StopSQLThread: SQL=%s IO=%s", st["Slave_SQL_Running"], st["Slave_IO_Running"])
			}
			return nil
		}
		kv.checkHoldBack(t, r1, r2, stop, r1.StartSQLThread, "its SQL thread is stopped", "StartSQLThread")
	})

	t.Run("replica is read-only", func(t *testing.T) { kv.checkReadOnly(t, r1) })

	t.Run("delay", func(t *testing.T) {
		// MASTER_DELAY counts from the event's timestamp, which has whole
		// seconds: a 2 s delay shows as 1 to 2 s.
		dbtest.Must(t, r1.SetDelay(t.Context(), 2*time.Second))
		if st := slaveStatus(t, r1); st["SQL_Delay"] != "2" {
			t.Fatalf("SQL_Delay = %q, want 2", st["SQL_Delay"])
		}
		start := time.Now()
		kv.insert(t, "c")
		eventually(t, 10*time.Second, "row c on replica1", func(context.Context) bool { return myHas(t, r1, kv.table, "c") })
		if took := time.Since(start); took < time.Second {
			t.Fatalf("row c visible after %v, want >= 1s", took)
		}
		dbtest.Must(t, r1.SetDelay(t.Context(), 0))
		if st := slaveStatus(t, r1); st["SQL_Delay"] != "0" {
			t.Fatalf("SQL_Delay = %q after reset, want 0", st["SQL_Delay"])
		}
	})

	t.Run("crash and start", func(t *testing.T) { kv.checkCrashAndStart(t, r2) })

	t.Run("freeze and thaw", func(t *testing.T) { kv.checkFreezeAndThaw(t, r1) })

	t.Run("MariaDB resets", func(t *testing.T) {
		dbtest.Must(t, r1.StopSQLThread(t.Context()))
		kv.insert(t, "e")
		dbtest.Must(t, r2.Crash(t.Context()))
		again := dbtest.MariaDB(t, 2)
		if again != my {
			t.Fatal("MariaDB(t, 2) returned another cluster")
		}
		for _, r := range my.Replicas {
			st := slaveStatus(t, r)
			if !r.Running() || st["Slave_SQL_Running"] != "Yes" || st["Slave_IO_Running"] != "Yes" {
				t.Fatalf("%s not healthy after reset: %v", r.Name, st)
			}
			if !myHas(t, r, kv.table, "e") {
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

// slaveStatus returns r's SHOW SLAVE STATUS, failing the test on error.
func slaveStatus(t *testing.T, r *testdb.MariaNode) map[string]string {
	t.Helper()
	st, err := r.SlaveStatus(t.Context())
	dbtest.Must(t, err)
	return st
}
