package testdb_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
)

// fakeTB records how a helper ended the test, without ending the real one.
// Skip and Fatal end the calling goroutine, like the real ones.
type fakeTB struct {
	testing.TB // the real test, for everything not overridden

	mu      sync.Mutex
	skipped bool
	failed  bool
	msg     string
}

func (f *fakeTB) end(skip bool, msg string) {
	f.mu.Lock()
	f.skipped, f.failed = f.skipped || skip, f.failed || !skip
	f.msg = msg
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Helper()                          {}
func (f *fakeTB) Skip(args ...any)                 { f.end(true, fmt.Sprint(args...)) }
func (f *fakeTB) Skipf(format string, args ...any) { f.end(true, fmt.Sprintf(format, args...)) }
func (f *fakeTB) SkipNow()                         { f.end(true, "") }
func (f *fakeTB) Fatal(args ...any)                { f.end(false, fmt.Sprint(args...)) }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.end(false, fmt.Sprintf(format, args...))
}
func (f *fakeTB) FailNow() { f.end(false, "") }
func (f *fakeTB) Error(args ...any) {
	f.mu.Lock()
	f.failed = true
	f.msg = fmt.Sprint(args...)
	f.mu.Unlock()
}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.Error(fmt.Sprintf(format, args...))
}
func (f *fakeTB) Fail()               { f.mu.Lock(); f.failed = true; f.mu.Unlock() }
func (f *fakeTB) Failed() bool        { f.mu.Lock(); defer f.mu.Unlock(); return f.failed }
func (f *fakeTB) Skipped() bool       { f.mu.Lock(); defer f.mu.Unlock(); return f.skipped }
func (f *fakeTB) Cleanup(func())      {}
func (f *fakeTB) Log(...any)          {}
func (f *fakeTB) Logf(string, ...any) {}

// run calls fn with the fake in a goroutine of its own, as a test body.
func (f *fakeTB) run(fn func(testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
}

func TestMissingBinaries(t *testing.T) {
	starts := []struct {
		name, env, pkg string
		start          func(testing.TB)
		startErr       func() error
	}{
		{
			name: "postgres", env: "RWSPLIT_PG_BINDIR", pkg: "apt-get install postgresql",
			start: func(tb testing.TB) { dbtest.Postgres(tb, 1) },
			startErr: func() error {
				_, err := testdb.StartPostgres(context.Background(), 1, nil)
				return err
			},
		},
		{
			name: "mariadb", env: "RWSPLIT_MARIADB_BINDIR", pkg: "apt-get install mariadb-server",
			start: func(tb testing.TB) { dbtest.MariaDB(tb, 1) },
			startErr: func() error {
				_, err := testdb.StartMariaDB(context.Background(), 1, nil)
				return err
			},
		},
		{
			name: "redis", env: "RWSPLIT_REDIS_BINDIR", pkg: "apt-get install redis-server",
			start: func(tb testing.TB) { dbtest.Redis(tb) },
			startErr: func() error {
				_, err := testdb.StartRedis(context.Background(), nil)
				return err
			},
		},
		{
			name: "pgbouncer", env: "RWSPLIT_PGBOUNCER_BINDIR", pkg: "apt-get install pgbouncer",
			start: func(tb testing.TB) { dbtest.PgBouncer(tb) },
			startErr: func() error {
				_, err := testdb.StartBouncer(context.Background(), nil, nil)
				return err
			},
		},
	}
	requires := []struct {
		give        string
		wantSkipped bool
	}{
		{give: "", wantSkipped: true},
		{give: "0", wantSkipped: true},
		{give: "1", wantSkipped: false},
	}
	for _, s := range starts {
		for _, r := range requires {
			t.Run(fmt.Sprintf("%s/RWSPLIT_REQUIRE_DB=%q", s.name, r.give), func(t *testing.T) {
				t.Setenv(s.env, filepath.Join(t.TempDir(), "bogus"))
				t.Setenv("RWSPLIT_REQUIRE_DB", r.give)
				f := &fakeTB{TB: t}
				f.run(s.start)
				if f.skipped != r.wantSkipped || f.failed == r.wantSkipped {
					t.Fatalf("skipped=%v failed=%v (%q), want skipped=%v", f.skipped, f.failed, f.msg, r.wantSkipped)
				}
				if strings.Contains(f.msg, "\n") || !strings.Contains(f.msg, s.pkg) || !strings.Contains(f.msg, s.env) {
					t.Fatalf("reason %q: want one line naming %q and %s", f.msg, s.pkg, s.env)
				}
			})
		}
		t.Run(s.name+"/error", func(t *testing.T) {
			t.Setenv(s.env, filepath.Join(t.TempDir(), "bogus"))
			err := s.startErr()
			if !errors.Is(err, testdb.ErrMissingBinaries) || !strings.Contains(err.Error(), s.pkg) {
				t.Fatalf("error %v: want ErrMissingBinaries naming %q", err, s.pkg)
			}
		})
	}
}
