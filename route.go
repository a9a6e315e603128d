package rwsplit

import (
	"context"
	"database/sql"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/rwsplit/rwsplit/internal/sqlclass"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/policy"
)

// Reason says why a statement went to the node it went to.
type Reason uint8

// Reasons, in the order routing checks them.
const (
	_ Reason = iota
	// ReasonTransaction: the statement runs inside a transaction, which
	// keeps every statement on the node it began on.
	ReasonTransaction
	// ReasonWrite: Create, Update or Delete (and associations).
	ReasonWrite
	// ReasonExec: db.Exec, which returns no rows: a replica has nothing
	// to offer it.
	ReasonExec
	// ReasonRawWrite: SQL the classifier could not prove read-only: raw
	// SQL, or the final text of a query GORM built (side-effect or
	// locking functions, locking subqueries).
	ReasonRawWrite
	// ReasonLocking: a query with a locking clause (FOR UPDATE/SHARE).
	ReasonLocking
	// ReasonForcedPrimary: db.Clauses(rwsplit.Primary).
	ReasonForcedPrimary
	// ReasonMigrator: a query run by GORM's Migrator / AutoMigrate.
	ReasonMigrator
	// ReasonForcedReplica: db.Clauses(rwsplit.Replica{...}).
	ReasonForcedReplica
	// ReasonRead: a read served by a replica the policy chose.
	ReasonRead
	// ReasonReadOnlyTx: a transaction begun read-only, on a replica.
	ReasonReadOnlyTx
	// ReasonNoReplica: a read sent to the primary because no replica was
	// eligible (see Config.Fallback).
	ReasonNoReplica
	// ReasonRetry: a read served again on another node after a
	// connection error on the first.
	ReasonRetry
	// ReasonStale: a read with a freshness bound (MaxStaleness) that no
	// eligible replica met, sent to the primary.
	ReasonStale
	// ReasonSticky: a read by a user who wrote recently (or of a table
	// written recently, in table mode), sent to the primary because no
	// eligible replica had replayed the write (see Config.Stickiness).
	ReasonSticky
	// ReasonCausal: a read by a sticky user served by a replica that had
	// replayed the user's last write.
	ReasonCausal
	// ReasonReadsToPrimary: a read sent to the primary because the
	// operator switch Plugin.SetReadsToPrimary is on.
	ReasonReadsToPrimary
	// ReasonPolicyPrimary: a read, or a read-only transaction, sent to
	// the primary because the policy chose it (policy.Primary, e.g.
	// policy.PrimaryShare).
	ReasonPolicyPrimary
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonTransaction:    "transaction",
	ReasonWrite:          "write",
	ReasonExec:           "exec",
	ReasonRawWrite:       "raw-write",
	ReasonLocking:        "locking",
	ReasonForcedPrimary:  "forced-primary",
	ReasonMigrator:       "migrator",
	ReasonForcedReplica:  "forced-replica",
	ReasonRead:           "read",
	ReasonReadOnlyTx:     "read-only-tx",
	ReasonNoReplica:      "no-replica",
	ReasonRetry:          "retry",
	ReasonStale:          "stale",
	ReasonSticky:         "sticky",
	ReasonCausal:         "causal",
	ReasonReadsToPrimary: "reads-to-primary",
	ReasonPolicyPrimary:  "policy-primary",
}

func (r Reason) String() string {
	if r < numReasons && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return "unknown"
}

// Route is one routing decision, as reported to Config.OnRoute.
type Route struct {
	// Node is the name of the node that runs the statement: the primary's
	// (Config.PrimaryName) or a replica's. It is empty for a statement on a
	// connection the caller pinned with db.Connection.
	Node string
	// Reason says why.
	Reason Reason
}

// kind is a statement's GORM callback chain.
type kind uint8

const (
	kindWrite kind = iota // Create, Update, Delete chains
	kindQuery             // Query and Row chains
	kindRaw               // Raw chain (db.Exec)
)

// pin says what a statement is already bound to.
type pin uint8

const (
	pinNone      pin = iota
	pinPrimaryTx     // a transaction on the primary
	pinReplicaTx     // a read-only transaction on a replica
	pinConn          // a connection pinned with db.Connection
)

// directive is a routing clause (clauses.go).
type directive uint8

const (
	dirNone         directive = iota
	dirPrimary                // rwsplit.Primary
	dirReplica                // rwsplit.Replica{}
	dirNamedReplica           // rwsplit.Replica{Name: ...}
	dirMaxStaleness           // rwsplit.MaxStaleness(d)
)

// statement is what routing needs to know about one statement, read once
// from its *gorm.DB by readStatement.
type statement struct {
	ctx       context.Context
	closed    bool // Plugin.Close has run
	toPrimary bool // Plugin.SetReadsToPrimary(true)
	kind      kind
	pin       pin
	tx        *nodeTx // pinReplicaTx: the replica transaction
	migrator  bool    // run by a Migrator
	write     bool    // SQL text the classifier could not prove read-only
	lockSQL   bool    // ... because it locks rows
	txCtl     bool    // ... but it is transaction control (SAVEPOINT, SET LOCAL)
	locking   bool    // a clause.Locking
	dir       directive
	replica   *node         // dirNamedReplica: the replica, nil for an unknown name
	maxStale  time.Duration // dirMaxStaleness

	// The stickiness verdict, looked up when needsSticky says so.
	sticky bool
	pos    lagcheck.Position // zero: only the primary is known to have the write
}

// where a target sends a statement.
type where uint8

const (
	keep      where = iota // leave Statement.ConnPool as it is
	toPrimary              // the session's primary pool
	toReplica              // target.node
)

// target is a routing decision: where the statement runs, why, and the
// error it fails with, if any.
type target struct {
	where  where
	node   *node // toReplica, or the replica of a kept transaction
	view   view  // toReplica: the node's view
	reason Reason
	err    error
	node0  bool // keep: report no node (a pinned connection)
}

// replicaState is the lag checker as routing reads it. *lagcheck.Checker
// implements it; TestDecide uses a fake.
type replicaState interface {
	State(i int) lagcheck.State
	Lag(i int) (time.Duration, bool)
	LagNow(i int) (time.Duration, bool)
	Covers(i int, p lagcheck.Position) bool
	ReportFailure(i int, err error)
	ServesWithoutPrimary(i int) bool
}

// router owns the replicas and makes every routing decision.
type router struct {
	set         atomic.Pointer[replicaSet] // the replicas in service (see replicas)
	state       replicaState
	pol         policy.Policy
	picker      atomic.Pointer[pickerSnapshot]
	pickMu      sync.Mutex // serializes rebuild
	fallback    Fallback
	maxLag      atomic.Int64 // every replica read's staleness bound: Lag.MaxLag, as SetMaxLag last set it
	funcs       *sqlclass.Functions
	primaryName string
	primaryPool gorm.ConnPool         // the primary pool as it was before Initialize
	primaryTx   gorm.ConnPoolBeginner // begins on the primary (primaryConn)
	onRoute     func(context.Context, Route)
	// RouteOf's notes for the primary, and for a connection the caller
	// pinned (Route.Node empty).
	primaryNotes, pinnedNotes *routeNotes
	counts                    [numReasons]atomic.Uint64 // every decision, by reason (Stats.Routes)
	primaryCounts             [numReasons]atomic.Uint64 // those whose node is the primary (Stats.PrimaryRoutes)
	closed                    atomic.Bool
	serialRO                  bool // a replica cannot run SERIALIZABLE READ ONLY (PostgreSQL)

	readsToPrimary atomic.Bool // the operator switch (SetReadsToPrimary)

	primaryReads atomic.Uint64 // Stats.PrimaryReads
}

// replicaSet is the replicas in service, an immutable snapshot: AddReplica
// and RemoveReplica publish a new one, and routing reads it without a lock.
type replicaSet struct {
	nodes  []*node // in the order they were added, so by node.idx
	byName map[string]*node
}

var noReplicas = &replicaSet{}

// replicas returns the replicas in service now.
func (r *router) replicas() *replicaSet {
	if s := r.set.Load(); s != nil {
		return s
	}
	return noReplicas
}

// publish makes nodes the replicas in service, and rebuilds the picker
// over them.
func (r *router) publish(nodes []*node) {
	r.set.Store(newReplicaSet(nodes))
	r.rebuild()
}

func newReplicaSet(nodes []*node) *replicaSet {
	s := &replicaSet{nodes: nodes, byName: make(map[string]*node, len(nodes))}
	for _, n := range nodes {
		s.byName[n.name] = n
	}
	return s
}

// byIdx returns the replica in s whose checker index is i, or nil.
func (s *replicaSet) byIdx(i int) *node {
	for _, n := range s.nodes {
		if n.idx == i {
			return n
		}
	}
	return nil
}

// fresh is the filter every replica read passes: its staleness bound now
// is known and at most MaxLag.
func (r *router) fresh() filter {
	return filter{bounded: true, maxLag: time.Duration(r.maxLag.Load())}
}

// pickerSnapshot is an immutable pairing of a Picker with the nodes it
// picks among: Pick returns an index into nodes.
type pickerSnapshot struct {
	picker policy.Picker
	nodes  []*node
}

// Routing callbacks, one per chain (see resolver.go).
func (p *Plugin) routeWrite(db *gorm.DB) { p.route(db, kindWrite) }
func (p *Plugin) routeQuery(db *gorm.DB) { p.route(db, kindQuery) }
func (p *Plugin) routeRaw(db *gorm.DB)   { p.route(db, kindRaw) }

// route routes one statement: read it, look up its stickiness if the
// decision needs it, decide, apply.
func (p *Plugin) route(db *gorm.DB, k kind) {
	var st statement
	p.readStatement(db, k, &st)
	if st.needsSticky() {
		st.pos, st.sticky = p.stickyLookup(st.ctx, db.Statement)
	}
	t := p.decide(&st)
	p.apply(db, &st, &t)
	if st.pin == pinConn && k == kindWrite {
		p.notePinnedConn(db.Statement)
	}
}

// notePinnedConn keeps the pinned connection of a keyed write for its
// mark (see pinnedConn): the position is read on it, since its pool may
// have no other connection to give.
func (p *Plugin) notePinnedConn(stmt *gorm.Statement) {
	if p.sticky == nil || !p.sticky.Causal() {
		return
	}
	var buf [maxTables]string
	if _, ok := p.sticky.Pending(stmt.Context, p.pendingTables(stmt, buf[:0])); ok {
		stmt.Settings.Store(pinnedConnKey{}, stmt.ConnPool)
	}
}

// readStatement reads what routing needs from db into st, a zero
// statement. It allocates only to pass a routing clause on to derived
// queries (withDirective).
func (p *Plugin) readStatement(db *gorm.DB, k kind, st *statement) {
	stmt := db.Statement
	st.ctx, st.closed, st.toPrimary, st.kind = stmt.Context, p.closed.Load(), p.readsToPrimary.Load(), k
	switch c := stmt.ConnPool.(type) {
	case *primaryConn, *gorm.PreparedStmtDB:
		// The session's pool: nothing pins the statement (the cases
		// below need a slower interface check).
	case *nodeTx:
		st.pin, st.tx = pinReplicaTx, c
	case *gorm.PreparedStmtTX:
		if t, ok := innermostTx(c).(*nodeTx); ok {
			st.pin, st.tx = pinReplicaTx, t
		} else {
			st.pin = pinPrimaryTx
		}
	case gorm.TxCommitter:
		st.pin = pinPrimaryTx
	case *sql.Conn:
		st.pin = pinConn
	}
	if k == kindWrite || st.pin == pinPrimaryTx || st.pin == pinConn {
		return
	}
	rc := routeCtxOf(st.ctx)
	if rc != nil && rc.migrator {
		st.migrator = true
	}
	if st.pin == pinNone && (st.migrator || k == kindRaw || st.closed) {
		return
	}
	if k == kindRaw || stmt.SQL.Len() > 0 {
		st.classify(stmt.SQL.String(), p.funcs)
	}
	_, st.locking = stmt.Clauses["FOR"]
	var d clause.Expression
	if c, ok := directiveOf(stmt); ok {
		d = c.Expression
		if rc == nil || rc.dir != d {
			// Pass it on to the queries GORM derives from this one.
			stmt.Context = withDirective(st.ctx, rc, d)
		}
	} else if rc != nil {
		d = rc.dir
	}
	if d != nil {
		switch d := d.(type) {
		case primaryClause:
			st.dir = dirPrimary
		case Replica:
			st.dir = dirReplica
			if d.Name != "" {
				st.dir, st.replica = dirNamedReplica, p.replicas().byName[d.Name]
			}
		case maxStaleness:
			st.dir, st.maxStale = dirMaxStaleness, time.Duration(d)
		}
	}
}

// innermostTx returns the transaction under prepared-statement wrappers:
// a prepared session of a prepared DB nests two.
func innermostTx(c *gorm.PreparedStmtTX) gorm.Tx {
	tx := c.Tx
	for {
		ptx, ok := tx.(*gorm.PreparedStmtTX)
		if !ok {
			return tx
		}
		tx = ptx.Tx
	}
}

// classify records what the classifier says of the statement's SQL text.
func (st *statement) classify(sql string, funcs *sqlclass.Functions) {
	if c, why := sqlclass.Classify(sql, funcs); c != sqlclass.Read {
		st.write, st.lockSQL = true, why == sqlclass.ReasonLocking
		st.txCtl = st.pin == pinReplicaTx && txControl(sql)
	}
}

// guard reports whether query, about to run on a replica, may not: the
// classifier cannot prove it read-only. It returns the reason to report.
// Most queries GORM builds skip the classifier: without a parenthesis, a
// semicolon or the words INTO, FOR or LOCK, a SELECT cannot write or lock.
func (r *router) guard(query string) (Reason, bool) {
	if !suspect(query) {
		return 0, false
	}
	c, why := sqlclass.Classify(query, r.funcs)
	switch {
	case c == sqlclass.Read:
		return 0, false
	case why == sqlclass.ReasonLocking:
		return ReasonLocking, true
	}
	return ReasonRawWrite, true
}

// suspect reports whether q may write or lock as far as a quick look can
// tell: it does not start with SELECT, or it has a parenthesis, a
// semicolon, or one of the words INTO, FOR, LOCK in any case, after a
// space, tab, newline, " or ` and before the end, a space, tab, newline or
// parenthesis. It looks for the words' first two letters 8 bytes at a time.
func suspect(q string) bool {
	if len(q) < 7 || q[:7] != "SELECT " && q[:7] != "select " {
		return true
	}
	if strings.IndexByte(q, '(') >= 0 || strings.IndexByte(q, ';') >= 0 {
		return true
	}
	if len(q) < 16 {
		for i := 7; i < len(q); i++ {
			if byteClass[q[i]] == byteWord && byteClass[q[i-1]] == byteSep && keywordAt(q[i:]) {
				return true
			}
		}
		return false
	}
	// 8 positions at a time, the last 8 that a word fits in (it has 3
	// letters at least) again in part.
	for i, last := 7, len(q)-9; ; i += 8 {
		if i > last {
			if i >= len(q)-2 {
				return false
			}
			i = last
		}
		const lower = 0x20 * ones // makes an ASCII letter lower-case
		x, next := load64(q, i)|lower, load64(q, i+1)|lower
		// Each bit of m marks where IN, FO or LO starts, in any case.
		o := zeroBytes(next ^ ('o' * ones))
		m := zeroBytes(x^('i'*ones))&zeroBytes(next^('n'*ones)) | (zeroBytes(x^('f'*ones))|zeroBytes(x^('l'*ones)))&o
		for ; m != 0; m &= m - 1 {
			if j := i + bits.TrailingZeros64(m)>>3; byteClass[q[j-1]] == byteSep && keywordAt(q[j:]) {
				return true
			}
		}
	}
}

// ones has a 1 in each byte.
const ones = 0x0101010101010101

// load64 returns the 8 bytes of s from i, little-endian.
func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// zeroBytes returns the high bit of each byte of x that is zero.
func zeroBytes(x uint64) uint64 {
	const low7 = 0x7f * ones
	return ^((x&low7 + low7) | x | low7)
}

// What suspect makes of each byte.
const (
	byteOther = iota
	byteSep   // may come before INTO, FOR or LOCK
	byteWord  // may start one: i, f or l in any case
)

var byteClass = [256]uint8{
	' ': byteSep, '\t': byteSep, '\n': byteSep, '"': byteSep, '`': byteSep,
	'i': byteWord, 'I': byteWord, 'f': byteWord, 'F': byteWord, 'l': byteWord, 'L': byteWord,
}

// keywordAt reports whether s starts with INTO, FOR or LOCK, in any case,
// followed by its end, a space, tab, newline or parenthesis. b|0x20 folds
// the case of an ASCII letter and of no other byte onto a lower-case one.
func keywordAt(s string) bool {
	n := 4
	switch {
	case len(s) >= 4 && s[0]|0x20 == 'i' && s[1]|0x20 == 'n' && s[2]|0x20 == 't' && s[3]|0x20 == 'o':
	case len(s) >= 4 && s[0]|0x20 == 'l' && s[1]|0x20 == 'o' && s[2]|0x20 == 'c' && s[3]|0x20 == 'k':
	case len(s) >= 3 && s[0]|0x20 == 'f' && s[1]|0x20 == 'o' && s[2]|0x20 == 'r':
		n = 3
	default:
		return false
	}
	return len(s) == n || s[n] == ' ' || s[n] == '\n' || s[n] == '\t' || s[n] == '('
}

// needsSticky reports whether the decision depends on the statement's
// stickiness: a read that routing may send to a replica of its choosing.
func (st *statement) needsSticky() bool {
	return st.kind == kindQuery && st.pin == pinNone && !st.closed && !st.toPrimary && !st.migrator && !st.write && !st.locking &&
		(st.dir == dirNone || st.dir == dirMaxStaleness)
}

// txControl reports single statements a read-only transaction may run:
// GORM's nested-transaction savepoints, transaction-local settings, and
// set_config(name, value, true).
func txControl(sql string) bool {
	s := strings.TrimRight(strings.TrimLeft(sql, " \t\r\n"), " \t\r\n;")
	if strings.ContainsRune(s, ';') {
		return false // several statements
	}
	for _, prefix := range [...]string{"SAVEPOINT ", "RELEASE ", "ROLLBACK TO ", "SET LOCAL ", "SET TRANSACTION "} {
		if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
			return true
		}
	}
	return localSetConfig(s)
}

// localSetConfig reports SELECT set_config(name, value, true), with plain
// arguments (no other call, no parenthesis in a literal).
func localSetConfig(s string) bool {
	c := strings.ToLower(strings.Join(strings.Fields(s), ""))
	return strings.HasPrefix(c, "selectset_config(") && strings.HasSuffix(c, ",true)") &&
		strings.Count(c, "(") == 1 && strings.Count(c, ")") == 1
}

// decide is the routing decision for one statement. It is pure: no GORM,
// no I/O, no lock, no allocation.
func (r *router) decide(st *statement) target {
	switch st.pin {
	case pinPrimaryTx:
		return target{where: keep, reason: ReasonTransaction}
	case pinConn:
		return target{where: keep, reason: ReasonTransaction, node0: true}
	case pinReplicaTx:
		t := target{where: keep, node: st.tx.n, reason: ReasonTransaction}
		if st.kind == kindWrite || st.locking || st.write && !st.txCtl {
			t.err = ErrReadOnly
		}
		return t
	}
	switch {
	case st.closed:
		return target{where: toPrimary} // rwsplit routes nothing after Close
	case st.kind == kindWrite:
		return target{where: toPrimary, reason: ReasonWrite}
	case st.migrator:
		return target{where: toPrimary, reason: ReasonMigrator}
	case st.kind == kindRaw:
		return target{where: toPrimary, reason: ReasonExec}
	case st.write && st.lockSQL:
		return target{where: toPrimary, reason: ReasonLocking}
	case st.write:
		return target{where: toPrimary, reason: ReasonRawWrite}
	case st.locking:
		return target{where: toPrimary, reason: ReasonLocking}
	}
	if st.toPrimary {
		return target{where: toPrimary, reason: ReasonReadsToPrimary}
	}
	switch st.dir {
	case dirPrimary:
		return target{where: toPrimary, reason: ReasonForcedPrimary}
	case dirNamedReplica:
		switch {
		case st.replica == nil:
			return target{where: keep} // the clause has failed the statement
		case st.replica.drained.Load():
			return r.anyReplica(st.ctx, ReasonForcedReplica) // drained: no new reads
		}
		return target{where: toReplica, node: st.replica, view: viewExplicit, reason: ReasonForcedReplica}
	case dirReplica:
		return r.anyReplica(st.ctx, ReasonForcedReplica)
	case dirMaxStaleness:
		return r.freshRead(st, filter{bounded: true, maxLag: st.maxStale})
	}
	if st.sticky {
		return r.freshRead(st, r.fresh())
	}
	return r.anyReplica(st.ctx, ReasonRead)
}

// anyReplica sends a read to the replica the policy picks, or follows
// Config.Fallback when none is eligible. The policy may choose the primary
// for a plain read (ReasonRead), not for one that asked for a replica.
func (r *router) anyReplica(ctx context.Context, why Reason) target {
	f := r.fresh()
	f.primaryOK = why == ReasonRead
	n, primary := r.pick(ctx, nil, &f)
	switch {
	case primary:
		return target{where: toPrimary, reason: ReasonPolicyPrimary}
	case n != nil:
		return target{where: toReplica, node: n, reason: why}
	}
	if n := r.leastLagged(nil); n != nil {
		return target{where: toReplica, node: n, reason: ReasonNoReplica}
	}
	return r.noReplica(ReasonNoReplica)
}

// freshRead sends a read to an eligible replica that passes f and, for a
// sticky read, has replayed its user's write; otherwise to the primary. A
// freshness bound is never traded for availability.
func (r *router) freshRead(st *statement, f filter) target {
	if st.sticky {
		if st.pos.IsZero() {
			return target{where: toPrimary, reason: ReasonSticky}
		}
		f.causal, f.pos = true, st.pos
	}
	f.primaryOK = true
	n, primary := r.pick(st.ctx, nil, &f)
	if primary {
		return target{where: toPrimary, reason: ReasonPolicyPrimary}
	}
	if n != nil {
		why := ReasonRead
		if f.causal {
			why = ReasonCausal
		}
		return target{where: toReplica, node: n, view: viewConstrained, reason: why}
	}
	if f.causal {
		return target{where: toPrimary, reason: ReasonSticky}
	}
	return target{where: toPrimary, reason: ReasonStale}
}

// retryTarget decides where a read that failed to reach replica failed
// runs again: another eligible replica, or the primary. The retry never
// retries again. Under FallbackFail, with no other replica eligible, the
// read fails with ErrNoReplica.
func (r *router) retryTarget(ctx context.Context, failed *node, v view) target {
	switch {
	case r.closed.Load():
		return target{where: toPrimary}
	case v == viewConstrained:
		// Only the primary is sure to meet the read's bound.
		return target{where: toPrimary, reason: ReasonRetry}
	}
	f := r.fresh()
	f.primaryOK = true
	n, primary := r.pick(ctx, failed, &f)
	switch {
	case primary:
		return target{where: toPrimary, reason: ReasonRetry}
	case n != nil:
		return target{where: toReplica, node: n, reason: ReasonRetry}
	}
	return r.noReplica(ReasonRetry)
}

// txRequest is what decides where a read-only transaction begins.
type txRequest struct {
	skip    *node // a replica that failed to begin it
	replica bool  // a Replica clause asked for a replica: the policy may not choose the primary
	iso     sql.IsolationLevel
	sticky  bool // the stickiness verdict, as for a read
	pos     lagcheck.Position
}

// readOnlyTarget decides where a read-only transaction begins: on an
// eligible replica other than skip that has the user's last write if
// they are sticky, else as Config.Fallback says.
func (r *router) readOnlyTarget(ctx context.Context, q *txRequest) target {
	switch {
	case r.closed.Load() || q.iso == sql.LevelSerializable && r.serialRO:
		return target{where: toPrimary, reason: ReasonReadOnlyTx}
	case r.readsToPrimary.Load():
		return target{where: toPrimary, reason: ReasonReadsToPrimary}
	}
	f := r.fresh()
	f.primaryOK = !q.replica
	if q.sticky {
		f.causal, f.pos = true, q.pos
		if q.pos.IsZero() {
			return target{where: toPrimary, reason: ReasonSticky}
		}
		n, primary := r.pick(ctx, q.skip, &f)
		switch {
		case primary:
			return target{where: toPrimary, reason: ReasonPolicyPrimary}
		case n != nil:
			return target{where: toReplica, node: n, reason: ReasonCausal}
		}
		return target{where: toPrimary, reason: ReasonSticky}
	}
	n, primary := r.pick(ctx, q.skip, &f)
	switch {
	case primary:
		return target{where: toPrimary, reason: ReasonPolicyPrimary}
	case n != nil:
		return target{where: toReplica, node: n, reason: ReasonReadOnlyTx}
	}
	if n := r.leastLagged(q.skip); n != nil {
		return target{where: toReplica, node: n, reason: ReasonNoReplica}
	}
	return r.noReplica(ReasonNoReplica)
}

// noReplica is Config.Fallback's answer when no replica can serve a read:
// the primary, or ErrNoReplica.
func (r *router) noReplica(why Reason) target {
	if r.fallback == FallbackFail {
		return target{where: keep, err: ErrNoReplica}
	}
	return target{where: toPrimary, reason: why}
}

// apply carries out t for db's statement: it sets the pool, counts the
// route, reports it and adds the error.
func (p *Plugin) apply(db *gorm.DB, st *statement, t *target) {
	stmt := db.Statement
	switch t.where {
	case toPrimary:
		stmt.ConnPool = db.Config.ConnPool
	case toReplica:
		stmt.ConnPool = t.node.conn(db.PrepareStmt, t.view)
	case keep:
		if ptx, ok := stmt.ConnPool.(*gorm.PreparedStmtTX); ok && st.tx != nil && ptx.PreparedStmtDB != st.tx.n.store {
			// A read-only transaction begun through a prepared session of
			// the primary got the primary's statement store; give it the
			// replica's, whose statements belong to that replica.
			stmt.ConnPool = st.tx.prepared()
		}
	}
	if t.reason != 0 {
		p.note(stmt, t)
		p.report(st.ctx, *t)
	}
	if t.err != nil {
		_ = db.AddError(t.err)
	}
}

// report counts a decision, in all and on the node it names (Route.Node;
// none for a pinned connection), and passes it to Config.OnRoute.
func (r *router) report(ctx context.Context, t target) {
	r.counts[t.reason].Add(1)
	if t.where == toPrimary && primaryReadReasons&(1<<t.reason) != 0 {
		r.primaryReads.Add(1)
	}
	name := r.primaryName
	switch {
	case t.node0:
		name = ""
	case t.node != nil:
		name = t.node.name
		t.node.routes[t.reason].Add(1)
	default:
		r.primaryCounts[t.reason].Add(1)
	}
	if r.onRoute != nil {
		r.onRoute(ctx, Route{Node: name, Reason: t.reason})
	}
}

// filter narrows the replicas a read may use beyond eligibility.
type filter struct {
	bounded   bool          // maxLag applies
	maxLag    time.Duration // the staleness bound now (LagNow) must be known and at most this
	causal    bool          // pos applies
	pos       lagcheck.Position
	primaryOK bool // the policy may send the read to the primary (policy.Primary)
}

func (r *router) ok(f *filter, n *node) bool {
	if f.bounded {
		if lag, known := r.state.LagNow(n.idx); (!known || lag > f.maxLag) && !r.state.ServesWithoutPrimary(n.idx) {
			return false
		}
	}
	return !f.causal || r.state.Covers(n.idx, f.pos)
}

// pick asks the current picker for an eligible replica other than skip
// that passes f, or reports that the policy chose the primary (only when
// f.primaryOK; otherwise that choice counts as one that failed f). When
// the policy's choices fail f, the first eligible replica that passes it
// is used.
func (r *router) pick(ctx context.Context, skip *node, f *filter) (n *node, primary bool) {
	snap := r.picker.Load()
	if snap == nil {
		return nil, false
	}
	for range len(snap.nodes) {
		i := snap.picker.Pick(ctx)
		if i == policy.Primary {
			if f.primaryOK {
				return nil, true
			}
			continue
		}
		if i < 0 || i >= len(snap.nodes) {
			break
		}
		if n := snap.nodes[i]; n != skip && r.ok(f, n) {
			return n, false
		}
	}
	for _, n := range snap.nodes {
		if n != skip && r.ok(f, n) {
			return n, false
		}
	}
	return nil, false
}

// leastLagged returns the replica a read uses when none is eligible, under
// FallbackLeastLagged: the one with the least known lag. It returns nil
// otherwise, or when no replica's lag is known (none answers).
func (r *router) leastLagged(skip *node) *node {
	if r.fallback != FallbackLeastLagged {
		return nil
	}
	var best *node
	var bestLag time.Duration
	for _, n := range r.replicas().nodes {
		if lag, known := r.state.Lag(n.idx); n != skip && !n.drained.Load() && known && (best == nil || lag < bestLag) {
			best, bestLag = n, lag
		}
	}
	return best
}

// rebuild publishes a new picker over the eligible replicas.
func (r *router) rebuild() {
	r.pickMu.Lock()
	defer r.pickMu.Unlock()
	var (
		eligible []*node
		views    []policy.Replica
	)
	for _, n := range r.replicas().nodes {
		if r.eligible(n) && !n.drained.Load() {
			eligible = append(eligible, n)
			views = append(views, policy.Replica{Name: n.name, Weight: n.weight, Stats: &n.stats})
		}
	}
	r.picker.Store(&pickerSnapshot{picker: r.pol.NewPicker(views), nodes: eligible})
}

// eligible reports whether n may serve reads: the checker's verdict.
func (r *router) eligible(n *node) bool {
	return r.state == nil || r.state.State(n.idx).Eligible()
}

// markDown takes n out of service at once after a connection-class error
// on one of its statements, without waiting for the next probe.
func (r *router) markDown(n *node, err error) {
	if r.state == nil || !r.eligible(n) {
		return
	}
	r.state.ReportFailure(n.idx, err)
	r.rebuild()
}
