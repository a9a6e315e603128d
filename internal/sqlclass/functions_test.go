package sqlclass

import (
	"errors"
	"strings"
	"testing"
)

func TestNewFunctionsErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		give string
	}{
		{"empty", ""},
		{"space", " "},
		{"inner space", "audit log"},
		{"leading space", " audit_log"},
		{"parentheses", "audit_log()"},
		{"trailing dot", "app."},
		{"leading dot", ".audit_log"},
		{"double dot", "app..audit_log"},
		{"leading digit", "1fn"},
		{"dash", "audit-log"},
		{"quoted", `"audit_log"`},
		{"backticks", "`audit_log`"},
		{"semicolon", "fn;drop"},
		{"non-ascii", "fünf"},
		{"too long", strings.Repeat("a", 65)},
		{"too long qualifier", strings.Repeat("a", 65) + ".fn"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewFunctions("ok_fn", tt.give)
			if !errors.Is(err, ErrFunctionName) {
				t.Errorf("NewFunctions(%q) error = %v, want %v", tt.give, err, ErrFunctionName)
			}
			if f != nil {
				t.Errorf("NewFunctions(%q) returned a set with an error", tt.give)
			}
		})
	}
}

func TestNewFunctionsValid(t *testing.T) {
	for _, give := range []string{"a", "_x", "a$b", "App.Fn", "db.schema.fn", strings.Repeat("a", 64)} {
		if _, err := NewFunctions(give); err != nil {
			t.Errorf("NewFunctions(%q): %v", give, err)
		}
	}
}

func TestUserFunctions(t *testing.T) {
	f, err := NewFunctions("audit_log", "app.touch_user")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		give   string
		want   Class
		reason Reason
	}{
		{"unqualified", `SELECT audit_log('x')`, Write, ReasonPrimaryFunction},
		{"qualified call of unqualified name", `SELECT app.audit_log('x')`, Write, ReasonPrimaryFunction},
		{"quoted qualified", `SELECT "app"."audit_log"($1)`, Write, ReasonPrimaryFunction},
		{"backticks", "SELECT `app`.`audit_log`(?)", Write, ReasonPrimaryFunction},
		{"upper case", `SELECT AUDIT_LOG(1)`, Write, ReasonPrimaryFunction},
		{"in from", `SELECT * FROM audit_log('x') a`, Write, ReasonPrimaryFunction},
		{"qualified name called unqualified", `SELECT touch_user(1)`, Write, ReasonPrimaryFunction},
		{"qualified name called qualified", `SELECT app.touch_user(1)`, Write, ReasonPrimaryFunction},
		{"qualified name called in other schema", `SELECT other.touch_user(1)`, Write, ReasonPrimaryFunction},
		{"built-ins kept", `SELECT nextval('s')`, Write, ReasonPrimaryFunction},
		{"column of same name", `SELECT audit_log FROM t`, Read, ReasonSelect},
		{"in string", `SELECT 'audit_log(1)'`, Read, ReasonSelect},
		{"in comment", "SELECT 1 -- audit_log(1)", Read, ReasonSelect},
		{"longer name", `SELECT audit_logs(1)`, Read, ReasonSelect},
		{"qualifier only", `SELECT app.other(1)`, Read, ReasonSelect},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if c, r := Classify(tt.give, f); c != tt.want || r != tt.reason {
				t.Errorf("Classify(%q) = %v, %v; want %v, %v", tt.give, c, r, tt.want, tt.reason)
			}
		})
	}
}

// PostgreSQL truncates identifiers to 63 bytes, at a character boundary.
func TestUserFunctionTruncation(t *testing.T) {
	f63, h62, g61 := strings.Repeat("f", 63), strings.Repeat("h", 62), strings.Repeat("g", 61)
	f, err := NewFunctions(f63, h62, g61)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		give string
		want Class
	}{
		{"exact", "SELECT " + f63 + "(1)", Write},
		{"truncated to 63", "SELECT " + f63 + "xyz(1)", Write},
		// é is bytes 62-63: PostgreSQL clips the name to the 62 bytes before it.
		{"clipped before a two-byte character", "SELECT " + h62 + "éabc(1)", Write},
		// PostgreSQL truncates to g61 + "xy", not g61: a conservative over-match.
		{"over-match of a shorter name", "SELECT " + g61 + "xyzzyzzy(1)", Write},
		{"shorter than a name", "SELECT " + f63[:62] + "(1)", Read},
		{"long other name", "SELECT " + strings.Repeat("k", 80) + "(1)", Read},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if c, _ := Classify(tt.give, f); c != tt.want {
				t.Errorf("Classify(%q) = %v, want %v", tt.give, c, tt.want)
			}
		})
	}
}

// A nil set and NewFunctions() without names are the built-in set.
func TestBuiltinFunctions(t *testing.T) {
	empty, err := NewFunctions()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		give string
		want Class
	}{
		{"user function unknown", `SELECT audit_log('x')`, Read},
		{"nextval", `SELECT nextval('s')`, Write},
		{"advisory prefix", `SELECT pg_advisory_xact_lock(1)`, Write},
		{"get_lock", `SELECT get_lock('x', 1)`, Write},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, f := range []*Functions{nil, empty} {
				if c, _ := Classify(tt.give, f); c != tt.want {
					t.Errorf("Classify(%q, %p) = %v, want %v", tt.give, f, c, tt.want)
				}
			}
		})
	}
}
