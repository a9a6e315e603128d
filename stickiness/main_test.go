package stickiness

import (
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

const uuidA = "3e11fa47-71ca-11e1-9e33-c80aa9429562"

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
}

func (r rel) at(tb testing.TB, base time.Time) Record {
	tb.Helper()
	if r.until == 0 {
		return Record{}
	}
	return Record{Until: base.Add(r.until), Position: pos(tb, r.pos)}
}

// mergeTests are the Set-after-Set cases every Store and the carrier must
// agree on: old is set first (if any), then give; want is what Get returns.
var mergeTests = []struct {
	name      string
	old, give rel
	want      rel
}{
	{name: "first write", give: rel{10 * time.Second, "0/100"}, want: rel{10 * time.Second, "0/100"}},
	{name: "newer write", old: rel{10 * time.Second, "0/100"}, give: rel{20 * time.Second, "0/200"}, want: rel{20 * time.Second, "0/200"}},
	{name: "same write twice", old: rel{10 * time.Second, "0/100"}, give: rel{10 * time.Second, "0/100"}, want: rel{10 * time.Second, "0/100"}},
	{name: "late older write changes nothing", old: rel{20 * time.Second, "0/200"}, give: rel{10 * time.Second, "0/100"}, want: rel{20 * time.Second, "0/200"}},
	{name: "later until older position keeps position", old: rel{10 * time.Second, "0/200"}, give: rel{20 * time.Second, "0/100"}, want: rel{20 * time.Second, "0/200"}},
	{name: "earlier until newer position keeps until", old: rel{20 * time.Second, "0/100"}, give: rel{10 * time.Second, "0/200"}, want: rel{20 * time.Second, "0/200"}},
	{name: "unknown position wins", old: rel{10 * time.Second, "0/100"}, give: rel{20 * time.Second, ""}, want: rel{20 * time.Second, ""}},
	{name: "unknown position stays", old: rel{20 * time.Second, ""}, give: rel{10 * time.Second, "0/200"}, want: rel{20 * time.Second, ""}},
	{name: "incomparable kinds make unknown", old: rel{10 * time.Second, "0/100"}, give: rel{20 * time.Second, "0-1-5"}, want: rel{20 * time.Second, ""}},
	{name: "mariadb newer", old: rel{10 * time.Second, "0-1-5"}, give: rel{20 * time.Second, "0-1-7,1-2-1"}, want: rel{20 * time.Second, "0-1-7,1-2-1"}},
	{name: "mariadb incomparable domains", old: rel{10 * time.Second, "0-1-5"}, give: rel{20 * time.Second, "1-2-1"}, want: rel{20 * time.Second, ""}},
	{name: "mariadb one domain newer", old: rel{10 * time.Second, "0-1-5"}, give: rel{20 * time.Second, "0-2-7"}, want: rel{20 * time.Second, "0-2-7"}},
	{name: "mariadb one domain late older write", old: rel{20 * time.Second, "0-1-7"}, give: rel{10 * time.Second, "0-1-5"}, want: rel{20 * time.Second, "0-1-7"}},
	{name: "mariadb one domain of several", old: rel{10 * time.Second, "0-1-5,1-2-1"}, give: rel{20 * time.Second, "0-1-7"}, want: rel{20 * time.Second, ""}},
	{name: "mysql late older write", old: rel{20 * time.Second, uuidA + ":1-10"}, give: rel{10 * time.Second, uuidA + ":1-5"}, want: rel{20 * time.Second, uuidA + ":1-10"}},
}

// wantRecord fails the test unless got is want.
func wantRecord(tb testing.TB, got Record, ok bool, want Record) {
	tb.Helper()
	if !ok || !got.Equal(want) {
		tb.Errorf("got %v %q (ok=%v), want %v %q", got.Until, got.Position, ok, want.Until, want.Position)
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
