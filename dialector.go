package rwsplit

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"

	"gorm.io/gorm"

	"github.com/rwsplit/rwsplit/internal/connerr"
)

// replicaDialector opens one replica for dbresolver. It records the pool
// the driver opened, and it does not let a replica that is down at start-up
// fail db.Use: such a replica starts out of service.
type replicaDialector struct {
	gorm.Dialector
	node *node
}

func (d *replicaDialector) Initialize(db *gorm.DB) error {
	// db is dbresolver's private copy of the primary's gorm.Config. Do not
	// ping (a replica may be down), and do not build a prepared-statement
	// store here: gorm.Open would publish it in the cache the copy shares
	// with the primary's Config, where db.Session(&gorm.Session{PrepareStmt:
	// true}) on the primary would find replica statements. dbresolver keeps
	// its own store per replica.
	db.Config.DisableAutomaticPing = true
	db.Config.PrepareStmt = false
	err := d.Dialector.Initialize(db)
	pool := sqlDBOf(db.ConnPool)
	if err != nil {
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
	d.node.opened(pool)
	return nil
}

func sqlDBOf(pool gorm.ConnPool) *sql.DB {
	switch p := pool.(type) {
	case *sql.DB:
		return p
	case gorm.GetDBConnector:
		db, _ := p.GetDBConn()
		return db
	}
	return nil
}

// inheritDriverSettings gives a replica dialector made by the driver's
// Open(dsn) the primary dialector's driver settings, with the replica's own
// DSN. Replica connections that differ from the primary's (for example
// pgx's statement cache on replicas while the primary uses the simple
// protocol) fail reads after DDL with "cached plan must not change result
// type".
//
// It applies to drivers shaped like gorm.io/driver/postgres and
// gorm.io/driver/mysql: a pointer to a struct holding a *Config with a DSN
// string field, where Open sets only DSN (and the MySQL driver's DSNConfig,
// parsed from it). A replica dialector with any other
// Config field set was configured on purpose and is used as it is.
func inheritDriverSettings(primary, replica gorm.Dialector) (gorm.Dialector, error) {
	pv, rv := reflect.ValueOf(primary), reflect.ValueOf(replica)
	if pv.Type() != rv.Type() || pv.Kind() != reflect.Pointer || pv.IsNil() || rv.IsNil() {
		return replica, nil
	}
	pcfg, rcfg := driverConfig(pv.Elem()), driverConfig(rv.Elem())
	if !pcfg.IsValid() || !rcfg.IsValid() || pcfg.IsNil() || rcfg.IsNil() {
		return replica, nil
	}
	ps, rs := pcfg.Elem(), rcfg.Elem()
	dsn := rs.FieldByName("DSN")
	if !dsn.IsValid() || dsn.Kind() != reflect.String {
		return replica, nil
	}
	for i := range rs.NumField() {
		if !dsnField[rs.Type().Field(i).Name] && !rs.Field(i).IsZero() {
			return replica, nil // configured on purpose
		}
	}
	if dsn.String() == "" {
		return nil, fmt.Errorf("dialector has an empty DSN")
	}
	cfg := reflect.New(ps.Type())
	cfg.Elem().Set(ps)
	for name := range dsnField {
		if f := cfg.Elem().FieldByName(name); f.IsValid() && f.CanSet() {
			f.Set(rs.FieldByName(name))
		}
	}
	if conn := cfg.Elem().FieldByName("Conn"); conn.IsValid() && conn.CanSet() {
		conn.Set(reflect.Zero(conn.Type()))
	}
	out := reflect.New(pv.Elem().Type())
	out.Elem().Set(pv.Elem())
	driverConfig(out.Elem()).Set(cfg)
	d, ok := out.Interface().(gorm.Dialector)
	if !ok {
		return replica, nil
	}
	return d, nil
}

// dsnField names the driver Config fields that Open(dsn) fills from the
// DSN: DSN itself, and the MySQL driver's parsed DSNConfig.
var dsnField = map[string]bool{"DSN": true, "DSNConfig": true}

// driverConfig returns the exported *Config field of a driver's Dialector
// struct, or the zero Value.
func driverConfig(v reflect.Value) reflect.Value {
	if v.Kind() != reflect.Struct {
		return reflect.Value{}
	}
	f, ok := v.Type().FieldByName("Config")
	if !ok || f.Type.Kind() != reflect.Pointer || f.Type.Elem().Kind() != reflect.Struct || !f.IsExported() {
		return reflect.Value{}
	}
	return v.FieldByIndex(f.Index)
}

// primaryDialector wraps the primary's dialector so that every statement a
// Migrator runs goes to the primary: schema reads must see schema writes,
// and a replica may not have replayed the DDL yet. Everything else is the
// driver's own dialector.
type primaryDialector struct {
	gorm.Dialector
}

var (
	_ gorm.ErrorTranslator               = primaryDialector{}
	_ gorm.SavePointerDialectorInterface = primaryDialector{}
)

// Migrator implements gorm.Dialector.
func (d primaryDialector) Migrator(db *gorm.DB) gorm.Migrator {
	return d.Dialector.Migrator(db.WithContext(withPrimary(db.Statement.Context)))
}

// Translate keeps gorm.Config.TranslateError working.
func (d primaryDialector) Translate(err error) error {
	if t, ok := d.Dialector.(gorm.ErrorTranslator); ok {
		return t.Translate(err)
	}
	return err
}

// SavePoint keeps nested transactions working.
func (d primaryDialector) SavePoint(tx *gorm.DB, name string) error {
	if s, ok := d.Dialector.(gorm.SavePointerDialectorInterface); ok {
		return s.SavePoint(tx, name)
	}
	return gorm.ErrUnsupportedDriver
}

// RollbackTo keeps nested transactions working.
func (d primaryDialector) RollbackTo(tx *gorm.DB, name string) error {
	if s, ok := d.Dialector.(gorm.SavePointerDialectorInterface); ok {
		return s.RollbackTo(tx, name)
	}
	return gorm.ErrUnsupportedDriver
}

// Unwrap returns the driver's dialector.
func (d primaryDialector) Unwrap() gorm.Dialector { return d.Dialector }

// wrapPrimary installs the primary-side wrappers: the dialector (Migrator
// queries to the primary) and the pool (read-only transactions to a
// replica). It keeps *gorm.PreparedStmtDB outermost, where GORM's Migrator
// looks for it.
func (p *Plugin) wrapPrimary(db *gorm.DB) {
	p.primaryPool = db.ConnPool
	if pdb, ok := db.ConnPool.(*gorm.PreparedStmtDB); ok {
		db.ConnPool = &gorm.PreparedStmtDB{ConnPool: &primaryConn{p: p, inner: pdb.ConnPool}, Mux: pdb.Mux, Stmts: pdb.Stmts}
	} else {
		db.ConnPool = &primaryConn{p: p, inner: db.ConnPool}
	}
	if db.Statement != nil {
		db.Statement.ConnPool = db.ConnPool
	}
	if _, ok := db.Dialector.(primaryDialector); !ok {
		db.Dialector = primaryDialector{Dialector: db.Dialector}
	}
}

// routeCtx carries routing instructions in a context.
type routeCtx struct {
	primary bool // every statement to the primary (Migrator)
}

type routeCtxKey struct{}

func withPrimary(ctx context.Context) context.Context {
	if ctx == nil {
		ctx = context.Background()
	}
	rc := routeCtx{primary: true}
	return context.WithValue(ctx, routeCtxKey{}, &rc)
}

func routeCtxOf(ctx context.Context) *routeCtx {
	if ctx == nil {
		return nil
	}
	rc, _ := ctx.Value(routeCtxKey{}).(*routeCtx)
	return rc
}
