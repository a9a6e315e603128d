package redisstore

import (
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/stickiness"
	"github.com/rwsplit/rwsplit/stickiness/internal/storetest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// pos parses a position; "" is the zero Position.
func pos(tb testing.TB, s string) lagcheck.Position {
	tb.Helper()
	p, err := lagcheck.ParsePosition(s)
	if err != nil {
		tb.Fatalf("ParsePosition(%q): %v", s, err)
	}
	return p
}

// at returns r's record relative to base.
func at(tb testing.TB, r storetest.Rel, base time.Time) stickiness.Record {
	tb.Helper()
	if r.Until == 0 {
		return stickiness.Record{}
	}
	return stickiness.Record{Until: base.Add(r.Until), Position: pos(tb, r.Pos),
		Pending: stickiness.Pending{Writer: r.Writer, At: r.At, Resolved: r.Resolved}}
}

// wantRecord fails the test unless got is want.
func wantRecord(tb testing.TB, got stickiness.Record, ok bool, want stickiness.Record) {
	tb.Helper()
	if !ok || !got.Equal(want) {
		tb.Errorf("got %v %q %+v (ok=%v), want %v %q %+v", got.Until, got.Position, got.Pending, ok, want.Until, want.Position, want.Pending)
	}
}

// verifyNoLeaks checks, when the test ends, that it left no goroutine
// running.
func verifyNoLeaks(t *testing.T) {
	t.Helper()
	opts := append([]goleak.Option{goleak.IgnoreCurrent()}, dbtest.LeakIgnores()...)
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}
