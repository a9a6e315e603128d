package sqlclass

import "strings"

// WriteTables appends to dst the tables that sql (one statement or several
// separated by ";") writes, and returns the extended slice. schemaWide is
// true when the statement changes the schema (DDL, GRANT, ...) or when
// WriteTables cannot tell with certainty what it writes; dst then comes
// back unchanged, and the caller must treat every table as written.
//
// Names are the last part of a qualified name (public.users gives users),
// without quotes, spelled as in the text: compare them without regard to
// case (strings.EqualFold). See docs/table-mode.md for the rules and their
// limits.
func WriteTables(sql string, dst []string) (tables []string, schemaWide bool) {
	out, ok := scanTables(sql, dst, true)
	if ok && len(out) == len(dst) && (startsWithWrite(sql, false) || startsWithWrite(sql, true)) {
		// A writing statement in a form the scanner does not follow,
		// such as one in parentheses: it writes a table we cannot name.
		return dst, true
	}
	return out, !ok
}

// startsWithWrite reports whether sql's first word, past comments,
// whitespace and opening parentheses as the server (MySQL or not) reads
// them, is one that writes rows.
func startsWithWrite(sql string, mysql bool) bool {
	l := lexer{s: sql, mysql: mysql}
	t := l.next()
	for t.kind == tLParen {
		t = l.next()
	}
	if t.kind != tWord {
		return false
	}
	w := sql[t.start:t.end]
	for _, k := range [...]string{"INSERT", "UPDATE", "DELETE", "TRUNCATE", "REPLACE", "MERGE"} {
		if strings.EqualFold(w, k) {
			return true
		}
	}
	return false
}

// ReadTables appends to dst the tables that the read query sql names in
// FROM and JOIN clauses (subqueries, CTE bodies and UNION arms included,
// CTE names and aliases excluded) and returns the extended slice. ok is
// false, with dst unchanged, when sql is not a read query or names its
// sources in a way ReadTables does not follow (LATERAL, a table function
// other than a built-in set-returning one, ...); the caller must then
// assume that sql may read any table. Names are as for WriteTables.
func ReadTables(sql string, dst []string) (tables []string, ok bool) {
	return scanTables(sql, dst, false)
}

// BaseTable returns the table that a GORM Table argument names: "users",
// "users u", "users AS u", `"users" AS "u"` and "public.users" all give
// users. Names are as for WriteTables. It returns "" for anything else (a
// subquery, several tables, a name with a doubled quote).
func BaseTable(name string) string {
	if strings.IndexByte(name, 0) >= 0 {
		return ""
	}
	pg, diverged := baseTable(name, false)
	if diverged {
		if my, _ := baseTable(name, true); my != pg {
			return ""
		}
	}
	return pg
}

func baseTable(name string, mysql bool) (string, bool) {
	l := lexer{s: name, mysql: mysql}
	t := l.next()
	if t.kind != tWord && t.kind != tQuoted {
		return "", l.diverged
	}
	last := t
	t = l.next()
	for t.kind == tDot {
		if t = l.next(); t.kind != tWord && t.kind != tQuoted {
			return "", l.diverged
		}
		last = t
		t = l.next()
	}
	if t.kind == tWord && tkOf(name[t.start:t.end]) == tkAs {
		t = l.next()
		if t.kind != tWord && t.kind != tQuoted {
			return "", l.diverged
		}
	}
	if t.kind == tWord || t.kind == tQuoted {
		t = l.next()
	}
	if t.kind != tEOF {
		return "", l.diverged
	}
	n, ok := unquote(name, last)
	if !ok {
		return "", l.diverged
	}
	return n, l.diverged
}

// unquote returns the name a word or quoted identifier spells. A quoted
// name with a doubled quote inside cannot be returned without allocating,
// and an empty one is invalid: both are refused.
func unquote(s string, t token) (string, bool) {
	if t.kind != tQuoted {
		return s[t.start:t.end], true
	}
	inner := s[t.start+1 : t.end-1]
	if inner == "" || strings.IndexByte(inner, s[t.start]) >= 0 {
		return "", false
	}
	return inner, true
}

// scanTables runs the table scanner over sql in PostgreSQL's reading and,
// if the two lex the text differently, in MySQL's too: the result is the
// union, and a failure of either is a failure.
func scanTables(sql string, dst []string, writes bool) ([]string, bool) {
	if strings.IndexByte(sql, 0) >= 0 {
		return dst, false
	}
	base := len(dst)
	s := tscan{l: lexer{s: sql}, writes: writes}
	s.run()
	if s.bad {
		return dst, false
	}
	out := s.appendTo(dst, base)
	if s.l.diverged {
		s = tscan{l: lexer{s: sql, mysql: true}, writes: writes}
		s.run()
		if s.bad {
			return dst, false
		}
		out = s.appendTo(out, base)
	}
	return out, true
}

// appendTo appends what s found to dst, but the names in dst[base:].
// dst never enters s: a caller's buffer on the stack stays there.
func (s *tscan) appendTo(dst []string, base int) []string {
	for _, n := range s.found[:s.nfound] {
		dst = appendNew(dst, base, n)
	}
	for _, n := range s.more {
		dst = appendNew(dst, base, n)
	}
	return dst
}

func appendNew(dst []string, base int, n string) []string {
	for _, have := range dst[base:] {
		if have == n {
			return dst
		}
	}
	return append(dst, n)
}

// maxFound is how many names a tscan holds before it allocates.
const maxFound = 16

const (
	maxTableDepth = 32 // nested parentheses
	maxCTEs       = 16 // CTE names in scope at once
)

// What a level expects next.
const (
	expNone     uint8 = iota
	expTable          // a table reference: after FROM, JOIN, "," in a FROM list, UPDATE, ...
	expAfter          // what follows a table reference: alias, JOIN, ON, ",", a clause
	expCTEAfter       // after a CTE body: "," and another CTE, or the main statement
)

// tlevel is the state of one parenthesis level.
type tlevel struct {
	begin  bool  // no token read yet: a statement may start here
	stmt   bool  // a statement runs at this level: FROM opens a table list
	from   bool  // in a table list (FROM, JOIN, UPDATE's and DELETE's targets)
	write  bool  // the references of the table list are written
	expect uint8 // expNone, expTable, ...
	ref    bool  // opened where a table reference was expected
	rest   bool  // COPY (query): the rest of the statement is options
	cte    int8  // 1 + index in tscan.ctes of the CTE whose body this is
	brack  int32 // depth of [ ] inside the level
}

// tcte is a CTE name and the level that defined it.
type tcte struct {
	name   string
	quoted bool
	depth  int
	live   bool // its body is closed: later references name the CTE
}

// tscan finds the tables of one reading of the text.
type tscan struct {
	l      lexer
	writes bool // collect written tables (else read tables)
	bad    bool

	found  [maxFound]string // the names found, in order
	nfound int
	more   []string // the names found past maxFound

	peeked  token
	hasPeek bool
	prev    token
	prevK   tk
	prev2   token
	prev2K  tk

	depth int
	lv    [maxTableDepth]tlevel
	ctes  [maxCTEs]tcte
	ncte  int
}

func (s *tscan) fail() { s.bad = true }

func (s *tscan) next() token {
	if s.hasPeek {
		s.hasPeek = false
		return s.peeked
	}
	return s.l.next()
}

func (s *tscan) peek() token {
	if !s.hasPeek {
		s.peeked, s.hasPeek = s.l.next(), true
	}
	return s.peeked
}

func (s *tscan) kw(t token) tk {
	if t.kind != tWord {
		return tkNone
	}
	return tkOf(s.l.s[t.start:t.end])
}

// readFail is a failure to follow a read. It only matters to ReadTables:
// what a statement writes does not depend on it.
func (s *tscan) readFail() {
	if !s.writes {
		s.fail()
	}
}

// wrote notes a write; a read query has none.
func (s *tscan) wrote() {
	if !s.writes {
		s.fail()
	}
}

func (s *tscan) run() {
	for !s.bad {
		s.depth, s.ncte = 0, 0
		s.lv[0] = tlevel{}
		s.prev, s.prevK, s.prev2, s.prev2K = token{}, tkNone, token{}, tkNone
		t := s.next()
		switch t.kind {
		case tEOF:
			return
		case tSemi:
			continue
		}
		s.top(t)
		for !s.bad {
			t = s.next()
			if t.kind == tEOF || t.kind == tSemi {
				if s.depth != 0 || s.lv[0].expect == expTable || s.lv[0].expect == expCTEAfter {
					s.fail()
				}
				if t.kind == tEOF {
					return
				}
				break
			}
			s.token(t)
		}
	}
}

// top reads the first token of a statement.
func (s *tscan) top(t token) {
	switch t.kind {
	case tLParen:
		s.token(t)
		return
	case tWord:
	default:
		s.fail()
		return
	}
	switch k := s.kw(t); k {
	case tkSelect, tkValues, tkTable, tkWith, tkInsert, tkReplace, tkUpdate, tkDelete, tkMerge:
		s.start(t, k, true)
	case tkTruncate:
		s.wrote()
		s.truncate()
	case tkCopy:
		s.wrote()
		s.copyStmt()
	case tkExplain, tkDescribe, tkDesc:
		s.wrote() // not a query ReadTables follows
		s.explain()
	case tkShow, tkStart, tkCommit, tkRollback, tkSavepoint, tkRelease, tkEnd, tkAbort:
		s.wrote()
		s.skipStatement()
	case tkBegin:
		s.wrote()
		if s.kw(s.peek()) == tkNot { // MariaDB BEGIN NOT ATOMIC ... END
			s.fail()
		}
		s.skipStatement()
	default:
		s.fail() // DDL, GRANT, SET, CALL, DO, LOCK, anything unknown
	}
}

// start reads the first keyword k of a statement at the current level.
// At the top of the text (top) INSERT and REPLACE cannot be functions.
func (s *tscan) start(t token, k tk, top bool) {
	lv := &s.lv[s.depth]
	s.shift(t, k)
	switch k {
	case tkSelect, tkValues:
		*lv = tlevel{stmt: true, ref: lv.ref, rest: lv.rest, cte: lv.cte}
	case tkTable:
		*lv = tlevel{stmt: true, expect: expTable, ref: lv.ref, rest: lv.rest, cte: lv.cte}
	case tkWith:
		s.cteItem(true)
	case tkInsert, tkReplace:
		if !top && s.peek().kind == tLParen {
			return // MySQL's INSERT(...) and REPLACE(...) functions
		}
		s.wrote()
		lv.stmt, lv.from, lv.expect = true, false, expNone
		t = s.next()
		for k := s.kw(t); k == tkLowPriority || k == tkDelayed || k == tkHighPriority || k == tkIgnore; k = s.kw(t) {
			t = s.next()
		}
		if s.kw(t) == tkInto {
			t = s.next()
		}
		s.target(t)
	case tkUpdate:
		s.wrote()
		t = s.peek()
		for k := s.kw(t); k == tkLowPriority || k == tkIgnore; k = s.kw(t) {
			s.next()
			t = s.peek()
		}
		lv.stmt, lv.from, lv.write, lv.expect = true, true, true, expTable
	case tkDelete:
		s.wrote()
		s.deleteStmt()
	case tkMerge:
		s.wrote()
		lv.stmt = true
		if t = s.next(); s.kw(t) != tkInto {
			s.fail()
			return
		}
		s.target(s.next())
	}
}

// deleteStmt reads DELETE's targets: FROM t (PostgreSQL, MySQL) or
// MySQL's multi-table t1[.*], t2[.*] FROM refs. In the multi-table forms
// every table of the FROM and USING lists counts as written: a target may
// be an alias defined there.
func (s *tscan) deleteStmt() {
	lv := &s.lv[s.depth]
	lv.stmt, lv.from, lv.write, lv.expect = true, true, true, expTable
	t := s.next()
	for k := s.kw(t); k == tkLowPriority || k == tkQuick || k == tkIgnore; k = s.kw(t) {
		t = s.next()
	}
	if s.kw(t) == tkFrom {
		return
	}
	for !s.bad {
		s.target(t)
		if t = s.next(); t.kind != tComma {
			break
		}
		t = s.next()
	}
	if k := s.kw(t); k != tkFrom && k != tkUsing {
		s.fail()
	}
}

// target reads a name starting at t and records it as written.
func (s *tscan) target(t token) {
	last, qual, ok := s.name(t)
	if !ok {
		s.fail()
		return
	}
	s.record(last, qual, true)
}

// name reads a possibly qualified name whose first part is t and returns
// its last part. MySQL's t.* ends a name.
func (s *tscan) name(t token) (last token, qualified, ok bool) {
	if t.kind != tWord && t.kind != tQuoted {
		return t, false, false
	}
	last = t
	for s.peek().kind == tDot {
		s.next()
		switch n := s.next(); {
		case n.kind == tWord || n.kind == tQuoted:
			last, qualified = n, true
		case n.kind == tOther && s.l.s[n.start] == '*':
			return last, qualified, true
		default:
			return t, false, false
		}
	}
	return last, qualified, true
}

// record adds the table t names to the result if it is of the kind
// collected and not already there. An unqualified read of a name equal to
// a CTE in scope (same spelling, same quoting) is the CTE.
func (s *tscan) record(t token, qualified, write bool) {
	if write != s.writes {
		return
	}
	n, ok := unquote(s.l.s, t)
	if !ok {
		s.fail()
		return
	}
	if !write && !qualified {
		q := t.kind == tQuoted
		for i := 0; i < s.ncte; i++ {
			if c := &s.ctes[i]; c.live && c.quoted == q && c.name == n {
				return
			}
		}
	}
	for _, have := range s.found[:s.nfound] {
		if have == n {
			return
		}
	}
	for _, have := range s.more {
		if have == n {
			return
		}
	}
	if s.nfound < maxFound {
		s.found[s.nfound] = n
		s.nfound++
		return
	}
	s.more = append(s.more, n)
}

func (s *tscan) shift(t token, k tk) {
	s.prev2, s.prev2K = s.prev, s.prevK
	s.prev, s.prevK = t, k
}

// push opens a parenthesis level.
func (s *tscan) push(lv tlevel) {
	if s.depth+1 >= maxTableDepth {
		s.fail()
		return
	}
	s.depth++
	lv.begin = true
	s.lv[s.depth] = lv
}

// pop closes a parenthesis level.
func (s *tscan) pop() {
	if s.depth == 0 {
		s.fail()
		return
	}
	c := s.lv[s.depth]
	if c.expect == expTable || c.expect == expCTEAfter {
		s.fail()
		return
	}
	for s.ncte > 0 && s.ctes[s.ncte-1].depth >= s.depth {
		s.ncte--
	}
	s.depth--
	p := &s.lv[s.depth]
	switch {
	case c.cte != 0:
		s.ctes[c.cte-1].live = true
		p.expect = expCTEAfter
	case c.ref:
		p.expect = expAfter
	case c.rest:
		s.skipStatement()
	}
}

// token applies one token of the main loop.
func (s *tscan) token(t token) {
	lv := &s.lv[s.depth]
	if lv.begin {
		lv.begin = false
		if t.kind == tWord {
			switch k := s.kw(t); k {
			case tkSelect, tkValues, tkTable, tkWith, tkInsert, tkReplace, tkUpdate, tkDelete, tkMerge:
				s.start(t, k, false)
				return
			}
		}
	}
	k := tkNone
	switch t.kind {
	case tError:
		s.fail()
	case tLParen:
		switch lv.expect {
		case expTable:
			s.tableRef(t)
		case expCTEAfter:
			s.fail()
		default:
			s.push(tlevel{})
		}
	case tRParen:
		s.pop()
	case tComma:
		if lv.brack != 0 {
			break
		}
		switch {
		case lv.expect == expCTEAfter:
			s.cteItem(false)
		case lv.expect == expTable:
			s.fail()
		case lv.from:
			lv.expect = expTable
		}
	case tWord, tQuoted:
		switch lv.expect {
		case expTable:
			s.tableRef(t)
			return
		case expCTEAfter:
			lv.expect = expNone
			switch k = s.kw(t); k {
			case tkSelect, tkValues, tkTable, tkInsert, tkReplace, tkUpdate, tkDelete, tkMerge:
				s.start(t, k, false)
			default:
				s.fail() // SEARCH, CYCLE, or not SQL
			}
			return
		case expAfter:
			k = s.afterRef(t)
		default:
			k = s.generic(t)
		}
	case tOther:
		switch s.l.s[t.start] {
		case '[':
			lv.brack++
		case ']':
			lv.brack--
		}
		fallthrough
	default:
		if lv.expect == expTable || lv.expect == expCTEAfter {
			if t.kind != tOther || s.l.s[t.start] != '*' || !lv.from {
				s.fail()
			}
		}
	}
	s.shift(t, k)
}

// tableRef reads a table reference starting at t.
func (s *tscan) tableRef(t token) {
	lv := &s.lv[s.depth]
	lv.expect = expAfter
	if t.kind == tLParen {
		if lv.write {
			s.fail()
			return
		}
		s.push(tlevel{ref: true, from: true, expect: expTable})
		return
	}
	switch s.kw(t) {
	case tkOnly:
		t = s.next()
	case tkLateral:
		if lv.write {
			s.fail()
			return
		}
		s.readFail()
		lv.expect = expTable
		return
	case tkDual:
		if !lv.write {
			return
		}
	case tkRows:
		if s.kw(s.peek()) == tkFrom { // ROWS FROM (f(), g())
			s.readFail()
			return
		}
	}
	last, qual, ok := s.name(t)
	if !ok {
		s.fail()
		return
	}
	if s.peek().kind == tLParen {
		// A function in FROM: its arguments are read as a level of their own.
		if lv.write || qual || last.kind != tWord || !setFunction(s.l.s[last.start:last.end]) {
			if lv.write {
				s.fail()
			}
			s.readFail()
		}
		return
	}
	s.record(last, qual, lv.write)
	s.shift(last, tkNone)
}

// afterRef reads a word that follows a table reference.
func (s *tscan) afterRef(t token) tk {
	lv := &s.lv[s.depth]
	if t.kind == tQuoted {
		return tkNone // an alias
	}
	switch k := s.kw(t); k {
	case tkJoin, tkStraightJoin:
		lv.expect = expTable
	case tkInner, tkLeft, tkRight, tkFull, tkOuter, tkCross, tkNatural, tkPartition, tkTablesample, tkRepeatable:
	case tkAs:
		if n := s.next(); n.kind != tWord && n.kind != tQuoted {
			s.fail()
		}
	case tkOn:
		lv.expect = expNone
	case tkUsing:
		if s.peek().kind != tLParen { // DELETE ... USING refs
			lv.expect = expTable
		}
	case tkUse, tkForce, tkIgnore:
		if pk := s.kw(s.peek()); pk == tkIndex || pk == tkKey {
			s.indexHint()
		}
	case tkWith:
		if s.kw(s.peek()) != tkOrdinality {
			s.fail()
		}
		s.next()
	case tkOffset, tkFetch, tkReturning, tkWindow, tkLock, tkLimit:
		// Not reserved in every dialect: an alias unless a clause follows.
		switch n := s.peek(); n.kind {
		case tWord:
			switch s.kw(n) {
			case tkNone, tkFirst, tkNext, tkIn, tkAll:
				return s.generic(t)
			}
		case tNumber, tParam, tOther, tVar:
			return s.generic(t)
		}
	default:
		if k.ender() || k == tkFor || k == tkFrom || k == tkInto || k.write() {
			return s.generic(t)
		}
		// An alias.
	}
	return tkNone
}

// indexHint reads the rest of a MySQL index hint after USE, FORCE or
// IGNORE: {INDEX|KEY} [FOR {JOIN|ORDER BY|GROUP BY}] (names).
func (s *tscan) indexHint() {
	s.next()
	t := s.next()
	if s.kw(t) == tkFor {
		switch s.kw(s.next()) {
		case tkJoin:
		case tkOrder, tkGroup:
			if s.kw(s.next()) != tkBy {
				s.fail()
				return
			}
		default:
			s.fail()
			return
		}
		t = s.next()
	}
	if t.kind != tLParen {
		s.fail()
		return
	}
	s.skipParens()
}

// generic reads a word outside table references and CTE lists.
func (s *tscan) generic(t token) tk {
	lv := &s.lv[s.depth]
	if t.kind != tWord {
		return tkNone
	}
	// After "name." comes a name, even if spelled like a keyword.
	if s.prev.kind == tDot && (s.prev2.kind == tWord || s.prev2.kind == tQuoted || s.prev2.kind == tVar) {
		return tkNone
	}
	k := s.kw(t)
	switch k {
	case tkSelect:
		lv.stmt, lv.from, lv.write, lv.expect = true, false, false, expNone
	case tkTable:
		switch s.prevK {
		case tkUnion, tkIntersect, tkExcept, tkAll, tkDistinct:
			lv.from, lv.write, lv.expect = false, false, expTable
		}
	case tkFrom:
		if lv.stmt && !(s.prevK == tkDistinct && (s.prev2K == tkIs || s.prev2K == tkNot)) {
			lv.from, lv.write, lv.expect = true, false, expTable
		}
	case tkJoin:
		lv.expect = expTable
	case tkStraightJoin:
		if lv.from {
			lv.expect = expTable
		}
	case tkUsing:
		if lv.stmt && s.peek().kind != tLParen { // MERGE ... USING, DELETE ... USING
			lv.from, lv.expect = true, expTable
		}
	case tkInto:
		s.into()
	case tkInsert, tkReplace:
		if s.peek().kind != tLParen && s.prevK != tkThen {
			s.fail()
		}
	case tkUpdate:
		switch s.prevK {
		case tkFor, tkKey, tkDo, tkThen:
		default:
			s.fail()
		}
	case tkDelete:
		if s.prevK != tkThen {
			s.fail()
		}
	case tkMerge:
		s.fail()
	case tkWith:
		switch s.kw(s.peek()) {
		case tkRollup, tkTies, tkTime, tkLocal, tkOrdinality, tkCheck, tkNo:
		default:
			s.cteItem(true)
		}
	case tkLateral:
		s.readFail()
	case tkFor:
		if !lv.stmt {
			break // substring(s FROM 2 FOR 3)
		}
		lv.from, lv.write, lv.expect = false, false, expNone
		if s.writes {
			break
		}
		switch s.kw(s.peek()) {
		case tkUpdate, tkShare, tkNo, tkKey:
		default:
			s.fail() // MariaDB FOR SYSTEM_TIME, or not followed
		}
	default:
		if k.ender() {
			lv.from, lv.write, lv.expect = false, false, expNone
		}
	}
	return k
}

// into reads SELECT ... INTO: a new table (PostgreSQL) or variables and
// files (MySQL).
func (s *tscan) into() {
	s.wrote()
	t := s.next()
	if t.kind == tVar {
		return
	}
	for {
		switch s.kw(t) {
		case tkOutfile, tkDumpfile:
			return
		case tkTemp, tkTemporary, tkUnlogged, tkTable:
			t = s.next()
			continue
		}
		break
	}
	s.target(t)
}

// cteItem reads one CTE up to its body's "(" (after WITH [RECURSIVE]
// when first): name [(columns)] AS [[NOT] MATERIALIZED] (.
func (s *tscan) cteItem(first bool) {
	lv := &s.lv[s.depth]
	lv.expect = expNone
	t := s.next()
	if first && s.kw(t) == tkRecursive {
		t = s.next()
	}
	if t.kind != tWord && t.kind != tQuoted || s.ncte == maxCTEs {
		s.fail()
		return
	}
	n, ok := unquote(s.l.s, t)
	if !ok {
		s.fail()
		return
	}
	s.ctes[s.ncte] = tcte{name: n, quoted: t.kind == tQuoted, depth: s.depth}
	s.ncte++
	t = s.next()
	if t.kind == tLParen {
		s.skipParens()
		t = s.next()
	}
	if s.kw(t) != tkAs {
		s.fail()
		return
	}
	t = s.next()
	if s.kw(t) == tkNot {
		t = s.next()
	}
	if s.kw(t) == tkMaterialized {
		t = s.next()
	}
	if t.kind != tLParen {
		s.fail()
		return
	}
	s.push(tlevel{cte: int8(s.ncte)})
}

// skipParens skips to the ")" that closes a "(" just read.
func (s *tscan) skipParens() {
	for depth := 1; depth > 0; {
		switch s.next().kind {
		case tLParen:
			depth++
		case tRParen:
			depth--
		case tEOF, tError:
			s.fail()
			return
		}
	}
}

// skipStatement skips to the end of the statement; the ";" or the end is
// left for the main loop.
func (s *tscan) skipStatement() {
	for {
		switch s.peek().kind {
		case tEOF, tSemi:
			return
		case tError:
			s.fail()
			return
		}
		s.next()
	}
}

// truncate reads TRUNCATE [TABLE] [ONLY] t [*], ... [RESTART|CONTINUE
// IDENTITY] [RESTRICT]. CASCADE truncates the tables that reference them
// too, which are not named: schema-wide.
func (s *tscan) truncate() {
	t := s.next()
	if s.kw(t) == tkTable {
		t = s.next()
	}
	for !s.bad {
		if s.kw(t) == tkOnly {
			t = s.next()
		}
		s.target(t)
		if n := s.peek(); n.kind == tOther && s.l.s[n.start] == '*' {
			s.next()
		}
		if s.peek().kind != tComma {
			break
		}
		s.next()
		t = s.next()
	}
	for !s.bad {
		switch t := s.peek(); {
		case t.kind == tEOF || t.kind == tSemi:
			return
		case s.kw(t) == tkRestart || s.kw(t) == tkContinue || s.kw(t) == tkIdentity || s.kw(t) == tkRestrict:
			s.next()
		default:
			s.fail()
		}
	}
}

// copyStmt reads PostgreSQL's COPY: COPY t [(columns)] FROM writes t;
// COPY t TO and COPY (query) TO write nothing, unless the query does.
func (s *tscan) copyStmt() {
	t := s.next()
	if t.kind == tLParen {
		s.push(tlevel{rest: true})
		return
	}
	last, qual, ok := s.name(t)
	if !ok {
		s.fail()
		return
	}
	t = s.next()
	if t.kind == tLParen {
		s.skipParens()
		t = s.next()
	}
	switch s.kw(t) {
	case tkFrom:
		s.record(last, qual, true)
	case tkTo:
	default:
		s.fail()
	}
	s.skipStatement()
}

// explain reads EXPLAIN, DESCRIBE and DESC options, then the statement
// explained: its writes count, with or without ANALYZE. MySQL's table form
// (DESC t) writes nothing.
func (s *tscan) explain() {
	analyze := false
	for !s.bad {
		t := s.next()
		switch t.kind {
		case tLParen:
			switch k := s.kw(s.peek()); {
			case k == tkSelect || k == tkWith || k == tkValues || k == tkTable || s.peek().kind == tLParen:
				s.push(tlevel{})
				return
			}
			for t = s.next(); t.kind != tRParen; t = s.next() {
				switch t.kind {
				case tEOF, tError, tSemi, tLParen:
					s.fail()
					return
				}
				if s.kw(t) == tkAnalyze {
					analyze = true
				}
			}
			continue
		case tWord:
		case tQuoted:
			s.skipStatement()
			return
		default:
			s.fail()
			return
		}
		switch k := s.kw(t); k {
		case tkAnalyze:
			analyze = true
		case tkVerbose, tkExtended, tkPartitions:
		case tkFormat:
			if n := s.next(); n.kind == tOther && s.l.s[n.start] == '=' {
				s.next()
			}
		case tkSelect, tkValues, tkTable, tkWith, tkInsert, tkReplace, tkUpdate, tkDelete, tkMerge:
			s.start(t, k, true)
			return
		default:
			if analyze {
				s.fail() // EXPLAIN ANALYZE EXECUTE, CREATE TABLE AS, ...
				return
			}
			s.skipStatement()
			return
		}
	}
}

// setFunction reports built-in set-returning functions that read no
// table, which may stand in FROM.
func setFunction(name string) bool {
	for _, f := range setFunctions {
		if strings.EqualFold(name, f) {
			return true
		}
	}
	return false
}

var setFunctions = [...]string{
	"generate_series", "generate_subscripts", "unnest", "regexp_matches", "regexp_split_to_table",
	"string_to_table", "json_each", "json_each_text", "jsonb_each", "jsonb_each_text",
	"json_array_elements", "json_array_elements_text", "jsonb_array_elements", "jsonb_array_elements_text",
	"json_object_keys", "jsonb_object_keys", "json_to_record", "jsonb_to_record",
	"json_to_recordset", "jsonb_to_recordset", "json_table",
}

// ender reports words that end a table list: the clauses that follow
// FROM, and the statements that follow a CTE list.
func (k tk) ender() bool {
	switch k {
	case tkWhere, tkGroup, tkHaving, tkWindow, tkOrder, tkLimit, tkOffset, tkFetch, tkUnion,
		tkIntersect, tkExcept, tkReturning, tkSet, tkValues, tkSelect, tkLock, tkWhen:
		return true
	}
	return false
}

func (k tk) write() bool {
	return k == tkInsert || k == tkReplace || k == tkUpdate || k == tkDelete || k == tkMerge
}

// tkSlots is an open-addressing hash table of tkWords (index + 1, 0 for an
// empty slot), with the hash of the classifier's keywords.
var tkSlots = func() (t [kwTableSize]uint8) {
	for i, e := range tkWords {
		h := kwHash(e.word)
		for t[h] != 0 {
			h = (h + 1) % kwTableSize
		}
		t[h] = uint8(i + 1)
	}
	return t
}()

const maxTkLen = 13 // straight_join, high_priority

// tkOf returns the word w spells, case-insensitively, without allocating.
func tkOf(w string) tk {
	n := len(w)
	if n < 2 || n > maxTkLen {
		return tkNone
	}
	for h := kwHash(w); tkSlots[h] != 0; h = (h + 1) % kwTableSize {
		e := &tkWords[tkSlots[h]-1]
		if len(e.word) == n && equalLower(w, e.word) {
			return e.tk
		}
	}
	return tkNone
}

// tk identifies the words the table scanner reacts to.
type tk uint8

const (
	tkNone tk = iota
	tkSelect
	tkValues
	tkTable
	tkWith
	tkInsert
	tkReplace
	tkUpdate
	tkDelete
	tkMerge
	tkTruncate
	tkCopy
	tkExplain
	tkDescribe
	tkDesc
	tkShow
	tkStart
	tkCommit
	tkRollback
	tkSavepoint
	tkRelease
	tkEnd
	tkAbort
	tkBegin
	tkNot
	tkLowPriority
	tkDelayed
	tkHighPriority
	tkIgnore
	tkInto
	tkQuick
	tkFrom
	tkUsing
	tkOnly
	tkLateral
	tkDual
	tkRows
	tkJoin
	tkStraightJoin
	tkInner
	tkLeft
	tkRight
	tkFull
	tkOuter
	tkCross
	tkNatural
	tkPartition
	tkTablesample
	tkRepeatable
	tkAs
	tkOn
	tkUse
	tkForce
	tkIndex
	tkKey
	tkOrdinality
	tkOffset
	tkFetch
	tkReturning
	tkWindow
	tkLock
	tkLimit
	tkFirst
	tkNext
	tkIn
	tkAll
	tkOrder
	tkGroup
	tkBy
	tkUnion
	tkIntersect
	tkExcept
	tkDistinct
	tkIs
	tkThen
	tkDo
	tkRollup
	tkTies
	tkTime
	tkLocal
	tkCheck
	tkNo
	tkShare
	tkOutfile
	tkDumpfile
	tkTemp
	tkTemporary
	tkUnlogged
	tkRecursive
	tkMaterialized
	tkRestart
	tkContinue
	tkIdentity
	tkRestrict
	tkTo
	tkAnalyze
	tkVerbose
	tkExtended
	tkPartitions
	tkFormat
	tkWhere
	tkHaving
	tkSet
	tkWhen
	tkFor
)

// tkWords spells them in lower case.
var tkWords = [...]struct {
	word string
	tk   tk
}{
	{"select", tkSelect},
	{"values", tkValues},
	{"table", tkTable},
	{"with", tkWith},
	{"insert", tkInsert},
	{"replace", tkReplace},
	{"update", tkUpdate},
	{"delete", tkDelete},
	{"merge", tkMerge},
	{"truncate", tkTruncate},
	{"copy", tkCopy},
	{"explain", tkExplain},
	{"describe", tkDescribe},
	{"desc", tkDesc},
	{"show", tkShow},
	{"start", tkStart},
	{"commit", tkCommit},
	{"rollback", tkRollback},
	{"savepoint", tkSavepoint},
	{"release", tkRelease},
	{"end", tkEnd},
	{"abort", tkAbort},
	{"begin", tkBegin},
	{"not", tkNot},
	{"low_priority", tkLowPriority},
	{"delayed", tkDelayed},
	{"high_priority", tkHighPriority},
	{"ignore", tkIgnore},
	{"into", tkInto},
	{"quick", tkQuick},
	{"from", tkFrom},
	{"using", tkUsing},
	{"only", tkOnly},
	{"lateral", tkLateral},
	{"dual", tkDual},
	{"rows", tkRows},
	{"join", tkJoin},
	{"straight_join", tkStraightJoin},
	{"inner", tkInner},
	{"left", tkLeft},
	{"right", tkRight},
	{"full", tkFull},
	{"outer", tkOuter},
	{"cross", tkCross},
	{"natural", tkNatural},
	{"partition", tkPartition},
	{"tablesample", tkTablesample},
	{"repeatable", tkRepeatable},
	{"as", tkAs},
	{"on", tkOn},
	{"use", tkUse},
	{"force", tkForce},
	{"index", tkIndex},
	{"key", tkKey},
	{"ordinality", tkOrdinality},
	{"offset", tkOffset},
	{"fetch", tkFetch},
	{"returning", tkReturning},
	{"window", tkWindow},
	{"lock", tkLock},
	{"limit", tkLimit},
	{"first", tkFirst},
	{"next", tkNext},
	{"in", tkIn},
	{"all", tkAll},
	{"order", tkOrder},
	{"group", tkGroup},
	{"by", tkBy},
	{"union", tkUnion},
	{"intersect", tkIntersect},
	{"except", tkExcept},
	{"distinct", tkDistinct},
	{"is", tkIs},
	{"then", tkThen},
	{"do", tkDo},
	{"rollup", tkRollup},
	{"ties", tkTies},
	{"time", tkTime},
	{"local", tkLocal},
	{"check", tkCheck},
	{"no", tkNo},
	{"share", tkShare},
	{"outfile", tkOutfile},
	{"dumpfile", tkDumpfile},
	{"temp", tkTemp},
	{"temporary", tkTemporary},
	{"unlogged", tkUnlogged},
	{"recursive", tkRecursive},
	{"materialized", tkMaterialized},
	{"restart", tkRestart},
	{"continue", tkContinue},
	{"identity", tkIdentity},
	{"restrict", tkRestrict},
	{"to", tkTo},
	{"analyze", tkAnalyze},
	{"verbose", tkVerbose},
	{"extended", tkExtended},
	{"partitions", tkPartitions},
	{"format", tkFormat},
	{"where", tkWhere},
	{"having", tkHaving},
	{"set", tkSet},
	{"when", tkWhen},
	{"for", tkFor},
	{"analyse", tkAnalyze},
}
