// Package storetest holds the cases every stickiness.Store, and the
// context's carrier, must agree on. It does not import stickiness, so
// that the package's own tests can use it.
package storetest

import "time"

// UUIDA is a MySQL server UUID for GTID positions.
const UUIDA = "3e11fa47-71ca-11e1-9e33-c80aa9429562"

// Rel is a record relative to a base time: Until after the base, and a
// position as lagcheck.ParsePosition reads it. Until 0 means no record.
type Rel struct {
	Until time.Duration
	Pos   string
	// Writer, At and Resolved are the record's Pending (Writer 0: none).
	Writer   uint64
	At       int64
	Resolved bool
}

// MergeCase is a Set of Old (if any) then of Give; Want is what Get must
// then return.
type MergeCase struct {
	Name            string
	Old, Give, Want Rel
}

// MergeCases are the Set-after-Set cases (Record.Merge).
var MergeCases = []MergeCase{
	{Name: "first write", Give: Rel{Until: 10 * time.Second, Pos: "0/100"}, Want: Rel{Until: 10 * time.Second, Pos: "0/100"}},
	{Name: "newer write", Old: Rel{Until: 10 * time.Second, Pos: "0/100"}, Give: Rel{Until: 20 * time.Second, Pos: "0/200"}, Want: Rel{Until: 20 * time.Second, Pos: "0/200"}},
	{Name: "same write twice", Old: Rel{Until: 10 * time.Second, Pos: "0/100"}, Give: Rel{Until: 10 * time.Second, Pos: "0/100"}, Want: Rel{Until: 10 * time.Second, Pos: "0/100"}},
	{Name: "late older write changes nothing", Old: Rel{Until: 20 * time.Second, Pos: "0/200"}, Give: Rel{Until: 10 * time.Second, Pos: "0/100"}, Want: Rel{Until: 20 * time.Second, Pos: "0/200"}},
	{Name: "later until older position keeps position", Old: Rel{Until: 10 * time.Second, Pos: "0/200"}, Give: Rel{Until: 20 * time.Second, Pos: "0/100"}, Want: Rel{Until: 20 * time.Second, Pos: "0/200"}},
	{Name: "earlier until newer position keeps until", Old: Rel{Until: 20 * time.Second, Pos: "0/100"}, Give: Rel{Until: 10 * time.Second, Pos: "0/200"}, Want: Rel{Until: 20 * time.Second, Pos: "0/200"}},
	{Name: "unknown position wins", Old: Rel{Until: 10 * time.Second, Pos: "0/100"}, Give: Rel{Until: 20 * time.Second, Pos: ""}, Want: Rel{Until: 20 * time.Second, Pos: ""}},
	{Name: "unknown position stays", Old: Rel{Until: 20 * time.Second, Pos: ""}, Give: Rel{Until: 10 * time.Second, Pos: "0/200"}, Want: Rel{Until: 20 * time.Second, Pos: ""}},
	{Name: "incomparable kinds make unknown", Old: Rel{Until: 10 * time.Second, Pos: "0/100"}, Give: Rel{Until: 20 * time.Second, Pos: "0-1-5"}, Want: Rel{Until: 20 * time.Second, Pos: ""}},
	{Name: "mariadb newer", Old: Rel{Until: 10 * time.Second, Pos: "0-1-5"}, Give: Rel{Until: 20 * time.Second, Pos: "0-1-7,1-2-1"}, Want: Rel{Until: 20 * time.Second, Pos: "0-1-7,1-2-1"}},
	{Name: "mariadb incomparable domains", Old: Rel{Until: 10 * time.Second, Pos: "0-1-5"}, Give: Rel{Until: 20 * time.Second, Pos: "1-2-1"}, Want: Rel{Until: 20 * time.Second, Pos: ""}},
	{Name: "mariadb one domain newer", Old: Rel{Until: 10 * time.Second, Pos: "0-1-5"}, Give: Rel{Until: 20 * time.Second, Pos: "0-2-7"}, Want: Rel{Until: 20 * time.Second, Pos: "0-2-7"}},
	{Name: "mariadb one domain late older write", Old: Rel{Until: 20 * time.Second, Pos: "0-1-7"}, Give: Rel{Until: 10 * time.Second, Pos: "0-1-5"}, Want: Rel{Until: 20 * time.Second, Pos: "0-1-7"}},
	{Name: "mariadb one domain of several", Old: Rel{Until: 10 * time.Second, Pos: "0-1-5,1-2-1"}, Give: Rel{Until: 20 * time.Second, Pos: "0-1-7"}, Want: Rel{Until: 20 * time.Second, Pos: ""}},
	{Name: "mysql late older write", Old: Rel{Until: 20 * time.Second, Pos: UUIDA + ":1-10"}, Give: Rel{Until: 10 * time.Second, Pos: UUIDA + ":1-5"}, Want: Rel{Until: 20 * time.Second, Pos: UUIDA + ":1-10"}},
}

// PendingCases are the Set-after-Set cases of pending writes and their
// resolutions (Record.Pending), which every Store must agree on.
var PendingCases = []MergeCase{
	{Name: "pending first write", Give: Rel{Until: 10 * time.Second, Writer: 1, At: 5}, Want: Rel{Until: 10 * time.Second, Writer: 1, At: 5}},
	{Name: "resolution clears pending", Old: Rel{Until: 10 * time.Second, Writer: 1, At: 5}, Give: Rel{Until: 10 * time.Second, Pos: "0/200", Writer: 1, At: 7, Resolved: true}, Want: Rel{Until: 10 * time.Second, Pos: "0/200"}},
	{Name: "resolution before the pending mark changes nothing", Old: Rel{Until: 10 * time.Second, Writer: 1, At: 9}, Give: Rel{Until: 10 * time.Second, Pos: "0/200", Writer: 1, At: 7, Resolved: true}, Want: Rel{Until: 10 * time.Second, Writer: 1, At: 9}},
	{Name: "resolution at the pending mark changes nothing", Old: Rel{Until: 10 * time.Second, Writer: 1, At: 7}, Give: Rel{Until: 10 * time.Second, Pos: "0/200", Writer: 1, At: 7, Resolved: true}, Want: Rel{Until: 10 * time.Second, Writer: 1, At: 7}},
	{Name: "resolution of another writer changes nothing", Old: Rel{Until: 10 * time.Second, Writer: 1, At: 5}, Give: Rel{Until: 10 * time.Second, Pos: "0/200", Writer: 2, At: 7, Resolved: true}, Want: Rel{Until: 10 * time.Second, Writer: 1, At: 5}},
	{Name: "resolution without a record is its position", Give: Rel{Until: 10 * time.Second, Pos: "0/200", Writer: 1, At: 7, Resolved: true}, Want: Rel{Until: 10 * time.Second, Pos: "0/200"}},
	{Name: "newer pending of one writer wins", Old: Rel{Until: 10 * time.Second, Writer: 1, At: 5}, Give: Rel{Until: 20 * time.Second, Writer: 1, At: 9}, Want: Rel{Until: 20 * time.Second, Writer: 1, At: 9}},
	{Name: "late older pending of one writer changes nothing", Old: Rel{Until: 20 * time.Second, Writer: 1, At: 9}, Give: Rel{Until: 10 * time.Second, Writer: 1, At: 5}, Want: Rel{Until: 20 * time.Second, Writer: 1, At: 9}},
	{Name: "pending of two writers is unknown", Old: Rel{Until: 10 * time.Second, Writer: 1, At: 5}, Give: Rel{Until: 20 * time.Second, Writer: 2, At: 9}, Want: Rel{Until: 20 * time.Second}},
	{Name: "pending after unknown stays unknown", Old: Rel{Until: 10 * time.Second}, Give: Rel{Until: 20 * time.Second, Writer: 1, At: 5}, Want: Rel{Until: 20 * time.Second}},
	{Name: "resolution after unknown stays unknown", Old: Rel{Until: 10 * time.Second}, Give: Rel{Until: 10 * time.Second, Pos: "0/200", Writer: 1, At: 7, Resolved: true}, Want: Rel{Until: 10 * time.Second}},
	{Name: "resolution keeps a covering position", Old: Rel{Until: 10 * time.Second, Pos: "0/300"}, Give: Rel{Until: 5 * time.Second, Pos: "0/200", Writer: 1, At: 7, Resolved: true}, Want: Rel{Until: 10 * time.Second, Pos: "0/300"}},
	{Name: "resolution after a newer write of another writer", Old: Rel{Until: 20 * time.Second, Writer: 2, At: 1}, Give: Rel{Until: 10 * time.Second, Pos: "0/200", Writer: 1, At: 7, Resolved: true}, Want: Rel{Until: 20 * time.Second, Writer: 2, At: 1}},
}
