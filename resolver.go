package rwsplit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	gormlogger "gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"

	"github.com/rwsplit/rwsplit/internal/connerr"
)

// This file holds every touchpoint with gorm.io/plugin/dbresolver: it opens
// the replica pools and their prepared-statement stores, and rwsplit
// replaces its per-statement resolution with its own routing.

// openReplicas lets dbresolver open every replica, and takes from it each
// replica's pool and prepared-statement store.
func (p *Plugin) openReplicas(db *gorm.DB) error {
	nodes := make([]*node, len(p.cfg.Replicas))
	dialectors := make([]gorm.Dialector, len(p.cfg.Replicas))
	for i, r := range p.cfg.Replicas {
		n, d, err := p.newReplica(db, i, r)
		if err != nil {
			return err
		}
		nodes[i] = n
		dialectors[i] = d
	}
	p.set.Store(newReplicaSet(nodes))

	// dbresolver keeps its stores in an unexported map, and hands one out
	// only from its read resolution, for the replica its policy returns.
	pick := 0
	p.resolver = dbresolver.Register(dbresolver.Config{
		Replicas: dialectors,
		Policy:   dbresolver.PolicyFunc(func(pools []gorm.ConnPool) gorm.ConnPool { return pools[pick] }),
	})
	if err := p.resolver.Initialize(db); err != nil {
		if errors.Is(err, ErrConfig) {
			return err // from replicaDialector, naming the replica
		}
		return fmt.Errorf("rwsplit: open replicas: %w", err)
	}
	resolve := db.Callback().Query().Get("gorm:db_resolver")
	for i, n := range nodes {
		if n.sqlDB == nil {
			return fmt.Errorf("rwsplit: replica %q: dialector did not open a *sql.DB", n.name)
		}
		pick = i
		n.setPools(n.sqlDB, replicaStore(db, resolve, n))
	}
	return nil
}

// newReplica checks that replica r, the i-th, has the primary's dialect,
// and returns its node and the dialector that opens it (replicaDialector),
// with the primary's driver settings.
func (p *Plugin) newReplica(db *gorm.DB, i int, r Replica) (*node, *replicaDialector, error) {
	if got, want := r.Dialector.Name(), db.Dialector.Name(); got != want {
		return nil, nil, fmt.Errorf("%w: replica %q: its dialect %q differs from the primary's %q; open it with the primary's driver", ErrConfig, r.Name, got, want)
	}
	n := newNode(&p.router, i, r)
	primary := db.Dialector
	if w, ok := primary.(primaryDialector); ok {
		primary = w.Dialector // installed by Initialize, before AddReplica
	}
	d, err := inheritDriverSettings(primary, r.Dialector)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: replica %q: %w", ErrConfig, r.Name, err)
	}
	n.dialect = d
	return n, &replicaDialector{Dialector: d, node: n}, nil
}

// openReplica opens one replica added while the plugin runs
// (Plugin.AddReplica) as dbresolver opens those of the Config: from a copy
// of the primary's gorm.Config, through replicaDialector. dbresolver takes
// no part: rwsplit makes the replica's prepared-statement store itself.
// On an error, the pool it may have opened is the caller's to close.
func (p *Plugin) openReplica(db *gorm.DB, d *replicaDialector) error {
	cfg := *db.Config
	cfg.Plugins = map[string]gorm.Plugin{} // gorm.Open would install each on the replica
	if _, err := gorm.Open(d, &cfg); err != nil {
		if errors.Is(err, ErrConfig) {
			return err
		}
		return fmt.Errorf("rwsplit: open %w", err)
	}
	n := d.node
	n.setPools(n.sqlDB, gorm.NewPreparedStmtDB(n.sqlDB, db.PrepareStmtMaxSize, db.PrepareStmtTTL))
	return nil
}

// replicaStore returns the prepared-statement store dbresolver made for
// replica n, by running its read resolution with n picked. If dbresolver
// ever stops handing its store out, rwsplit makes its own.
func replicaStore(db *gorm.DB, resolve func(*gorm.DB), n *node) *gorm.PreparedStmtDB {
	cfg := *db.Config
	cfg.PrepareStmt = true
	probe := &gorm.DB{Config: &cfg}
	probe.Statement = &gorm.Statement{DB: probe, ConnPool: db.ConnPool, Context: context.Background(), Clauses: map[string]clause.Clause{}}
	if resolve != nil {
		resolve(probe)
	}
	store, ok := probe.Statement.ConnPool.(*gorm.PreparedStmtDB)
	if !ok || store.ConnPool != gorm.ConnPool(n.sqlDB) {
		store = gorm.NewPreparedStmtDB(n.sqlDB, db.PrepareStmtMaxSize, db.PrepareStmtTTL)
	}
	return store
}

// replicaDialector opens one replica for dbresolver. It records the pool
// the driver opened, and it does not let a replica that is down at start-up
// fail db.Use: such a replica starts out of service.
type replicaDialector struct {
	gorm.Dialector
	node *node
}

func (d *replicaDialector) Initialize(db *gorm.DB) error {
	// db is dbresolver's copy of the primary's gorm.Config, which shares
	// its maps with the primary's. Do not ping (a replica may be down),
	// and build no prepared-statement store here: gorm.Open would publish
	// it in the cache this copy shares with the primary's Config.
	// dbresolver keeps its own store per replica. Clause builders the
	// driver registers go to a map of the replica's own, never into the
	// primary's, where they would change the primary's SQL.
	db.Config.DisableAutomaticPing = true
	db.Config.PrepareStmt = false
	db.Config.ClauseBuilders = maps.Clone(db.Config.ClauseBuilders)
	err := d.Dialector.Initialize(db)
	pool := sqlDBOf(db.ConnPool)
	if pool != nil {
		d.node.sqlDB = pool // closed with the node, also when opening it fails
	}
	if err != nil {
		if serr := startupError(d.node.name, err); serr != nil {
			return serr
		}
		// The MySQL driver asks the server for its version while it
		// initializes; a replica that cannot be reached fails there.
		if pool == nil || !connerr.Is(err) {
			return fmt.Errorf("replica %q: %w", d.node.name, err)
		}
		d.node.openErr = err
	}
	if pool == nil {
		return fmt.Errorf("replica %q: the dialector opened no *sql.DB", d.node.name)
	}
	return nil
}

// routeName is rwsplit's routing callback in every chain.
const routeName = "rwsplit:route"

// registerCallbacks puts rwsplit's routing in the place of dbresolver's
// resolver, and registers the stickiness marks after each write and the
// error row of Row().
func (p *Plugin) registerCallbacks(db *gorm.DB) error {
	cb := db.Callback()
	// dbresolver's resolver goes: its clauses call it while the clause is
	// applied, not when the statement runs. GORM warns through the
	// logger on each Remove; this is no news to the user, so the warnings
	// are dropped.
	logger := db.Config.Logger
	db.Config.Logger = gormlogger.Discard
	defer func() { db.Config.Logger = logger }()
	for _, r := range []struct {
		chain interface{ Remove(string) error }
		reg   func(string, func(*gorm.DB)) error
		fn    func(*gorm.DB)
	}{
		{cb.Create(), cb.Create().Before("*").Register, p.routeWrite},
		{cb.Update(), cb.Update().Before("*").Register, p.routeWrite},
		{cb.Delete(), cb.Delete().Before("*").Register, p.routeWrite},
		{cb.Query(), cb.Query().Before("*").Register, p.routeQuery},
		{cb.Row(), cb.Row().Before("*").Register, p.routeQuery},
		{cb.Raw(), cb.Raw().Before("*").Register, p.routeRaw},
	} {
		if err := r.chain.Remove("gorm:db_resolver"); err != nil {
			return err
		}
		if err := r.reg(routeName, r.fn); err != nil {
			return err
		}
	}
	// dbresolver's clauses call gorm:db_resolver of the Query chain when
	// they are applied: there rwsplit turns them into its own clauses.
	if err := cb.Query().After("*").Register("gorm:db_resolver", dbresolverClause); err != nil {
		return err
	}
	// Stickiness marks a writer after the write commits: after GORM's
	// own transaction (if any) in the write chains, after the statement
	// in the others, where raw SQL can write (Raw("INSERT ... RETURNING")).
	for _, err := range []error{
		cb.Create().After("gorm:commit_or_rollback_transaction").Register("rwsplit:sticky", p.afterWrite),
		cb.Update().After("gorm:commit_or_rollback_transaction").Register("rwsplit:sticky", p.afterWrite),
		cb.Delete().After("gorm:commit_or_rollback_transaction").Register("rwsplit:sticky", p.afterWrite),
		cb.Raw().After("gorm:raw").Register("rwsplit:sticky", p.afterExec),
		cb.Query().After("gorm:query").Register("rwsplit:sticky", p.afterQuery),
		cb.Row().After("gorm:row").Register("rwsplit:sticky", p.afterRow),
		cb.Row().After("gorm:row").Register("rwsplit:error_row", errorRow),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// dbresolverClause gives Clauses(dbresolver.Write) the meaning of
// rwsplit.Primary and Clauses(dbresolver.Read) that of rwsplit.Replica{}.
// GORM also runs it with every query, where it does nothing: BuildClauses
// is set only while GORM runs a statement.
func dbresolverClause(db *gorm.DB) {
	stmt := db.Statement
	if len(stmt.BuildClauses) > 0 {
		return
	}
	if _, ok := stmt.Settings.Load(dbrWriteKey); ok {
		Primary.(gorm.StatementModifier).ModifyStatement(stmt)
	} else if _, ok := stmt.Settings.Load(dbrReadKey); ok {
		Replica{}.ModifyStatement(stmt)
	}
}

// dbresolver's clauses set these Settings keys.
const (
	dbrWriteKey = "gorm:db_resolver:write"
	dbrReadKey  = "gorm:db_resolver:read"
)

// errorRow gives Row() a *sql.Row that carries the statement's error when
// GORM did not run it (routing failed it): Row() would return nil, and
// Scan would panic.
func errorRow(db *gorm.DB) {
	if _, ok := db.Statement.Dest.(*sql.Row); ok || db.Error == nil {
		return
	}
	if rows, ok := db.Get("rows"); ok && rows == true {
		return // Rows() returns the error itself
	}
	db.Statement.Dest = errRow(db.Statement.Context, db.Error)
}

// unregister removes dbresolver's and rwsplit's callbacks from db, after a
// failed Initialize: they would send reads to replica pools that are
// closed.
func (p *Plugin) unregister(db *gorm.DB) {
	if p.resolver == nil {
		return
	}
	cb := db.Callback()
	for _, proc := range []interface{ Remove(string) error }{
		cb.Create(), cb.Update(), cb.Delete(), cb.Query(), cb.Row(), cb.Raw(),
	} {
		_ = proc.Remove("gorm:db_resolver")
		_ = proc.Remove(routeName)
	}
}
