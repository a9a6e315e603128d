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
}

// MergeCase is a Set of Old (if any) then of Give; Want is what Get must
// then return.
type MergeCase struct {
	Name            string
	Old, Give, Want Rel
}

// MergeCases are the Set-after-Set cases (Record.Merge).
var MergeCases = []MergeCase{
	{Name: "first write", Give: Rel{10 * time.Second, "0/100"}, Want: Rel{10 * time.Second, "0/100"}},
	{Name: "newer write", Old: Rel{10 * time.Second, "0/100"}, Give: Rel{20 * time.Second, "0/200"}, Want: Rel{20 * time.Second, "0/200"}},
	{Name: "same write twice", Old: Rel{10 * time.Second, "0/100"}, Give: Rel{10 * time.Second, "0/100"}, Want: Rel{10 * time.Second, "0/100"}},
	{Name: "late older write changes nothing", Old: Rel{20 * time.Second, "0/200"}, Give: Rel{10 * time.Second, "0/100"}, Want: Rel{20 * time.Second, "0/200"}},
	{Name: "later until older position keeps position", Old: Rel{10 * time.Second, "0/200"}, Give: Rel{20 * time.Second, "0/100"}, Want: Rel{20 * time.Second, "0/200"}},
	{Name: "earlier until newer position keeps until", Old: Rel{20 * time.Second, "0/100"}, Give: Rel{10 * time.Second, "0/200"}, Want: Rel{20 * time.Second, "0/200"}},
	{Name: "unknown position wins", Old: Rel{10 * time.Second, "0/100"}, Give: Rel{20 * time.Second, ""}, Want: Rel{20 * time.Second, ""}},
	{Name: "unknown position stays", Old: Rel{20 * time.Second, ""}, Give: Rel{10 * time.Second, "0/200"}, Want: Rel{20 * time.Second, ""}},
	{Name: "incomparable kinds make unknown", Old: Rel{10 * time.Second, "0/100"}, Give: Rel{20 * time.Second, "0-1-5"}, Want: Rel{20 * time.Second, ""}},
	{Name: "mariadb newer", Old: Rel{10 * time.Second, "0-1-5"}, Give: Rel{20 * time.Second, "0-1-7,1-2-1"}, Want: Rel{20 * time.Second, "0-1-7,1-2-1"}},
	{Name: "mariadb incomparable domains", Old: Rel{10 * time.Second, "0-1-5"}, Give: Rel{20 * time.Second, "1-2-1"}, Want: Rel{20 * time.Second, ""}},
	{Name: "mariadb one domain newer", Old: Rel{10 * time.Second, "0-1-5"}, Give: Rel{20 * time.Second, "0-2-7"}, Want: Rel{20 * time.Second, "0-2-7"}},
	{Name: "mariadb one domain late older write", Old: Rel{20 * time.Second, "0-1-7"}, Give: Rel{10 * time.Second, "0-1-5"}, Want: Rel{20 * time.Second, "0-1-7"}},
	{Name: "mariadb one domain of several", Old: Rel{10 * time.Second, "0-1-5,1-2-1"}, Give: Rel{20 * time.Second, "0-1-7"}, Want: Rel{20 * time.Second, ""}},
	{Name: "mysql late older write", Old: Rel{20 * time.Second, UUIDA + ":1-10"}, Give: Rel{10 * time.Second, UUIDA + ":1-5"}, Want: Rel{20 * time.Second, UUIDA + ":1-10"}},
}
