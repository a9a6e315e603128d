package sqlclass

import (
	"strings"
	"testing"
)

func TestLookupKw(t *testing.T) {
	for _, e := range kwWords {
		for _, give := range []string{e.word, strings.ToUpper(e.word), strings.ToUpper(e.word[:1]) + e.word[1:]} {
			if got := lookupKw(give); got != e.kw {
				t.Errorf("lookupKw(%q) = %d, want %d", give, got, e.kw)
			}
		}
	}
	for _, give := range []string{"", "s", "selec", "selects", "selection", "for_update", "fro", "FROM", "sql_calc_found_rowsx", "intO_", "UPDATE1", "inn"} {
		if got := lookupKw(give); got != kwNone {
			t.Errorf("lookupKw(%q) = %d, want kwNone", give, got)
		}
	}
}
