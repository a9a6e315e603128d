package testdb

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const orphanChildEnv = "RWSPLIT_TESTDB_ORPHAN_CHILD"

// TestHelperOrphanChild is not a test: TestOrphansAfterPanic and
// TestSignalTearsDown run it in a child process, where it starts servers
// (PostgreSQL, Redis, and PgBouncer if installed) and then panics (so Main never tears down) or waits for a signal.
func TestHelperOrphanChild(t *testing.T) {
	mode := os.Getenv(orphanChildEnv)
	if mode == "" {
		return
	}
	ctx := context.Background()
	pg, err := StartPostgres(ctx, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := StartRedis(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("dir %s\ndir %s\n", pg.dir, rs.dir)
	if CheckBouncer() == nil {
		b, err := StartBouncer(ctx, []*PGNode{pg.Primary}, nil)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("dir %s\n", b.dir)
	}
	procs.Lock()
	for p := range procs.m {
		fmt.Printf("pid %d\n", p.pid())
	}
	procs.Unlock()
	if mode == "wait" {
		fmt.Println("ready")
		time.Sleep(time.Minute) // until the parent's SIGINT
		t.Fatal("no signal came")
	}
	panic("simulated test panic")
}

// requireBinaries skips the test unless PostgreSQL and Redis are
// installed, or fails it if RWSPLIT_REQUIRE_DB=1: dbtest's rule, which this
// in-package test cannot import (dbtest imports testdb).
func requireBinaries(t *testing.T) {
	t.Helper()
	for _, check := range []func() error{CheckPostgres, CheckRedis} {
		if err := check(); err != nil {
			if os.Getenv("RWSPLIT_REQUIRE_DB") == "1" {
				t.Fatal(err)
			}
			t.Skip(strings.ReplaceAll(err.Error(), "\n", " "))
		}
	}
}

// childServers parses the child's "dir" and "pid" lines.
func childServers(t *testing.T, out []byte) (dirs []string, pids []int) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "dir "); ok {
			dirs = append(dirs, d)
		}
		if p, ok := strings.CutPrefix(sc.Text(), "pid "); ok {
			pid, err := strconv.Atoi(p)
			if err != nil {
				t.Fatal(err)
			}
			pids = append(pids, pid)
		}
	}
	// PostgreSQL and Redis, and PgBouncer where it is installed.
	if len(dirs) < 2 || len(pids) != len(dirs) {
		t.Fatalf("child reported dirs %v, pids %v:\n%s", dirs, pids, out)
	}
	return dirs, pids
}

// TestSignalTearsDown shows that a SIGINT to a test process stops its
// servers and removes their folders before it exits.
func TestSignalTearsDown(t *testing.T) {
	requireBinaries(t)
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperOrphanChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), orphanChildEnv+"=wait")
	var out bytes.Buffer
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if sc.Text() == "ready" {
			break
		}
	}
	dirs, pids := childServers(t, out.Bytes())
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(pr)
	out.Write(rest)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("child after SIGINT: %v, want exit status 1\n%s", err, out.Bytes())
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("server %d still running after the child exited", pid)
		}
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("folder %s still there after the child exited (%v)", d, err)
		}
	}
	if segs := shmOf(t, pids); len(segs) != 0 {
		t.Errorf("segments %v of the child's servers left", segs)
	}
}

// TestOrphansAfterPanic shows that servers die with a test process that
// panics, and that the next run removes their folders and shared memory.
func TestOrphansAfterPanic(t *testing.T) {
	requireBinaries(t)
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperOrphanChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), orphanChildEnv+"=panic")
	out, err := cmd.CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("simulated test panic")) {
		t.Fatalf("child: %v\n%s", err, out)
	}
	dirs, pids := childServers(t, out)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err = poll(ctx, 10*time.Millisecond, "servers of the dead child to exit", func(context.Context) (bool, error) {
		for _, pid := range pids {
			if alive(pid) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, ownerFile)); err != nil {
			t.Fatalf("child's folder %s is gone before the sweep: %v", d, err)
		}
	}

	// The SIGKILLed postmaster leaves its System V interlock segment.
	if segs := shmOf(t, pids); len(segs) != 1 {
		t.Fatalf("before the sweep: segments %v of the child's servers, want the postmaster's one", segs)
	}
	sweepOrphans()
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("folder %s still there after the sweep (%v)", d, err)
		}
	}
	// A backend of the dead postmaster may still be exiting; the segment
	// goes when it detaches.
	err = poll(ctx, 10*time.Millisecond, "segments of the child's servers to go", func(context.Context) (bool, error) {
		segs := shmOf(t, pids)
		return len(segs) == 0, fmt.Errorf("left: %v", segs)
	})
	if err != nil {
		t.Error(err)
	}
}

// shmOf returns the System V shared memory segments created by pids.
func shmOf(t *testing.T, pids []int) []string {
	t.Helper()
	table, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(table), "\n")[1:] {
		f := strings.Fields(line)
		for _, pid := range pids {
			if len(f) > 4 && f[4] == strconv.Itoa(pid) {
				out = append(out, strings.Join(f[:7], " "))
			}
		}
	}
	return out
}
