package stickiness

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRecordMerge(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	for _, tt := range mergeTests {
		t.Run(tt.name, func(t *testing.T) {
			old, give, want := tt.old.at(t, base), tt.give.at(t, base), tt.want.at(t, base)
			wantRecord(t, old.Merge(give), true, want)
			wantRecord(t, give.Merge(old), true, want) // Merge is symmetric
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
