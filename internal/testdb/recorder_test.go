package testdb_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
)

func openMySQL(dsn string) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// nodesOf returns the nodes that executed statements equal to sql.
func nodesOf(execs []testdb.Exec, sql string) []string {
	var out []string
	for _, e := range execs {
		if e.SQL == sql {
			out = append(out, e.Node)
		}
	}
	return out
}

func TestRecorderPostgres(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	var rec testdb.Recorder
	primary := pg.Primary.OpenDB(&rec)
	defer primary.Close()
	replica := pg.Replicas[1].OpenDB(&rec)
	defer replica.Close()
	ctx := t.Context()

	// A []int32 argument passes only if pgx's CheckNamedValue is reached
	// through the wrapper: database/sql's default converter refuses it.
	const onPrimary = "SELECT 'on-primary', cardinality($1::int[])"
	const onReplica = "SELECT 'on-replica', pg_is_in_recovery()"
	mark := rec.Mark()
	var s string
	var n int
	if err := primary.QueryRowContext(ctx, onPrimary, []int32{1, 2, 3}).Scan(&s, &n); err != nil || n != 3 {
		t.Fatalf("%s: %v (%d)", onPrimary, err, n)
	}
	var inRecovery bool
	if err := replica.QueryRowContext(ctx, onReplica).Scan(&s, &inRecovery); err != nil || !inRecovery {
		t.Fatalf("%s: %v (in recovery %v)", onReplica, err, inRecovery)
	}
	execs := rec.Since(mark)
	if got := nodesOf(execs, onPrimary); !slices.Equal(got, []string{"primary"}) {
		t.Errorf("%q ran on %v, want [primary]", onPrimary, got)
	}
	if got := nodesOf(execs, onReplica); !slices.Equal(got, []string{"replica2"}) {
		t.Errorf("%q ran on %v, want [replica2]", onReplica, got)
	}

	// A prepared statement is recorded once per execution; a transaction
	// with its boundaries.
	mark = rec.Mark()
	const prepared = "SELECT $1::int + 1"
	stmt, err := primary.PrepareContext(ctx, prepared)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := stmt.QueryRowContext(ctx, i).Scan(&n); err != nil || n != i+1 {
			t.Fatalf("prepared: %v (%d)", err, n)
		}
	}
	stmt.Close()
	tx, err := primary.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "SELECT 'in-tx'"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	want := []testdb.Exec{
		{Node: "primary", SQL: prepared},
		{Node: "primary", SQL: prepared},
		{Node: "primary", SQL: "BEGIN"},
		{Node: "primary", SQL: "SELECT 'in-tx'"},
		{Node: "primary", SQL: "COMMIT"},
	}
	if got := rec.Since(mark); !slices.Equal(got, want) {
		t.Errorf("recorded %v, want %v", got, want)
	}
	if got := rec.Find("on-replica"); len(got) != 1 || got[0].Node != "replica2" {
		t.Errorf("Find(on-replica) = %v", got)
	}
	rec.Reset()
	if got := rec.All(); len(got) != 0 {
		t.Errorf("after Reset: %v", got)
	}

	// sql.Conn.Raw reaches pgx's own connection through Unwrap.
	conn, err := primary.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		u, ok := dc.(interface{ Unwrap() driver.Conn })
		if !ok {
			return fmt.Errorf("%T has no Unwrap", dc)
		}
		if _, ok := u.Unwrap().(*stdlib.Conn); !ok {
			return fmt.Errorf("Unwrap() is a %T, want *stdlib.Conn", u.Unwrap())
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func TestRecorderMariaDB(t *testing.T) {
	my := dbtest.MariaDB(t, 2)
	var rec testdb.Recorder
	primary := my.Primary.OpenDB(&rec)
	defer primary.Close()
	replica := my.Replicas[0].OpenDB(&rec)
	defer replica.Close()
	ctx := t.Context()

	// With arguments and interpolateParams off, go-sql-driver's
	// QueryContext returns driver.ErrSkip and database/sql prepares: the
	// statement must still be recorded exactly once.
	const onPrimary = "SELECT 'on-primary', ? + 1"
	const onReplica = "SELECT 'on-replica', @@read_only"
	var s string
	var n int
	if err := primary.QueryRowContext(ctx, onPrimary, 41).Scan(&s, &n); err != nil || n != 42 {
		t.Fatalf("%s: %v (%d)", onPrimary, err, n)
	}
	if err := replica.QueryRowContext(ctx, onReplica).Scan(&s, &n); err != nil || n != 1 {
		t.Fatalf("%s: %v (%d)", onReplica, err, n)
	}
	if got := rec.Nodes("on-primary"); !slices.Equal(got, []string{"primary"}) {
		t.Errorf("on-primary ran on %v, want [primary]", got)
	}
	if got := rec.Nodes("on-replica"); !slices.Equal(got, []string{"replica1"}) {
		t.Errorf("on-replica ran on %v, want [replica1]", got)
	}
}

// TestRecorderFallbacks wraps a driver with none of the optional
// interfaces: database/sql must fall back to Prepare, and each statement
// must be recorded once.
func TestRecorderFallbacks(t *testing.T) {
	var rec testdb.Recorder
	db := sql.OpenDB(rec.Connector("bare", bareConnector{}))
	defer db.Close()
	ctx := t.Context()
	var got string
	if err := db.QueryRowContext(ctx, "query 1", "arg").Scan(&got); err != nil || got != "query 1" {
		t.Fatalf("query: %q, %v", got, err)
	}
	if _, err := db.ExecContext(ctx, "exec 1"); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}); err == nil {
		t.Fatal("read-only transaction on a driver without ConnBeginTx succeeded")
	}
	want := []testdb.Exec{{"bare", "query 1"}, {"bare", "exec 1"}, {"bare", "BEGIN"}, {"bare", "ROLLBACK"}}
	if got := rec.All(); !slices.Equal(got, want) {
		t.Fatalf("recorded %v, want %v", got, want)
	}
}

// bareConnector is a driver with only the mandatory methods: its queries
// return one row holding the query text.
type bareConnector struct{}

func (bareConnector) Connect(context.Context) (driver.Conn, error) { return bareConn{}, nil }
func (bareConnector) Driver() driver.Driver                        { return bareDriver{} }

type bareDriver struct{}

func (bareDriver) Open(string) (driver.Conn, error) { return bareConn{}, nil }

type bareConn struct{}

func (bareConn) Prepare(q string) (driver.Stmt, error) { return bareStmt(q), nil }
func (bareConn) Close() error                          { return nil }
func (bareConn) Begin() (driver.Tx, error)             { return bareTx{}, nil }

type bareTx struct{}

func (bareTx) Commit() error   { return nil }
func (bareTx) Rollback() error { return nil }

type bareStmt string

func (bareStmt) Close() error  { return nil }
func (bareStmt) NumInput() int { return -1 }
func (bareStmt) Exec([]driver.Value) (driver.Result, error) {
	return driver.RowsAffected(1), nil
}
func (s bareStmt) Query([]driver.Value) (driver.Rows, error) { return &bareRows{v: string(s)}, nil }

type bareRows struct {
	v    string
	done bool
}

func (*bareRows) Columns() []string { return []string{"v"} }
func (*bareRows) Close() error      { return nil }
func (r *bareRows) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	dest[0] = r.v
	return nil
}

// TestRecorderObserve: Observe sees each statement with the context it ran
// with (a transaction's COMMIT with the context it began with) and its
// error; with Discard, nothing is kept.
func TestRecorderObserve(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	type key struct{}
	type seen struct {
		exec testdb.Exec
		tag  any
		err  bool
	}
	var (
		mu  sync.Mutex
		got []seen
	)
	rec := testdb.Recorder{Discard: true, Observe: func(ctx context.Context, e testdb.Exec, err error) {
		mu.Lock()
		got = append(got, seen{e, ctx.Value(key{}), err != nil})
		mu.Unlock()
	}}
	db := pg.Primary.OpenDB(&rec)
	defer db.Close()
	ctx := context.WithValue(t.Context(), key{}, "tagged")
	if _, err := db.ExecContext(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "SELECT nope"); err == nil {
		t.Fatal("SELECT nope succeeded")
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(context.Background(), "SELECT 2"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	want := []seen{
		{testdb.Exec{Node: "primary", SQL: "SELECT 1"}, "tagged", false},
		{testdb.Exec{Node: "primary", SQL: "SELECT nope"}, "tagged", true},
		{testdb.Exec{Node: "primary", SQL: "BEGIN"}, "tagged", false},
		{testdb.Exec{Node: "primary", SQL: "SELECT 2"}, nil, false},
		{testdb.Exec{Node: "primary", SQL: "COMMIT"}, "tagged", false},
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("observed %v, want %v", got, want)
	}
	if all := rec.All(); len(all) != 0 {
		t.Errorf("Discard kept %v", all)
	}
}
