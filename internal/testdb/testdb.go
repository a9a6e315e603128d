// Package testdb starts and controls real database servers for rwsplit's
// integration tests and demo: PostgreSQL 15 streaming replication, MariaDB
// GTID replication and Redis, from the machine's own server binaries, in
// temporary folders, on free loopback ports. It injects the faults that
// read/write splitting must survive (replay paused, apply delay, crashed or
// frozen replicas, network latency), and records which node executed each
// statement at the driver.
//
// Every server-control method takes a context and returns an error; the
// package does not import testing. Tests use it through package dbtest,
// which shares one cluster per test binary and skips tests whose server
// binaries are missing:
//
//	func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }
//
//	func TestStaleRead(t *testing.T) {
//		pg := dbtest.Postgres(t, 2) // primary + 2 streaming replicas, healthy
//		dbtest.Must(t, pg.Replicas[0].PauseReplay(t.Context()))
//		// ... write on pg.Primary, read through the plugin, assert ...
//	}
//
// A program starts servers with StartPostgres, StartMariaDB, StartRedis,
// StartBouncer (PgBouncer) and StartProxy, and calls Teardown before it
// exits. Environment variables:
//
//	RWSPLIT_PG_BINDIR=DIR      where postgres, initdb and pg_basebackup are
//	                           (default: newest /usr/lib/postgresql/*/bin, then PATH)
//	RWSPLIT_MARIADB_BINDIR=DIR where mariadbd and mariadb-install-db are (default: /usr/sbin, /usr/bin, PATH)
//	RWSPLIT_REDIS_BINDIR=DIR   where redis-server is (default: /usr/bin, PATH)
//	RWSPLIT_PGBOUNCER_BINDIR=DIR where pgbouncer is (default: /usr/sbin, /usr/bin, PATH)
//	RWSPLIT_TESTDB_KEEP=1      keep the temporary folders (data and server logs) after teardown
//
// Servers run as the OS users postgres and mysql when the process runs as
// root (both refuse to run as root), and as the current user otherwise. If
// the process dies without tearing down (a panic, go test -timeout), the
// kernel kills the servers with it, and the next run removes the orphaned
// folders.
package testdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrMissingBinaries is wrapped by the start functions' errors when a
// server's binaries are not installed; the wrapping message names the
// binaries, where they were looked for and the package to install.
var ErrMissingBinaries = errors.New("testdb: database server binaries missing")

const envKeep = "RWSPLIT_TESTDB_KEEP"

// Teardown stops every cluster, server and proxy this package started,
// kills any process left, removes the folders and frees the ports.
// dbtest.Main calls it after the tests; a program calls it before it exits.
// It is safe to call more than once.
func Teardown() error {
	registry.Lock()
	list := registry.closers
	registry.closers = nil
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

// registry holds everything Teardown must stop.
var registry struct {
	sync.Mutex
	closers []closer
}

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

// CheckPostgres reports whether the PostgreSQL server binaries are
// installed: nil, or an error wrapping ErrMissingBinaries that names the
// package to install. Code that cannot skip a single test (runnable
// examples) uses it to decide up front.
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
