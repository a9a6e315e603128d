package testdb_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
)

// TestMain shows that Main's teardown leaves nothing behind: no goroutine
// (proxies, process waiters, the spawner), no server process, no folder.
func TestMain(m *testing.M) {
	code := dbtest.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "testdb: goroutines left after Main: %v\n", err)
			code = 1
		}
		if kids := children(os.Getpid()); len(kids) > 0 {
			fmt.Fprintf(os.Stderr, "testdb: processes left after Main: %v\n", kids)
			code = 1
		}
		if dirs := ownedDirs(os.Getpid()); len(dirs) > 0 {
			fmt.Fprintf(os.Stderr, "testdb: folders left after Main: %v\n", dirs)
			code = 1
		}
	}
	os.Exit(code)
}

// children lists the processes whose parent is pid, from /proc/*/stat.
func children(pid int) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) && f[0] != "Z" {
			out = append(out, e.Name()+" "+s[:i+1])
		}
	}
	return out
}

// ownedDirs lists the temporary folders whose owner file names pid.
func ownedDirs(pid int) []string {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), "rwsplit-*-*"))
	var out []string
	for _, d := range matches {
		if b, err := os.ReadFile(filepath.Join(d, "testdb.owner")); err == nil && string(b) == strconv.Itoa(pid) {
			out = append(out, d)
		}
	}
	return out
}

// eventually polls cond every 5 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func(context.Context) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond(ctx) {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not true after %v", what, timeout)
		case <-tick.C:
		}
	}
}

// tableName returns a table name unique to the test run.
func tableName(prefix string) string {
	return fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano()%1e9)
}

// TestLeakIgnores shows that, with clusters and a restarted server up, a
// per-test goleak check passes with LeakIgnores and would fail without.
func TestLeakIgnores(t *testing.T) {
	before := goleak.IgnoreCurrent()
	s := dbtest.Redis(t) // spawns a server: a reaper goroutine, maybe the spawner
	dbtest.Must(t, s.Stop(t.Context()))
	dbtest.Must(t, s.Start(t.Context()))
	if err := goleak.Find(append(dbtest.LeakIgnores(), before)...); err != nil {
		t.Errorf("with LeakIgnores: %v", err)
	}
	if err := goleak.Find(before); err == nil {
		t.Error("without LeakIgnores: no goroutine found, the test proves nothing")
	}
}
