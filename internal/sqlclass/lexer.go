package sqlclass

import "strings"

// The lexer turns SQL text into tokens in one forward pass, skipping
// whitespace and comments; a token is a kind and a byte range of the
// input. It reads the text as PostgreSQL (recording in diverged any
// construct MySQL lexes differently: #, --x, nested comments, dollar
// quotes) or as MySQL/MariaDB, and stops with a failure reason on
// constructs no single reading can make safe (unterminated literals,
// backslash-quote pairs, executable comments, quotes in optimizer hints,
// U&"..." identifiers). docs/routing-classifier.md has the table.

// tokKind is the kind of a token.
type tokKind uint8

const (
	tEOF    tokKind = iota
	tError          // the lexer failed; lexer.fail says why
	tWord           // unquoted identifier or keyword
	tQuoted         // "..." or `...`: a quoted identifier (or a MySQL "string")
	tString         // '...' or $tag$...$tag$
	tNumber         // digits
	tParam          // $1
	tVar            // @name, @@name, @'name': MySQL variables (in PostgreSQL, the @ operator)
	tAssign         // :=
	tLParen         // (
	tRParen         // )
	tSemi           // ;
	tDot            // .
	tComma          // ,
	tOther          // any other operator or punctuation byte
)

// token is a kind and the byte range [start, end) of the input it covers,
// quotes included.
type token struct {
	kind       tokKind
	start, end int
}

// Byte classes.
const (
	cWordStart = 1 << iota // letters, _ and non-ASCII bytes
	cWordCont              // cWordStart, digits and $
	cSpace                 // whitespace for both servers
)

var byteClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c >= 0x80:
			t[c] = cWordStart | cWordCont
		case c >= '0' && c <= '9', c == '$':
			t[c] = cWordCont
		case c == ' ', c == '\t', c == '\n', c == '\r', c == '\f', c == '\v':
			t[c] = cSpace
		}
	}
	return t
}()

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// lexer reads tokens from s.
type lexer struct {
	s        string
	i        int    // next byte to read
	mysql    bool   // read the text as MySQL/MariaDB would (else as PostgreSQL would)
	diverged bool   // postgres mode met a construct that mysql mode reads differently
	fail     Reason // why the last tError was returned
}

// next returns the next token, skipping whitespace and comments.
func (l *lexer) next() token {
	s := l.s
	for l.i < len(s) {
		c := s[l.i]
		if byteClass[c]&cSpace != 0 {
			l.i++
			continue
		}
		if c == '-' && l.i+1 < len(s) && s[l.i+1] == '-' {
			if l.lineComment() {
				continue
			}
			break // mysql: "--x" is two minus signs
		}
		if c == '/' && l.i+1 < len(s) && s[l.i+1] == '*' {
			if !l.blockComment() {
				return token{kind: tError, start: l.i, end: l.i}
			}
			continue
		}
		if c == '#' {
			if l.mysql {
				l.skipToNewline(l.i + 1)
				continue
			}
			l.diverged = true // an operator here, a comment in MySQL
		}
		break
	}
	if l.i >= len(s) {
		return token{kind: tEOF, start: len(s), end: len(s)}
	}
	start := l.i
	c := s[start]
	switch {
	case byteClass[c]&cWordStart != 0 || (c == '$' && l.mysql):
		return l.word(start)
	case isDigit(c):
		i := start + 1
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		l.i = i
		return token{kind: tNumber, start: start, end: i}
	}
	switch c {
	case '\'':
		return l.quoted(start, '\'', tString, true)
	case '"':
		return l.quoted(start, '"', tQuoted, true)
	case '`':
		return l.quoted(start, '`', tQuoted, false)
	case '$':
		return l.dollar(start)
	case '@':
		return l.variable(start)
	case ':':
		if start+1 < len(s) && s[start+1] == '=' {
			l.i = start + 2
			return token{kind: tAssign, start: start, end: l.i}
		}
	}
	l.i = start + 1
	k := tOther
	switch c {
	case '(':
		k = tLParen
	case ')':
		k = tRParen
	case ';':
		k = tSemi
	case '.':
		k = tDot
	case ',':
		k = tComma
	}
	return token{kind: k, start: start, end: l.i}
}

// lineComment skips a "--" comment starting at l.i and reports whether it
// was one. MySQL only takes "--" as a comment when a space or control
// character (or the end of the text) follows; PostgreSQL always does.
func (l *lexer) lineComment() bool {
	s := l.s
	after := l.i + 2
	spaced := after >= len(s) || s[after] <= ' ' || s[after] == 0x7f
	if !spaced {
		if l.mysql {
			return false
		}
		l.diverged = true
	}
	l.skipToNewline(after)
	return true
}

// skipToNewline skips a line comment whose body starts at i. PostgreSQL
// ends it at \n or \r, MySQL at \n only; a lone \r is a divergence.
func (l *lexer) skipToNewline(i int) {
	s := l.s
	j := strings.IndexByte(s[i:], '\n')
	end := len(s)
	if j >= 0 {
		end = i + j
	}
	if !l.mysql {
		if k := strings.IndexByte(s[i:end], '\r'); k >= 0 {
			if i+k+1 < len(s) && s[i+k+1] != '\n' {
				l.diverged = true
			}
			end = i + k
		}
	}
	l.i = end
}

// blockComment skips a /* */ comment starting at l.i and reports whether
// it was well formed. PostgreSQL nests block comments; MySQL ends them at
// the first */.
func (l *lexer) blockComment() bool {
	s := l.s
	i := l.i + 2
	if i < len(s) && s[i] == '!' || i+1 < len(s) && (s[i] == 'M' || s[i] == 'm') && s[i+1] == '!' {
		l.fail = ReasonExecutableComment
		return false
	}
	hint := i < len(s) && s[i] == '+'
	depth := 1
	for i < len(s) {
		c := s[i]
		switch {
		case c == '*' && i+1 < len(s) && s[i+1] == '/':
			i += 2
			depth--
			if depth == 0 || l.mysql {
				l.i = i
				return true
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*' && !l.mysql:
			i += 2
			depth++
			l.diverged = true
		case hint && (c == '\'' || c == '"' || c == '`'):
			l.fail = ReasonAmbiguous
			return false
		default:
			i++
		}
	}
	l.fail = ReasonUnterminated
	return false
}

// word reads an unquoted identifier or keyword.
func (l *lexer) word(start int) token {
	s := l.s
	i := start + 1
	for i < len(s) && byteClass[s[i]]&cWordCont != 0 {
		i++
	}
	// U&"..." is a PostgreSQL identifier with Unicode escapes (whose
	// escape character UESCAPE can even change): its name is unknowable
	// here, so it is refused rather than decoded.
	if i == start+1 && (s[start] == 'U' || s[start] == 'u') && i+1 < len(s) && s[i] == '&' && s[i+1] == '"' {
		l.fail = ReasonAmbiguous
		return token{kind: tError, start: start, end: i}
	}
	l.i = i
	return token{kind: tWord, start: start, end: i}
}

// quoted reads a literal or identifier delimited by q, where a doubled q
// stands for one. If backslash is set, a backslash right before a q makes
// the readings with and without backslash escapes disagree: the lexer
// fails.
func (l *lexer) quoted(start int, q byte, k tokKind, backslash bool) token {
	s := l.s
	i := start + 1
	for {
		j := strings.IndexByte(s[i:], q)
		if j < 0 {
			l.fail = ReasonUnterminated
			return token{kind: tError, start: start, end: len(s)}
		}
		j += i
		if backslash && s[j-1] == '\\' && j-1 > start {
			l.fail = ReasonAmbiguous
			return token{kind: tError, start: start, end: j}
		}
		if j+1 < len(s) && s[j+1] == q {
			i = j + 2
			continue
		}
		l.i = j + 1
		return token{kind: k, start: start, end: l.i}
	}
}

// dollar reads what starts with $ in postgres mode: a parameter $1, a
// dollar-quoted string $tag$...$tag$, or a lone $. (In mysql mode $ starts
// an identifier and word handles it.)
func (l *lexer) dollar(start int) token {
	s := l.s
	i := start + 1
	if i < len(s) && isDigit(s[i]) {
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i < len(s) && byteClass[s[i]]&cWordCont != 0 {
			l.diverged = true // MySQL reads "$1abc" as one identifier
		}
		l.i = i
		return token{kind: tParam, start: start, end: i}
	}
	l.diverged = true // MySQL reads anything else here as an identifier
	// A tag is empty or an identifier without $.
	if i < len(s) && byteClass[s[i]]&cWordStart != 0 {
		i++
		for i < len(s) && byteClass[s[i]]&cWordCont != 0 && s[i] != '$' {
			i++
		}
	}
	if i >= len(s) || s[i] != '$' {
		l.i = start + 1
		return token{kind: tOther, start: start, end: l.i}
	}
	delim := s[start : i+1]
	body := i + 1
	j := strings.Index(s[body:], delim)
	if j < 0 {
		l.fail = ReasonUnterminated
		return token{kind: tError, start: start, end: len(s)}
	}
	l.i = body + j + len(delim)
	return token{kind: tString, start: start, end: l.i}
}

// variable reads a MySQL user or system variable: @name, @@name,
// @'name', @"name" or @`name`.
func (l *lexer) variable(start int) token {
	s := l.s
	i := start + 1
	if i < len(s) && s[i] == '@' {
		i++
	}
	if i < len(s) && (s[i] == '\'' || s[i] == '"' || s[i] == '`') {
		t := l.quoted(i, s[i], tVar, s[i] != '`')
		if t.kind == tError {
			return t
		}
		return token{kind: tVar, start: start, end: t.end}
	}
	for i < len(s) && byteClass[s[i]]&cWordCont != 0 {
		i++
	}
	l.i = i
	return token{kind: tVar, start: start, end: i}
}
