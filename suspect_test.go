package rwsplit

import (
	"strings"
	"testing"
)

// refSuspect is suspect as it was written first, byte by byte with
// strings.EqualFold: suspect must agree with it on every input.
func refSuspect(q string) bool {
	if len(q) < 7 || q[:7] != "SELECT " && q[:7] != "select " {
		return true
	}
	if strings.IndexByte(q, '(') >= 0 || strings.IndexByte(q, ';') >= 0 {
		return true
	}
	for i := 7; i < len(q); i++ {
		if c := q[i] | 0x20; c != 'i' && c != 'f' && c != 'l' {
			continue
		}
		if p := q[i-1]; p != ' ' && p != '"' && p != '`' && p != '\n' && p != '\t' {
			continue
		}
		if c := q[i-1]; c != ' ' && c != '\n' && c != '\t' && c != ')' && c != '"' && c != '`' {
			continue
		}
		for _, w := range [...]string{"into", "for", "lock"} {
			if end := i + len(w); end <= len(q) && strings.EqualFold(q[i:end], w) &&
				(end == len(q) || q[end] == ' ' || q[end] == '\n' || q[end] == '\t' || q[end] == '(') {
				return true
			}
		}
	}
	return false
}

var suspectCases = []struct {
	name string
	give string
	want bool
}{
	{name: "gorm first", give: `SELECT * FROM "users" WHERE "users"."id" = $1 ORDER BY "users"."id" LIMIT $2`},
	{name: "mysql first", give: "SELECT * FROM `users` WHERE `users`.`id` = ? ORDER BY `users`.`id` LIMIT ?"},
	{name: "words inside names", give: `SELECT "format", "lockout", "info" FROM "users" LIMIT 1`},
	{name: "lower case", give: `select * from users`},
	{name: "not a select", give: `UPDATE "users" SET age = 1`, want: true},
	{name: "short", give: `SELECT`, want: true},
	{name: "lower-case select then upper", give: `Select * FROM t`, want: true},
	{name: "parenthesis", give: `SELECT count(*) FROM "users"`, want: true},
	{name: "semicolon", give: `SELECT 1; DELETE FROM "users"`, want: true},
	{name: "for update", give: `SELECT * FROM "users" FOR UPDATE`, want: true},
	{name: "for at the end", give: `SELECT * FROM "users" for`, want: true},
	{name: "for after a quote", give: "SELECT * FROM `users`for UPDATE", want: true},
	{name: "lock in share mode", give: "SELECT * FROM `users` LOCK IN SHARE MODE", want: true},
	{name: "into", give: `SELECT * INTO "copy" FROM "users"`, want: true},
	{name: "into after a tab, before a newline", give: "SELECT *\tInTo\ncopy FROM users", want: true},
	{name: "into before a quote", give: `SELECT * INTO"copy" FROM "users"`},
	{name: "for after a letter", give: `SELECT * FROM xfor UPDATE`},
	{name: "for after a comma", give: `SELECT a,for FROM t`},
	{name: "kelvin sign", give: "SELECT * FROM t LOC\u212a"},
}

func TestSuspect(t *testing.T) {
	for _, tt := range suspectCases {
		t.Run(tt.name, func(t *testing.T) {
			if got := suspect(tt.give); got != tt.want {
				t.Errorf("suspect(%q) = %v, want %v", tt.give, got, tt.want)
			}
			if got := refSuspect(tt.give); got != tt.want {
				t.Errorf("refSuspect(%q) = %v, want %v", tt.give, got, tt.want)
			}
		})
	}
}

// TestSuspectPositions puts each word at every offset of the 8-byte
// blocks, after and before every kind of byte, and compares with
// refSuspect.
func TestSuspectPositions(t *testing.T) {
	for _, w := range []string{"into", "INTO", "for", "For", "lock", "LOCk", "in", "fo", "lo", "f", "lockx"} {
		for pad := range 20 {
			for _, before := range []string{" ", "\t", "\n", `"`, "`", ")", "x", ","} {
				for _, after := range []string{"", " ", "\t", "\n", "(", `"`, "x", ";"} {
					q := "SELECT " + strings.Repeat("a", pad) + before + w + after + " b"
					for _, q := range []string{q, q[:len(q)-2]} {
						if got, want := suspect(q), refSuspect(q); got != want {
							t.Errorf("suspect(%q) = %v, refSuspect %v", q, got, want)
						}
					}
				}
			}
		}
	}
}

func FuzzSuspect(f *testing.F) {
	for _, tt := range suspectCases {
		f.Add(tt.give)
	}
	f.Fuzz(func(t *testing.T, q string) {
		if got, want := suspect(q), refSuspect(q); got != want {
			t.Fatalf("suspect(%q) = %v, refSuspect %v", q, got, want)
		}
		// The same text behind SELECT, which the fuzzer seldom finds.
		q = "SELECT " + q
		if got, want := suspect(q), refSuspect(q); got != want {
			t.Fatalf("suspect(%q) = %v, refSuspect %v", q, got, want)
		}
	})
}

func BenchmarkSuspect(b *testing.B) {
	q := `SELECT * FROM "bench_users" WHERE "bench_users"."id" = $1 ORDER BY "bench_users"."id" LIMIT $2`
	b.ReportAllocs()
	for b.Loop() {
		if suspect(q) {
			b.Fatal("suspect")
		}
	}
}

func BenchmarkRefSuspect(b *testing.B) {
	q := `SELECT * FROM "bench_users" WHERE "bench_users"."id" = $1 ORDER BY "bench_users"."id" LIMIT $2`
	for b.Loop() {
		if refSuspect(q) {
			b.Fatal("suspect")
		}
	}
}
