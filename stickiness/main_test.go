package stickiness

import (
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/stickiness/internal/storetest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

const uuidA = storetest.UUIDA

// pos parses a position; "" is the zero Position.
func pos(tb testing.TB, s string) lagcheck.Position {
	tb.Helper()
	p, err := lagcheck.ParsePosition(s)
	if err != nil {
		tb.Fatalf("ParsePosition(%q): %v", s, err)
	}
	return p
}

// rel is a record relative to a base time, for tables.
type rel struct {
	until time.Duration // 0: no record
	pos   string
	pend  Pending
}

func relOf(r storetest.Rel) rel {
	return rel{until: r.Until, pos: r.Pos, pend: Pending{Writer: r.Writer, At: r.At, Resolved: r.Resolved}}
}

func (r rel) at(tb testing.TB, base time.Time) Record {
	tb.Helper()
	if r.until == 0 {
		return Record{}
	}
	return Record{Until: base.Add(r.until), Position: pos(tb, r.pos), Pending: r.pend}
}

// mergeTests are storetest.MergeCases: old is set first (if any), then
// give; want is what Get returns.
var mergeTests = mergeTestsOf(storetest.MergeCases)

// pendingTests are storetest.PendingCases, run as mergeTests are (but
// not on the carrier, which never holds a pending write).
var pendingTests = mergeTestsOf(storetest.PendingCases)

func mergeTestsOf(cases []storetest.MergeCase) []mergeTest {
	out := make([]mergeTest, len(cases))
	for i, c := range cases {
		out[i] = mergeTest{name: c.Name, old: relOf(c.Old), give: relOf(c.Give), want: relOf(c.Want)}
	}
	return out
}

type mergeTest struct {
	name            string
	old, give, want rel
}

// wantRecord fails the test unless got is want.
func wantRecord(tb testing.TB, got Record, ok bool, want Record) {
	tb.Helper()
	if !ok || !got.Equal(want) {
		tb.Errorf("got %v %q %+v (ok=%v), want %v %q %+v", got.Until, got.Position, got.Pending, ok, want.Until, want.Position, want.Pending)
	}
}

// verifyNoLeaks checks, when the test ends, that it left no goroutine
// running. The goroutines running when it is called (testdb.Main's signal
// handler, servers of earlier tests) are not the test's.
func verifyNoLeaks(t *testing.T) {
	t.Helper()
	opts := append([]goleak.Option{goleak.IgnoreCurrent()}, dbtest.LeakIgnores()...)
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}
