package sqlclass

import (
	"strings"
	"testing"
)

// refFirstWord is a reference implementation, independent of the lexer:
// it skips whitespace, comments and "(" the way PostgreSQL (mysql false)
// or MySQL (mysql true) does, and returns the identifier that follows,
// upper-cased ("" if none).
func refFirstWord(s string, mysql bool) string {
	i := 0
skip:
	for i < len(s) {
		rest := s[i:]
		switch {
		case strings.ContainsRune(" \t\n\r\f\v(", rune(s[i])):
			i++
		case strings.HasPrefix(rest, "--") && (!mysql || len(rest) == 2 || rest[2] <= ' ' || rest[2] == 0x7f),
			mysql && rest[0] == '#':
			end := len(s)
			for j := i; j < len(s); j++ {
				if s[j] == '\n' || !mysql && s[j] == '\r' {
					end = j
					break
				}
			}
			i = end
		case strings.HasPrefix(rest, "/*") && mysql:
			end := strings.Index(rest[2:], "*/")
			if end < 0 {
				return ""
			}
			i += 2 + end + 2
		case strings.HasPrefix(rest, "/*"):
			depth := 0
			for {
				switch {
				case i >= len(s):
					return ""
				case strings.HasPrefix(s[i:], "/*"):
					depth++
					i += 2
				case strings.HasPrefix(s[i:], "*/"):
					depth--
					i += 2
				default:
					i++
				}
				if depth == 0 {
					break
				}
			}
		default:
			break skip
		}
	}
	// An identifier: both servers read "DELETE0" or "DELETE_x" as one word.
	j := i
	for j < len(s) && (s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' ||
		s[j] >= '0' && s[j] <= '9' || s[j] == '_' || s[j] == '$' || s[j] >= 0x80) {
		j++
	}
	return strings.ToUpper(s[i:j])
}

// writingWords start statements that are never read-only.
var writingWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`INSERT UPDATE DELETE MERGE REPLACE UPSERT CREATE ALTER DROP
		TRUNCATE RENAME GRANT REVOKE CALL DO COPY LOCK UNLOCK SET RESET LOAD HANDLER VACUUM ANALYZE
		REFRESH REINDEX CLUSTER LISTEN NOTIFY UNLISTEN PREPARE EXECUTE DEALLOCATE DECLARE FETCH
		MOVE CLOSE BEGIN COMMIT ROLLBACK ABORT END START SAVEPOINT RELEASE USE OPTIMIZE REPAIR
		FLUSH KILL PURGE DISCARD COMMENT IMPORT XA CHECKPOINT`) {
		writingWords[w] = true
	}
}

func TestRefFirstWord(t *testing.T) {
	for _, tt := range []struct {
		name  string
		give  string
		mysql bool
		want  string
	}{
		{"plain", " select 1", false, "SELECT"},
		{"parens and comments", "( -- x\n /* a /* b */ c */ (Delete", false, "DELETE"},
		{"mysql non-nested", "/* a /* b */ update", true, "UPDATE"},
		{"mysql hash", "# x\ninsert", true, "INSERT"},
		{"pg hash", "# x\ninsert", false, ""},
		{"mysql dash without space", "--x\nupdate", true, ""},
		{"pg carriage return", "-- x\rdrop", false, "DROP"},
		{"mysql carriage return", "-- x\rdrop", true, ""},
		{"unterminated", "/* x", false, ""},
		{"identifier with digit", "DELETE0 x", false, "DELETE0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := refFirstWord(tt.give, tt.mysql); got != tt.want {
				t.Errorf("refFirstWord(%q, %v) = %q, want %q", tt.give, tt.mysql, got, tt.want)
			}
		})
	}
}

func isReadReason(r Reason) bool {
	return r == ReasonSelect || r == ReasonWith || r == ReasonShow || r == ReasonExplain
}

func FuzzClassify(f *testing.F) {
	for _, tt := range pgCases {
		f.Add(tt.give)
	}
	for _, tt := range mysqlCases {
		f.Add(tt.give)
	}
	for _, s := range []string{
		"SELECT $a$ $b$ $a$", "SELECT 1 -- \r\n; x", "SELECT @@session.identity", "SELECT @`v` := 1",
		"EXPLAIN (SELECT 1)", "DESC t.c 'x';", "SELECT 1 /*/ x */", "SELECT 1 /*/*/ */ */",
		"WITH a AS (WITH b AS (SELECT 1) SELECT 1) SELECT 1", "SELECT e'\\\\' ", "((", "SELECT 1 ;\n;",
		"SHOW", "EXPLAIN", "EXPLAIN (", "EXPLAIN FORMAT", "SELECT u&'x'", "SELECT $1abc",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		c, r := Classify(sql, nil)

		// Determinism.
		if c2, r2 := Classify(sql, nil); c2 != c || r2 != r {
			t.Fatalf("Classify(%q) = %v, %v then %v, %v", sql, c, r, c2, r2)
		}
		// Read comes with a read reason, Write with a write reason.
		if r >= numReasons || (c == Read) != isReadReason(r) || c > Read {
			t.Fatalf("Classify(%q) = %v, %v", sql, c, r)
		}
		// A statement that starts with a writing keyword, for either
		// server's way of skipping comments, is never Read.
		if c == Read {
			for _, mysql := range []bool{false, true} {
				if w := refFirstWord(sql, mysql); writingWords[w] {
					t.Fatalf("Classify(%q) = read, but it starts with %s (mysql=%v)", sql, w, mysql)
				}
			}
		}
		// Leading whitespace and a leading comment change nothing.
		for _, prefix := range []string{" \n\t", "/* c */", "-- c\n"} {
			if c2, r2 := Classify(prefix+sql, nil); c2 != c || r2 != r {
				t.Fatalf("Classify(%q) = %v, %v but Classify(%q) = %v, %v", sql, c, r, prefix+sql, c2, r2)
			}
		}
		if c != Read {
			return
		}
		// Another statement, a locking clause or INTO after a read makes it
		// a write. (INTO follows a number: after "t." it would be a column.)
		for _, suffix := range []string{"\n;DELETE FROM t", "\nFOR UPDATE", "\n1 INTO @x"} {
			if c2, _ := Classify(sql+suffix, nil); c2 != Write {
				t.Fatalf("Classify(%q) = read and Classify(%q) = %v", sql, sql+suffix, c2)
			}
		}
		// When both readings end cleanly in a read, a trailing comment that
		// both servers take as one keeps the read ("#" would not do: it is an
		// operator in PostgreSQL), and an unterminated one does not.
		pg, my := readAs(sql, &builtin, false), readAs(sql, &builtin, true)
		if pg.class == Read && my.class == Read {
			for _, suffix := range []string{"\n-- c", "\n/* c */"} {
				if c2, _ := Classify(sql+suffix, nil); c2 != Read {
					t.Fatalf("Classify(%q) = read and Classify(%q) = %v", sql, sql+suffix, c2)
				}
			}
			if c2, r2 := Classify(sql+"\n/* c", nil); c2 != Write || r2 != ReasonUnterminated {
				t.Fatalf("Classify(%q) = read and Classify(%q) = %v, %v", sql, sql+"\n/* c", c2, r2)
			}
		}
	})
}
