package sqlclass

import "strings"

// Class is the verdict for one statement.
type Class uint8

const (
	// Write: the statement must run on the primary. It is the zero value:
	// unknown means primary.
	Write Class = iota
	// Read: the statement is read-only and may run on a replica.
	Read
)

func (c Class) String() string {
	switch c {
	case Write:
		return "write"
	case Read:
		return "read"
	}
	return "Class(" + itoa(int(c)) + ")"
}

// Reason says why Classify gave its verdict, for routing logs. The zero
// value is ReasonUnknown.
type Reason uint8

// Reasons. The Read reasons name the kind of statement; every other reason
// comes with Write.
const (
	// ReasonUnknown: the statement does not start with a keyword
	// (a string, a number, an operator), or its shape was not followed.
	ReasonUnknown Reason = iota
	// ReasonEmpty: nothing but whitespace, comments and ";".
	ReasonEmpty
	// ReasonSelect (Read): SELECT, VALUES or TABLE, possibly parenthesized.
	ReasonSelect
	// ReasonWith (Read): WITH [RECURSIVE] ... SELECT whose CTEs only read.
	ReasonWith
	// ReasonShow (Read): SHOW, except the SHOW statements of ReasonSessionState.
	ReasonShow
	// ReasonExplain (Read): EXPLAIN, DESCRIBE or DESC of a read query
	// without ANALYZE, or MySQL's DESCRIBE of a table.
	ReasonExplain
	// ReasonWriteKeyword: the statement starts with a keyword that is not
	// read-only (INSERT, UPDATE, SET, BEGIN, CALL, ...), or a read query
	// contains INSERT, UPDATE, DELETE, MERGE or REPLACE as a statement.
	ReasonWriteKeyword
	// ReasonLocking: FOR UPDATE, FOR NO KEY UPDATE, FOR SHARE, FOR KEY
	// SHARE or LOCK IN SHARE MODE, anywhere (subqueries included).
	ReasonLocking
	// ReasonSelectInto: INTO in a read query: PostgreSQL's SELECT INTO
	// creates a table, MySQL's SELECT ... INTO writes variables or files.
	ReasonSelectInto
	// ReasonMultiStatement: a ";" followed by anything but whitespace and
	// comments.
	ReasonMultiStatement
	// ReasonWritingCTE: WITH with a data-modifying CTE
	// (WITH x AS (DELETE ... RETURNING ...) SELECT ...) or with a main
	// statement that writes (WITH ... UPDATE ...).
	ReasonWritingCTE
	// ReasonPrimaryFunction: a call of a function of the Functions set
	// (nextval, pg_advisory_lock, GET_LOCK, LAST_INSERT_ID, ...), or
	// MariaDB's NEXT VALUE FOR / PREVIOUS VALUE FOR.
	ReasonPrimaryFunction
	// ReasonSessionState: a read whose result depends on, or that changes,
	// state of the connection: SQL_CALC_FOUND_ROWS, @var := ...,
	// @@identity, SHOW WARNINGS/ERRORS/PROFILE(S)/COUNT(*) ...
	ReasonSessionState
	// ReasonExplainAnalyze: EXPLAIN ANALYZE and EXPLAIN (ANALYZE ...), which
	// run the statement (even "ANALYZE false" is refused).
	ReasonExplainAnalyze
	// ReasonExplainWrite: EXPLAIN of a statement that is not a read query
	// (EXPLAIN UPDATE, EXPLAIN EXECUTE, ...), even without ANALYZE.
	ReasonExplainWrite
	// ReasonExecutableComment: a MySQL /*! ... */ or MariaDB /*M! ... */
	// comment, whose content MySQL runs as SQL.
	ReasonExecutableComment
	// ReasonUnterminated: an unterminated string, quoted identifier or
	// comment.
	ReasonUnterminated
	// ReasonAmbiguous: text that PostgreSQL and MySQL may lex differently
	// in a way Classify does not follow (a backslash before a closing quote,
	// quotes inside an optimizer hint, U&"..." identifiers, NUL bytes).
	ReasonAmbiguous
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonUnknown:           "unknown",
	ReasonEmpty:             "empty",
	ReasonSelect:            "select",
	ReasonWith:              "with",
	ReasonShow:              "show",
	ReasonExplain:           "explain",
	ReasonWriteKeyword:      "write-keyword",
	ReasonLocking:           "locking",
	ReasonSelectInto:        "select-into",
	ReasonMultiStatement:    "multi-statement",
	ReasonWritingCTE:        "writing-cte",
	ReasonPrimaryFunction:   "primary-function",
	ReasonSessionState:      "session-state",
	ReasonExplainAnalyze:    "explain-analyze",
	ReasonExplainWrite:      "explain-write",
	ReasonExecutableComment: "executable-comment",
	ReasonUnterminated:      "unterminated",
	ReasonAmbiguous:         "ambiguous",
}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "Reason(" + itoa(int(r)) + ")"
}

func itoa(n int) string {
	var b [3]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// Classify classifies one SQL string, which may end with one ";". f is the
// set of functions that force the primary; nil means the built-in set.
//
// Read statements: SELECT, VALUES, TABLE, SHOW, EXPLAIN/DESCRIBE/DESC
// without ANALYZE of one of these (or of a table), and WITH ... SELECT,
// after any whitespace, comments ("--", "#", nested "/* */") and opening
// parentheses. They become Write on any of: a locking clause, INTO, a
// second statement, a data-modifying CTE or main statement, a call of a
// function of f, a session-state construct (see the Reason constants).
// Keywords count only as whole, unquoted words outside strings and
// comments: "selection", for_update, "for" and 'for update' are not
// keywords.
//
// Text that PostgreSQL and MySQL lex differently (# and "--x" comments,
// nested comments, dollar quotes) is read both ways, and the verdict is
// Read only if each reading is read-only or certainly fails to parse
// (e.g. "# c\nSELECT 1" is a syntax error in PostgreSQL and a read in
// MySQL).
func Classify(sql string, f *Functions) (Class, Reason) {
	if f == nil {
		f = &builtin
	}
	// A NUL byte cannot reach PostgreSQL and ends comments early in MySQL.
	if strings.IndexByte(sql, 0) >= 0 {
		return Write, ReasonAmbiguous
	}
	pg := readAs(sql, f, false)
	if !pg.diverged || pg.class == Write && !pg.fatal {
		return pg.class, pg.reason
	}
	my := readAs(sql, f, true)
	switch {
	case pg.class == Read && (my.class == Read || my.fatal):
		return Read, pg.reason
	case my.class == Read && pg.fatal:
		return Read, my.reason
	case pg.class == Read || !my.fatal:
		return Write, my.reason
	default:
		return Write, pg.reason
	}
}

// verdict is the result of one reading of the text.
type verdict struct {
	class  Class
	reason Reason
	// fatal: a Write because the text certainly fails to parse on the
	// server this reading models, so that server runs none of it
	// (an unterminated literal; a statement that starts with an operator,
	// a literal, or a word that starts no statement and is no label).
	fatal    bool
	diverged bool // postgres reading met text that MySQL lexes differently
}

func write(r Reason, fatal bool) verdict { return verdict{class: Write, reason: r, fatal: fatal} }

// readAs reads sql as PostgreSQL (mysql false) or MySQL/MariaDB would.
func readAs(sql string, f *Functions, mysql bool) verdict {
	r := reader{l: lexer{s: sql, mysql: mysql}, f: f}
	v := r.statement()
	v.diverged = r.l.diverged
	return v
}

// reader applies the rules to the token stream of one reading.
type reader struct {
	l lexer
	f *Functions

	read          Reason // the Read reason if nothing turns the statement into a Write
	inWith        bool   // the statement starts with WITH
	semi          bool   // a ";" was seen
	pendingInsert bool   // INSERT or REPLACE was the last word: only "(" (a MySQL function) keeps it a read

	// The last two tokens, and the keywords they spell (kwNone if not a word).
	prev                token
	prevKind, prev2Kind tokKind
	prevKw, prev2Kw     kw
}

func (r *reader) text(t token) string { return r.l.s[t.start:t.end] }

func (r *reader) lexFail() verdict { return write(r.l.fail, r.l.fail == ReasonUnterminated) }

// stepFail is the verdict for a Write reason step found. An unterminated
// token is fatal only before any ";": MySQL runs the statements before
// the one it cannot parse.
func (r *reader) stepFail(reason Reason) verdict {
	return write(reason, reason == ReasonUnterminated && !r.semi)
}

// statement reads the statement's first keyword, which decides whether it
// can be a read at all, and then the rest.
func (r *reader) statement() verdict {
	// Opening parentheses: (SELECT 1) UNION (SELECT 2).
	t := r.l.next()
	paren := false
	for t.kind == tLParen {
		paren = true
		t = r.l.next()
	}
	switch t.kind {
	case tWord:
	case tError:
		return r.lexFail()
	case tEOF:
		if paren {
			return write(ReasonUnknown, true)
		}
		return write(ReasonEmpty, false)
	case tSemi:
		switch r.l.next().kind {
		case tEOF:
			return write(ReasonEmpty, false)
		case tError:
			return r.lexFail()
		}
		return write(ReasonMultiStatement, false)
	case tQuoted:
		return write(ReasonUnknown, false) // a MariaDB label `l`: BEGIN ... END
	default:
		// An operator, literal or parameter starts no statement.
		return write(ReasonUnknown, true)
	}
	k := lookupKw(r.text(t))
	switch k {
	case kwSelect, kwValues, kwTable:
		r.read = ReasonSelect
	case kwWith:
		r.read = ReasonWith
		r.inWith = true
	case kwShow:
		if paren {
			return write(ReasonWriteKeyword, false)
		}
		return r.show(t)
	case kwExplain, kwDescribe, kwDesc:
		if paren {
			return write(ReasonWriteKeyword, false)
		}
		return r.explain()
	case kwNone:
		// Not a statement keyword: a syntax error, unless it is a MariaDB
		// label ("l: BEGIN NOT ATOMIC ... END").
		t2 := r.l.next()
		if t2.kind == tError {
			return r.lexFail()
		}
		label := t2.kind == tOther && r.l.s[t2.start] == ':'
		return write(ReasonUnknown, !label)
	default:
		return write(ReasonWriteKeyword, false)
	}
	r.shift(t, k)
	return r.rest()
}

// rest applies the rules to every remaining token.
func (r *reader) rest() verdict {
	for {
		t := r.l.next()
		if reason, bad := r.step(t); bad {
			return r.stepFail(reason)
		}
		if t.kind == tEOF {
			return verdict{class: Read, reason: r.read}
		}
	}
}

// step applies the rules of read statements to one token and returns the
// Write reason the token gives, if any.
func (r *reader) step(t token) (Reason, bool) {
	if t.kind == tError {
		return r.l.fail, true
	}
	// Multi-statement: after ";" only whitespace and comments may follow.
	if r.semi && t.kind != tEOF {
		return ReasonMultiStatement, true
	}
	// INSERT or REPLACE not followed by "(": a statement, not MySQL's
	// INSERT(str, pos, len, new) or REPLACE(str, from, to) functions.
	if r.pendingInsert {
		r.pendingInsert = false
		if t.kind != tLParen {
			return r.writeReason(), true
		}
	}
	k := kwNone
	switch t.kind {
	case tSemi:
		r.semi = true
	case tLParen:
		// A call: a name (quoted or not, the last part of a qualified
		// name) followed by "(".
		if (r.prevKind == tWord || r.prevKind == tQuoted) && r.f.calls(r.name(r.prev)) {
			return ReasonPrimaryFunction, true
		}
	case tAssign:
		// MySQL SELECT @v := ...: sets a session variable.
		if r.prevKind == tVar {
			return ReasonSessionState, true
		}
	case tVar:
		// @@identity and friends: results of earlier statements of the
		// session.
		if v := r.text(t); len(v) > 2 && v[1] == '@' && sessionVar(v[2:]) {
			return ReasonSessionState, true
		}
	case tWord:
		w := r.text(t)
		// After "name." comes a name even if spelled like a keyword
		// (t.into, u.update): both servers read it so. Only after a name:
		// "1. INTO x" is SELECT INTO in PostgreSQL, and "SELECT . INTO" is
		// no qualified name.
		if r.prevKind == tDot && (r.prev2Kind == tWord && r.prev2Kw == kwNone || r.prev2Kind == tQuoted || r.prev2Kind == tVar) {
			if r.prev2Kind == tVar && sessionVar(w) { // @@session.identity
				return ReasonSessionState, true
			}
			// MariaDB's Oracle mode: seq.NEXTVAL, seq.CURRVAL.
			if strings.EqualFold(w, "nextval") || strings.EqualFold(w, "currval") {
				return ReasonPrimaryFunction, true
			}
			break
		}
		k = lookupKw(w)
		switch k {
		case kwInto:
			// SELECT ... INTO table | @var | OUTFILE | DUMPFILE.
			return ReasonSelectInto, true
		case kwUpdate:
			// FOR UPDATE, FOR NO KEY UPDATE; otherwise a writing statement
			// (WITH ... UPDATE, a CTE body).
			if r.prevKw == kwFor || r.prevKw == kwKey {
				return ReasonLocking, true
			}
			return r.writeReason(), true
		case kwShare:
			// FOR SHARE, FOR KEY SHARE, LOCK IN SHARE MODE.
			if r.prevKw == kwFor || r.prevKw == kwKey || r.prevKw == kwIn && r.prev2Kw == kwLock {
				return ReasonLocking, true
			}
		case kwNo, kwKey:
			// FOR NO KEY UPDATE, FOR KEY SHARE.
			if r.prevKw == kwFor {
				return ReasonLocking, true
			}
		case kwFor:
			// MariaDB NEXT VALUE FOR seq, PREVIOUS VALUE FOR seq.
			if r.prevKw == kwValue && (r.prev2Kw == kwNext || r.prev2Kw == kwPrevious) {
				return ReasonPrimaryFunction, true
			}
		case kwDelete, kwMerge:
			return r.writeReason(), true
		case kwInsert, kwReplace:
			r.pendingInsert = true
		case kwSQLCalcFoundRows:
			// Stores the row count for a later FOUND_ROWS(), which runs
			// on the primary.
			return ReasonSessionState, true
		}
	}
	r.shift(t, k)
	return 0, false
}

// shift records t (spelling keyword k) as the last token.
func (r *reader) shift(t token, k kw) {
	r.prev2Kind, r.prevKind = r.prevKind, t.kind
	r.prev2Kw, r.prevKw = r.prevKw, k
	r.prev = t
}

func (r *reader) writeReason() Reason {
	if r.inWith {
		return ReasonWritingCTE
	}
	return ReasonWriteKeyword
}

// name returns the name a word or quoted identifier token spells (quotes
// removed; a doubled quote inside stays doubled and so matches nothing).
func (r *reader) name(t token) string {
	if t.kind == tQuoted {
		return r.l.s[t.start+1 : t.end-1]
	}
	return r.text(t)
}

// sessionVar reports MySQL system variables that hold results of earlier
// statements of the session.
func sessionVar(name string) bool {
	return strings.EqualFold(name, "identity") || strings.EqualFold(name, "last_insert_id") ||
		strings.EqualFold(name, "warning_count") || strings.EqualFold(name, "error_count")
}

// show reads SHOW. SHOW WARNINGS, SHOW ERRORS, SHOW COUNT(*) WARNINGS and
// SHOW PROFILE(S) report on earlier statements of the session; every
// other SHOW reads.
func (r *reader) show(t token) verdict {
	r.read = ReasonShow
	r.shift(t, kwShow)
	t = r.l.next()
	switch t.kind {
	case tWord:
		switch lookupKw(r.text(t)) {
		case kwWarnings, kwErrors, kwCount, kwProfile:
			return write(ReasonSessionState, false)
		}
	case tEOF:
		return write(ReasonUnknown, true)
	}
	if reason, bad := r.step(t); bad {
		return r.stepFail(reason)
	}
	return r.rest()
}

// explain reads EXPLAIN, DESCRIBE and DESC: options, then either a read
// query (Read, if the query is) or, MySQL's table form, a table name.
// ANALYZE in any form runs the statement: Write. Explaining anything but a
// read query is Write too, even though PostgreSQL's EXPLAIN UPDATE without
// ANALYZE does not write: the conservative choice, and it keeps prepared
// statements (EXPLAIN EXECUTE) on the connection that has them.
func (r *reader) explain() verdict {
	r.read = ReasonExplain
	for {
		t := r.l.next()
		switch t.kind {
		case tError:
			return r.lexFail()
		case tQuoted:
			return r.describe()
		case tLParen:
			t2 := r.l.next()
			k2 := kwNone
			if t2.kind == tWord {
				k2 = lookupKw(r.text(t2))
			}
			if t2.kind == tLParen || isQueryStart(k2) {
				// EXPLAIN (SELECT ...): a parenthesized query.
				r.inWith = k2 == kwWith
				r.shift(t, kwNone)
				if reason, bad := r.step(t2); bad {
					return r.stepFail(reason)
				}
				return r.rest()
			}
			// PostgreSQL's option list: EXPLAIN (ANALYZE, FORMAT JSON) ...
			for ; t2.kind != tRParen; t2 = r.l.next() {
				switch t2.kind {
				case tError:
					return r.lexFail()
				case tEOF, tSemi, tLParen:
					return write(ReasonUnknown, false)
				case tWord:
					if lookupKw(r.text(t2)) == kwAnalyze {
						return write(ReasonExplainAnalyze, false)
					}
				}
			}
		case tWord:
			switch k := lookupKw(r.text(t)); k {
			case kwAnalyze:
				return write(ReasonExplainAnalyze, false)
			case kwVerbose, kwExtended, kwPartitions:
				// PostgreSQL's EXPLAIN VERBOSE; MySQL's old EXTENDED, PARTITIONS.
			case kwFormat:
				// MySQL EXPLAIN FORMAT = JSON.
				t = r.l.next()
				if t.kind == tOther && r.l.s[t.start] == '=' {
					t = r.l.next()
				}
				switch t.kind {
				case tWord, tQuoted, tString:
				case tError:
					return r.lexFail()
				default:
					return write(ReasonUnknown, false)
				}
			case kwSelect, kwValues, kwTable, kwWith:
				r.inWith = k == kwWith
				r.shift(t, k)
				return r.rest()
			case kwInto:
				// MySQL EXPLAIN FORMAT=JSON INTO @var SELECT ...
				return write(ReasonSelectInto, false)
			case kwInsert, kwUpdate, kwDelete, kwMerge, kwReplace, kwExecute, kwDeclare,
				kwCreate, kwStatement, kwFor, kwLock, kwShow, kwExplain, kwDescribe, kwDesc:
				return write(ReasonExplainWrite, false)
			default:
				return r.describe()
			}
		default:
			return write(ReasonUnknown, false)
		}
	}
}

func isQueryStart(k kw) bool {
	return k == kwSelect || k == kwValues || k == kwTable || k == kwWith
}

// describe reads the rest of MySQL's {EXPLAIN | DESCRIBE | DESC}
// tbl_name [col_name | 'wild'], the table name just read.
func (r *reader) describe() verdict {
	t := r.l.next()
	if t.kind == tDot { // db.tbl
		t = r.l.next()
		if t.kind != tWord && t.kind != tQuoted {
			if t.kind == tError {
				return r.lexFail()
			}
			return write(ReasonUnknown, false)
		}
		t = r.l.next()
	}
	if t.kind == tWord || t.kind == tQuoted || t.kind == tString {
		t = r.l.next()
	}
	if t.kind == tSemi {
		t = r.l.next()
	}
	switch t.kind {
	case tEOF:
		return verdict{class: Read, reason: ReasonExplain}
	case tError:
		return r.lexFail()
	}
	return write(ReasonUnknown, false)
}
