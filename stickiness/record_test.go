package stickiness

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRecordMerge(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	for _, tt := range append(mergeTests[:len(mergeTests):len(mergeTests)], pendingTests...) {
		t.Run(tt.name, func(t *testing.T) {
			old, give, want := tt.old.at(t, base), tt.give.at(t, base), tt.want.at(t, base)
			wantRecord(t, old.Merge(give), true, want)
			wantRecord(t, give.Merge(old), true, want) // Merge is symmetric
		})
	}
}

// TestRecordMergePendingPosition: a pending write merged with another
// writer's position keeps both, so that its resolution cannot drop the
// other write.
func TestRecordMergePendingPosition(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	r := func(until time.Duration, p string, pend Pending) Record {
		return Record{Until: base.Add(until), Position: pos(t, p), Pending: pend}
	}
	w1 := Pending{Writer: 1, At: 5}
	res := func(p string, at int64) Record {
		return r(10*time.Second, p, Pending{Writer: 1, At: at, Resolved: true})
	}
	tests := []struct {
		name       string
		steps      []Record
		wantPos    string
		wantPend   Pending
		wantUntilS time.Duration
	}{
		{name: "pending keeps the other's position", steps: []Record{r(10*time.Second, "", w1), r(20*time.Second, "0/100", Pending{})}, wantPos: "0/100", wantPend: w1, wantUntilS: 20 * time.Second},
		{name: "resolution covering the other's", steps: []Record{r(10*time.Second, "", w1), r(20*time.Second, "0/100", Pending{}), res("0/200", 7)}, wantPos: "0/200", wantUntilS: 20 * time.Second},
		{name: "resolution behind the other's keeps it", steps: []Record{r(10*time.Second, "", w1), r(20*time.Second, "0/300", Pending{}), res("0/200", 7)}, wantPos: "0/300", wantUntilS: 20 * time.Second},
		{name: "resolution incomparable is unknown", steps: []Record{r(10*time.Second, "", w1), r(20*time.Second, "0-1-5", Pending{}), res("0/200", 7)}, wantPos: "", wantUntilS: 20 * time.Second},
		{name: "pending incomparable positions is unknown", steps: []Record{r(10*time.Second, "0/100", w1), r(20*time.Second, "0-1-5", Pending{})}, wantPos: "", wantUntilS: 20 * time.Second},
		{name: "two resolutions of one writer: the later covering", steps: []Record{Record{}.Merge(res("0/100", 7).Merge(res("0/200", 9)))}, wantPos: "0/200", wantUntilS: 10 * time.Second},
		{name: "only the resolution after the mark clears it", steps: []Record{r(10*time.Second, "", Pending{Writer: 1, At: 8}), res("0/100", 7), res("0/200", 9)}, wantPos: "0/200", wantUntilS: 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Record
			for _, s := range tt.steps {
				got = got.Merge(s)
			}
			want := Record{Until: base.Add(tt.wantUntilS), Position: pos(t, tt.wantPos), Pending: tt.wantPend}
			wantRecord(t, got, true, want)
		})
	}
}

func TestRecordActive(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name  string
		until time.Time
		want  bool
	}{
		{name: "zero record", until: time.Time{}, want: false},
		{name: "past", until: now.Add(-time.Nanosecond), want: false},
		{name: "now", until: now, want: false},
		{name: "future", until: now.Add(time.Nanosecond), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Record{Until: tt.until}).Active(now); got != tt.want {
				t.Errorf("Active = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTokenRoundTrip(t *testing.T) {
	until := time.Unix(1_700_000_000, 123456789)
	tests := []struct {
		name string
		give string // position
		want string // token
	}{
		{name: "unknown position", give: "", want: "v1.1700000000123456789."},
		{name: "postgres", give: "16/B374D848", want: "v1.1700000000123456789.16/B374D848"},
		{name: "mariadb", give: "0-1-100,1-2-7", want: "v1.1700000000123456789.0-1-100,1-2-7"},
		{name: "mariadb empty", give: "mariadb:", want: "v1.1700000000123456789.mariadb:"},
		{name: "mysql tagged", give: uuidA + ":1-5:tag_a:3", want: "v1.1700000000123456789." + uuidA + ":1-5:tag_a:3"},
		{name: "mysql empty", give: "mysql:", want: "v1.1700000000123456789.mysql:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := Record{Until: until, Position: pos(t, tt.give)}
			tok := rec.Token()
			if tok != tt.want {
				t.Errorf("Token() = %q, want %q", tok, tt.want)
			}
			got, err := ParseToken(tok)
			if err != nil {
				t.Fatalf("ParseToken(%q): %v", tok, err)
			}
			wantRecord(t, got, true, rec)
			if got.Position.Kind() != rec.Position.Kind() {
				t.Errorf("kind %v, want %v", got.Position.Kind(), rec.Position.Kind())
			}
		})
	}
	if tok := (Record{}).Token(); tok != "" {
		t.Errorf("zero Record's Token() = %q, want empty", tok)
	}
}

func TestParseTokenMalformed(t *testing.T) {
	tests := []struct {
		name string
		give string
	}{
		{name: "empty", give: ""},
		{name: "no version", give: "1700000000123456789.16/B374D848"},
		{name: "other version", give: "v2.1700000000123456789.16/B374D848"},
		{name: "no position separator", give: "v1.1700000000123456789"},
		{name: "until not a number", give: "v1.soon.16/B374D848"},
		{name: "until zero", give: "v1.0.16/B374D848"},
		{name: "until negative", give: "v1.-5.16/B374D848"},
		{name: "until overflows", give: "v1.99999999999999999999.16/B374D848"},
		{name: "bad position", give: "v1.1700000000123456789.16/XYZ"},
		{name: "too long", give: "v1.1700000000123456789." + strings.Repeat("0-1-1,", 1000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := ParseToken(tt.give)
			if !errors.Is(err, ErrToken) {
				t.Errorf("ParseToken(%q) error = %v, want ErrToken", tt.give, err)
			}
			if !rec.Equal(Record{}) {
				t.Errorf("ParseToken(%q) = %v, want the zero Record", tt.give, rec)
			}
		})
	}
}
