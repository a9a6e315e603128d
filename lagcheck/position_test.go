package lagcheck

import (
	"errors"
	"math"
	"testing"
)

const (
	uuidA = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	uuidB = "8a94f357-aab4-11df-86ab-c80aa9429562"
)

func mustParse(t testing.TB, s string) Position {
	t.Helper()
	p, err := ParsePosition(s)
	if err != nil {
		t.Fatalf("ParsePosition(%q): %v", s, err)
	}
	return p
}

func TestParsePosition(t *testing.T) {
	tests := []struct {
		name     string
		give     string
		wantKind PositionKind
		want     string // String() of the result
	}{
		{name: "empty is zero", give: "", wantKind: NoPosition, want: ""},
		{name: "blank is zero", give: "  \n", wantKind: NoPosition, want: ""},
		{name: "lsn", give: "16/B374D848", wantKind: PostgresLSN, want: "16/B374D848"},
		{name: "lsn lower case", give: "16/b374d848", wantKind: PostgresLSN, want: "16/B374D848"},
		{name: "lsn zero", give: "0/0", wantKind: PostgresLSN, want: "0/0"},
		{name: "lsn leading zeros", give: "00000001/0000000A", wantKind: PostgresLSN, want: "1/A"},
		{name: "lsn max", give: "FFFFFFFF/FFFFFFFF", wantKind: PostgresLSN, want: "FFFFFFFF/FFFFFFFF"},
		{name: "lsn prefixed", give: "pg:0/3000060", wantKind: PostgresLSN, want: "0/3000060"},
		{name: "mariadb one", give: "0-1-100", wantKind: MariaDBGTID, want: "0-1-100"},
		{name: "mariadb sorted", give: "1-2-7,0-1-100", wantKind: MariaDBGTID, want: "0-1-100,1-2-7"},
		{name: "mariadb blanks", give: " 0-1-100 , 1-2-7 ", wantKind: MariaDBGTID, want: "0-1-100,1-2-7"},
		{name: "mariadb duplicate domain keeps highest seq", give: "0-1-5,0-2-9,0-3-7", wantKind: MariaDBGTID, want: "0-2-9"},
		{name: "mariadb max values", give: "4294967295-4294967295-18446744073709551615", wantKind: MariaDBGTID, want: "4294967295-4294967295-18446744073709551615"},
		{name: "mariadb empty", give: "mariadb:", wantKind: MariaDBGTID, want: "mariadb:"},
		{name: "mariadb prefixed", give: "mariadb:0-1-1", wantKind: MariaDBGTID, want: "0-1-1"},
		{name: "mysql one", give: uuidA + ":1-5", wantKind: MySQLGTID, want: uuidA + ":1-5"},
		{name: "mysql single gno", give: uuidA + ":7", wantKind: MySQLGTID, want: uuidA + ":7"},
		{name: "mysql upper case uuid", give: "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5", wantKind: MySQLGTID, want: uuidA + ":1-5"},
		{name: "mysql multi interval", give: uuidA + ":1-100:102-110", wantKind: MySQLGTID, want: uuidA + ":1-100:102-110"},
		{name: "mysql merges adjacent and overlapping", give: uuidA + ":1-5:6-9:3-4:20:21", wantKind: MySQLGTID, want: uuidA + ":1-9:20-21"},
		{name: "mysql sorts intervals", give: uuidA + ":10-12:1-3", wantKind: MySQLGTID, want: uuidA + ":1-3:10-12"},
		{name: "mysql multi uuid with newline", give: uuidB + ":1-5,\n" + uuidA + ":1-100", wantKind: MySQLGTID, want: uuidA + ":1-100," + uuidB + ":1-5"},
		{name: "mysql same uuid twice", give: uuidA + ":1-3," + uuidA + ":4-6", wantKind: MySQLGTID, want: uuidA + ":1-6"},
		{name: "mysql tagged", give: uuidA + ":1-5:Tag_b:1-2:tag_a:3", wantKind: MySQLGTID, want: uuidA + ":1-5:tag_a:3:tag_b:1-2"},
		{name: "mysql tag only", give: uuidA + ":tag_a:1-2", wantKind: MySQLGTID, want: uuidA + ":tag_a:1-2"},
		{name: "mysql empty", give: "mysql:", wantKind: MySQLGTID, want: "mysql:"},
		{name: "mysql max gno", give: uuidA + ":9223372036854775807", wantKind: MySQLGTID, want: uuidA + ":9223372036854775807"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePosition(tt.give)
			if err != nil {
				t.Fatalf("ParsePosition(%q): %v", tt.give, err)
			}
			if p.Kind() != tt.wantKind || p.String() != tt.want {
				t.Errorf("ParsePosition(%q) = %v %q, want %v %q", tt.give, p.Kind(), p.String(), tt.wantKind, tt.want)
			}
			again, err := ParsePosition(p.String())
			if err != nil || !again.Equal(p) {
				t.Errorf("round trip of %q: %v, %v", p.String(), again, err)
			}
		})
	}
}

func TestParsePositionErrors(t *testing.T) {
	tests := []struct {
		name string
		give string
	}{
		{name: "lsn no low part", give: "16/"},
		{name: "lsn no high part", give: "/16"},
		{name: "lsn not hex", give: "16/XYZ"},
		{name: "lsn too long", give: "123456789/0"},
		{name: "lsn two slashes", give: "1/2/3"},
		{name: "lsn signed", give: "+1/2"},
		{name: "mariadb two fields", give: "0-1"},
		{name: "mariadb four fields", give: "0-1-2-3"},
		{name: "mariadb negative", give: "0--1-2"},
		{name: "mariadb domain overflow", give: "4294967296-1-1"},
		{name: "mariadb seq overflow", give: "0-1-18446744073709551616"},
		{name: "mariadb empty entry", give: "0-1-2,,1-1-1"},
		{name: "mariadb junk", give: "hello"},
		{name: "mysql short uuid", give: "3e11fa47-71ca-11e1-9e33:1-5"},
		{name: "mysql bad uuid dash", give: "3e11fa47x71ca-11e1-9e33-c80aa9429562:1-5"},
		{name: "mysql no interval", give: uuidA},
		{name: "mysql empty interval", give: uuidA + ":"},
		{name: "mysql zero gno", give: uuidA + ":0-5"},
		{name: "mysql reversed", give: uuidA + ":5-1"},
		{name: "mysql gno overflow", give: uuidA + ":9223372036854775808"},
		{name: "mysql tag without interval", give: uuidA + ":1-5:tag"},
		{name: "mysql two tags in a row", give: uuidA + ":t1:t2:1"},
		{name: "mysql bad tag", give: uuidA + ":t-x:1"},
		{name: "mysql tag too long", give: uuidA + ":abcdefghijabcdefghijabcdefghijabc:1"},
		{name: "prefixed junk", give: "mysql:junk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePosition(tt.give)
			if !errors.Is(err, ErrBadPosition) {
				t.Errorf("ParsePosition(%q) = %v, %v; want ErrBadPosition", tt.give, p, err)
			}
		})
	}
}

func TestPositionCovers(t *testing.T) {
	tests := []struct {
		name string
		p, q string
		want bool
	}{
		{name: "lsn equal", p: "16/B374D848", q: "16/B374D848", want: true},
		{name: "lsn ahead", p: "16/B374D849", q: "16/B374D848", want: true},
		{name: "lsn behind", p: "16/B374D847", q: "16/B374D848", want: false},
		{name: "lsn high word decides", p: "17/0", q: "16/FFFFFFFF", want: true},
		{name: "zero covers nothing", p: "", q: "0/0", want: false},
		{name: "nothing covers zero", p: "16/0", q: "", want: false},
		{name: "zero and zero", p: "", q: "", want: false},
		{name: "kinds differ", p: "0-1-100", q: uuidA + ":1", want: false},
		{name: "mariadb equal", p: "0-1-100", q: "0-1-100", want: true},
		{name: "mariadb ahead", p: "0-1-101", q: "0-1-100", want: true},
		{name: "mariadb behind", p: "0-1-99", q: "0-1-100", want: false},
		{name: "mariadb server id ignored", p: "0-2-100", q: "0-1-100", want: true},
		{name: "mariadb missing domain", p: "0-1-100", q: "0-1-100,1-1-1", want: false},
		{name: "mariadb extra domain", p: "0-1-100,1-1-1", q: "0-1-100", want: true},
		{name: "mariadb every domain ahead", p: "0-1-100,1-1-5,2-1-9", q: "0-1-50,2-1-9", want: true},
		{name: "mariadb one domain behind", p: "0-1-100,1-1-5,2-1-8", q: "0-1-50,2-1-9", want: false},
		{name: "mariadb empty target", p: "0-1-1", q: "mariadb:", want: true},
		{name: "mariadb empty covers empty", p: "mariadb:", q: "mariadb:", want: true},
		{name: "mariadb empty covers nothing else", p: "mariadb:", q: "0-1-1", want: false},
		{name: "mysql equal", p: uuidA + ":1-100", q: uuidA + ":1-100", want: true},
		{name: "mysql subset", p: uuidA + ":1-100", q: uuidA + ":5-10:20", want: true},
		{name: "mysql beyond", p: uuidA + ":1-100", q: uuidA + ":1-101", want: false},
		{name: "mysql gap", p: uuidA + ":1-100:102-110", q: uuidA + ":101", want: false},
		{name: "mysql across gap", p: uuidA + ":1-100:102-110", q: uuidA + ":99-103", want: false},
		{name: "mysql both sides of gap", p: uuidA + ":1-100:102-110", q: uuidA + ":100:102", want: true},
		{name: "mysql other uuid missing", p: uuidA + ":1-100", q: uuidA + ":1," + uuidB + ":1", want: false},
		{name: "mysql multi uuid", p: uuidA + ":1-100," + uuidB + ":1-5", q: uuidA + ":1-50," + uuidB + ":5", want: true},
		{name: "mysql tag is another source", p: uuidA + ":1-100", q: uuidA + ":tag:1", want: false},
		{name: "mysql tagged subset", p: uuidA + ":1-100:tag:1-3", q: uuidA + ":tag:2", want: true},
		{name: "mysql empty target", p: uuidA + ":1", q: "mysql:", want: true},
		{name: "mysql empty covers nothing else", p: "mysql:", q: uuidA + ":1", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, q := mustParse(t, tt.p), mustParse(t, tt.q)
			if got := p.Covers(q); got != tt.want {
				t.Errorf("%q.Covers(%q) = %v, want %v", tt.p, tt.q, got, tt.want)
			}
		})
	}
}

func TestPositionBehind(t *testing.T) {
	tests := []struct {
		name   string
		p, q   string
		want   int64
		wantOK bool
	}{
		{name: "lsn bytes", p: "0/100", q: "0/1F0", want: 0xF0, wantOK: true},
		{name: "lsn ahead is 0", p: "0/200", q: "0/100", want: 0, wantOK: true},
		{name: "lsn across high word", p: "0/FFFFFFFF", q: "1/1", want: 2, wantOK: true},
		{name: "zero", p: "", q: "0/1", wantOK: false},
		{name: "kinds differ", p: "0/1", q: "0-1-1", wantOK: false},
		{name: "mariadb per domain sum", p: "0-1-90,1-1-5", q: "0-1-100,1-1-7,2-1-3", want: 10 + 2 + 3, wantOK: true},
		{name: "mariadb ahead domain counts 0", p: "0-1-200", q: "0-1-100", want: 0, wantOK: true},
		{name: "mysql missing gnos", p: uuidA + ":1-90", q: uuidA + ":1-100," + uuidB + ":1-5", want: 10 + 5, wantOK: true},
		{name: "mysql gaps", p: uuidA + ":1-10:20-30", q: uuidA + ":1-30", want: 9, wantOK: true},
		{name: "mysql replica has extra", p: uuidA + ":1-100," + uuidB + ":1-3", q: uuidA + ":1-100", want: 0, wantOK: true},
		{name: "mysql overlapping ranges", p: uuidA + ":5-15:25-35", q: uuidA + ":1-10:12-30", want: 4 + 9, wantOK: true},
		{name: "mysql saturates", p: "mysql:", q: uuidA + ":1-9223372036854775807," + uuidB + ":1-9223372036854775807", want: math.MaxInt64, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := mustParse(t, tt.p).Behind(mustParse(t, tt.q))
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("%q.Behind(%q) = %d, %v; want %d, %v", tt.p, tt.q, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestPositionAccessors(t *testing.T) {
	p := LSNPosition(0x16_B374D848)
	if lsn, ok := p.LSN(); !ok || lsn != 0x16_B374D848 || p.String() != "16/B374D848" || p.IsZero() {
		t.Errorf("LSNPosition: %v %v %q %v", lsn, ok, p.String(), p.IsZero())
	}
	if _, ok := mustParse(t, "0-1-1").LSN(); ok {
		t.Error("a GTID position has an LSN")
	}
	var zero Position
	if !zero.IsZero() || zero.Kind() != NoPosition || zero.String() != "" {
		t.Errorf("zero Position: %v %v %q", zero.IsZero(), zero.Kind(), zero.String())
	}
	// Text marshalling, as used for cookies and JSON.
	b, _ := mustParse(t, uuidA+":1-5").MarshalText()
	var back Position
	if err := back.UnmarshalText(b); err != nil || back.String() != uuidA+":1-5" {
		t.Errorf("UnmarshalText(%q) = %v, %v", b, back, err)
	}
	if err := back.UnmarshalText([]byte("1/2/3")); !errors.Is(err, ErrBadPosition) {
		t.Errorf("UnmarshalText(bad) = %v", err)
	}
}

// TestCoversAllocs: Covers runs per read on the causal path.
func TestCoversAllocs(t *testing.T) {
	pairs := [][2]Position{
		{LSNPosition(10), LSNPosition(5)},
		{mustParse(t, "0-1-100,1-2-7,5-1-3"), mustParse(t, "0-1-90,5-1-3")},
		{mustParse(t, uuidA+":1-100:102-110,"+uuidB+":1-5"), mustParse(t, uuidA+":50-60:105,"+uuidB+":2")},
	}
	for _, pq := range pairs {
		if n := testing.AllocsPerRun(100, func() { _ = pq[0].Covers(pq[1]) }); n != 0 {
			t.Errorf("%v.Covers allocates %v times", pq[0].Kind(), n)
		}
	}
}

func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{
		"", "16/B374D848", "0/0", "pg:1/2", "0-1-100,1-2-7", "mariadb:", "mysql:",
		uuidA + ":1-100:102-110,\n" + uuidB + ":1-5", uuidA + ":1-5:tag:1-3", "0-1-1,0-2-2",
		uuidA + ":9223372036854775807", "FFFFFFFF/FFFFFFFF",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePosition(s)
		if err != nil {
			if !errors.Is(err, ErrBadPosition) {
				t.Fatalf("ParsePosition(%q) error %v does not wrap ErrBadPosition", s, err)
			}
			return
		}
		text := p.String()
		q, err := ParsePosition(text)
		if err != nil {
			t.Fatalf("ParsePosition(%q) → %q, which does not parse: %v", s, text, err)
		}
		if !q.Equal(p) || q.String() != text {
			t.Fatalf("round trip of %q: %q then %q", s, text, q.String())
		}
		if !p.IsZero() && !p.Covers(q) {
			t.Fatalf("%q does not cover itself", text)
		}
		if n, ok := p.Behind(q); !p.IsZero() && (!ok || n != 0) {
			t.Fatalf("%q is %d, %v behind itself", text, n, ok)
		}
	})
}
