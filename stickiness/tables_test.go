package stickiness

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rwsplit/rwsplit/lagcheck"
)

// tbl returns the Tables of one name; "" names none.
func tbl(name string) Tables {
	if name == "" {
		return Tables{}
	}
	return Tables{Names: []string{name}}
}

// TestTableMarks: what each write marks and which reads it makes sticky.
func TestTableMarks(t *testing.T) {
	p100, p200 := lagcheck.LSNPosition(100), lagcheck.LSNPosition(200)
	bg := context.Background()
	type write struct {
		tables Tables
		pos    lagcheck.Position
	}
	tests := []struct {
		name       string
		writes     []write
		give       Tables
		wantSticky bool
		wantPos    lagcheck.Position
	}{
		{name: "nothing written", give: tbl("users")},
		{name: "written table", writes: []write{{tbl("users"), p100}}, give: tbl("users"), wantSticky: true, wantPos: p100},
		{name: "other table", writes: []write{{tbl("users"), p100}}, give: tbl("posts")},
		{name: "case folded", writes: []write{{tbl("Users"), p100}}, give: tbl("USERS"), wantSticky: true, wantPos: p100},
		{name: "case folded long name", writes: []write{{tbl(strings.Repeat("Ab", 50)), p100}}, give: tbl(strings.Repeat("aB", 50)), wantSticky: true, wantPos: p100},
		{name: "non-ASCII letters share a key", writes: []write{{tbl("Ünits"), p100}}, give: tbl("ünits"), wantSticky: true, wantPos: p100},
		{name: "one of several", writes: []write{{Tables{Names: []string{"a", "b"}}, p100}}, give: Tables{Names: []string{"c", "b"}}, wantSticky: true, wantPos: p100},
		{name: "newest of several tables read", writes: []write{{tbl("a"), p100}, {tbl("b"), p200}}, give: Tables{Names: []string{"a", "b"}}, wantSticky: true, wantPos: p200},
		{name: "schema-wide write, any table read", writes: []write{{Tables{All: true}, p100}}, give: tbl("anything"), wantSticky: true, wantPos: p100},
		{name: "schema-wide write, read of no table", writes: []write{{Tables{All: true}, p100}}, give: Tables{}},
		{name: "unknown read, one table written", writes: []write{{tbl("users"), p100}}, give: Tables{All: true}, wantSticky: true, wantPos: p100},
		{name: "unknown read, newest write", writes: []write{{tbl("a"), p200}, {tbl("b"), p100}}, give: Tables{All: true}, wantSticky: true, wantPos: p200},
		{name: "unknown read, nothing written", give: Tables{All: true}},
		{name: "unknown position", writes: []write{{tbl("users"), lagcheck.Position{}}}, give: tbl("users"), wantSticky: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, _ := newTestTracker(t, Config{Tables: true})
			for _, w := range tt.writes {
				pw, ok := tr.Pending(bg, w.tables)
				if !ok {
					t.Fatalf("Pending(%+v) = false", w.tables)
				}
				tr.Mark(w.pos, pw)
			}
			pos, sticky := tr.Lookup(bg, tt.give)
			if sticky != tt.wantSticky || !pos.Equal(tt.wantPos) {
				t.Errorf("Lookup(%+v) = %v, %v; want %v, %v", tt.give, pos, sticky, tt.wantPos, tt.wantSticky)
			}
		})
	}
}

// TestTableMarksExpire: table, schema-wide and newest marks end with the
// Window.
func TestTableMarksExpire(t *testing.T) {
	tr, clk := newTestTracker(t, Config{Tables: true, Window: time.Second})
	for _, ts := range []Tables{tbl("users"), {All: true}} {
		w, _ := tr.Pending(context.Background(), ts)
		tr.Mark(lagcheck.LSNPosition(1), w)
	}
	clk.Advance(2 * time.Second)
	for _, give := range []Tables{tbl("users"), tbl("posts"), {All: true}} {
		if _, sticky := tr.Lookup(context.Background(), give); sticky {
			t.Errorf("Lookup(%+v) sticky after the Window", give)
		}
	}
}

// TestTableMarksShared: Trackers of one primary share marks, of different
// primaries do not; the last Close stops the shared memory's sweeper.
func TestTableMarksShared(t *testing.T) {
	verifyNoLeaks(t)
	open := func(primary string) *Tracker {
		tr, err := NewForPrimary(Config{Tables: true}, primary)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	a, b, other, own := open("postgres:1"), open("postgres:1"), open("postgres:2"), open("")
	w, _ := a.Pending(context.Background(), tbl("users"))
	a.Mark(lagcheck.LSNPosition(7), w)
	for _, tt := range []struct {
		name string
		tr   *Tracker
		want bool
	}{{"same primary", b, true}, {"other primary", other, false}, {"no primary", own, false}} {
		if _, sticky := tt.tr.Lookup(context.Background(), tbl("users")); sticky != tt.want {
			t.Errorf("%s: sticky = %v, want %v", tt.name, sticky, tt.want)
		}
	}
	for _, tr := range []*Tracker{a, a, b, other, own} { // a twice: Close is idempotent
		tr.Close()
	}
	if c := open("postgres:1"); func() bool { defer c.Close(); _, s := c.Lookup(context.Background(), tbl("users")); return s }() {
		t.Error("marks outlived every Tracker of their primary")
	}
}

// TestTableLookupAllocs: table-mode lookups allocate nothing, names to
// fold included.
func TestTableLookupAllocs(t *testing.T) {
	tr, err := New(Config{Tables: true, Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	w, _ := tr.Pending(context.Background(), Tables{Names: []string{"orders"}, All: true})
	tr.Mark(lagcheck.LSNPosition(1), w)
	long := strings.Repeat("Orders", 20)
	for _, give := range []Tables{tbl("orders"), tbl("ORDERS"), tbl(long), {All: true}, {Names: []string{"a", "b", "Orders"}}} {
		if n := testing.AllocsPerRun(100, func() { tr.Lookup(context.Background(), give) }); n != 0 {
			t.Errorf("Lookup(%.20v): %v allocs, want 0", give, n)
		}
	}
}
