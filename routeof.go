package rwsplit

import (
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// routeTakenKey is where routing leaves its decision in Statement.Clauses,
// for RouteOf. GORM writes into SQL only the clauses a statement's builder
// names, so this one never reaches the server.
const routeTakenKey = "rwsplit:route-taken"

// routeNotes holds one Route per reason for one node, made once, so that
// a statement points at one without an allocation.
type routeNotes [numReasons]routeNote

type routeNote struct{ Route }

// Build implements clause.Expression; a note writes nothing.
func (*routeNote) Build(clause.Builder) {}

func newRouteNotes(node string) *routeNotes {
	var n routeNotes
	for r := range n {
		n[r] = routeNote{Route{Node: node, Reason: Reason(r)}}
	}
	return &n
}

// note records t in stmt for RouteOf.
func (r *router) note(stmt *gorm.Statement, t *target) {
	notes := r.primaryNotes
	switch {
	case t.node0:
		notes = r.pinnedNotes
	case t.node != nil:
		notes = t.node.notes
	}
	if stmt.Clauses == nil {
		stmt.Clauses = map[string]clause.Clause{}
	}
	stmt.Clauses[routeTakenKey] = clause.Clause{Name: routeTakenKey, Expression: &notes[t.reason]}
}

// RouteOf returns where rwsplit routed the statement db runs, and why: the
// Route that Config.OnRoute received for it. It is meant for callbacks that
// run after the statement (After("gorm:query") and the like), tracing and
// logging hooks among them. It returns false when rwsplit did not route
// the statement (db is not a *gorm.DB rwsplit is installed on, or the
// statement did not run).
//
// A read that failed on a replica with a connection error and was served
// again elsewhere keeps the first decision here; the retry is reported to
// Config.OnRoute and counted in Stats under ReasonRetry.
func RouteOf(db *gorm.DB) (Route, bool) {
	if db == nil || db.Statement == nil {
		return Route{}, false
	}
	c, ok := db.Statement.Clauses[routeTakenKey]
	if !ok {
		return Route{}, false
	}
	n, ok := c.Expression.(*routeNote)
	if !ok || n == nil {
		return Route{}, false
	}
	return n.Route, true
}
