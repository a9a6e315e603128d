package lagcheck

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Target is one replica to watch.
type Target struct {
	// Name identifies the replica in Status and Change. Zero means
	// "replica<i>", i being its index.
	Name string
	// DB is the replica's pool. The Checker holds one of its connections
	// for its probes (see Checker), and never closes DB. Give it a pool
	// of its own, so that a busy application pool never delays a probe.
	DB *sql.DB
}

// Change is one change of a replica's State, as given to
// Config.OnStateChange.
type Change struct {
	// Index is the replica's index in the targets given to New.
	Index int
	// Replica is its name.
	Replica  string
	From, To State
	// Reading is the reading that caused the change; for a change caused
	// by Checker.ReportFailure, a Reading whose Err is the reported error.
	Reading Reading
	// Generation is the replica's generation after the change.
	Generation uint64
}

// Status is a snapshot of one replica, for monitoring.
type Status struct {
	Index int
	Name  string
	State State
	// Since is when the replica entered State (zero: never changed).
	Since time.Time
	// Lag and LagKnown are the last reading's (see Reading.Lag).
	Lag      time.Duration
	LagKnown bool
	// Behind is the last reading's Behind: bytes (PostgreSQL) or
	// transactions (GTIDs) behind the primary; -1 when unknown.
	Behind int64
	// ReplayPosition is the last position the replica reported.
	ReplayPosition Position
	// Fallback, when not empty, says that the last probe had no position
	// for the replica, why, and how it bounded the lag instead (e.g.
	// MariaDB or MySQL without GTIDs: Seconds_Behind_*, in whole seconds).
	// Covers is then never true for a position newer than ReplayPosition,
	// so causal reads go to the primary.
	Fallback string
	// Server is the server that answered the last probe that said (zero
	// if the probe does not say).
	Server Server
	// Servers, when the replica's address has answered from more than one
	// server within the hold (40 Intervals, at least 10s, after each
	// server's last answer), lists them; nil otherwise. Meanwhile Lag and
	// LagNow are the worst of theirs, and Covers is false, so causal
	// reads go to the primary. A PostgreSQL server restarted at the same
	// address counts once. See docs/topologies.md.
	Servers []Server
	// LastProbe is when the last probe finished (zero before the first).
	LastProbe time.Time
	// LastErr is the last reading's error (nil if it succeeded).
	LastErr error
	// PrimaryErr is set when the primary could not be sampled for the
	// last reading.
	PrimaryErr error
	// Evictions counts moves from Healthy to Evicted; Readmissions moves
	// back to Healthy.
	Evictions, Readmissions uint64
	// Generation counts ReportFailure calls: a probe started before the
	// latest one has its result dropped.
	Generation uint64
}

// Checker measures each replica's replication lag and health in the
// background, and decides which replicas may serve reads. Its readers
// (State, Lag, LagNow, Covers) are lock-free. It owns its goroutines: Start
// starts them, Close stops them and waits. Add and Remove change the
// replicas while it runs, SetMaxLag its MaxLag.
//
// It holds one connection of each pool it was given (the primary's and
// each replica's) for its probes, taken before the first probe and again
// after a probe fails on it, and returns them to their pools on Close; of
// a pool capped below 4 open connections, it takes one for each probe and
// gives it back. It never closes the *sql.DB handles themselves. Waiting
// for a connection is never part of a probe: a wait that runs out of
// Config.Timeout is an ErrPoolBusy reading, which neither evicts nor
// readmits, and bounds no lag.
type Checker struct {
	cfg       Config // defaults applied; MaxLag and ReadmitLag as New had them (see rules)
	given     Config // as given to New: SetMaxLag defaults what it left zero
	rules     atomic.Pointer[rules]
	probe     Probe
	positions Probe                      // reads the primary's position for PrimaryPosition; may be nil
	primary   *sql.DB                    // for PrimaryPosition and CommitPosition, which any goroutine may call
	sampler   held                       // the sample loop's connection to the primary
	reps      atomic.Pointer[[]*replica] // by index, nil once removed (see replicas)
	hist      *history
	commits   *commits      // the samples' commit positions, for CommitAfter
	hold      time.Duration // serverHold
	notes     *notifier     // nil without OnStateChange and OnServerChange

	primaryDown atomic.Bool // the latest sample of the primary failed

	sampleCommits bool // the probe samples commit positions (SamplesCommits)

	phase func(n int64) int64 // draws the sample loop's phase (firstWait); nil: rand.Int64N

	ctx    context.Context // canceled by Close; every probe runs under it
	cancel context.CancelFunc

	mu        sync.Mutex // guards started, closed, the stores to reps and rules, and wg.Add against Close's wg.Wait
	started   bool
	closed    bool
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeDone chan struct{}
}

// replica is one watched replica. The atomics are its published state
// for lock-free readers; mu guards the state machine and the last reading.
type replica struct {
	idx  int
	name string
	conn held // used only by the replica's loop (and Start's round)

	ctx     context.Context // canceled by Close or Remove; its probes run under it
	cancel  context.CancelFunc
	looping bool          // its loop was started (guarded by Checker.mu)
	done    chan struct{} // closed when its loop returns

	wake      chan struct{} // a new round: probe (capacity 1, coalesces)
	first     chan struct{} // closed after the first probe's result was applied
	firstOnce sync.Once

	state atomic.Int32
	lag   atomic.Int64 // the last reading's, nanoseconds; -1 when unknown
	fresh atomic.Int64 // the replica has every commit made before this, nanoseconds since epoch; noFresh until known
	gen   atomic.Uint64
	pos   atomic.Pointer[Position]
	// disconnected: the last reading said the replica is not connected
	// to its primary.
	disconnected atomic.Bool
	// several: more than one server answers behind the address; Covers
	// is then false.
	several atomic.Bool

	mu   sync.Mutex
	h    health
	last Reading
	srv  servers
}

// New returns a Checker for the primary and replicas, which it does not
// probe until Start. dialect is GORM's Dialector.Name(): "postgres" or
// "mysql" (MariaDB and MySQL both say "mysql"; the first probe tells them
// apart with SELECT VERSION()); "mariadb" is accepted too. Any other
// dialect needs Config.Probe or Config.Heartbeat. Errors wrap ErrConfig.
func New(cfg Config, dialect string, primary *sql.DB, replicas []Target) (*Checker, error) {
	given := cfg
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if primary == nil {
		return nil, fmt.Errorf("%w: nil primary *sql.DB", ErrConfig)
	}
	probe, positions, err := probeFor(cfg, dialect)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Checker{
		cfg:       cfg,
		given:     given,
		probe:     explain(probe, cfg.Heartbeat),
		positions: positions,
		primary:   primary,
		sampler:   held{pool: primary},
		hist:      newHistory(historyCap(cfg)),
		commits:   newCommits(historyCap(cfg)),
		hold:      serverHold(cfg.Interval),
		ctx:       ctx,
		cancel:    cancel,
		closeDone: make(chan struct{}),
	}
	c.sampleCommits = samplesCommits(c.probe)
	ru := rulesOf(cfg)
	c.rules.Store(&ru)
	if cfg.OnStateChange != nil || cfg.OnServerChange != nil {
		c.notes = newNotifier()
	}
	reps := make([]*replica, 0, len(replicas))
	for i, t := range replicas {
		if t.DB == nil {
			cancel()
			return nil, fmt.Errorf("%w: replica %d (%q) has a nil *sql.DB", ErrConfig, i, t.Name)
		}
		reps = append(reps, c.newReplica(i, t))
	}
	c.reps.Store(&reps)
	return c, nil
}

// newReplica returns the replica at index i, watching t.
func (c *Checker) newReplica(i int, t Target) *replica {
	name := t.Name
	if name == "" {
		name = fmt.Sprintf("replica%d", i)
	}
	r := &replica{idx: i, name: name, conn: held{pool: t.DB}, wake: make(chan struct{}, 1), first: make(chan struct{}), done: make(chan struct{})}
	r.ctx, r.cancel = context.WithCancel(c.ctx)
	r.lag.Store(-1)
	r.fresh.Store(noFresh)
	r.last.Behind = -1
	return r
}

// Start runs one probe round synchronously, so that a replica that is
// down, failing or lagging starts Evicted, and then starts the background
// loops, which run until Close. ctx only bounds how long Start waits for
// the round (at most about two Timeouts). Start does nothing after the
// first call, after Close, or without replicas.
func (c *Checker) Start(ctx context.Context) {
	c.mu.Lock()
	reps := c.replicas()
	if c.started || c.closed || c.Len() == 0 {
		c.mu.Unlock()
		return
	}
	c.started = true
	for _, r := range reps {
		if r != nil {
			c.loop(r)
		}
	}
	if c.notes != nil {
		go c.notes.loop()
	}
	c.wg.Add(1) // the round below uses the sampler's connection, which Close returns
	c.mu.Unlock()

	c.round()
	c.wg.Done()
	for _, r := range reps {
		if r == nil {
			continue
		}
		select {
		case <-r.first:
		case <-ctx.Done():
		case <-c.ctx.Done():
		}
	}

	c.mu.Lock()
	if !c.closed {
		c.wg.Add(1)
		go c.sampleLoop()
	}
	c.mu.Unlock()
}

// Close stops every goroutine of the Checker and waits for them, then
// delivers the state changes still queued for OnStateChange. Probes in
// flight are canceled. It is safe to call more than once; every call
// waits. It always returns nil.
func (c *Checker) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		started := c.started
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		c.sampler.close()
		for _, r := range c.replicas() {
			if r != nil {
				r.conn.close()
			}
		}
		if c.notes != nil {
			c.notes.stop(started)
		}
		close(c.closeDone)
	})
	<-c.closeDone
	return nil
}

// sampleLoop runs a round every Interval, at a random phase (firstWait).
func (c *Checker) sampleLoop() {
	defer c.wg.Done()
	wait := time.NewTimer(firstWait(c.cfg.Interval, c.phase))
	select {
	case <-c.ctx.Done():
		wait.Stop()
		return
	case <-wait.C:
	}
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		c.round()
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// round samples the primary, waits settleTime, then wakes every replica's
// loop. A replica still busy with the previous round gets one wake-up for
// both.
func (c *Checker) round() {
	var pos, commit Position
	q, err := c.take(&c.sampler)
	start := time.Now() // before the query is sent: CommitAfter relies on it
	if err == nil {
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.Timeout)
		if cs, ok := c.probe.(commitSampler); ok && c.sampleCommits {
			pos, commit, err = cs.primarySample(ctx, q)
		} else {
			pos, err = c.probe.Primary(ctx, q)
		}
		cancel()
		c.sampler.done(err)
	}
	end := time.Now()
	if c.ctx.Err() != nil {
		return
	}
	c.hist.record(sample{start: start, end: end, pos: pos}, err)
	c.primaryDown.Store(err != nil)
	if err == nil && !commit.IsZero() {
		c.commits.add(start, commit)
	}
	// Give the replicas a moment to replay what the sample saw, so that a
	// replica that is only its replication delay behind is seen to cover
	// the sample (its lag then reads a few milliseconds, not an Interval).
	t := time.NewTimer(settleTime(c.cfg.Interval))
	select {
	case <-t.C:
	case <-c.ctx.Done():
		t.Stop()
		return
	}
	for _, r := range c.replicas() {
		if r == nil {
			continue
		}
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// settleTime is how long after sampling the primary the replicas are
// probed: Interval/50, within [1ms, 10ms] (see docs/health.md).
func settleTime(interval time.Duration) time.Duration {
	return min(max(interval/50, time.Millisecond), 10*time.Millisecond)
}

// loop starts r's loop; c.mu must be held.
func (c *Checker) loop(r *replica) {
	c.wg.Add(1)
	r.looping = true
	go c.replicaLoop(r)
}

// replicaLoop probes one replica each time a round wakes it, until Close
// or Remove.
func (c *Checker) replicaLoop(r *replica) {
	defer c.wg.Done()
	defer close(r.done)
	defer r.firstOnce.Do(func() { close(r.first) })
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.wake:
		}
		c.probeReplica(r)
		r.firstOnce.Do(func() { close(r.first) })
	}
}

func (c *Checker) probeReplica(r *replica) {
	gen := r.gen.Load()
	primary := c.hist.latest()
	var rep Replay
	q, err := c.take(&r.conn)
	start := time.Now()
	if err == nil {
		ctx, cancel := context.WithTimeout(withTarget(r.ctx, r.idx), c.cfg.Timeout)
		rep, err = c.probe.Replica(ctx, q, primary)
		cancel()
		r.conn.done(err)
	}
	end := time.Now()
	if r.ctx.Err() != nil {
		return // closing or removed: the probe was canceled, not the replica's fault
	}
	c.apply(r, gen, c.hist.estimate(rep, err, start, end))
}

// take returns h's connection, waiting up to a Timeout for one; the wait
// is not part of the probe that follows.
func (c *Checker) take(h *held) (DB, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.Timeout)
	defer cancel()
	return h.get(ctx)
}

// targetKey is the context key under which a Replica probe finds the
// index of the replica it probes (for the tests' fake probes).
type targetKey struct{}

func withTarget(ctx context.Context, i int) context.Context {
	return context.WithValue(ctx, targetKey{}, i)
}

// targetIndex returns the index withTarget put in ctx, or -1.
func targetIndex(ctx context.Context) int {
	if i, ok := ctx.Value(targetKey{}).(int); ok {
		return i
	}
	return -1
}

// apply runs the state machine on a reading taken under generation gen,
// publishes the result for the lock-free readers, and queues the change
// for OnStateChange (under r.mu, so changes queue in the order they
// happen).
func (c *Checker) apply(r *replica, gen uint64, rd Reading) {
	r.mu.Lock()
	defer r.mu.Unlock()
	srv, rd := r.srv.observe(rd, c.hold)
	ru := c.rules.Load()
	h, tr := ru.step(r.h, ru.classify(rd), gen, rd.At)
	if tr.dropped {
		return
	}
	severalChanged := srv.several() != r.srv.several()
	r.h, r.srv = h, srv
	if rd.Position.IsZero() && !r.last.Position.IsZero() {
		rd.Position = r.last.Position // a failed probe does not forget how far the replica got
	}
	r.last = rd
	r.publish(rd)
	if severalChanged {
		c.notifyServers(r)
	}
	if tr.changed {
		c.notify(r, tr, rd)
	}
}

func (r *replica) publish(rd Reading) {
	several := r.srv.several()
	r.several.Store(several)
	r.state.Store(int32(r.h.state))
	r.gen.Store(r.h.gen)
	r.disconnected.Store(rd.Disconnected)
	fresh := rd.fresh
	if rd.LagKnown {
		r.lag.Store(int64(rd.Lag))
		at := rd.At
		if at.IsZero() {
			at = time.Now()
		}
		fresh = at.Add(-rd.Lag)
	} else {
		r.lag.Store(-1)
	}
	// A reading that cannot bound the lag keeps the last bound, which
	// LagNow lets grow: a replica never un-replays what it had. Several
	// servers behind the address may: a staler one may answer next.
	if !fresh.IsZero() {
		if f := int64(fresh.Sub(epoch)); f > r.fresh.Load() || several {
			r.fresh.Store(f)
		}
	}
	if !rd.Position.IsZero() {
		p := rd.Position
		r.pos.Store(&p)
	}
}

func (c *Checker) notify(r *replica, tr transition, rd Reading) {
	if fn := c.cfg.OnStateChange; fn != nil {
		ch := Change{Index: r.idx, Replica: r.name, From: tr.from, To: tr.to, Reading: rd, Generation: r.h.gen}
		c.notes.push(func() { fn(ch) })
	}
}

// notifyServers queues the change of r.srv.several() for OnServerChange.
func (c *Checker) notifyServers(r *replica) {
	if fn := c.cfg.OnServerChange; fn != nil {
		sc := ServerChange{Index: r.idx, Replica: r.name, Several: r.srv.several(), Servers: r.srv.list()}
		c.notes.push(func() { fn(sc) })
	}
}

var errReported = errors.New("lagcheck: failure reported")

// ReportFailure tells the Checker that a statement on replica i lost its
// connection: the replica is evicted at once, whatever err is, and a probe
// already in flight cannot readmit it. It is safe for concurrent use, does
// no I/O, and does nothing for an index out of range or removed.
func (c *Checker) ReportFailure(i int, err error) {
	r := c.replica(i)
	if r == nil {
		return
	}
	if err == nil {
		err = errReported
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	r.h.gen++
	h, tr := c.rules.Load().step(r.h, fatal, r.h.gen, now)
	r.h = h
	rd := Reading{Err: err, At: now, Behind: -1, Position: r.last.Position}
	r.last = rd
	r.publish(rd)
	if tr.changed {
		c.notify(r, tr, rd)
	}
}

// State returns replica i's state; Evicted for an index out of range or
// removed. It is lock-free.
func (c *Checker) State(i int) State {
	r := c.replica(i)
	if r == nil {
		return Evicted
	}
	return State(r.state.Load())
}

// Lag returns the last lag measured on replica i, an upper bound (see
// Reading.Lag), and false when the last probe could not bound it (it
// failed, or the primary could not be sampled). It is lock-free.
func (c *Checker) Lag(i int) (time.Duration, bool) {
	r := c.replica(i)
	if r == nil {
		return 0, false
	}
	v := r.lag.Load()
	if v < 0 {
		return 0, false
	}
	return time.Duration(v), true
}

// LagNow returns an upper bound on how stale replica i's data is now: the
// time since the newest instant before which the replica is known to have
// every commit (the start of the newest primary sample its position
// covered, or its probe's own bound). A probe that cannot bound the lag
// (it failed, or the primary could not be sampled) leaves that instant
// where it was, so LagNow keeps growing. It returns false only when no
// probe has ever bounded the lag. It is lock-free and does not allocate.
func (c *Checker) LagNow(i int) (time.Duration, bool) {
	r := c.replica(i)
	if r == nil {
		return 0, false
	}
	return r.lagNow(int64(time.Since(epoch)))
}

// lagNow is LagNow at now, nanoseconds since epoch.
func (r *replica) lagNow(now int64) (time.Duration, bool) {
	f := r.fresh.Load()
	if f == noFresh {
		return 0, false
	}
	return max(time.Duration(now-f), 0), true
}

// epoch is the origin of the monotonic times the replicas publish.
var epoch = time.Now()

// noFresh is replica.fresh before any probe bounded the lag.
const noFresh = math.MinInt64

// Covers reports whether replica i's last measured replay position covers
// p (see Position.Covers), as of its last probe. It says nothing about the
// replica's health: check State too. It is false while several servers
// answer behind the replica's address (see Status.Servers): a position
// read on one says nothing of the others. It is lock-free and does not
// allocate.
func (c *Checker) Covers(i int, p Position) bool {
	r := c.replica(i)
	if r == nil {
		return false
	}
	pos := r.pos.Load()
	return pos != nil && !r.several.Load() && pos.Covers(p)
}

// PrimaryPosition reads the primary's current replication position: take
// it right after a write and pass it to Covers to find replicas that have
// the write. It runs pg_current_wal_lsn(), @@gtid_binlog_pos (MariaDB) or
// @@gtid_executed (MySQL), whatever Config.Probe is; it fails with
// ErrNoPosition for a dialect without positions.
func (c *Checker) PrimaryPosition(ctx context.Context) (Position, error) {
	if c.positions == nil {
		return Position{}, ErrNoPosition
	}
	return c.positions.Primary(ctx, c.primary)
}

// CommitPosition reads, through q, a position of the primary that covers
// every transaction committed on it before the call, whatever its
// durability: on PostgreSQL pg_current_wal_insert_lsn(), which an
// asynchronous commit (synchronous_commit=off) has passed when it returns
// while pg_current_wal_lsn() may not have; on MariaDB and MySQL what
// PrimaryPosition reads. q must be a connection to the primary, such as a
// *sql.Conn the caller holds; nil means the Checker's primary pool. It
// fails with ErrNoPosition for a dialect without positions.
func (c *Checker) CommitPosition(ctx context.Context, q Querier) (Position, error) {
	if c.positions == nil {
		return Position{}, ErrNoPosition
	}
	cp, ok := c.positions.(commitPositioner)
	switch {
	case !ok:
		return c.positions.Primary(ctx, c.primary)
	case q == nil:
		q = c.primary
	}
	return cp.commitPosition(ctx, q)
}

// Config returns the Config the Checker runs with: the one given to New,
// with every default applied (MaxLag is never zero, for instance).
func (c *Checker) Config() Config {
	cfg := c.cfg
	ru := c.rules.Load()
	cfg.MaxLag, cfg.ReadmitLag = ru.maxLag, ru.readmitLag
	if cfg.Heartbeat != nil {
		h := *cfg.Heartbeat
		cfg.Heartbeat = &h
	}
	return cfg
}

// Len returns the number of replicas watched: those given to New and
// added, less those removed.
func (c *Checker) Len() int {
	n := 0
	for _, r := range c.replicas() {
		if r != nil {
			n++
		}
	}
	return n
}

// Status returns a snapshot of every replica watched, in index order
// (Status.Index; a removed replica's index is skipped).
func (c *Checker) Status() []Status {
	out := make([]Status, 0, c.Len())
	for i, r := range c.replicas() {
		if r == nil {
			continue
		}
		r.mu.Lock()
		out = append(out, Status{
			Index:          i,
			Name:           r.name,
			State:          r.h.state,
			Since:          r.h.since,
			Lag:            r.last.Lag,
			LagKnown:       r.last.LagKnown,
			Behind:         r.last.Behind,
			ReplayPosition: r.last.Position,
			Fallback:       r.last.Fallback,
			Server:         r.last.Server,
			Servers:        r.srv.list(),
			LastProbe:      r.last.At,
			LastErr:        r.last.Err,
			PrimaryErr:     r.last.PrimaryErr,
			Evictions:      r.h.evictions,
			Readmissions:   r.h.readmissions,
			Generation:     r.h.gen,
		})
		r.mu.Unlock()
	}
	return out
}

// notifier makes the calls to Config.OnStateChange and OnServerChange
// from one goroutine, in the order they were queued, outside every lock.
type notifier struct {
	mu     sync.Mutex
	queue  []func()
	closed bool

	kick chan struct{} // capacity 1
	quit chan struct{} // closed by stop
	done chan struct{} // closed when loop returns
}

func newNotifier() *notifier {
	return &notifier{kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
}

func (n *notifier) push(call func()) {
	n.mu.Lock()
	if !n.closed {
		n.queue = append(n.queue, call)
	}
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

func (n *notifier) loop() {
	defer close(n.done)
	for {
		select {
		case <-n.kick:
			n.drain(false)
		case <-n.quit:
			n.drain(true)
			return
		}
	}
}

// drain delivers everything queued; last also refuses later pushes.
func (n *notifier) drain(last bool) {
	for {
		n.mu.Lock()
		q := n.queue
		n.queue = nil
		if last && len(q) == 0 {
			n.closed = true
		}
		n.mu.Unlock()
		if len(q) == 0 {
			return
		}
		for _, call := range q {
			call()
		}
	}
}

// stop delivers what is queued and ends the loop (if it was started).
func (n *notifier) stop(started bool) {
	close(n.quit)
	if started {
		<-n.done
		return
	}
	n.drain(true)
}

// PrimaryErr returns the error of the latest attempt to sample the
// primary, nil if it succeeded or none was made yet. While it is not nil,
// no replica's lag can be measured, and their staleness bounds grow.
func (c *Checker) PrimaryErr() error {
	c.hist.mu.Lock()
	defer c.hist.mu.Unlock()
	return c.hist.lastErr
}

// ServesWithoutPrimary reports whether replica i may serve reads although
// its staleness bound (LagNow) has passed MaxLag, because the primary is
// down: the latest attempt to sample the primary failed, the replica's
// last probe found it disconnected from its primary too (Replay.Disconnected),
// it is Healthy, and its replay position covers every other replica's last
// known one. Such a replica has everything of the primary's that reached
// any replica, and nothing newer can reach one until the primary is back.
//
// It cannot tell a primary that is down from one that goes on taking
// writes from elsewhere, cut off from both this process and its replicas:
// reads then see the data of the moment the replicas lost it.
// docs/health.md ("The primary down") says more. It is lock-free and does
// not allocate.
func (c *Checker) ServesWithoutPrimary(i int) bool {
	r := c.replica(i)
	if !c.primaryDown.Load() || r == nil {
		return false
	}
	if State(r.state.Load()) != Healthy || !r.disconnected.Load() {
		return false
	}
	p := r.pos.Load()
	if p == nil {
		return false
	}
	for j, o := range c.replicas() {
		if o == nil {
			continue // removed
		}
		if q := o.pos.Load(); j != i && q != nil && !p.Covers(*q) {
			return false
		}
	}
	return true
}
