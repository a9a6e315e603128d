package rwsplit

import (
	"database/sql"
	"fmt"
	"reflect"

	"gorm.io/gorm"
)

// sqlDBOf returns the *sql.DB under a ConnPool, or nil.
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
// DSN: replica connections that differ from the primary's (pgx's statement
// cache on replicas while the primary uses the simple protocol) fail reads
// after DDL with "cached plan must not change result type".
//
// It applies to drivers shaped like gorm.io/driver/postgres and
// gorm.io/driver/mysql: a pointer to a struct holding a *Config with a DSN
// string field, where Open sets only DSN (and MySQL's parsed DSNConfig). A
// replica dialector with any other Config field set is used as it is.
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
