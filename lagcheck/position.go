package lagcheck

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// PositionKind says which database a Position comes from.
type PositionKind uint8

// Kinds of Position.
const (
	// NoPosition is the kind of the zero Position: unknown.
	NoPosition PositionKind = iota
	// PostgresLSN is a PostgreSQL WAL location, "16/B374D848".
	PostgresLSN
	// MariaDBGTID is a MariaDB GTID position: one domain-server-seq per
	// replication domain, "0-1-100,1-2-7".
	MariaDBGTID
	// MySQLGTID is a MySQL GTID set, "uuid:1-100:102-110,uuid2:1-5"
	// (tagged GTIDs of MySQL 8.3+, "uuid:tag:1-5", included).
	MySQLGTID
)

func (k PositionKind) String() string {
	switch k {
	case NoPosition:
		return "none"
	case PostgresLSN:
		return "postgres-lsn"
	case MariaDBGTID:
		return "mariadb-gtid"
	case MySQLGTID:
		return "mysql-gtid"
	}
	return "PositionKind(" + strconv.Itoa(int(k)) + ")"
}

// Position is a replication position: how much of the primary's history a
// server has. Positions of one kind can be compared with Covers, which is
// what causal ("read your writes") routing needs: take the primary's
// position after a write (Checker.PrimaryPosition), and read from a
// replica only when Checker.Covers says it has replayed that far.
//
// The zero Position means "unknown". It covers nothing and nothing covers
// it: a caller holding a zero target position must read from the primary
// (test it with IsZero). An empty GTID set is not the zero Position: it is
// a known position (a primary that has logged nothing yet), covered by
// every position of its kind.
//
// A Position is immutable and safe to share between goroutines; String and
// ParsePosition round-trip, so it can be stored in a cookie or in Redis.
type Position struct {
	kind PositionKind
	// A MariaDB position of one domain, the common case, is held inline
	// (one, domain, server, and the seq in lsn) and takes no allocation;
	// one of several domains is in maria. Whatever makes a MariaDB
	// position makes the inline form for one domain, but the methods
	// treat both forms alike (see gtids).
	one            bool
	domain, server uint32
	lsn            uint64       // PostgreSQL: the LSN; MariaDB, one domain: the seq
	maria          *[]mariaGTID // MariaDB, several domains: sorted by domain, one per domain
	mysql          []gtidRange  // sorted by (uuid, tag, lo), merged, disjoint
}

type mariaGTID struct {
	domain, server uint32
	seq            uint64
}

// gtidRange is the GTIDs uuid[:tag]:lo-hi of a MySQL GTID set, inclusive.
type gtidRange struct {
	uuid   [16]byte
	tag    string
	lo, hi uint64
}

// LSNPosition returns the Position of a PostgreSQL WAL location.
func LSNPosition(lsn uint64) Position { return Position{kind: PostgresLSN, lsn: lsn} }

// Kind says which database the position comes from.
func (p Position) Kind() PositionKind { return p.kind }

// IsZero reports whether p is the zero (unknown) Position.
func (p Position) IsZero() bool { return p.kind == NoPosition }

// LSN returns the WAL location of a PostgreSQL position.
func (p Position) LSN() (uint64, bool) { return p.lsn, p.kind == PostgresLSN }

// MariaDBPosition returns the MariaDB GTID position of one replication
// domain, "domain-server-seq": MariaDBPosition(0, 1, 100) is the position
// ParseMariaDBGTID makes of "0-1-100". It does not allocate.
func MariaDBPosition(domain, server uint32, seq uint64) Position {
	return Position{kind: MariaDBGTID, one: true, domain: domain, server: server, lsn: seq}
}

// MariaDB returns the GTID of a MariaDB position of exactly one domain,
// the inverse of MariaDBPosition. It is false for every other position,
// MariaDB positions of no or several domains included.
func (p Position) MariaDB() (domain, server uint32, seq uint64, ok bool) {
	if !p.one {
		return 0, 0, 0, false
	}
	return p.domain, p.server, p.lsn, true
}

// gtids returns the GTIDs of a MariaDB position, sorted by domain, whatever
// its form. The GTID of a one-domain position is put in buf, so that it
// does not allocate.
func (p *Position) gtids(buf *[1]mariaGTID) []mariaGTID {
	switch {
	case p.one:
		buf[0] = mariaGTID{domain: p.domain, server: p.server, seq: p.lsn}
		return buf[:]
	case p.maria != nil:
		return *p.maria
	}
	return nil
}

// Covers reports whether a server at position p has everything a server
// at position q has:
//   - PostgreSQL: p's LSN ≥ q's LSN;
//   - MariaDB: for every domain in q, p has that domain with a sequence
//     number ≥ q's (server ids are ignored: with gtid_strict_mode sequence
//     numbers grow within a domain whoever the primary);
//   - MySQL: q's GTID set is a subset of p's.
//
// Positions of different kinds never cover each other, and the zero
// Position neither covers nor is covered. Covers does not allocate.
func (p Position) Covers(q Position) bool {
	if p.kind != q.kind || p.kind == NoPosition {
		return false
	}
	switch p.kind {
	case PostgresLSN:
		return p.lsn >= q.lsn
	case MariaDBGTID:
		if p.one && q.one { // the common case
			return p.domain == q.domain && p.lsn >= q.lsn
		}
		var pbuf, qbuf [1]mariaGTID
		pg := p.gtids(&pbuf)
		i := 0
		for _, g := range q.gtids(&qbuf) {
			for i < len(pg) && pg[i].domain < g.domain {
				i++
			}
			if i == len(pg) || pg[i].domain != g.domain || pg[i].seq < g.seq {
				return false
			}
		}
		return true
	case MySQLGTID:
		i := 0
		for _, r := range q.mysql {
			// Ranges are disjoint and sorted, so at most one range of p
			// can hold r, and p's cursor never moves back.
			for i < len(p.mysql) {
				c := cmpSID(&p.mysql[i], &r)
				if c > 0 || (c == 0 && p.mysql[i].hi >= r.lo) {
					break
				}
				i++
			}
			if i == len(p.mysql) || cmpSID(&p.mysql[i], &r) != 0 || p.mysql[i].lo > r.lo || p.mysql[i].hi < r.hi {
				return false
			}
		}
		return true
	}
	return false
}

// Behind returns how far p is behind q: the bytes of WAL q has and p has
// not (PostgreSQL), or the number of transactions q has and p has not
// (MariaDB: summed over domains; MySQL: the size of q minus p). It is 0
// when p covers q, and false when the positions cannot be compared.
func (p Position) Behind(q Position) (int64, bool) {
	if p.kind != q.kind || p.kind == NoPosition {
		return 0, false
	}
	var n uint64
	switch p.kind {
	case PostgresLSN:
		if q.lsn > p.lsn {
			n = q.lsn - p.lsn
		}
	case MariaDBGTID:
		var pbuf, qbuf [1]mariaGTID
		pg := p.gtids(&pbuf)
		i := 0
		for _, g := range q.gtids(&qbuf) {
			for i < len(pg) && pg[i].domain < g.domain {
				i++
			}
			have := uint64(0)
			if i < len(pg) && pg[i].domain == g.domain {
				have = pg[i].seq
			}
			if g.seq > have {
				n = addSat(n, g.seq-have)
			}
		}
	case MySQLGTID:
		var total, common uint64
		for _, r := range q.mysql {
			total = addSat(total, r.hi-r.lo+1)
		}
		i, j := 0, 0
		for i < len(p.mysql) && j < len(q.mysql) {
			a, b := &p.mysql[i], &q.mysql[j]
			switch c := cmpSID(a, b); {
			case c < 0:
				i++
			case c > 0:
				j++
			default:
				if lo, hi := max(a.lo, b.lo), min(a.hi, b.hi); lo <= hi {
					common = addSat(common, hi-lo+1)
				}
				if a.hi < b.hi {
					i++
				} else {
					j++
				}
			}
		}
		n = total - min(common, total)
	}
	return int64(min(n, math.MaxInt64)), true
}

func addSat(a, b uint64) uint64 {
	if a+b < a {
		return math.MaxUint64
	}
	return a + b
}

// cmpSID orders GTID ranges by source: uuid, then tag.
func cmpSID(a, b *gtidRange) int {
	if a.uuid != b.uuid {
		return bytes.Compare(a.uuid[:], b.uuid[:])
	}
	return strings.Compare(a.tag, b.tag)
}

// Equal reports whether p and q are the same position.
func (p Position) Equal(q Position) bool {
	if p.kind != q.kind {
		return false
	}
	switch p.kind {
	case PostgresLSN:
		return p.lsn == q.lsn
	case MariaDBGTID:
		var pbuf, qbuf [1]mariaGTID
		return slices.Equal(p.gtids(&pbuf), q.gtids(&qbuf))
	case MySQLGTID:
		return slices.Equal(p.mysql, q.mysql)
	}
	return true
}

// String formats p in the database's own notation: "16/B374D848",
// "0-1-100,1-2-7", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7". GTID sets
// come out canonical (sorted, merged, lower case, no blanks). The zero
// Position is "", and the empty GTID sets, which the notation cannot tell
// apart, are "mariadb:" and "mysql:".
func (p Position) String() string {
	switch p.kind {
	case PostgresLSN:
		return formatLSN(p.lsn)
	case MariaDBGTID:
		var buf [1]mariaGTID
		gs := p.gtids(&buf)
		if len(gs) == 0 {
			return "mariadb:"
		}
		var b strings.Builder
		for i, g := range gs {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%d-%d-%d", g.domain, g.server, g.seq)
		}
		return b.String()
	case MySQLGTID:
		if len(p.mysql) == 0 {
			return "mysql:"
		}
		var b strings.Builder
		for i := range p.mysql {
			r := &p.mysql[i]
			newUUID := i == 0 || r.uuid != p.mysql[i-1].uuid
			if newUUID {
				if i > 0 {
					b.WriteByte(',')
				}
				writeUUID(&b, r.uuid)
			}
			if r.tag != "" && (newUUID || r.tag != p.mysql[i-1].tag) {
				b.WriteByte(':')
				b.WriteString(r.tag)
			}
			b.WriteByte(':')
			b.WriteString(strconv.FormatUint(r.lo, 10))
			if r.hi != r.lo {
				b.WriteByte('-')
				b.WriteString(strconv.FormatUint(r.hi, 10))
			}
		}
		return b.String()
	}
	return ""
}

// MarshalText implements encoding.TextMarshaler with String's notation.
func (p Position) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParsePosition.
func (p *Position) UnmarshalText(b []byte) error {
	q, err := ParsePosition(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}

// ErrBadPosition is wrapped by every error of the Parse functions.
var ErrBadPosition = errors.New("lagcheck: malformed replication position")

func badPosition(s, why string) error {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return fmt.Errorf("%w %q: %s", ErrBadPosition, s, why)
}

// ParsePosition parses what Position.String returns. It tells the kinds
// apart by their notation: "" is the zero Position, a "/" makes an LSN, a
// ":" a MySQL GTID set, and anything else a MariaDB GTID position. The
// prefixes "pg:", "mariadb:" and "mysql:" name the kind explicitly (they
// are needed for the empty GTID sets). Blanks around the input and around
// GTID set entries are ignored.
func ParsePosition(s string) (Position, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Position{}, nil
	case strings.HasPrefix(s, "pg:"):
		return ParseLSN(s[len("pg:"):])
	case strings.HasPrefix(s, "mariadb:"):
		return ParseMariaDBGTID(s[len("mariadb:"):])
	case strings.HasPrefix(s, "mysql:"):
		return ParseMySQLGTIDSet(s[len("mysql:"):])
	case strings.Contains(s, "/"):
		return ParseLSN(s)
	case strings.Contains(s, ":"):
		return ParseMySQLGTIDSet(s)
	}
	return ParseMariaDBGTID(s)
}

// ParseLSN parses a PostgreSQL LSN as pg_lsn prints it: two hexadecimal
// numbers of up to 8 digits, "16/B374D848".
func ParseLSN(s string) (Position, error) {
	s = strings.TrimSpace(s)
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || !isHex(hi, 8) || !isHex(lo, 8) {
		return Position{}, badPosition(s, "want an LSN like 16/B374D848")
	}
	h, _ := strconv.ParseUint(hi, 16, 32)
	l, _ := strconv.ParseUint(lo, 16, 32)
	return LSNPosition(h<<32 | l), nil
}

func isHex(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if hexVal(s[i]) < 0 {
			return false
		}
	}
	return true
}

func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func formatLSN(v uint64) string {
	return strings.ToUpper(strconv.FormatUint(v>>32, 16) + "/" + strconv.FormatUint(v&0xffffffff, 16))
}

// ParseMariaDBGTID parses a MariaDB GTID position as @@gtid_binlog_pos and
// @@gtid_slave_pos print it: comma-separated domain-server-seq triples.
// The empty string is the empty position. When a domain appears twice (as
// in @@gtid_binlog_state), the higher sequence number is kept.
func ParseMariaDBGTID(s string) (Position, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return mariaPosition(nil), nil
	}
	var buf [4]mariaGTID // on the stack: one domain takes no allocation
	gs := buf[:0]
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		d, rest, ok1 := strings.Cut(part, "-")
		sv, sq, ok2 := strings.Cut(rest, "-")
		domain, err1 := parseDec(d, 32)
		server, err2 := parseDec(sv, 32)
		seq, err3 := parseDec(sq, 64)
		if !ok1 || !ok2 || err1 != nil || err2 != nil || err3 != nil {
			return Position{}, badPosition(s, "want domain-server-seq entries like 0-1-100")
		}
		gs = append(gs, mariaGTID{domain: uint32(domain), server: uint32(server), seq: seq})
	}
	slices.SortFunc(gs, func(a, b mariaGTID) int {
		return cmp.Or(cmp.Compare(a.domain, b.domain), cmp.Compare(a.seq, b.seq), cmp.Compare(a.server, b.server))
	})
	// Keep the last (highest seq) entry of each domain.
	out := gs[:0]
	for i, g := range gs {
		if i+1 < len(gs) && gs[i+1].domain == g.domain {
			continue
		}
		out = append(out, g)
	}
	return mariaPosition(out), nil
}

// mariaPosition returns the MariaDB position of gs (sorted by domain, one
// per domain) in its normal form: inline for one domain, else a copy of
// gs.
func mariaPosition(gs []mariaGTID) Position {
	switch len(gs) {
	case 0:
		return Position{kind: MariaDBGTID}
	case 1:
		return MariaDBPosition(gs[0].domain, gs[0].server, gs[0].seq)
	}
	c := slices.Clone(gs)
	return Position{kind: MariaDBGTID, maria: &c}
}

// parseDec parses an unsigned decimal number of plain digits (no sign, no
// blanks).
func parseDec(s string, bits int) (uint64, error) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, strconv.ErrSyntax
		}
	}
	return strconv.ParseUint(s, 10, bits)
}

// maxGNO is the largest GTID transaction number MySQL allows.
const maxGNO = math.MaxInt64

// ParseMySQLGTIDSet parses a MySQL GTID set as @@gtid_executed prints it:
// "uuid:1-100:102-110,uuid2:1-5", entries separated by commas (MySQL adds
// a newline after each comma), intervals in any order and possibly
// overlapping, upper- or lower-case UUIDs, and MySQL 8.3 tags
// ("uuid:1-5:tag_a:1-3": intervals after a tag belong to that tag). The
// empty string is the empty set.
func ParseMySQLGTIDSet(s string) (Position, error) {
	p := Position{kind: MySQLGTID}
	s = strings.TrimSpace(s)
	if s == "" {
		return p, nil
	}
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		fields := strings.Split(entry, ":")
		uuid, ok := parseUUID(strings.TrimSpace(fields[0]))
		if !ok {
			return Position{}, badPosition(s, "want a GTID set like 3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5")
		}
		tag, intervals := "", 0
		for _, f := range fields[1:] {
			f = strings.TrimSpace(f)
			if f != "" && (f[0] < '0' || f[0] > '9') {
				if intervals == 0 && tag != "" {
					return Position{}, badPosition(s, "GTID tag without transactions")
				}
				t, ok := parseTag(f)
				if !ok {
					return Position{}, badPosition(s, "bad GTID tag")
				}
				tag, intervals = t, 0
				continue
			}
			lo, hi, ok := parseInterval(f)
			if !ok {
				return Position{}, badPosition(s, "bad GTID interval")
			}
			p.mysql = append(p.mysql, gtidRange{uuid: uuid, tag: tag, lo: lo, hi: hi})
			intervals++
		}
		if intervals == 0 {
			return Position{}, badPosition(s, "GTID source without transactions")
		}
	}
	slices.SortFunc(p.mysql, func(a, b gtidRange) int {
		return cmp.Or(cmpSID(&a, &b), cmp.Compare(a.lo, b.lo), cmp.Compare(a.hi, b.hi))
	})
	out := p.mysql[:0]
	for _, r := range p.mysql {
		if n := len(out); n > 0 && cmpSID(&out[n-1], &r) == 0 && r.lo <= out[n-1].hi+1 {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	p.mysql = slices.Clip(out)
	return p, nil
}

func parseInterval(s string) (lo, hi uint64, ok bool) {
	a, b, dash := strings.Cut(s, "-")
	lo, err := parseDec(a, 64)
	if err != nil || lo == 0 || lo > maxGNO {
		return 0, 0, false
	}
	hi = lo
	if dash {
		if hi, err = parseDec(b, 64); err != nil || hi < lo || hi > maxGNO {
			return 0, 0, false
		}
	}
	return lo, hi, true
}

// parseTag accepts a MySQL GTID tag, [a-z_][a-z0-9_]{0,31}, case-folded to
// lower case as MySQL does.
func parseTag(s string) (string, bool) {
	if len(s) == 0 || len(s) > 32 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return "", false
		}
	}
	return strings.ToLower(s), true
}

// parseUUID accepts the 8-4-4-4-12 hexadecimal form.
func parseUUID(s string) (u [16]byte, ok bool) {
	if len(s) != 36 {
		return u, false
	}
	j := 0
	for i := 0; i < 36; {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return u, false
			}
			i++
			continue
		}
		h, l := hexVal(s[i]), hexVal(s[i+1])
		if h < 0 || l < 0 {
			return u, false
		}
		u[j] = byte(h<<4 | l)
		j++
		i += 2
	}
	return u, true
}

func writeUUID(b *strings.Builder, u [16]byte) {
	const digits = "0123456789abcdef"
	for i, c := range u {
		switch i {
		case 4, 6, 8, 10:
			b.WriteByte('-')
		}
		b.WriteByte(digits[c>>4])
		b.WriteByte(digits[c&0xf])
	}
}
