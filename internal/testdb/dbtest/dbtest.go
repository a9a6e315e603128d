// Package dbtest is testdb for tests: it shares one database cluster per
// test binary, skips tests whose server binaries are missing, and tears
// everything down after the tests. Package testdb itself controls the
// servers, through methods that take a context and return an error, and
// does not import testing, so a program (the demo) can use it.
//
//	func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }
//
//	func TestStaleRead(t *testing.T) {
//		pg := dbtest.Postgres(t, 2) // primary + 2 streaming replicas, healthy
//		dbtest.Must(t, pg.Replicas[0].PauseReplay(t.Context()))
//		// ... write on pg.Primary, read through the plugin, assert ...
//	}
//
// Clusters are shared by every test of the binary. Postgres and MariaDB
// restore them to health (Reset) before returning them, so a test may break a
// replica and leave it broken; but tests that inject faults must not run in
// parallel with tests using the same cluster. A fault Reset cannot undo (a
// promoted replica) needs a cluster of the test's own: PrivatePostgres,
// PrivateMariaDB.
//
// When a server's binaries are missing, Postgres, MariaDB, Redis and
// PgBouncer skip the test with a one-line reason naming the Debian package
// to install, or fail it when RWSPLIT_REQUIRE_DB=1 (as in CI). testdb documents the other
// environment variables.
package dbtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rwsplit/rwsplit/internal/testdb"
)

const (
	envRequire = "RWSPLIT_REQUIRE_DB"

	// startTimeout bounds the start of one cluster or server, retries
	// included.
	startTimeout = 2 * time.Minute
	// resetTimeout bounds a shared cluster's Reset, catching up included.
	resetTimeout = time.Minute
)

// Main runs the tests and then stops every cluster, server and proxy that
// testdb started, and removes their folders (testdb.Teardown). It returns
// the exit code for os.Exit. A SIGINT or SIGTERM during the run also tears
// everything down before the process exits.
func Main(m *testing.M) int {
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case sig := <-sigc:
			fmt.Fprintf(os.Stderr, "testdb: %v: stopping database servers\n", sig)
			if err := teardown(); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
			os.Exit(1)
		case <-done:
		}
	}()
	defer func() {
		signal.Stop(sigc)
		close(done)
		wg.Wait()
	}()
	code := runTests(m)
	if err := teardown(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// runTests runs m, tearing down even if m.Run panics in this goroutine.
func runTests(m *testing.M) int {
	defer func() {
		if r := recover(); r != nil {
			_ = teardown()
			panic(r)
		}
	}()
	return m.Run()
}

// teardown forgets the shared clusters and stops everything testdb started.
func teardown() error {
	shared.Lock()
	clear(shared.pg)
	clear(shared.maria)
	shared.Unlock()
	return testdb.Teardown()
}

// shared holds the package-wide clusters, by number of replicas.
var shared = struct {
	sync.Mutex
	pg    map[int]*entry[*testdb.PGCluster]
	maria map[int]*entry[*testdb.MariaCluster]
}{pg: map[int]*entry[*testdb.PGCluster]{}, maria: map[int]*entry[*testdb.MariaCluster]{}}

// entry is one shared cluster: ready is closed once c or err is set.
type entry[C any] struct {
	ready chan struct{}
	c     C
	err   error
}

// Postgres returns the package-wide PostgreSQL cluster with the given number
// of replicas, starting it on the first call for that number. Later calls
// return the same cluster after Reset, so each test starts from a healthy,
// caught-up cluster. Main stops it; nothing is registered with tb.Cleanup.
//
// Without the server binaries, the test is skipped with a one-line reason
// naming the package to install, or fails if RWSPLIT_REQUIRE_DB=1.
func Postgres(tb testing.TB, replicas int) *testdb.PGCluster {
	tb.Helper()
	return sharedCluster(tb, shared.pg, "postgres", replicas, testdb.CheckPostgres, testdb.StartPostgres)
}

// MariaDB is Postgres for the package-wide MariaDB cluster with the given
// number of GTID replicas.
func MariaDB(tb testing.TB, replicas int) *testdb.MariaCluster {
	tb.Helper()
	return sharedCluster(tb, shared.maria, "mariadb", replicas, testdb.CheckMariaDB, testdb.StartMariaDB)
}

// PrivatePostgres starts a PostgreSQL cluster with the given number of
// replicas for the test alone, and closes it when the test ends. It is for
// faults that Reset cannot undo, such as PGNode.Promote; it costs a start
// of its own (about 2.3s for 2 replicas here).
func PrivatePostgres(tb testing.TB, replicas int) *testdb.PGCluster {
	tb.Helper()
	return privateCluster(tb, "postgres", replicas, testdb.CheckPostgres, testdb.StartPostgres)
}

// PrivateMariaDB is PrivatePostgres for MariaDB (MariaNode.Promote).
func PrivateMariaDB(tb testing.TB, replicas int) *testdb.MariaCluster {
	tb.Helper()
	return privateCluster(tb, "mariadb", replicas, testdb.CheckMariaDB, testdb.StartMariaDB)
}

func privateCluster[C interface{ Close() error }](tb testing.TB, kind string, replicas int,
	check func() error, start func(context.Context, int, func(string, ...any)) (C, error)) C {
	tb.Helper()
	var none C
	if err := check(); err != nil {
		skipOrFatal(tb, err)
		return none
	}
	var log startLog
	log.t0 = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	c, err := start(ctx, replicas, log.logf)
	cancel()
	tb.Logf("dbtest: private %s primary + %d replicas: start-up (%v)\n%s", kind, replicas, time.Since(log.t0).Round(time.Millisecond), &log)
	if err != nil {
		tb.Fatal(err)
		return none
	}
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Error(err)
		}
	})
	return c
}

// sharedCluster is Postgres and MariaDB: the cluster of kind in m with the
// given number of replicas, started on first use, reset on later ones.
// Concurrent first callers wait for one start; a failed start is
// remembered, so later callers fail at once with the same error. Missing
// binaries are checked before, and never remembered.
func sharedCluster[C interface{ Reset(context.Context) error }](tb testing.TB, m map[int]*entry[C], kind string, replicas int,
	check func() error, start func(context.Context, int, func(string, ...any)) (C, error)) C {
	tb.Helper()
	var none C
	if err := check(); err != nil {
		skipOrFatal(tb, err)
		return none
	}
	shared.Lock()
	e, ok := m[replicas]
	if !ok {
		e = &entry[C]{ready: make(chan struct{})}
		m[replicas] = e
	}
	shared.Unlock()
	if !ok {
		var log startLog
		log.t0 = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		e.c, e.err = start(ctx, replicas, log.logf)
		cancel()
		close(e.ready)
		tb.Logf("dbtest: %s primary + %d replicas: start-up (%v)\n%s", kind, replicas, time.Since(log.t0).Round(time.Millisecond), &log)
		if e.err != nil {
			tb.Fatal(e.err)
		}
		return e.c
	}
	<-e.ready
	if e.err != nil {
		tb.Fatal(e.err)
		return none
	}
	Within(tb, resetTimeout, e.c.Reset)
	return e.c
}

// startLog collects the progress messages of one cluster's start, each
// stamped with the time since the start, to be logged by the test.
type startLog struct {
	t0    time.Time
	mu    sync.Mutex
	lines []string
}

func (l *startLog) logf(format string, args ...any) {
	line := fmt.Sprintf("%7.3fs ", time.Since(l.t0).Seconds()) + fmt.Sprintf(format, args...)
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
}

func (l *startLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return "\t" + strings.Join(l.lines, "\n\t")
}

// Redis starts a fresh redis-server for the test and stops it when the test
// ends: each call has its own server, so no test sees another's keys.
//
// Without the binary, the test is skipped with a one-line reason naming the
// package to install, or fails if RWSPLIT_REQUIRE_DB=1.
func Redis(tb testing.TB) *testdb.RedisServer {
	tb.Helper()
	if err := testdb.CheckRedis(); err != nil {
		skipOrFatal(tb, err)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	s, err := testdb.StartRedis(ctx, nil)
	if err != nil {
		tb.Fatal(err)
		return nil
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// PgBouncer starts a PgBouncer in transaction pooling mode in front of
// targets, as one database (testdb.StartBouncer), for the test, and stops
// it when the test ends. The targets keep running.
//
// Without the pgbouncer binary, the test is skipped with a one-line reason
// naming the package to install, or fails if RWSPLIT_REQUIRE_DB=1.
func PgBouncer(tb testing.TB, targets ...*testdb.PGNode) *testdb.Bouncer {
	tb.Helper()
	if err := testdb.CheckBouncer(); err != nil {
		skipOrFatal(tb, err)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	b, err := testdb.StartBouncer(ctx, targets, nil)
	if err != nil {
		tb.Fatal(err)
		return nil
	}
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Error(err)
		}
	})
	return b
}

// Proxy starts a TCP proxy to targetAddr ("127.0.0.1:5432") for the test
// and closes it when the test ends.
func Proxy(tb testing.TB, targetAddr string) *testdb.Proxy {
	tb.Helper()
	p, err := testdb.StartProxy(targetAddr)
	if err != nil {
		tb.Fatal(err)
		return nil
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

// Required reports whether RWSPLIT_REQUIRE_DB=1: missing server binaries
// then fail tests instead of skipping them.
func Required() bool { return os.Getenv(envRequire) == "1" }

// skipOrFatal ends the test for a start error: a skip for missing binaries
// (unless RWSPLIT_REQUIRE_DB=1), a failure otherwise.
func skipOrFatal(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, testdb.ErrMissingBinaries) {
		reason := strings.ReplaceAll(err.Error(), "\n", " ")
		if Required() {
			tb.Fatalf("%s (%s=1)", reason, envRequire)
		}
		tb.Skip(reason)
	}
	tb.Fatal(err)
}

// Must fails the test on err, the error of a server-control call:
//
//	dbtest.Must(t, pg.Replicas[0].PauseReplay(ctx))
func Must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// Within calls f with a context that ends after d, and fails the test on
// f's error: it bounds a wait, as in
//
//	dbtest.Within(t, 10*time.Second, pg.WaitCaughtUp)
//
// The context does not derive from tb.Context(), which ends before cleanups
// run, so Within works in t.Cleanup too.
func Within(tb testing.TB, d time.Duration, f func(context.Context) error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	Must(tb, f(ctx))
}

// LeakIgnores returns goleak options that ignore the goroutines testdb keeps
// while its servers run: one per server process (it reaps the process) and
// one that starts server processes. Pass them to goleak.VerifyNone in a test
// that runs while shared clusters are up; after Main, none is left.
func LeakIgnores() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/rwsplit/rwsplit/internal/testdb.startProcess.func1"),
		goleak.IgnoreAnyFunction("github.com/rwsplit/rwsplit/internal/testdb.spawn.func1"),
	}
}
