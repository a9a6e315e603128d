package sqlclass

import (
	"strings"
	"testing"
)

func FuzzTables(f *testing.F) {
	for _, cases := range [][]tablesCase{pgWriteCases, mysqlWriteCases, pgReadCases, mysqlReadCases} {
		for _, tt := range cases {
			f.Add(tt.give)
		}
	}
	for _, tt := range baseTableCases {
		f.Add(tt.give)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		wt, wide := WriteTables(sql, make([]string, 1, 4))
		rt, ok := ReadTables(sql, make([]string, 1, 4))
		BaseTable(sql)
		if wide && len(wt) != 1 || !ok && len(rt) != 1 {
			t.Fatalf("%q: a failure appended: %q, %q", sql, wt, rt)
		}
		// A statement that starts with a writing keyword, for either
		// server's way of skipping comments, writes a table or is
		// schema-wide.
		for _, mysql := range []bool{false, true} {
			switch refFirstWord(sql, mysql) {
			case "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REPLACE", "MERGE":
				if !wide && len(wt) == 1 {
					t.Fatalf("WriteTables(%q) = nothing, not schema-wide", sql)
				}
			}
		}
		// Every name is a substring of the text.
		for _, n := range append(wt[1:], rt[1:]...) {
			if n == "" || !strings.Contains(sql, n) {
				t.Fatalf("%q: name %q", sql, n)
			}
		}
	})
}
