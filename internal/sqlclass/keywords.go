package sqlclass

// kw identifies the few keywords the classifier reacts to. Every other
// word is kwNone, except statement keywords, which are kwStatement.
type kw uint8

const (
	kwNone kw = iota
	// Statements that may be read-only.
	kwSelect
	kwValues
	kwTable
	kwWith
	kwShow
	kwExplain
	kwDescribe
	kwDesc
	// Words of rules inside read statements.
	kwInto
	kwFor
	kwUpdate
	kwShare
	kwNo
	kwKey
	kwLock
	kwIn
	kwNext
	kwPrevious
	kwValue
	kwInsert
	kwReplace
	kwDelete
	kwMerge
	kwSQLCalcFoundRows
	// EXPLAIN options.
	kwAnalyze
	kwVerbose
	kwExtended
	kwPartitions
	kwFormat
	// SHOW statements that read session state.
	kwWarnings
	kwErrors
	kwCount
	kwProfile
	// Statements that EXPLAIN may wrap and that are not reads.
	kwExecute
	kwDeclare
	kwCreate
	// kwStatement is any other word that starts a statement in PostgreSQL,
	// MySQL or MariaDB. A statement that starts with a word that is not a
	// statement keyword (nor a label "name:") is a syntax error in both.
	kwStatement
)

// maxKwLen is the length of the longest keyword, sql_calc_found_rows.
const maxKwLen = 19

// kwWords spells the keywords in lower case.
var kwWords = [...]struct {
	word string
	kw   kw
}{
	{"select", kwSelect},
	{"values", kwValues},
	{"table", kwTable},
	{"with", kwWith},
	{"show", kwShow},
	{"explain", kwExplain},
	{"describe", kwDescribe},
	{"desc", kwDesc},
	{"into", kwInto},
	{"for", kwFor},
	{"update", kwUpdate},
	{"share", kwShare},
	{"no", kwNo},
	{"key", kwKey},
	{"lock", kwLock},
	{"in", kwIn},
	{"next", kwNext},
	{"previous", kwPrevious},
	{"value", kwValue},
	{"insert", kwInsert},
	{"replace", kwReplace},
	{"delete", kwDelete},
	{"merge", kwMerge},
	{"sql_calc_found_rows", kwSQLCalcFoundRows},
	{"analyze", kwAnalyze},
	{"analyse", kwAnalyze},
	{"verbose", kwVerbose},
	{"extended", kwExtended},
	{"partitions", kwPartitions},
	{"format", kwFormat},
	{"warnings", kwWarnings},
	{"errors", kwErrors},
	{"count", kwCount},
	{"profile", kwProfile},
	{"profiles", kwProfile},
	{"execute", kwExecute},
	{"declare", kwDeclare},
	{"create", kwCreate},
	{"abort", kwStatement},
	{"alter", kwStatement},
	{"begin", kwStatement},
	{"call", kwStatement},
	{"checkpoint", kwStatement},
	{"close", kwStatement},
	{"cluster", kwStatement},
	{"comment", kwStatement},
	{"commit", kwStatement},
	{"copy", kwStatement},
	{"deallocate", kwStatement},
	{"discard", kwStatement},
	{"do", kwStatement},
	{"drop", kwStatement},
	{"end", kwStatement},
	{"fetch", kwStatement},
	{"grant", kwStatement},
	{"import", kwStatement},
	{"listen", kwStatement},
	{"load", kwStatement},
	{"move", kwStatement},
	{"notify", kwStatement},
	{"prepare", kwStatement},
	{"reassign", kwStatement},
	{"refresh", kwStatement},
	{"reindex", kwStatement},
	{"release", kwStatement},
	{"reset", kwStatement},
	{"revoke", kwStatement},
	{"rollback", kwStatement},
	{"savepoint", kwStatement},
	{"security", kwStatement},
	{"set", kwStatement},
	{"start", kwStatement},
	{"truncate", kwStatement},
	{"unlisten", kwStatement},
	{"vacuum", kwStatement},
	{"backup", kwStatement},
	{"binlog", kwStatement},
	{"cache", kwStatement},
	{"case", kwStatement},
	{"change", kwStatement},
	{"check", kwStatement},
	{"checksum", kwStatement},
	{"clone", kwStatement},
	{"flush", kwStatement},
	{"get", kwStatement},
	{"handler", kwStatement},
	{"help", kwStatement},
	{"if", kwStatement},
	{"install", kwStatement},
	{"iterate", kwStatement},
	{"kill", kwStatement},
	{"leave", kwStatement},
	{"loop", kwStatement},
	{"open", kwStatement},
	{"optimize", kwStatement},
	{"purge", kwStatement},
	{"rename", kwStatement},
	{"repair", kwStatement},
	{"repeat", kwStatement},
	{"resignal", kwStatement},
	{"restart", kwStatement},
	{"return", kwStatement},
	{"shutdown", kwStatement},
	{"signal", kwStatement},
	{"stop", kwStatement},
	{"uninstall", kwStatement},
	{"unlock", kwStatement},
	{"use", kwStatement},
	{"while", kwStatement},
	{"xa", kwStatement},
	{"attach", kwStatement},
	{"detach", kwStatement},
	{"pragma", kwStatement},
	{"exec", kwStatement},
	{"upsert", kwStatement},
	{"bulk", kwStatement},
	{"dbcc", kwStatement},
	{"restore", kwStatement},
	{"export", kwStatement},
	{"go", kwStatement},
}

// kwSlots is an open-addressing hash table of kwWords: a kwWords index + 1,
// or 0 for an empty slot.
var kwSlots = func() (t [kwTableSize]uint8) {
	for i, e := range kwWords {
		h := kwHash(e.word)
		for t[h] != 0 {
			h = (h + 1) % kwTableSize
		}
		t[h] = uint8(i + 1)
	}
	return t
}()

const kwTableSize = 512 // a power of two, well above len(kwWords)

// kwHash hashes a word of at least two bytes case-insensitively (for
// letters; other bytes only have to hash the same way every time).
func kwHash(w string) uint {
	n := len(w)
	return (uint(n)*131 + uint(w[0]|0x20)*31 + uint(w[1]|0x20)*7 + uint(w[n-1]|0x20)) % kwTableSize
}

// lookupKw returns the keyword w spells, case-insensitively, without
// allocating: one hash and usually one comparison.
func lookupKw(w string) kw {
	n := len(w)
	if n < 2 || n > maxKwLen {
		return kwNone
	}
	for h := kwHash(w); kwSlots[h] != 0; h = (h + 1) % kwTableSize {
		e := &kwWords[kwSlots[h]-1]
		if len(e.word) == n && equalLower(w, e.word) {
			return e.kw
		}
	}
	return kwNone
}

// equalLower reports whether w equals lower, a lower-case ASCII word, up
// to ASCII case. len(w) must be len(lower).
func equalLower(w, lower string) bool {
	for i := 0; i < len(lower); i++ {
		c := w[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
