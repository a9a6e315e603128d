// Package rwsplit is a GORM plugin that sends writes to the primary and
// reads to replicas, and keeps that safe on asynchronous replication.
//
//	db, err := gorm.Open(postgres.Open(primaryDSN), &gorm.Config{})
//	p := rwsplit.New(rwsplit.Config{
//		Replicas: []rwsplit.Replica{
//			{Name: "replica-a", Dialector: postgres.Open(replicaA)},
//			{Name: "replica-b", Dialector: postgres.Open(replicaB), Weight: 2},
//		},
//	})
//	if err := db.Use(p); err != nil { ... } // configuration errors; never panics
//	defer p.Close()                          // stops what the plugin started
//
// rwsplit is built on gorm.io/plugin/dbresolver: dbresolver opens the
// replica connection pools and their prepared-statement stores, rwsplit
// makes the routing decision for every statement, and Plugin.Close closes
// what dbresolver opened.
package rwsplit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"gorm.io/plugin/dbresolver"

	"github.com/rwsplit/rwsplit/internal/sqlclass"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/policy"
	"github.com/rwsplit/rwsplit/stickiness"
)

// Config configures a Plugin. It is a plain struct; every zero value means
// the documented default.
type Config struct {
	// Replicas are the read replicas. At least one is required; names must
	// be unique. Plugin.AddReplica and Plugin.RemoveReplica change the set
	// while the plugin runs.
	Replicas []Replica

	// PrimaryName is the name the primary has in Route and Stats.
	// Zero means "primary".
	PrimaryName string

	// Policy chooses the replica for each read among the eligible ones.
	// Nil means policy.Default().
	Policy policy.Policy

	// PrimaryFunctions lists extra SQL function names whose call in raw SQL
	// sends the statement to the primary, in addition to the built-in list
	// (nextval, setval, advisory locks, GET_LOCK, LAST_INSERT_ID, ...).
	// Use it for functions of your own that write or keep session state.
	PrimaryFunctions []string

	// OnRoute, if set, is called for every statement rwsplit routes, after
	// the decision and before the statement runs, and again if a read is
	// retried on another node. It runs on the query path: keep it fast and
	// safe for concurrent use.
	OnRoute func(ctx context.Context, r Route)

	// Fallback says what a read does when no replica is eligible.
	// Zero means FallbackPrimary.
	Fallback Fallback

	// Lag configures the background checker that measures each replica's
	// replication lag and health, and takes a replica out of service
	// while it lags beyond Lag.MaxLag (default 1s), fails or hangs, until
	// it has caught up. The zero value is ready to use: see
	// lagcheck.Config for every default. Lag.OnStateChange, if set, is
	// called after rwsplit has applied the change; Lag.OnServerChange
	// after rwsplit has logged it.
	//
	// The probe is chosen from the primary's dialect: PostgreSQL, MySQL and
	// MariaDB are known. For another database set Lag.Probe or
	// Lag.Heartbeat, or db.Use fails.
	Lag lagcheck.Config

	// Stickiness configures read-your-own-writes: after a user writes
	// (see WithUser), that user's reads go only to replicas that have
	// replayed the write (stickiness.ModeCausal, the default), or to the
	// primary for a fixed window (stickiness.ModeWindow). Statements with
	// no user are not affected, unless Stickiness.Tables is set. The zero
	// value is ready to use: see stickiness.Config.
	Stickiness stickiness.Config

	// StartupTimeout bounds the first health and lag check of the
	// replicas in Initialize. A replica that does not answer in time starts
	// out of service instead of failing db.Use, and joins when the
	// checker sees it healthy. Zero means 2s.
	StartupTimeout time.Duration

	// Logger, if set, gets a record when the plugin starts (its
	// configuration), when a replica is evicted or readmitted, when a
	// replica's address starts or stops answering from several servers,
	// and when the stickiness store starts failing or answers again: never
	// one per statement. Nil means no logging.
	Logger *slog.Logger
}

// Replica is one read replica in Config.Replicas.
//
// A Replica value is also a query clause: db.Clauses(rwsplit.Replica{})
// runs the statement, or the transaction it starts, on a replica chosen by
// the policy, and db.Clauses(rwsplit.Replica{Name: "replica-a"}) on that
// replica.
type Replica struct {
	// Name identifies the replica in routing records, Stats and clauses.
	// Required and unique.
	Name string

	// Dialector opens the replica, e.g. postgres.Open(dsn). A Dialector
	// made by the driver's Open(dsn) inherits the primary dialector's
	// driver settings (such as PreferSimpleProtocol) with its own DSN;
	// build it with the driver's New(Config{...}) to choose its settings
	// yourself.
	Dialector gorm.Dialector

	// Weight is the replica's share of reads for weighted policies.
	// Zero means 1.
	Weight int
}

// Fallback is what a read does when no replica is eligible.
type Fallback uint8

const (
	// FallbackPrimary serves the read from the primary.
	FallbackPrimary Fallback = iota
	// FallbackFail fails the read with ErrNoReplica, to protect the
	// primary from the read load.
	FallbackFail
	// FallbackLeastLagged serves the read from the replica with the least
	// measured lag among those that answer the checker, even though it
	// lags beyond MaxLag; with none answering, from the primary. It
	// trades freshness for keeping read load off the primary.
	FallbackLeastLagged
)

func (f Fallback) String() string {
	switch f {
	case FallbackPrimary:
		return "primary"
	case FallbackFail:
		return "fail"
	case FallbackLeastLagged:
		return "least-lagged"
	}
	return fmt.Sprintf("Fallback(%d)", uint8(f))
}

// Plugin is the rwsplit GORM plugin. Create it with New and install it with
// db.Use. It is safe for concurrent use.
type Plugin struct {
	router
	cfg     Config
	initErr error // configuration error found by New, returned by Initialize

	mu          sync.Mutex // serializes Initialize and Close
	initialized bool
	stopped     bool // closeLocked has run (closed may be set before it)

	// ctlMu serializes the controls that change the replicas or MaxLag
	// (control.go), and Close's closing of the replicas with them. It is
	// taken after mu, never before.
	ctlMu   sync.Mutex
	running atomic.Bool // Initialize succeeded

	// notifying is set while the user's Lag.OnStateChange runs.
	notifying atomic.Bool

	db         *gorm.DB
	resolver   *dbresolver.DBResolver
	anyReplica [2]*anyReplicaPool // [prepared]
	checker    *lagcheck.Checker
	sticky     *stickiness.Tracker

	checkPrimary *sql.DB // the checker's pool on the primary, when rwsplit opened one

	// watch's (see watch.go), when Config.Logger is set.
	watchStop, watchDone chan struct{}
}

// New returns a Plugin for cfg. It never fails: configuration errors are
// returned by Initialize, so db.Use(rwsplit.New(cfg)) reports them.
func New(cfg Config) *Plugin {
	p := &Plugin{}
	p.cfg, p.initErr = cfg.withDefaults()
	if p.initErr == nil {
		p.initErr = p.initRouter()
	}
	return p
}

// Name implements gorm.Plugin.
func (p *Plugin) Name() string { return pluginName }

// withDefaults validates c and returns it with every zero value replaced
// by its default. It is the only place the root package applies defaults;
// each subpackage applies its own.
func (c Config) withDefaults() (Config, error) {
	if len(c.Replicas) == 0 {
		return c, fmt.Errorf("%w: no replicas", ErrConfig)
	}
	if c.PrimaryName == "" {
		c.PrimaryName = "primary"
	}
	seen := map[string]bool{c.PrimaryName: true}
	for i, r := range c.Replicas {
		switch {
		case r.Name == "":
			return c, fmt.Errorf("%w: replica %d has no Name", ErrConfig, i)
		case seen[r.Name]:
			return c, fmt.Errorf("%w: duplicate name %q", ErrConfig, r.Name)
		case r.Dialector == nil:
			return c, fmt.Errorf("%w: replica %q has no Dialector", ErrConfig, r.Name)
		case r.Weight < 0:
			return c, fmt.Errorf("%w: replica %q has negative Weight %d", ErrConfig, r.Name, r.Weight)
		}
		seen[r.Name] = true
	}
	if c.Fallback > FallbackLeastLagged {
		return c, fmt.Errorf("%w: unknown Fallback %d", ErrConfig, c.Fallback)
	}
	if c.StartupTimeout < 0 {
		return c, fmt.Errorf("%w: negative StartupTimeout", ErrConfig)
	}
	if c.StartupTimeout == 0 {
		c.StartupTimeout = 2 * time.Second
	}
	if err := c.Lag.Validate(); err != nil {
		return c, fmt.Errorf("%w: Lag: %w", ErrConfig, err)
	}
	if err := c.Stickiness.Validate(); err != nil {
		return c, fmt.Errorf("%w: Stickiness: %w", ErrConfig, err)
	}
	if c.Policy == nil {
		c.Policy = policy.Default()
	}
	return c, nil
}

// initRouter sets up the router's configuration from p.cfg.
func (p *Plugin) initRouter() error {
	funcs, err := sqlclass.NewFunctions(p.cfg.PrimaryFunctions...)
	if err != nil {
		return fmt.Errorf("%w: PrimaryFunctions: %w", ErrConfig, err)
	}
	p.funcs = funcs
	p.pol = p.cfg.Policy
	p.fallback = p.cfg.Fallback
	p.primaryName = p.cfg.PrimaryName
	p.primaryNotes, p.pinnedNotes = newRouteNotes(p.primaryName), newRouteNotes("")
	p.onRoute = p.cfg.OnRoute
	return nil
}

// Initialize implements gorm.Plugin. It opens the replicas through
// dbresolver, installs rwsplit's routing callbacks and checks each
// replica once. A replica that is down does not make it fail: it starts out
// of service. Configuration errors, a replica's included (failed
// authentication, unknown database, a server that is not a replica, a
// dialect other than the primary's, a privilege the lag checker needs), and
// the primary's missing privileges, are returned wrapping ErrConfig,
// never panicked.
func (p *Plugin) Initialize(db *gorm.DB) (err error) {
	if p.initErr != nil {
		return p.initErr
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed.Load():
		return ErrClosed
	case p.initialized:
		return fmt.Errorf("%w: plugin already installed on a *gorm.DB; create one Plugin per DB", ErrConfig)
	case db == nil || db.Config == nil || db.Dialector == nil || db.ConnPool == nil:
		return fmt.Errorf("%w: Initialize needs an opened *gorm.DB", ErrConfig)
	}
	// Find what would stop the checker before touching db.
	if _, err := lagcheck.New(p.cfg.Lag, db.Dialector.Name(), sqlDBOf(db.ConnPool), nil); err != nil {
		return fmt.Errorf("%w: Lag: %w", ErrConfig, err)
	}
	p.initialized = true
	p.db = db
	p.anyReplica = [2]*anyReplicaPool{{r: &p.router}, {r: &p.router, prepared: true}}
	origPool, origDialector := db.ConnPool, db.Dialector
	defer func() {
		if err != nil {
			// Leave db as it was.
			p.unregister(db)
			db.ConnPool, db.Dialector = origPool, origDialector
			if db.Statement != nil {
				db.Statement.ConnPool = origPool
			}
			p.closeLocked()
		}
	}()

	if err := p.openReplicas(db); err != nil {
		return err
	}
	p.wrapPrimary(db)
	if err := p.startChecker(db); err != nil {
		return err
	}
	sc := p.cfg.Stickiness
	if sc.Logger == nil {
		sc.Logger = p.cfg.Logger
	}
	if p.sticky, err = stickiness.NewForPrimary(sc, p.tablesPrimary(db)); err != nil {
		return fmt.Errorf("%w: Stickiness: %w", ErrConfig, err)
	}
	if p.checker.SamplesCommits() {
		p.sticky.SetSamples(p.checker) // free causal marks
	}
	p.rebuild()
	if err := p.registerCallbacks(db); err != nil {
		return fmt.Errorf("rwsplit: register callbacks: %w", err)
	}
	p.running.Store(true)
	p.logStart()
	if p.cfg.Logger != nil {
		p.watchStop, p.watchDone = make(chan struct{}), make(chan struct{})
		go p.watch(p.watchStop, p.watchDone)
	}
	return nil
}

// logStart logs the configuration in force and the replicas' first states.
func (p *Plugin) logStart() {
	l := p.cfg.Logger
	if l == nil {
		return
	}
	lag := p.checker.Config()
	nodes := p.replicas().nodes
	names := make([]string, len(nodes))
	var eligible []string
	for i, n := range nodes {
		names[i] = n.name
		if p.eligible(n) {
			eligible = append(eligible, n.name)
		}
	}
	l.Info("rwsplit: started", "replicas", names, "eligible", eligible, "policy", p.pol.Name(),
		"fallback", p.fallback.String(), "max_lag", lag.MaxLag, "interval", lag.Interval,
		"stickiness", p.cfg.Stickiness.Mode.String(), "tables", p.cfg.Stickiness.Tables)
	// A replica that failed its first probe has never passed one: it
	// serves no reads until it does (then "replica readmitted").
	for _, s := range p.checker.Status() {
		if s.State == lagcheck.Healthy {
			continue
		}
		attrs := []any{"replica", s.Name, "state", s.State.String()}
		if s.LagKnown {
			attrs = append(attrs, "lag", s.Lag)
		}
		if s.LastErr != nil {
			attrs = append(attrs, "err", s.LastErr.Error())
		}
		l.Warn("rwsplit: replica has not passed a probe since start; it serves no reads until it does", attrs...)
	}
}

// logChange logs a replica's eviction (warn) and its readmission (info);
// the steps in between at debug level.
func (p *Plugin) logChange(ch lagcheck.Change) {
	l := p.cfg.Logger
	if l == nil {
		return
	}
	rd := ch.Reading
	attrs := []any{"replica", ch.Replica, "from", ch.From.String(), "to", ch.To.String()}
	if rd.LagKnown {
		attrs = append(attrs, "lag", rd.Lag)
	}
	if rd.Err != nil {
		attrs = append(attrs, "err", rd.Err.Error())
	}
	switch {
	case ch.To == lagcheck.Evicted && ch.From == lagcheck.Healthy:
		l.Warn("rwsplit: replica evicted", attrs...)
	case ch.To == lagcheck.Healthy:
		l.Info("rwsplit: replica readmitted", attrs...)
	default:
		l.Debug("rwsplit: replica state", attrs...)
	}
}

// startChecker creates the lag checker over the replica pools and runs its
// first round, bounded by StartupTimeout, so that a replica that is down or
// lagging starts out of service. A replica whose first check shows a
// misconfiguration (authentication, unknown database, not a replica, a
// missing privilege), or a primary whose sample lacks a privilege,
// fails it.
func (p *Plugin) startChecker(db *gorm.DB) error {
	cfg := p.cfg.Lag
	user := cfg.OnStateChange
	cfg.OnStateChange = func(ch lagcheck.Change) {
		if n := p.replicas().byIdx(ch.Index); n != nil && ch.To == lagcheck.Healthy {
			n.stats.ResetLatency()
		}
		p.rebuild()
		p.logChange(ch)
		if user != nil {
			p.notifying.Store(true)
			defer p.notifying.Store(false)
			user(ch)
		}
	}
	userServers := cfg.OnServerChange
	cfg.OnServerChange = func(sc lagcheck.ServerChange) {
		p.logServers(sc)
		if userServers != nil {
			p.notifying.Store(true)
			defer p.notifying.Store(false)
			userServers(sc)
		}
	}
	primary := sqlDBOf(p.primaryPool)
	if primary == nil {
		return fmt.Errorf("%w: the primary's ConnPool has no *sql.DB", ErrConfig)
	}
	// The checker's own pools (see checkpool.go).
	d := db.Dialector
	if pd, ok := d.(primaryDialector); ok {
		d = pd.Dialector
	}
	if pool, owned := checkPool(d, primary); owned {
		p.checkPrimary, primary = pool, pool
	}
	nodes := p.replicas().nodes
	targets := make([]lagcheck.Target, len(nodes))
	for i, n := range nodes {
		targets[i] = n.checkTarget()
	}
	c, err := lagcheck.New(cfg, db.Dialector.Name(), primary, targets)
	if err != nil {
		return fmt.Errorf("%w: Lag: %w", ErrConfig, err)
	}
	p.checker, p.state = c, c
	p.maxLag.Store(int64(c.Config().MaxLag))
	for _, n := range nodes {
		if n.openErr != nil {
			c.ReportFailure(n.idx, n.openErr)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.StartupTimeout)
	defer cancel()
	c.Start(ctx)
	return startupCheck(c, p.cfg.PrimaryName)
}

// Close stops everything the plugin started and closes the replica pools it
// opened, and returns once they are stopped. The primary pool belongs to
// the caller and stays open. Close is idempotent.
//
// While Lag.OnStateChange runs, Close cannot wait for the checker (which
// waits for the callback): it stops routing reads to the replicas at once,
// returns nil, and the rest of the work is done when the callback returns.
// This holds for a Close called from the callback, and for one called
// elsewhere during it.
func (p *Plugin) Close() error {
	if p.notifying.Load() {
		if !p.closed.Swap(true) {
			go func() { // waits for the checker, which waits for the callback
				p.mu.Lock()
				defer p.mu.Unlock()
				_ = p.closeLocked()
			}()
		}
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closeLocked()
}

func (p *Plugin) closeLocked() error {
	p.closed.Store(true)
	if p.stopped {
		return nil
	}
	p.stopped = true
	var errs []error
	if p.watchStop != nil {
		close(p.watchStop)
		<-p.watchDone
	}
	if p.checker != nil {
		// The checker's callback takes pickMu, never mu: waiting for it
		// here cannot deadlock.
		errs = append(errs, p.checker.Close())
	}
	if p.sticky != nil {
		errs = append(errs, p.sticky.Close())
	}
	// dbresolver's stores: the replicas' (which rwsplit uses) and the
	// primary's pool's (which it does not), never the user's own.
	for _, s := range resolverStores(p.resolver) {
		stopStore(s)
	}
	// An AddReplica or RemoveReplica under way finishes first (closed
	// ends RemoveReplica's wait); the replicas are then those published.
	p.ctlMu.Lock()
	for _, n := range p.replicas().nodes {
		errs = append(errs, n.close())
	}
	p.ctlMu.Unlock()
	if p.checkPrimary != nil {
		errs = append(errs, p.checkPrimary.Close())
	}
	return errors.Join(errs...)
}

// Resolver returns the dbresolver.DBResolver that opened the pools of
// Config.Replicas, e.g. to call SetMaxOpenConns or SetConnMaxLifetime on
// each. A replica added by AddReplica is not in it (ReplicaDB returns its
// pool), and the pool of one removed by RemoveReplica is closed. It is nil
// before Initialize.
func (p *Plugin) Resolver() *dbresolver.DBResolver { return p.resolver }

// ReplicaDB returns the *sql.DB of the named replica, or nil.
func (p *Plugin) ReplicaDB(name string) *sql.DB {
	if n := p.replicas().byName[name]; n != nil {
		return n.sqlDB
	}
	return nil
}
