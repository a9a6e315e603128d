// Package testdb starts real database servers for rwsplit's integration
// tests: PostgreSQL 15 streaming replication, MariaDB GTID replication and
// Redis, from the machine's own server binaries, in temporary folders, on free
// loopback ports. It also injects the faults that read/write splitting must
// survive (replay paused, apply delay, crashed or frozen replicas, network
// latency), and records which node executed each statement at the driver.
//
// Each cluster starts once per test binary, on first use, and Main stops it:
//
//	func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }
//
//	func TestStaleRead(t *testing.T) {
//		pg := testdb.Postgres(t, 2) // primary + 2 streaming replicas, healthy
//		pg.Replicas[0].PauseReplay(t)
//		// ... write on pg.Primary, read through the plugin, assert ...
//	}
//
// Clusters are shared by every test of the binary. Postgres and MariaDB
// restore them to health (Reset) before returning them, so a test may break a
// replica and leave it broken; but tests that inject faults must not run in
// parallel with tests using the same cluster.
//
// When a server's binaries are missing, Postgres, MariaDB and Redis skip the
// test with a one-line reason naming the Debian package to install, or fail it
// when RWSPLIT_REQUIRE_DB=1 (as in CI). Environment variables:
//
//	RWSPLIT_REQUIRE_DB=1       missing binaries fail the test instead of skipping it
//	RWSPLIT_PG_BINDIR=DIR      where postgres, initdb and pg_basebackup are
//	                           (default: newest /usr/lib/postgresql/*/bin, then PATH)
//	RWSPLIT_MARIADB_BINDIR=DIR where mariadbd and mariadb-install-db are (default: /usr/sbin, /usr/bin, PATH)
//	RWSPLIT_REDIS_BINDIR=DIR   where redis-server is (default: /usr/bin, PATH)
//	RWSPLIT_TESTDB_KEEP=1      keep the temporary folders (data and server logs) after teardown
//
// Servers run as the OS users postgres and mysql when the test runs as root
// (both refuse to run as root), and as the current user otherwise. If the
// test binary dies without tearing down (a panic, go test -timeout), the
// kernel kills the servers with it, and the next run removes the orphaned
// folders.
package testdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// ErrMissingBinaries is wrapped by the start functions' errors when a
// server's binaries are not installed; the wrapping message names the
// binaries, where they were looked for and the package to install.
var ErrMissingBinaries = errors.New("testdb: database server binaries missing")

const (
	envRequire = "RWSPLIT_REQUIRE_DB"
	envKeep    = "RWSPLIT_TESTDB_KEEP"

	// startTimeout bounds the start of one cluster, retries included.
	startTimeout = 2 * time.Minute
	// opTimeout bounds one fault-injection helper called with a testing.TB.
	opTimeout = 30 * time.Second
	// resetTimeout bounds Reset, catching up included.
	resetTimeout = time.Minute
)

// Main runs the tests and then stops every cluster, server and proxy this
// package started, and removes their folders. It returns the exit code for
// os.Exit. A SIGINT or SIGTERM during the run also tears everything down
// before the process exits.
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
			if err := Teardown(); err != nil {
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
	if err := Teardown(); err != nil {
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
			_ = Teardown()
			panic(r)
		}
	}()
	return m.Run()
}

// Teardown stops every cluster, server and proxy this package started
// (shared or not), kills any process left, removes the folders and frees the
// ports. Main calls it; call it yourself only without Main. It is safe to
// call more than once.
func Teardown() error {
	registry.Lock()
	list := registry.closers
	registry.closers = nil
	clear(registry.pg)
	clear(registry.maria)
	registry.Unlock()

	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, c := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Close(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	killAll()
	spawner.wg.Wait()
	releaseAllPorts()
	return errors.Join(errs...)
}

// closer is anything Teardown must stop.
type closer interface{ Close() error }

// registry holds the shared clusters and everything Teardown must stop.
var registry = struct {
	sync.Mutex
	pg      map[int]*entry[*PGCluster]
	maria   map[int]*entry[*MariaCluster]
	closers []closer
}{pg: map[int]*entry[*PGCluster]{}, maria: map[int]*entry[*MariaCluster]{}}

func track(c closer) {
	registry.Lock()
	registry.closers = append(registry.closers, c)
	registry.Unlock()
}

func untrack(c closer) {
	registry.Lock()
	defer registry.Unlock()
	for i, x := range registry.closers {
		if x == c {
			registry.closers = append(registry.closers[:i], registry.closers[i+1:]...)
			return
		}
	}
}

// entry is one shared cluster: ready is closed once c or err is set.
type entry[C any] struct {
	ready chan struct{}
	c     C
	err   error
}

// shared returns the cluster stored under key, starting it with start on
// first use; started reports whether this call started it. Concurrent first
// callers wait for one start; a failed start is remembered, so later callers
// fail at once with the same error.
func shared[C any](m map[int]*entry[C], key int, start func() (C, error)) (c C, started bool, err error) {
	registry.Lock()
	e, ok := m[key]
	if !ok {
		e = &entry[C]{ready: make(chan struct{})}
		m[key] = e
	}
	registry.Unlock()
	if ok {
		<-e.ready
		return e.c, false, e.err
	}
	e.c, e.err = start()
	close(e.ready)
	return e.c, true, e.err
}

// startLog collects the progress messages of one cluster's start, each
// stamped with the time since the start, to be logged by the test.
type startLog struct {
	t0    time.Time
	mu    sync.Mutex
	lines []string
}

func newStartLog() *startLog { return &startLog{t0: time.Now()} }

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

// skipOrFatal ends the test for a start error: a skip for missing binaries
// (unless RWSPLIT_REQUIRE_DB=1), a failure otherwise.
func skipOrFatal(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, ErrMissingBinaries) {
		reason := strings.ReplaceAll(err.Error(), "\n", " ")
		if os.Getenv(envRequire) == "1" {
			tb.Fatalf("%s (%s=1)", reason, envRequire)
		}
		tb.Skip(reason)
	}
	tb.Fatal(err)
}

// must fails the test on err.
func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// opCtx is the context of a helper called with a testing.TB. It does not
// derive from tb.Context(), which is cancelled before cleanups run: a test
// may well call Thaw or Start from t.Cleanup.
func opCtx(_ testing.TB, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// errStop ends a poll with its error, without retrying.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }
func (e errStop) Unwrap() error { return e.err }

// stopPolling wraps err so that poll returns it at once.
func stopPolling(err error) error { return errStop{err} }

// poll calls cond every interval until it reports true, returns an error
// wrapped by stopPolling, or ctx ends. Other errors are retried; the last
// one is reported if time runs out.
func poll(ctx context.Context, interval time.Duration, what string, cond func(context.Context) (bool, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		var stop errStop
		if errors.As(err, &stop) {
			return stop.err
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("testdb: %s: %w (last error: %v)", what, ctx.Err(), last)
			}
			return fmt.Errorf("testdb: %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// Temporary folders are os.TempDir()/rwsplit-KIND-*; each holds an owner file
// with the pid of the test process, so that a later run can remove the
// folders of a process that died without tearing down.
const (
	ownerFile = "testdb.owner"
	pidsFile  = "testdb.pids" // pids of the servers started there
)

var sweepOnce sync.Once

// makeClusterDir creates a temporary folder for one cluster or server, owned
// by u, after removing orphaned folders of dead test processes.
func makeClusterDir(kind string, u *osUser) (string, error) {
	sweepOnce.Do(sweepOrphans)
	dir, err := os.MkdirTemp("", "rwsplit-"+kind+"-*")
	if err != nil {
		return "", fmt.Errorf("testdb: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("testdb: %w", err)
	}
	if err := u.chown(dir); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// removeDir removes a cluster folder unless RWSPLIT_TESTDB_KEEP=1.
func removeDir(dir string) error {
	if os.Getenv(envKeep) == "1" {
		// Without its owner file, a later run's sweep leaves it alone too.
		os.Remove(filepath.Join(dir, ownerFile))
		fmt.Fprintf(os.Stderr, "testdb: kept %s\n", dir)
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("testdb: remove %s: %w", dir, err)
	}
	return nil
}

// sweepOrphans removes the folders of test processes that no longer exist.
func sweepOrphans() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), "rwsplit-*-*"))
	for _, dir := range matches {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not ours
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if !alive(pid) {
			removeOrphanShm(filepath.Join(dir, pidsFile))
			os.RemoveAll(dir)
		}
	}
}

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	st, err := readStat(pid)
	return err != nil || st.state != 'Z' // unreadable: assume alive
}

// findBins looks for the named executables: all in dir when the environment
// variable env is set; else all in the first of dirs that has them all; else
// each in the first of dirs that has it, then on PATH. pkg names the Debian
// package that provides them.
func findBins(env, pkg string, dirs []string, names ...string) (map[string]string, error) {
	if dir := os.Getenv(env); dir != "" {
		dirs = []string{dir}
	}
	for _, d := range dirs {
		out := make(map[string]string, len(names))
		for _, n := range names {
			if p := filepath.Join(d, n); isExecutable(p) {
				out[n] = p
			}
		}
		if len(out) == len(names) {
			return out, nil
		}
	}
	if dir := os.Getenv(env); dir != "" {
		return nil, fmt.Errorf("%w: %s not all in %s=%s; apt-get install %s", ErrMissingBinaries, strings.Join(names, ", "), env, dir, pkg)
	}
	out := make(map[string]string, len(names))
	var missing []string
	for _, n := range names {
		found := ""
		for _, d := range dirs {
			if p := filepath.Join(d, n); isExecutable(p) {
				found = p
				break
			}
		}
		if found == "" {
			found = lookPath(n)
		}
		if found == "" {
			missing = append(missing, n)
			continue
		}
		out[n] = found
	}
	if len(missing) > 0 {
		where := strings.Join(append(dirs, "PATH"), ", ")
		return nil, fmt.Errorf("%w: %s not found in %s; apt-get install %s (or set %s)", ErrMissingBinaries, strings.Join(missing, ", "), where, pkg, env)
	}
	return out, nil
}

func lookPath(name string) string {
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if d == "" {
			continue
		}
		if p := filepath.Join(d, name); isExecutable(p) {
			return p
		}
	}
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
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

// CheckPostgres reports whether the PostgreSQL server binaries are
// installed: nil, or an error wrapping ErrMissingBinaries that names the
// package to install. Code that cannot skip a single test with a
// testing.TB (runnable examples) uses it to decide up front.
func CheckPostgres() error {
	_, err := findPGBins()
	return err
}

// CheckMariaDB is CheckPostgres for the MariaDB server binaries.
func CheckMariaDB() error {
	_, err := findMariaBins()
	return err
}

// CheckRedis is CheckPostgres for redis-server.
func CheckRedis() error {
	_, err := findRedisBin()
	return err
}

// Required reports whether RWSPLIT_REQUIRE_DB=1: missing server binaries
// then fail tests instead of skipping them.
func Required() bool { return os.Getenv(envRequire) == "1" }
