package testdb_test

import (
	"context"
	"database/sql"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
)

// The checks that TestPostgres and TestMariaDB share: both clusters are a
// primary with two replicas, with the same fault helpers, tested on a table
// of keys.

// dbNode is what the shared checks need of a *testdb.PGNode or
// *testdb.MariaNode.
type dbNode interface {
	OpenDB(*testdb.Recorder) *sql.DB
	WaitCaughtUp(context.Context) error
	Crash(context.Context) error
	Start(context.Context) error
	Running() bool
	Freeze(context.Context) error
	Frozen() bool
	Thaw(context.Context) error
}

// engine is how the shared checks do what each database does its own way,
// on its nodes of type N.
type engine[N dbNode] struct {
	keyType  string         // SQL type of the key column k
	nodeName func(N) string // the node's Name
	// has reports whether table has a row with key k on the node, over a
	// fresh connection.
	has func(t *testing.T, n N, table, k string) bool
	// dial connects to the node, and selectOne runs SELECT 1 on it over a
	// fresh connection, within ctx.
	dial      func(ctx context.Context, n N) error
	selectOne func(ctx context.Context, n N) error
	// readOnly reports whether err is a replica's refusal of a write, the
	// error that wantReadOnly describes.
	readOnly     func(err error) bool
	wantReadOnly string
}

// kvTable is a table of keys made on a cluster's primary for one test.
type kvTable[N dbNode] struct {
	engine[N]
	primary *sql.DB // on the cluster's primary, closed when the test ends
	table   string
}

// newKVTable checks that the cluster has two replicas and makes a table
// named prefix_N on its primary.
func newKVTable[N dbNode](t *testing.T, e engine[N], primary N, replicas []N, prefix string) kvTable[N] {
	t.Helper()
	if len(replicas) != 2 {
		t.Fatalf("got %d replicas, want 2", len(replicas))
	}
	kv := kvTable[N]{engine: e, primary: primary.OpenDB(nil), table: tableName(prefix)}
	t.Cleanup(func() { kv.primary.Close() })
	mustExec(t, kv.primary, "CREATE TABLE "+kv.table+" (k "+e.keyType+" PRIMARY KEY)")
	return kv
}

func mustExec(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(t.Context(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// insert writes key k on the primary.
func (kv kvTable[N]) insert(t *testing.T, k string) {
	t.Helper()
	mustExec(t, kv.primary, "INSERT INTO "+kv.table+" VALUES ('"+k+"')")
}

// checkReplicates writes key a and checks that every replica has it after
// waitAll, the cluster's WaitCaughtUp.
func (kv kvTable[N]) checkReplicates(t *testing.T, waitAll func(context.Context) error, replicas []N) {
	t.Helper()
	kv.insert(t, "a")
	dbtest.Within(t, 10*time.Second, waitAll)
	for _, r := range replicas {
		if !kv.has(t, r, kv.table, "a") {
			t.Errorf("%s: row a missing after WaitCaughtUp", kv.nodeName(r))
		}
	}
}

// checkHoldBack checks that while hold keeps r1 from applying what it
// receives (described by held), key b written on the primary reaches r2
// but not r1, and that r1 has it once release (described by released)
// lets it go on.
func (kv kvTable[N]) checkHoldBack(t *testing.T, r1, r2 N, hold, release func(context.Context) error, held, released string) {
	t.Helper()
	dbtest.Must(t, hold(t.Context()))
	kv.insert(t, "b")
	dbtest.Within(t, 10*time.Second, r2.WaitCaughtUp)
	if !kv.has(t, r2, kv.table, "b") {
		t.Fatalf("%s: row b missing after WaitCaughtUp", kv.nodeName(r2))
	}
	if kv.has(t, r1, kv.table, "b") {
		t.Fatalf("%s: row b visible while %s", kv.nodeName(r1), held)
	}
	dbtest.Must(t, release(t.Context()))
	dbtest.Within(t, 10*time.Second, r1.WaitCaughtUp)
	if !kv.has(t, r1, kv.table, "b") {
		t.Fatalf("%s: row b missing after %s", kv.nodeName(r1), released)
	}
}

// checkCrashAndStart checks that r refuses connections after Crash, and
// that after Start it catches up with key d, written meanwhile.
func (kv kvTable[N]) checkCrashAndStart(t *testing.T, r N) {
	t.Helper()
	name := kv.nodeName(r)
	dbtest.Must(t, r.Crash(t.Context()))
	if r.Running() {
		t.Fatalf("%s still running after Crash", name)
	}
	if err := kv.dial(t.Context(), r); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connect to crashed %s: %v, want connection refused", name, err)
	}
	kv.insert(t, "d")
	dbtest.Must(t, r.Start(t.Context()))
	dbtest.Within(t, 10*time.Second, r.WaitCaughtUp)
	if !kv.has(t, r, kv.table, "d") {
		t.Fatalf("%s: row d missing after restart", name)
	}
}

// checkFreezeAndThaw checks that a query on r times out, instead of
// failing, after Freeze, and that r answers again after Thaw.
func (kv kvTable[N]) checkFreezeAndThaw(t *testing.T, r N) {
	t.Helper()
	name := kv.nodeName(r)
	dbtest.Must(t, r.Freeze(t.Context()))
	if !r.Frozen() {
		t.Fatal("Frozen() = false after Freeze")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := kv.selectOne(ctx, r)
	if err == nil || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("query on frozen %s: err=%v ctx=%v, want a timeout", name, err, ctx.Err())
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("query on frozen %s took %v to give up", name, took)
	}
	dbtest.Must(t, r.Thaw(t.Context()))
	if !kv.has(t, r, kv.table, "a") {
		t.Fatalf("%s: row a missing after thaw", name)
	}
}

// checkReadOnly checks that r refuses a write with the engine's error.
func (kv kvTable[N]) checkReadOnly(t *testing.T, r N) {
	t.Helper()
	db := r.OpenDB(nil)
	defer db.Close()
	_, err := db.ExecContext(t.Context(), "INSERT INTO "+kv.table+" VALUES ('x')")
	if !kv.readOnly(err) {
		t.Fatalf("write on %s: %v, want %s", kv.nodeName(r), err, kv.wantReadOnly)
	}
}
