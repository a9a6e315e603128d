package lagcheck

import (
	"errors"
	"testing"
	"unsafe"
)

// A MariaDB position of one domain is held inline (MariaDBPosition), one
// of several in a slice. These tests check that the two forms cannot be
// told apart by any method.

// sliceForm returns p with a one-domain MariaDB position in the slice form
// that positions of several domains use: what every method must treat
// exactly as the inline form.
func sliceForm(p Position) Position {
	d, s, seq, ok := p.MariaDB()
	if !ok {
		return p
	}
	g := []mariaGTID{{domain: d, server: s, seq: seq}}
	return Position{kind: MariaDBGTID, maria: &g}
}

func TestPositionSize(t *testing.T) {
	// A Position is copied on every read of a sticky record, and a shared
	// one is a heap object: it must stay within the 64-byte size class.
	if n := unsafe.Sizeof(Position{}); n > 64 {
		t.Errorf("Position takes %d bytes, want at most 64", n)
	}
}

func TestMariaDBPosition(t *testing.T) {
	one := MariaDBPosition(0, 1, 5)
	if d, s, seq, ok := one.MariaDB(); !ok || d != 0 || s != 1 || seq != 5 {
		t.Errorf("MariaDBPosition(0, 1, 5).MariaDB() = %d, %d, %d, %v", d, s, seq, ok)
	}
	if one.Kind() != MariaDBGTID || one.IsZero() || one.String() != "0-1-5" {
		t.Errorf("MariaDBPosition(0, 1, 5) = %v %v %q", one.Kind(), one.IsZero(), one.String())
	}
	if _, ok := one.LSN(); ok {
		t.Error("a MariaDB position has an LSN")
	}
	max := MariaDBPosition(4294967295, 4294967295, 18446744073709551615)
	if got := max.String(); got != "4294967295-4294967295-18446744073709551615" {
		t.Errorf("max MariaDBPosition = %q", got)
	}
	for _, s := range []string{"", "0/1", "mariadb:", "0-1-5,1-2-3", uuidA + ":1-5", "mysql:"} {
		if d, sv, seq, ok := mustParse(t, s).MariaDB(); ok || d != 0 || sv != 0 || seq != 0 {
			t.Errorf("%q.MariaDB() = %d, %d, %d, %v; want false", s, d, sv, seq, ok)
		}
	}
}

// TestMariaDBOneDomainEqual: however a one-domain position is made, it is
// the same position as MariaDBPosition's.
func TestMariaDBOneDomainEqual(t *testing.T) {
	want := MariaDBPosition(0, 1, 5)
	tests := []struct {
		name string
		give func() (Position, error)
	}{
		{name: "ParseMariaDBGTID", give: func() (Position, error) { return ParseMariaDBGTID("0-1-5") }},
		{name: "ParsePosition", give: func() (Position, error) { return ParsePosition("0-1-5") }},
		{name: "prefixed", give: func() (Position, error) { return ParsePosition("mariadb:0-1-5") }},
		{name: "blanks", give: func() (Position, error) { return ParsePosition("  0-1-5 \n") }},
		{name: "leading zeros", give: func() (Position, error) { return ParseMariaDBGTID("00-01-005") }},
		{name: "merged duplicate domain", give: func() (Position, error) { return ParseMariaDBGTID("0-1-3,0-1-5") }},
		{name: "merged duplicate domain, higher last", give: func() (Position, error) { return ParseMariaDBGTID("0-2-4, 0-1-5") }},
		{name: "merged duplicate domain, higher first", give: func() (Position, error) { return ParseMariaDBGTID("0-1-5,0-9-2,0-1-5") }},
		{name: "UnmarshalText", give: func() (Position, error) {
			var p Position
			err := p.UnmarshalText([]byte("0-1-5"))
			return p, err
		}},
		{name: "String round trip", give: func() (Position, error) { return ParsePosition(want.String()) }},
		{name: "MarshalText round trip", give: func() (Position, error) {
			b, err := want.MarshalText()
			if err != nil {
				return Position{}, err
			}
			var p Position
			return p, errors.Join(err, p.UnmarshalText(b))
		}},
		{name: "slice form", give: func() (Position, error) { return sliceForm(want), nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.give()
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(want) || !want.Equal(got) {
				t.Errorf("%q is not equal to %q", got, want)
			}
			if got.String() != "0-1-5" {
				t.Errorf("String = %q, want 0-1-5", got.String())
			}
			if d, s, seq, ok := got.MariaDB(); tt.name != "slice form" && (!ok || d != 0 || s != 1 || seq != 5) {
				t.Errorf("not in the inline form: MariaDB() = %d, %d, %d, %v", d, s, seq, ok)
			}
			if !got.Covers(want) || !want.Covers(got) {
				t.Errorf("%q and %q do not cover each other", got, want)
			}
			if n, ok := got.Behind(want); n != 0 || !ok {
				t.Errorf("Behind = %d, %v; want 0, true", n, ok)
			}
		})
	}
}

// TestMariaDBOneDomainCompare compares one-domain positions with others,
// in both forms.
func TestMariaDBOneDomainCompare(t *testing.T) {
	tests := []struct {
		p, q       string
		wantCovers bool  // p.Covers(q)
		wantBehind int64 // p.Behind(q)
		wantEqual  bool
	}{
		{p: "0-1-5", q: "0-1-5", wantCovers: true, wantBehind: 0, wantEqual: true},
		{p: "0-1-5", q: "0-1-5,1-2-3", wantCovers: false, wantBehind: 3},
		{p: "0-1-5,1-2-3", q: "0-1-5", wantCovers: true, wantBehind: 0},
		{p: "0-1-4,1-2-3", q: "0-1-5", wantCovers: false, wantBehind: 1},
		{p: "0-1-5", q: "0-1-4,1-2-3", wantCovers: false, wantBehind: 3},
		{p: "1-2-3,2-1-1", q: "0-1-5", wantCovers: false, wantBehind: 5},
		{p: "0-1-5", q: "1-2-3", wantCovers: false, wantBehind: 3},
		{p: "1-2-3", q: "0-1-5", wantCovers: false, wantBehind: 5},
		{p: "0-1-6", q: "0-1-5", wantCovers: true, wantBehind: 0},
		{p: "0-1-4", q: "0-1-5", wantCovers: false, wantBehind: 1},
		{p: "0-2-5", q: "0-1-5", wantCovers: true, wantBehind: 0}, // server ids are ignored, but not by Equal
		{p: "0-1-5", q: "mariadb:", wantCovers: true, wantBehind: 0},
		{p: "mariadb:", q: "0-1-5", wantCovers: false, wantBehind: 5},
		// 0-0-0 is one domain, seq 0: not the empty position.
		{p: "0-0-0", q: "mariadb:", wantCovers: true, wantBehind: 0},
		{p: "mariadb:", q: "0-0-0", wantCovers: false, wantBehind: 0},
		{p: "0-0-0", q: "0-0-0", wantCovers: true, wantBehind: 0, wantEqual: true},
		{p: "0-0-0", q: "1-0-0", wantCovers: false, wantBehind: 0},
		{p: "4294967295-1-18446744073709551615", q: "0-1-1,4294967295-2-18446744073709551615", wantCovers: false, wantBehind: 1},
		{p: "0-1-1,4294967295-2-18446744073709551615", q: "4294967295-1-18446744073709551615", wantCovers: true, wantBehind: 0},
	}
	for _, tt := range tests {
		p0, q0 := mustParse(t, tt.p), mustParse(t, tt.q)
		for _, form := range []struct {
			name string
			p, q Position
		}{
			{"inline", p0, q0},
			{"slice/inline", sliceForm(p0), q0},
			{"inline/slice", p0, sliceForm(q0)},
			{"slice", sliceForm(p0), sliceForm(q0)},
		} {
			t.Run(tt.p+" vs "+tt.q+"/"+form.name, func(t *testing.T) {
				p, q := form.p, form.q
				if got := p.Covers(q); got != tt.wantCovers {
					t.Errorf("%q.Covers(%q) = %v, want %v", p, q, got, tt.wantCovers)
				}
				if got, ok := p.Behind(q); got != tt.wantBehind || !ok {
					t.Errorf("%q.Behind(%q) = %d, %v; want %d, true", p, q, got, ok, tt.wantBehind)
				}
				if got := p.Equal(q); got != tt.wantEqual {
					t.Errorf("%q.Equal(%q) = %v, want %v", p, q, got, tt.wantEqual)
				}
				if got := q.Equal(p); got != tt.wantEqual {
					t.Errorf("%q.Equal(%q) = %v, want %v", q, p, got, tt.wantEqual)
				}
				for _, x := range []struct {
					pos  Position
					text string
				}{{p, tt.p}, {q, tt.q}} {
					if got := x.pos.String(); got != x.text {
						t.Errorf("String = %q, want %q", got, x.text)
					}
					b, err := x.pos.MarshalText()
					var back Position
					if err != nil || string(b) != x.text {
						t.Errorf("MarshalText = %q, %v; want %q", b, err, x.text)
					} else if err := back.UnmarshalText(b); err != nil || !back.Equal(x.pos) || !x.pos.Equal(back) || back.String() != x.text {
						t.Errorf("UnmarshalText(%q) = %q, %v", b, back, err)
					}
				}
			})
		}
	}
}

// TestMariaDBOneDomainDistinct: a one-domain position differs from every
// position that is not the same GTID.
func TestMariaDBOneDomainDistinct(t *testing.T) {
	one := MariaDBPosition(0, 1, 5)
	for _, s := range []string{"", "0/5", "mariadb:", "0-0-0", "0-1-4", "0-1-6", "0-2-5", "1-1-5", "0-1-5,1-2-3", "1-2-3,0-1-5", uuidA + ":5", "mysql:"} {
		p := mustParse(t, s)
		for _, form := range []Position{p, sliceForm(p)} {
			if form.Equal(one) || one.Equal(form) || sliceForm(one).Equal(form) || form.Equal(sliceForm(one)) {
				t.Errorf("%q equals 0-1-5", s)
			}
		}
	}
	if MariaDBPosition(0, 0, 0).Equal(mustParse(t, "mariadb:")) {
		t.Error("0-0-0 equals the empty position")
	}
}

// TestMariaDBOneDomainAllocs: the inline form allocates nothing.
func TestMariaDBOneDomainAllocs(t *testing.T) {
	p, q := mustParse(t, "0-1-100"), mustParse(t, "0-1-90")
	multi := mustParse(t, "0-1-100,1-2-7")
	var ok bool
	var n int64
	for _, tt := range []struct {
		name string
		f    func()
	}{
		{"MariaDBPosition", func() { p = MariaDBPosition(0, 1, 100) }},
		{"MariaDB", func() { _, _, _, ok = p.MariaDB() }},
		{"ParseMariaDBGTID", func() { p, _ = ParseMariaDBGTID("0-1-100") }},
		{"Covers", func() { ok = p.Covers(q) }},
		{"Covers multi", func() { ok = multi.Covers(q) && !q.Covers(multi) }},
		{"Equal", func() { ok = p.Equal(q) || multi.Equal(p) }},
		{"Behind", func() { n, ok = q.Behind(multi) }},
	} {
		if allocs := testing.AllocsPerRun(100, tt.f); allocs != 0 {
			t.Errorf("%s allocates %v times", tt.name, allocs)
		}
	}
	_, _ = ok, n
}

// FuzzMariaDBForms checks that the inline and the slice form of one-domain
// positions compare alike with every MariaDB position.
func FuzzMariaDBForms(f *testing.F) {
	for _, pq := range [][2]string{
		{"0-1-5", "0-1-5"}, {"0-1-5", "0-1-5,1-2-3"}, {"0-1-4,1-2-3", "0-1-5"}, {"0-2-5", "0-1-5"},
		{"", "0-0-0"}, {"1-1-1", "0-1-1"}, {"0-1-1,0-2-2", "0-2-2"}, {"5-1-18446744073709551615", "5-1-1,6-1-1"},
	} {
		f.Add(pq[0], pq[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		p, err1 := ParseMariaDBGTID(a)
		q, err2 := ParseMariaDBGTID(b)
		if err1 != nil || err2 != nil {
			return
		}
		covers, equal := p.Covers(q), p.Equal(q)
		behind, _ := p.Behind(q)
		for _, pq := range [][2]Position{{sliceForm(p), q}, {p, sliceForm(q)}, {sliceForm(p), sliceForm(q)}} {
			x, y := pq[0], pq[1]
			if x.Covers(y) != covers || x.Equal(y) != equal || y.Equal(x) != equal {
				t.Fatalf("%q vs %q: Covers, Equal = %v, %v in one form, %v, %v in another", a, b, covers, equal, x.Covers(y), x.Equal(y))
			}
			if n, ok := x.Behind(y); n != behind || !ok {
				t.Fatalf("%q vs %q: Behind = %d in one form, %d in another", a, b, behind, n)
			}
			if x.String() != p.String() || y.String() != q.String() {
				t.Fatalf("%q vs %q: String differs between forms", a, b)
			}
		}
		for _, x := range []Position{p, q} { // normalized: inline if and only if one domain
			var buf [1]mariaGTID
			if n := len(x.gtids(&buf)); x.one != (n == 1) || (x.maria != nil) != (n > 1) {
				t.Fatalf("%q: %d domains, inline %v, slice %v", x, n, x.one, x.maria != nil)
			}
		}
		if p.String() == "0-1-5" && !p.Equal(MariaDBPosition(0, 1, 5)) {
			t.Fatalf("%q is not 0-1-5", a)
		}
	})
}
