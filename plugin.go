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
// rwsplit is built on gorm.io/plugin/dbresolver: dbresolver opens and owns
// the replica connection pools and their prepared-statement stores, and
// rwsplit makes the routing decision for every statement.
package rwsplit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/plugin/dbresolver"

	"github.com/rwsplit/rwsplit/internal/sqlclass"
	"github.com/rwsplit/rwsplit/policy"
)

// Config configures a Plugin. It is a plain struct; every zero value means
// the documented default.
type Config struct {
	// Replicas are the read replicas. At least one is required; names must
	// be unique.
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

	// StartupTimeout bounds the health check of each replica in
	// Initialize. A replica that does not answer in time starts out of
	// service instead of failing db.Use. Zero means 2s.
	StartupTimeout time.Duration
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
)

// Plugin is the rwsplit GORM plugin. Create it with New and install it with
// db.Use. It is safe for concurrent use.
type Plugin struct {
	cfg     Config
	initErr error // configuration error found by New, returned by Initialize

	mu          sync.Mutex // serializes membership changes and Close
	initialized bool
	closed      bool

	db          *gorm.DB
	resolver    *dbresolver.DBResolver
	primaryName string
	primaryPool gorm.ConnPool // the primary pool as it was before Initialize
	funcs       *sqlclass.Functions
	pol         policy.Policy
	nodes       []*node
	byName      map[string]*node
	anyReplica  [2]*anyReplica // [prepared]
	picker      atomic.Pointer[pickerSnapshot]
	counts      [numReasons]atomic.Uint64
}

// pickerSnapshot is an immutable pairing of a Picker with the nodes it
// picks among: Pick returns an index into nodes.
type pickerSnapshot struct {
	picker policy.Picker
	nodes  []*node
}

// New returns a Plugin for cfg. It never fails: configuration errors are
// returned by Initialize, so db.Use(rwsplit.New(cfg)) reports them.
func New(cfg Config) *Plugin {
	p := &Plugin{cfg: cfg}
	p.initErr = p.applyDefaults()
	return p
}

// Name implements gorm.Plugin.
func (p *Plugin) Name() string { return "rwsplit" }

// applyDefaults validates the configuration and fills in every default in
// one place.
func (p *Plugin) applyDefaults() error {
	c := &p.cfg
	if len(c.Replicas) == 0 {
		return fmt.Errorf("%w: no replicas", ErrConfig)
	}
	p.primaryName = c.PrimaryName
	if p.primaryName == "" {
		p.primaryName = "primary"
	}
	seen := map[string]bool{p.primaryName: true}
	for i, r := range c.Replicas {
		switch {
		case r.Name == "":
			return fmt.Errorf("%w: replica %d has no Name", ErrConfig, i)
		case seen[r.Name]:
			return fmt.Errorf("%w: duplicate name %q", ErrConfig, r.Name)
		case r.Dialector == nil:
			return fmt.Errorf("%w: replica %q has no Dialector", ErrConfig, r.Name)
		case r.Weight < 0:
			return fmt.Errorf("%w: replica %q has negative Weight %d", ErrConfig, r.Name, r.Weight)
		}
		seen[r.Name] = true
	}
	if c.Fallback > FallbackFail {
		return fmt.Errorf("%w: unknown Fallback %d", ErrConfig, c.Fallback)
	}
	if c.StartupTimeout < 0 {
		return fmt.Errorf("%w: negative StartupTimeout", ErrConfig)
	}
	if c.StartupTimeout == 0 {
		c.StartupTimeout = 2 * time.Second
	}
	funcs, err := sqlclass.NewFunctions(c.PrimaryFunctions...)
	if err != nil {
		return fmt.Errorf("%w: PrimaryFunctions: %w", ErrConfig, err)
	}
	p.funcs = funcs
	p.pol = c.Policy
	if p.pol == nil {
		p.pol = policy.Default()
	}
	return nil
}

// Initialize implements gorm.Plugin. It opens the replicas through
// dbresolver, installs rwsplit's routing callbacks and checks each
// replica once. A replica that is down does not make it fail: it starts out
// of service. Configuration errors are returned, never panicked.
func (p *Plugin) Initialize(db *gorm.DB) (err error) {
	if p.initErr != nil {
		return p.initErr
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return ErrClosed
	case p.initialized:
		return fmt.Errorf("%w: plugin already installed on a *gorm.DB; create one Plugin per DB", ErrConfig)
	case db == nil || db.Config == nil || db.Dialector == nil || db.ConnPool == nil:
		return fmt.Errorf("%w: Initialize needs an opened *gorm.DB", ErrConfig)
	}
	p.initialized = true
	p.db = db
	p.anyReplica = [2]*anyReplica{{p: p}, {p: p, prepared: true}}
	defer func() {
		if err != nil {
			p.closeLocked()
		}
	}()

	if err := p.openReplicas(db); err != nil {
		return err
	}
	p.wrapPrimary(db)
	if err := p.registerCallbacks(db); err != nil {
		return fmt.Errorf("rwsplit: register callbacks: %w", err)
	}
	p.checkReplicas()
	p.rebuildLocked()
	return nil
}

// openReplicas lets dbresolver open every replica and keeps, per replica,
// the pool and prepared-statement store dbresolver made for it.
func (p *Plugin) openReplicas(db *gorm.DB) error {
	p.nodes = make([]*node, len(p.cfg.Replicas))
	p.byName = make(map[string]*node, len(p.cfg.Replicas))
	dialectors := make([]gorm.Dialector, len(p.cfg.Replicas))
	for i, r := range p.cfg.Replicas {
		n := newNode(p, i, r)
		p.nodes[i] = n
		p.byName[r.Name] = n
		d, err := inheritDriverSettings(db.Dialector, r.Dialector)
		if err != nil {
			return fmt.Errorf("%w: replica %q: %w", ErrConfig, r.Name, err)
		}
		dialectors[i] = &replicaDialector{Dialector: d, node: n}
	}

	var pick atomic.Int32 // which replica the resolver's policy returns, see replicaStores
	p.resolver = dbresolver.Register(dbresolver.Config{
		Replicas: dialectors,
		Policy: dbresolver.PolicyFunc(func(pools []gorm.ConnPool) gorm.ConnPool {
			return pools[int(pick.Load())%len(pools)]
		}),
	})
	if err := p.resolver.Initialize(db); err != nil {
		return fmt.Errorf("rwsplit: open replicas: %w", err)
	}
	for _, n := range p.nodes {
		if n.sqlDB == nil {
			return fmt.Errorf("rwsplit: replica %q: dialector did not open a *sql.DB", n.name)
		}
	}
	p.replicaStores(db, &pick)
	return nil
}

// replicaStores asks dbresolver for the prepared-statement store it keeps for
// each replica, by running its read resolution once per replica with a policy
// that returns that replica. dbresolver owns the stores; rwsplit keeps one
// ready-made *gorm.PreparedStmtDB per replica so that routing a prepared
// read allocates nothing. If dbresolver ever stops handing out its store,
// rwsplit makes its own.
func (p *Plugin) replicaStores(db *gorm.DB, pick *atomic.Int32) {
	resolve := db.Callback().Query().Get("gorm:db_resolver")
	cfg := *db.Config
	cfg.PrepareStmt = true
	for i, n := range p.nodes {
		pick.Store(int32(i))
		probe := &gorm.DB{Config: &cfg}
		probe.Statement = &gorm.Statement{DB: probe, ConnPool: db.ConnPool, Context: context.Background(), Clauses: map[string]clause.Clause{}}
		if resolve != nil {
			resolve(probe)
		}
		store, ok := probe.Statement.ConnPool.(*gorm.PreparedStmtDB)
		if !ok || store.ConnPool != gorm.ConnPool(n.sqlDB) {
			store = gorm.NewPreparedStmtDB(n.sqlDB, db.PrepareStmtMaxSize, db.PrepareStmtTTL)
		}
		n.setStore(store)
	}
}

// checkReplicas pings every replica concurrently, bounded by
// StartupTimeout, and takes the ones that do not answer out of service.
func (p *Plugin) checkReplicas() {
	var wg sync.WaitGroup
	for _, n := range p.nodes {
		if n.down.Load() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), p.cfg.StartupTimeout)
			defer cancel()
			if err := n.sqlDB.PingContext(ctx); err != nil {
				n.setDown(err)
			}
		}()
	}
	wg.Wait()
}

// markDown takes n out of service after a connection-class error on it and
// publishes a picker without it.
func (p *Plugin) markDown(n *node, err error) {
	if !n.setDown(err) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.rebuildLocked()
	}
}

// rebuildLocked publishes a new picker over the eligible replicas. The
// caller holds p.mu.
func (p *Plugin) rebuildLocked() {
	var (
		eligible []*node
		views    []policy.Replica
	)
	for _, n := range p.nodes {
		if n.eligible() {
			eligible = append(eligible, n)
			views = append(views, policy.Replica{Name: n.name, Weight: n.weight, Stats: &n.stats})
		}
	}
	p.picker.Store(&pickerSnapshot{picker: p.pol.NewPicker(views), nodes: eligible})
}

// Close stops everything the plugin started and closes the replica pools it
// opened. The primary pool belongs to the caller and stays open. Close is
// idempotent.
func (p *Plugin) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closeLocked()
}

func (p *Plugin) closeLocked() error {
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	for _, n := range p.nodes {
		if n != nil && n.sqlDB != nil {
			errs = append(errs, n.sqlDB.Close())
		}
	}
	return errors.Join(errs...)
}

// Resolver returns the dbresolver.DBResolver that owns the replica pools,
// e.g. to call SetMaxOpenConns or SetConnMaxLifetime on every pool.
// It is nil before Initialize.
func (p *Plugin) Resolver() *dbresolver.DBResolver { return p.resolver }

// ReplicaDB returns the *sql.DB of the named replica, or nil.
func (p *Plugin) ReplicaDB(name string) *sql.DB {
	if n := p.byName[name]; n != nil {
		return n.sqlDB
	}
	return nil
}
