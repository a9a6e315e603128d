package rwsplit

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rwsplit/rwsplit/internal/sqlclass"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/policy"
)

// fakeState stands in for the lag checker: per replica, its state, last
// lag, staleness bound now and replay position (unknown lag: -1).
type fakeState struct {
	states []lagcheck.State
	lag    []time.Duration
	lagNow []time.Duration
	pos    []lagcheck.Position
	failed []int
	// orphans serve although stale (lagcheck's ServesWithoutPrimary).
	orphans []int
}

func (f *fakeState) ServesWithoutPrimary(i int) bool { return slices.Contains(f.orphans, i) }

func (f *fakeState) State(i int) lagcheck.State { return f.states[i] }

func (f *fakeState) Lag(i int) (time.Duration, bool) { return f.lag[i], f.lag[i] >= 0 }

func (f *fakeState) LagNow(i int) (time.Duration, bool) { return f.lagNow[i], f.lagNow[i] >= 0 }

func (f *fakeState) Covers(i int, p lagcheck.Position) bool {
	return !f.pos[i].IsZero() && f.pos[i].Covers(p)
}

func (f *fakeState) ReportFailure(i int, _ error) {
	f.failed = append(f.failed, i)
	f.states[i] = lagcheck.Evicted
}

// firstPolicy always picks the first eligible replica, so that each row
// knows which replica a read gets.
type firstPolicy struct{}

func (firstPolicy) Name() string { return "first" }
func (firstPolicy) NewPicker(rs []policy.Replica) policy.Picker {
	return firstPicker(len(rs))
}

type firstPicker int

func (n firstPicker) Pick(context.Context) int {
	if n == 0 {
		return -1
	}
	return 0
}

// healthy returns the state of two caught-up, healthy replicas.
func healthy() *fakeState {
	return &fakeState{
		states: []lagcheck.State{lagcheck.Healthy, lagcheck.Healthy},
		lag:    []time.Duration{time.Millisecond, time.Millisecond},
		lagNow: []time.Duration{time.Millisecond, time.Millisecond},
		pos:    []lagcheck.Position{lsn("0/100"), lsn("0/100")},
	}
}

func lsn(s string) lagcheck.Position {
	p, err := lagcheck.ParseLSN(s)
	if err != nil {
		panic(err)
	}
	return p
}

// testRouter is a router over replicas r1 and r2 with state s.
func testRouter(t testing.TB, s *fakeState, fb Fallback) *router {
	t.Helper()
	funcs, err := sqlclass.NewFunctions("my_writer")
	if err != nil {
		t.Fatal(err)
	}
	r := &router{
		state:       s,
		pol:         firstPolicy{},
		fallback:    fb,
		funcs:       funcs,
		primaryName: "primary",
	}
	r.maxLag.Store(int64(time.Second))
	r.publish([]*node{newNode(r, 0, Replica{Name: "r1"}), newNode(r, 1, Replica{Name: "r2"})})
	return r
}

// sqlStmt is a statement of kind k with SQL text, classified as
// readStatement does.
func sqlStmt(r *router, k kind, p pin, sql string) statement {
	st := statement{ctx: context.Background(), kind: k, pin: p}
	if p == pinReplicaTx {
		st.tx = &nodeTx{n: r.replicas().nodes[0]}
	}
	st.classify(sql, r.funcs)
	return st
}

func TestDecide(t *testing.T) {
	ctx := context.Background()
	read := statement{ctx: ctx, kind: kindQuery}
	with := func(f func(*statement)) statement { st := read; f(&st); return st }
	evict := func(s *fakeState, is ...int) *fakeState {
		for _, i := range is {
			s.states[i] = lagcheck.Evicted
		}
		return s
	}
	tests := []struct {
		name  string
		state *fakeState
		fb    Fallback
		give  func(r *router) statement
		other func(r *router) target // a decision taken outside decide
		want  string                 // node name, "" for keep
		why   Reason
		err   error
	}{
		// Pinned statements stay where they are.
		{name: "primary transaction", give: func(*router) statement { return with(func(s *statement) { s.pin = pinPrimaryTx }) },
			want: "", why: ReasonTransaction},
		{name: "pinned connection", give: func(*router) statement { return with(func(s *statement) { s.pin = pinConn }) },
			want: "", why: ReasonTransaction},
		{name: "read in replica transaction", give: func(r *router) statement { return sqlStmt(r, kindQuery, pinReplicaTx, "SELECT 1") },
			want: "", why: ReasonTransaction},
		{name: "write in replica transaction", give: func(r *router) statement { return sqlStmt(r, kindWrite, pinReplicaTx, "") },
			want: "", why: ReasonTransaction, err: ErrReadOnly},
		{name: "raw write in replica transaction", give: func(r *router) statement { return sqlStmt(r, kindRaw, pinReplicaTx, "UPDATE t SET a=1") },
			want: "", why: ReasonTransaction, err: ErrReadOnly},
		{name: "raw lock in replica transaction", give: func(r *router) statement { return sqlStmt(r, kindQuery, pinReplicaTx, "SELECT * FROM t FOR UPDATE") },
			want: "", why: ReasonTransaction, err: ErrReadOnly},
		{name: "savepoint in replica transaction", give: func(r *router) statement { return sqlStmt(r, kindRaw, pinReplicaTx, "SAVEPOINT sp1") },
			want: "", why: ReasonTransaction},
		{name: "set local in replica transaction", give: func(r *router) statement { return sqlStmt(r, kindRaw, pinReplicaTx, "SET LOCAL statement_timeout = 5") },
			want: "", why: ReasonTransaction},

		// What may write or lock goes to the primary, whatever the clauses.
		{name: "write", give: func(*router) statement { return with(func(s *statement) { s.kind = kindWrite; s.dir = dirReplica }) },
			want: "primary", why: ReasonWrite},
		{name: "write while sticky", give: func(*router) statement { return with(func(s *statement) { s.kind = kindWrite; s.sticky = true }) },
			want: "primary", why: ReasonWrite},
		{name: "migrator read", give: func(*router) statement { return with(func(s *statement) { s.migrator = true; s.dir = dirReplica }) },
			want: "primary", why: ReasonMigrator},
		{name: "Raw().Scan of an update", give: func(r *router) statement { return sqlStmt(r, kindQuery, pinNone, "UPDATE t SET a = 1") },
			want: "primary", why: ReasonRawWrite},
		{name: "Raw().Scan of a primary function", give: func(r *router) statement { return sqlStmt(r, kindQuery, pinNone, "SELECT my_writer(1)") },
			want: "primary", why: ReasonRawWrite},
		{name: "raw select for update", give: func(r *router) statement { return sqlStmt(r, kindQuery, pinNone, "SELECT * FROM t FOR UPDATE") },
			want: "primary", why: ReasonLocking},
		{name: "locking clause", give: func(*router) statement { return with(func(s *statement) { s.locking = true; s.dir = dirReplica }) },
			want: "primary", why: ReasonLocking},

		// Clauses.
		{name: "Primary clause", give: func(*router) statement { return with(func(s *statement) { s.dir = dirPrimary }) },
			want: "primary", why: ReasonForcedPrimary},
		{name: "Primary clause beats stickiness to a replica", give: func(*router) statement {
			return with(func(s *statement) { s.dir = dirPrimary; s.sticky, s.pos = true, lsn("0/50") })
		}, want: "primary", why: ReasonForcedPrimary},
		{name: "Replica clause", give: func(*router) statement { return with(func(s *statement) { s.dir = dirReplica }) },
			want: "r1", why: ReasonForcedReplica},
		{name: "Replica clause, r1 evicted", state: evict(healthy(), 0), give: func(*router) statement { return with(func(s *statement) { s.dir = dirReplica }) },
			want: "r2", why: ReasonForcedReplica},
		{name: "Replica clause, none eligible", state: evict(healthy(), 0, 1), give: func(*router) statement { return with(func(s *statement) { s.dir = dirReplica }) },
			want: "primary", why: ReasonNoReplica},
		{name: "named replica, even evicted", state: evict(healthy(), 1), give: func(r *router) statement {
			return with(func(s *statement) { s.dir, s.replica = dirNamedReplica, r.replicas().nodes[1] })
		}, want: "r2", why: ReasonForcedReplica},
		{name: "named replica that does not exist", give: func(*router) statement { return with(func(s *statement) { s.dir = dirNamedReplica }) },
			want: "", why: 0},

		// Plain reads and Config.Fallback.
		{name: "read", give: func(*router) statement { return read }, want: "r1", why: ReasonRead},
		{name: "read, r1 evicted", state: evict(healthy(), 0), give: func(*router) statement { return read }, want: "r2", why: ReasonRead},
		{name: "read, r1 beyond MaxLag now", state: func() *fakeState { s := healthy(); s.lagNow[0] = 2 * time.Second; return s }(),
			give: func(*router) statement { return read }, want: "r2", why: ReasonRead},
		{name: "read, r1 lag unknown: unknown never passes MaxLag", state: func() *fakeState { s := healthy(); s.lagNow[0] = -1; return s }(),
			give: func(*router) statement { return read }, want: "r2", why: ReasonRead},
		{name: "read, no replica's lag known", state: func() *fakeState { s := healthy(); s.lagNow[0], s.lagNow[1] = -1, -1; return s }(),
			give: func(*router) statement { return read }, want: "primary", why: ReasonNoReplica},
		// The primary down (lagcheck's ServesWithoutPrimary).
		{name: "read, primary down: r2 at the newest position serves though stale", state: func() *fakeState {
			s := healthy()
			s.lagNow[0], s.lagNow[1] = 5*time.Second, 5*time.Second
			s.orphans = []int{1}
			return s
		}(), give: func(*router) statement { return read }, want: "r2", why: ReasonRead},
		{name: "MaxStaleness, primary down: r2 serves", state: func() *fakeState {
			s := healthy()
			s.lagNow[0], s.lagNow[1] = 5*time.Second, 5*time.Second
			s.orphans = []int{1}
			return s
		}(), give: func(*router) statement {
			return with(func(s *statement) { s.dir, s.maxStale = dirMaxStaleness, 100*time.Millisecond })
		}, want: "r2", why: ReasonRead},
		{name: "read, primary down: an evicted replica does not serve", state: func() *fakeState {
			s := evict(healthy(), 1)
			s.lagNow[0], s.lagNow[1] = 5*time.Second, 5*time.Second
			s.orphans = []int{1}
			return s
		}(), give: func(*router) statement { return read }, want: "primary", why: ReasonNoReplica},
		{name: "read, none eligible: FallbackPrimary", state: evict(healthy(), 0, 1),
			give: func(*router) statement { return read }, want: "primary", why: ReasonNoReplica},
		{name: "read, none eligible: FallbackFail", state: evict(healthy(), 0, 1), fb: FallbackFail,
			give: func(*router) statement { return read }, want: "", why: 0, err: ErrNoReplica},
		{name: "read, none eligible: FallbackLeastLagged", fb: FallbackLeastLagged,
			state: func() *fakeState {
				s := evict(healthy(), 0, 1)
				s.lag[0], s.lag[1] = 5*time.Second, 3*time.Second
				return s
			}(),
			give: func(*router) statement { return read }, want: "r2", why: ReasonNoReplica},
		{name: "read, none eligible or answering: FallbackLeastLagged", fb: FallbackLeastLagged,
			state: func() *fakeState { s := evict(healthy(), 0, 1); s.lag[0], s.lag[1] = -1, -1; return s }(),
			give:  func(*router) statement { return read }, want: "primary", why: ReasonNoReplica},

		// MaxStaleness.
		{name: "MaxStaleness met by r2", state: func() *fakeState {
			s := healthy()
			s.lagNow[0], s.lagNow[1] = 200*time.Millisecond, 50*time.Millisecond
			return s
		}(),
			give: func(*router) statement {
				return with(func(s *statement) { s.dir, s.maxStale = dirMaxStaleness, 100*time.Millisecond })
			}, want: "r2", why: ReasonRead},
		{name: "MaxStaleness met by none", state: func() *fakeState {
			s := healthy()
			s.lagNow[0], s.lagNow[1] = 200*time.Millisecond, 150*time.Millisecond
			return s
		}(),
			give: func(*router) statement {
				return with(func(s *statement) { s.dir, s.maxStale = dirMaxStaleness, 100*time.Millisecond })
			}, want: "primary", why: ReasonStale},
		{name: "MaxStaleness of zero or less: the primary", give: func(*router) statement {
			return with(func(s *statement) { s.dir, s.maxStale = dirMaxStaleness, -time.Second })
		}, want: "primary", why: ReasonStale},
		{name: "MaxStaleness, lag unknown", state: func() *fakeState { s := healthy(); s.lagNow[0], s.lagNow[1] = -1, -1; return s }(),
			give: func(*router) statement {
				return with(func(s *statement) { s.dir, s.maxStale = dirMaxStaleness, time.Hour })
			}, want: "primary", why: ReasonStale},
		{name: "MaxStaleness, FallbackFail does not fail it", state: evict(healthy(), 0, 1), fb: FallbackFail,
			give: func(*router) statement {
				return with(func(s *statement) { s.dir, s.maxStale = dirMaxStaleness, time.Hour })
			}, want: "primary", why: ReasonStale},

		// Stickiness.
		{name: "sticky, position unknown (window mode, store down)", give: func(*router) statement {
			return with(func(s *statement) { s.sticky = true })
		}, want: "primary", why: ReasonSticky},
		{name: "sticky, r2 covers the write", state: func() *fakeState { s := healthy(); s.pos[0] = lsn("0/10"); return s }(),
			give: func(*router) statement { return with(func(s *statement) { s.sticky, s.pos = true, lsn("0/50") }) },
			want: "r2", why: ReasonCausal},
		{name: "sticky, no replica covers the write", state: func() *fakeState { s := healthy(); s.pos[0], s.pos[1] = lsn("0/10"), lsn("0/20"); return s }(),
			give: func(*router) statement { return with(func(s *statement) { s.sticky, s.pos = true, lsn("0/50") }) },
			want: "primary", why: ReasonSticky},
		{name: "sticky, the covering replica is evicted", state: func() *fakeState { s := evict(healthy(), 1); s.pos[0] = lsn("0/10"); return s }(),
			give: func(*router) statement { return with(func(s *statement) { s.sticky, s.pos = true, lsn("0/50") }) },
			want: "primary", why: ReasonSticky},
		{name: "sticky, the covering replica is beyond MaxLag", state: func() *fakeState { s := healthy(); s.pos[0] = lsn("0/10"); s.lagNow[1] = 2 * time.Second; return s }(),
			give: func(*router) statement { return with(func(s *statement) { s.sticky, s.pos = true, lsn("0/50") }) },
			want: "primary", why: ReasonSticky},
		{name: "sticky with MaxStaleness, the covering replica too stale", state: func() *fakeState {
			s := healthy()
			s.pos[0] = lsn("0/10")
			s.lagNow[1] = 300 * time.Millisecond
			return s
		}(),
			give: func(*router) statement {
				return with(func(s *statement) {
					s.dir, s.maxStale, s.sticky, s.pos = dirMaxStaleness, 100*time.Millisecond, true, lsn("0/50")
				})
			}, want: "primary", why: ReasonSticky},
		{name: "sticky with MaxStaleness, the covering replica fresh", state: func() *fakeState { s := healthy(); s.pos[0] = lsn("0/10"); return s }(),
			give: func(*router) statement {
				return with(func(s *statement) {
					s.dir, s.maxStale, s.sticky, s.pos = dirMaxStaleness, 100*time.Millisecond, true, lsn("0/50")
				})
			}, want: "r2", why: ReasonCausal},
		{name: "sticky, FallbackFail still reads the primary", state: evict(healthy(), 0, 1), fb: FallbackFail,
			give: func(*router) statement { return with(func(s *statement) { s.sticky, s.pos = true, lsn("0/50") }) },
			want: "primary", why: ReasonSticky},
		// Safety for ordinary GORM usage (the usage-pattern issue).
		{name: "Exec of a SELECT", give: func(r *router) statement { return sqlStmt(r, kindRaw, pinNone, "SELECT my_function(1)") },
			want: "primary", why: ReasonExec},
		{name: "Exec of a plain SELECT", give: func(r *router) statement { return sqlStmt(r, kindRaw, pinNone, "SELECT 1") },
			want: "primary", why: ReasonExec},
		{name: "locking clause in replica transaction", give: func(r *router) statement {
			st := sqlStmt(r, kindQuery, pinReplicaTx, "")
			st.locking = true
			return st
		}, want: "", why: ReasonTransaction, err: ErrReadOnly},
		{name: "savepoint then commit then insert in replica transaction", give: func(r *router) statement {
			return sqlStmt(r, kindRaw, pinReplicaTx, "SAVEPOINT s1; COMMIT; INSERT INTO t VALUES (1)")
		}, want: "", why: ReasonTransaction, err: ErrReadOnly},
		{name: "local set_config in replica transaction", give: func(r *router) statement {
			return sqlStmt(r, kindRaw, pinReplicaTx, "SELECT set_config('app.user', $1, true)")
		}, want: "", why: ReasonTransaction},
		{name: "session set_config in replica transaction", give: func(r *router) statement {
			return sqlStmt(r, kindRaw, pinReplicaTx, "SELECT set_config('app.user', $1, false)")
		}, want: "", why: ReasonTransaction, err: ErrReadOnly},
		{name: "set_config with a nested call in replica transaction", give: func(r *router) statement {
			return sqlStmt(r, kindRaw, pinReplicaTx, "SELECT set_config('a', nextval('s')::text, true)")
		}, want: "", why: ReasonTransaction, err: ErrReadOnly},
		{name: "after Close, a read", give: func(*router) statement { return with(func(s *statement) { s.closed = true }) },
			want: "primary", why: 0},
		{name: "after Close, a Replica clause", give: func(*router) statement { return with(func(s *statement) { s.closed = true; s.dir = dirReplica }) },
			want: "primary", why: 0},
		{name: "after Close, a write", give: func(*router) statement { return with(func(s *statement) { s.closed = true; s.kind = kindWrite }) },
			want: "primary", why: 0},
		{name: "serializable read-only transaction on PostgreSQL", other: func(r *router) target {
			r.serialRO = true
			return r.readOnlyTarget(ctx, &txRequest{iso: sql.LevelSerializable})
		}, want: "primary", why: ReasonReadOnlyTx},
		{name: "serializable read-only transaction elsewhere", other: func(r *router) target {
			return r.readOnlyTarget(ctx, &txRequest{iso: sql.LevelSerializable})
		}, want: "r1", why: ReasonReadOnlyTx},
		{name: "repeatable read read-only transaction on PostgreSQL", other: func(r *router) target {
			r.serialRO = true
			return r.readOnlyTarget(ctx, &txRequest{iso: sql.LevelRepeatableRead})
		}, want: "r1", why: ReasonReadOnlyTx},

		// Operator controls.
		{name: "reads to the primary", give: func(*router) statement { return with(func(s *statement) { s.toPrimary = true }) },
			want: "primary", why: ReasonReadsToPrimary},
		{name: "reads to the primary beats a Replica{Name} clause", give: func(r *router) statement {
			return with(func(s *statement) { s.toPrimary = true; s.dir, s.replica = dirNamedReplica, r.replicas().nodes[1] })
		}, want: "primary", why: ReasonReadsToPrimary},
		{name: "reads to the primary: a write is still a write", give: func(*router) statement {
			return with(func(s *statement) { s.toPrimary = true; s.kind = kindWrite })
		}, want: "primary", why: ReasonWrite},
		{name: "reads to the primary: read-only transactions", other: func(r *router) target {
			r.readsToPrimary.Store(true)
			return r.readOnlyTarget(ctx, &txRequest{})
		}, want: "primary", why: ReasonReadsToPrimary},
		{name: "a drained replica gets no reads", other: func(r *router) target {
			r.replicas().nodes[0].drained.Store(true)
			r.rebuild()
			st := read
			return r.decide(&st)
		}, want: "r2", why: ReasonRead},
		{name: "a Replica{Name} clause naming a drained replica reads elsewhere", other: func(r *router) target {
			r.replicas().nodes[1].drained.Store(true)
			r.rebuild()
			st := with(func(s *statement) { s.dir, s.replica = dirNamedReplica, r.replicas().nodes[1] })
			return r.decide(&st)
		}, want: "r1", why: ReasonForcedReplica},

		// The policy chooses the primary (policy.Primary): for the reads
		// it may send to a replica of its choosing, never for one that
		// asked for a replica.
		{name: "the policy chooses the primary for a read", other: func(r *router) target {
			st := read
			return primaryPolicy(r).decide(&st)
		}, want: "primary", why: ReasonPolicyPrimary},
		{name: "the policy chooses the primary for a MaxStaleness read", other: func(r *router) target {
			st := with(func(s *statement) { s.dir, s.maxStale = dirMaxStaleness, time.Hour })
			return primaryPolicy(r).decide(&st)
		}, want: "primary", why: ReasonPolicyPrimary},
		{name: "the policy chooses the primary for a sticky read", state: func() *fakeState { s := healthy(); s.pos[0] = lsn("0/10"); return s }(),
			other: func(r *router) target {
				st := with(func(s *statement) { s.sticky, s.pos = true, lsn("0/50") })
				return primaryPolicy(r).decide(&st)
			}, want: "primary", why: ReasonPolicyPrimary},
		{name: "the policy may not choose the primary for a Replica clause", other: func(r *router) target {
			st := with(func(s *statement) { s.dir = dirReplica })
			return primaryPolicy(r).decide(&st)
		}, want: "r1", why: ReasonForcedReplica},
		{name: "the policy chooses the primary for a read-only transaction", other: func(r *router) target {
			return primaryPolicy(r).readOnlyTarget(ctx, &txRequest{})
		}, want: "primary", why: ReasonPolicyPrimary},
		{name: "the policy chooses the primary for a sticky read-only transaction", state: func() *fakeState { s := healthy(); s.pos[0] = lsn("0/10"); return s }(),
			other: func(r *router) target {
				return primaryPolicy(r).readOnlyTarget(ctx, &txRequest{sticky: true, pos: lsn("0/50")})
			}, want: "primary", why: ReasonPolicyPrimary},
		{name: "the policy may not choose the primary for a Replica clause's transaction", other: func(r *router) target {
			return primaryPolicy(r).readOnlyTarget(ctx, &txRequest{replica: true})
		}, want: "r1", why: ReasonReadOnlyTx},
		{name: "the policy chooses the primary for a retry", other: func(r *router) target {
			return primaryPolicy(r).retryTarget(ctx, r.replicas().nodes[0], viewRouted)
		}, want: "primary", why: ReasonRetry},
		{name: "the policy is not asked when no replica is eligible", state: evict(healthy(), 0, 1), fb: FallbackFail, other: func(r *router) target {
			st := read
			return primaryPolicy(r).decide(&st)
		}, want: "", why: 0, err: ErrNoReplica},
		{name: "a lowered MaxLag takes r1 out for the next read", state: func() *fakeState { s := healthy(); s.lagNow[0] = 300 * time.Millisecond; return s }(),
			other: func(r *router) target {
				r.maxLag.Store(int64(200 * time.Millisecond))
				st := read
				return r.decide(&st)
			}, want: "r2", why: ReasonRead},

		// Decisions taken outside decide: where a read that failed to
		// connect runs again, and where a read-only transaction begins.
		{name: "retry on the other replica", other: func(r *router) target { return r.retryTarget(ctx, r.replicas().nodes[0], viewRouted) },
			want: "r2", why: ReasonRetry},
		{name: "retry on the primary", state: evict(healthy(), 1),
			other: func(r *router) target { return r.retryTarget(ctx, r.replicas().nodes[0], viewRouted) }, want: "primary", why: ReasonRetry},
		{name: "no retry under FallbackFail", fb: FallbackFail, state: evict(healthy(), 1),
			other: func(r *router) target { return r.retryTarget(ctx, r.replicas().nodes[0], viewRouted) }, want: "", why: 0},
		{name: "retry skips a replica beyond MaxLag", state: func() *fakeState { s := healthy(); s.lagNow[1] = 2 * time.Second; return s }(),
			other: func(r *router) target { return r.retryTarget(ctx, r.replicas().nodes[0], viewRouted) }, want: "primary", why: ReasonRetry},
		{name: "read-only transaction", other: func(r *router) target { return r.readOnlyTarget(ctx, &txRequest{iso: sql.LevelDefault}) },
			want: "r1", why: ReasonReadOnlyTx},
		{name: "read-only transaction after r1 failed", other: func(r *router) target {
			return r.readOnlyTarget(ctx, &txRequest{skip: r.replicas().nodes[0], iso: sql.LevelDefault})
		},
			want: "r2", why: ReasonReadOnlyTx},
		{name: "read-only transaction, none eligible", state: evict(healthy(), 0, 1),
			other: func(r *router) target { return r.readOnlyTarget(ctx, &txRequest{iso: sql.LevelDefault}) }, want: "primary", why: ReasonNoReplica},
		{name: "read-only transaction, none eligible, FallbackFail", fb: FallbackFail, state: evict(healthy(), 0, 1),
			other: func(r *router) target { return r.readOnlyTarget(ctx, &txRequest{iso: sql.LevelDefault}) }, want: "", why: 0, err: ErrNoReplica},
		{name: "read-only transaction, FallbackLeastLagged", fb: FallbackLeastLagged,
			state: func() *fakeState {
				s := evict(healthy(), 0, 1)
				s.lag[0], s.lag[1] = 2*time.Second, 4*time.Second
				return s
			}(),
			other: func(r *router) target { return r.readOnlyTarget(ctx, &txRequest{iso: sql.LevelDefault}) }, want: "r1", why: ReasonNoReplica},
		{name: "read-only transaction, FallbackLeastLagged after it failed", fb: FallbackLeastLagged,
			state: func() *fakeState {
				s := evict(healthy(), 0, 1)
				s.lag[0], s.lag[1] = 2*time.Second, 4*time.Second
				return s
			}(),
			other: func(r *router) target {
				return r.readOnlyTarget(ctx, &txRequest{skip: r.replicas().nodes[0], iso: sql.LevelDefault})
			}, want: "r2", why: ReasonNoReplica},
		{name: "a bounded read's retry goes to the primary", other: func(r *router) target { return r.retryTarget(ctx, r.replicas().nodes[0], viewConstrained) },
			want: "primary", why: ReasonRetry},
		{name: "a causal read is on a constrained view", state: func() *fakeState { s := healthy(); s.pos[0] = lsn("0/10"); return s }(),
			other: func(r *router) target {
				st := statement{ctx: ctx, kind: kindQuery, sticky: true, pos: lsn("0/50")}
				t := r.decide(&st)
				if t.view != viewConstrained {
					t.reason = 0 // fail the row
				}
				return t
			}, want: "r2", why: ReasonCausal},
		{name: "a plain read is on a retrying view", other: func(r *router) target {
			st := statement{ctx: ctx, kind: kindQuery}
			t := r.decide(&st)
			if t.view != viewRouted {
				t.reason = 0
			}
			return t
		}, want: "r1", why: ReasonRead},
		{name: "sticky read-only transaction on the covering replica", state: func() *fakeState { s := healthy(); s.pos[0] = lsn("0/10"); return s }(),
			other: func(r *router) target {
				return r.readOnlyTarget(ctx, &txRequest{sticky: true, pos: lsn("0/50")})
			}, want: "r2", why: ReasonCausal},
		{name: "sticky read-only transaction, no replica covers", state: func() *fakeState { s := healthy(); s.pos[0], s.pos[1] = lsn("0/10"), lsn("0/10"); return s }(),
			other: func(r *router) target {
				return r.readOnlyTarget(ctx, &txRequest{sticky: true, pos: lsn("0/50")})
			}, want: "primary", why: ReasonSticky},
		{name: "sticky read-only transaction, position unknown", other: func(r *router) target {
			return r.readOnlyTarget(ctx, &txRequest{sticky: true})
		}, want: "primary", why: ReasonSticky},
	}
	seen := map[Reason]bool{}
	for _, tt := range tests {
		seen[tt.why] = true
		t.Run(tt.name, func(t *testing.T) {
			s := tt.state
			if s == nil {
				s = healthy()
			}
			r := testRouter(t, s, tt.fb)
			var got target
			if tt.other != nil {
				got = tt.other(r)
			} else {
				st := tt.give(r)
				got = r.decide(&st)
			}
			if name := targetName(r, got); name != tt.want || got.reason != tt.why || !errors.Is(got.err, tt.err) || got.err == nil != (tt.err == nil) {
				t.Errorf("decide = %s %v err=%v, want %s %v err=%v", name, got.reason, got.err, tt.want, tt.why, tt.err)
			}
		})
	}
	for r := Reason(1); r < numReasons; r++ {
		if !seen[r] {
			t.Errorf("no row covers Reason %v", r)
		}
	}
}

// primaryPolicy gives r policy.PrimaryShare(firstPolicy{}, 1): every pick
// is policy.Primary.
func primaryPolicy(r *router) *router {
	pol, _ := policy.PrimaryShare(firstPolicy{}, 1) // a valid share
	r.pol = pol
	r.rebuild()
	return r
}

// targetName is the node a target runs the statement on: a replica's
// name, "primary", or "" when it keeps the statement where it is.
func targetName(r *router, t target) string {
	switch t.where {
	case toPrimary:
		return r.primaryName
	case toReplica:
		return t.node.name
	}
	return ""
}

// TestMarkDown: a connection error on a replica's statement evicts it at
// once and the next read goes elsewhere.
func TestMarkDown(t *testing.T) {
	s := healthy()
	r := testRouter(t, s, FallbackPrimary)
	st := statement{ctx: context.Background(), kind: kindQuery}
	if got := r.decide(&st); targetName(r, got) != "r1" {
		t.Fatalf("first read on %s, want r1", targetName(r, got))
	}
	r.markDown(r.replicas().nodes[0], errors.New("connection refused"))
	r.markDown(r.replicas().nodes[0], errors.New("connection refused")) // already out: not reported again
	if got := r.decide(&st); targetName(r, got) != "r2" {
		t.Errorf("read after markDown on %s, want r2", targetName(r, got))
	}
	if len(s.failed) != 1 || s.failed[0] != 0 {
		t.Errorf("failures reported = %v, want [0]", s.failed)
	}
}

// TestReasonNames: every Reason has a name.
func TestReasonNames(t *testing.T) {
	for r := Reason(1); r < numReasons; r++ {
		if r.String() == "unknown" {
			t.Errorf("Reason %d has no name", r)
		}
	}
}

// BenchmarkDecide measures the pure decision for a plain read.
func BenchmarkDecide(b *testing.B) {
	r := testRouter(b, healthy(), FallbackPrimary)
	st := statement{ctx: context.Background(), kind: kindQuery}
	b.ReportAllocs()
	for b.Loop() {
		if t := r.decide(&st); t.node == nil {
			b.Fatal("no replica")
		}
	}
}

func TestGuard(t *testing.T) {
	r := testRouter(t, healthy(), FallbackPrimary)
	tests := []struct {
		give string
		want Reason // 0: may run on a replica
	}{
		{`SELECT * FROM "users" WHERE "users"."id" = $1 ORDER BY "users"."id" LIMIT $2`, 0},
		{"SELECT * FROM `users` WHERE `users`.`id` = ? ORDER BY `users`.`id` LIMIT ?", 0},
		{`SELECT * FROM "users" WHERE (name = $1 OR age > $2) AND "users"."deleted_at" IS NULL`, 0},
		{`SELECT count(*) FROM "users"`, 0},
		{`SELECT * FROM "jobs" WHERE pg_try_advisory_lock(id) LIMIT 1`, ReasonRawWrite},
		{`SELECT pg_advisory_lock(42)`, ReasonRawWrite},
		{"SELECT GET_LOCK('x', 1)", ReasonRawWrite},
		{`SELECT nextval('users_id_seq')`, ReasonRawWrite},
		{`SELECT my_writer(id) FROM "users"`, ReasonRawWrite},
		{`SELECT * FROM "users" WHERE id IN (SELECT user_id FROM "pets" FOR UPDATE)`, ReasonLocking},
		{`SELECT * FROM "users" WHERE id IN (SELECT user_id FROM "pets" FOR SHARE)`, ReasonLocking},
		{`SELECT * FROM "users" FOR UPDATE`, ReasonLocking},
		{"SELECT * FROM `users` LOCK IN SHARE MODE", ReasonLocking},
		{`SELECT * INTO "copy" FROM "users"`, ReasonRawWrite},
		{`SELECT 1; DELETE FROM "users"`, ReasonRawWrite},
		{`UPDATE "users" SET age = 1`, ReasonRawWrite},
		{`SELECT "format", "lockout" FROM "users"`, 0},
	}
	for _, tt := range tests {
		got, moved := r.guard(tt.give)
		if got != tt.want || moved != (tt.want != 0) {
			t.Errorf("guard(%q) = %v, %v; want %v", tt.give, got, moved, tt.want)
		}
	}
}

func BenchmarkGuard(b *testing.B) {
	r := testRouter(b, healthy(), FallbackPrimary)
	q := `SELECT * FROM "users" WHERE "users"."id" = $1 AND "users"."deleted_at" IS NULL ORDER BY "users"."id" LIMIT $2`
	b.ReportAllocs()
	for b.Loop() {
		if _, moved := r.guard(q); moved {
			b.Fatal("moved")
		}
	}
}

// TestGoneReplica: a statement that routing sent to a replica just before
// RemoveReplica took it out counts nothing there and runs where a retry
// would: another replica, or the primary for a bounded read, or nowhere
// under FallbackFail with no other replica; a transaction does not begin
// there.
func TestGoneReplica(t *testing.T) {
	ctx := context.Background()
	primary := failPool{errors.New("the primary")}
	tests := []struct {
		name  string
		state *fakeState
		fb    Fallback
		view  view
		want  string // the node the statement moves to; "primary"; "" for ErrNoReplica
	}{
		{name: "routed read", view: viewRouted, want: "r2"},
		{name: "bounded read", view: viewConstrained, want: "primary"},
		{name: "Replica{Name} read", view: viewExplicit, want: "r2"},
		{name: "no other replica", state: func() *fakeState { s := healthy(); s.states[1] = lagcheck.Evicted; return s }(), view: viewRouted, want: "primary"},
		{name: "no other replica, FallbackFail", state: func() *fakeState { s := healthy(); s.states[1] = lagcheck.Evicted; return s }(), fb: FallbackFail, view: viewRouted, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.state
			if s == nil {
				s = healthy()
			}
			r := testRouter(t, s, tt.fb)
			r.primaryPool = primary
			nodes := r.replicas().nodes
			for _, n := range nodes {
				n.setPools(nil, nil)
			}
			gone := nodes[0]
			r.publish(nodes[1:])
			gone.gone.Store(true)
			if _, ok := gone.enter(); ok || gone.stats.InFlight() != 0 {
				t.Errorf("enter on a removed replica: ok %v, in flight %d", ok, gone.stats.InFlight())
			}
			if _, err := gone.beginTx(ctx, nil); !errors.Is(err, errGone) {
				t.Errorf("beginTx on a removed replica = %v, want errGone", err)
			}
			got := "?"
			switch p := gone.conn(false, tt.view).moved(ctx).(type) {
			case *nodeConn:
				got = p.n.name
			case failPool:
				if p == primary {
					got = "primary"
				} else if errors.Is(p.err, ErrNoReplica) {
					got = ""
				}
			}
			if got != tt.want {
				t.Errorf("moved to %q, want %q", got, tt.want)
			}
		})
	}
}
