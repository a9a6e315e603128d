package rwsplit

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/rwsplit/rwsplit/internal/sqlclass"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/stickiness"
)

// Table mode (Config.Stickiness.Tables): which tables a statement reads
// and writes, as docs/table-mode.md states.

// maxTables is how many tables a statement names before finding them
// allocates.
const maxTables = 16

// allTables stands for every table.
var allTables = stickiness.Tables{All: true}

// tableLookup is stickyLookup in table mode.
func (p *Plugin) tableLookup(ctx context.Context, stmt *gorm.Statement) (lagcheck.Position, bool) {
	var buf [maxTables]string
	return p.sticky.Lookup(ctx, readTables(stmt, buf[:0]))
}

// readTables returns the tables a read reads, appended to dst: the tables
// its SQL text names (raw SQL), or the model's table (a query GORM builds).
// A read whose tables are unknown gives all tables: no statement (a
// read-only transaction), text ReadTables does not follow, and queries GORM
// builds with joins, several tables or raw SQL that may name others.
func readTables(stmt *gorm.Statement, dst []string) stickiness.Tables {
	switch {
	case stmt == nil:
		return allTables
	case stmt.SQL.Len() > 0:
		names, ok := sqlclass.ReadTables(stmt.SQL.String(), dst)
		if !ok {
			return allTables
		}
		return stickiness.Tables{Names: names}
	}
	name := modelTable(stmt)
	if name == "" || len(stmt.Joins) > 0 || mayReadOthers(stmt) {
		return allTables
	}
	return stickiness.Tables{Names: append(dst, name)}
}

// writeTables returns the tables a successful write wrote, appended to
// dst: those its SQL text names, or, when no SQL ran, the model's table.
// A schema change or text WriteTables does not follow gives all tables.
func writeTables(stmt *gorm.Statement, dst []string) stickiness.Tables {
	if stmt.SQL.Len() > 0 {
		names, schemaWide := sqlclass.WriteTables(stmt.SQL.String(), dst)
		return stickiness.Tables{Names: names, All: schemaWide}
	}
	if name := modelTable(stmt); name != "" {
		return stickiness.Tables{Names: append(dst, name)}
	}
	return allTables
}

// modelTable returns the table of a statement GORM builds: the one Table()
// names, aliases resolved ("users as u" is users), or the model's. It
// returns "" when the table expression is not one plain table.
func modelTable(stmt *gorm.Statement) string {
	if e := stmt.TableExpr; e != nil {
		if len(e.Vars) > 0 {
			return ""
		}
		return sqlclass.BaseTable(e.SQL)
	}
	return stmt.Table
}

// mayReadOthers reports whether a query GORM builds may read tables other
// than its own: raw SQL with SELECT in a condition, a selected column or an
// ordering, a subquery (*gorm.DB) as an argument, or a FROM clause.
func mayReadOthers(stmt *gorm.Statement) bool {
	for _, s := range stmt.Selects {
		if hasSelect(s) {
			return true
		}
	}
	for name, c := range stmt.Clauses {
		if name == "FROM" || exprReads(c.Expression) {
			return true
		}
	}
	return false
}

// exprReads reports whether e holds raw SQL with SELECT or a subquery.
func exprReads(e clause.Expression) bool {
	switch e := e.(type) {
	case clause.Where:
		return anyReads(e.Exprs)
	case clause.AndConditions:
		return anyReads(e.Exprs)
	case clause.OrConditions:
		return anyReads(e.Exprs)
	case clause.NotConditions:
		return anyReads(e.Exprs)
	case clause.GroupBy:
		return anyReads(e.Having)
	case clause.Select:
		return exprReads(e.Expression)
	case clause.OrderBy:
		return exprReads(e.Expression)
	case clause.Expr:
		return hasSelect(e.SQL) || hasSubquery(e.Vars)
	case clause.NamedExpr:
		return hasSelect(e.SQL) || hasSubquery(e.Vars)
	case clause.IN:
		return hasSubquery(e.Values)
	case clause.Eq:
		return isSubquery(e.Value)
	case clause.Neq:
		return isSubquery(e.Value)
	case *clause.Expr:
		return e != nil && (hasSelect(e.SQL) || hasSubquery(e.Vars))
	}
	return false
}

func anyReads(es []clause.Expression) bool {
	for _, e := range es {
		if exprReads(e) {
			return true
		}
	}
	return false
}

func hasSubquery(vars []any) bool {
	for _, v := range vars {
		if isSubquery(v) {
			return true
		}
	}
	return false
}

func isSubquery(v any) bool {
	switch v := v.(type) {
	case *gorm.DB:
		return true
	case []any:
		return hasSubquery(v)
	}
	return false
}

// hasSelect reports whether s has the word SELECT, in any case.
func hasSelect(s string) bool {
	for i := 0; i+6 <= len(s); i++ {
		if (s[i] == 's' || s[i] == 'S') && strings.EqualFold(s[i:i+6], "select") &&
			(i == 0 || !wordByte(s[i-1])) && (i+6 == len(s) || !wordByte(s[i+6])) {
			return true
		}
	}
	return false
}

func wordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// pendingTables is writeTables in table mode, and no tables otherwise.
func (p *Plugin) pendingTables(stmt *gorm.Statement, dst []string) stickiness.Tables {
	if !p.sticky.TableMode() {
		return stickiness.Tables{}
	}
	return writeTables(stmt, dst)
}

// primaryIdentity names the primary's server for table mode, so that the
// plugins of one primary in this process share their table marks: the
// PostgreSQL system identifier (shared by a primary and its physical
// replicas, distinct for each initdb), or MySQL/MariaDB's host, port, data
// directory and server_id. When the primary cannot tell, the plugin shares
// only with plugins over the same *sql.DB.
func primaryIdentity(ctx context.Context, db *sql.DB, dialect string) string {
	var q string
	switch dialect {
	case "postgres":
		q = "SELECT system_identifier::text FROM pg_control_system()"
	case "mysql":
		q = "SELECT CONCAT(@@hostname, ':', @@port, ':', @@datadir, ':', @@server_id)"
	}
	var id string
	if q != "" && db.QueryRowContext(ctx, q).Scan(&id) == nil && id != "" {
		return dialect + ":" + id
	}
	return fmt.Sprintf("sql.DB:%p", db)
}

// tablesPrimary returns the primary's identity in table mode, "" otherwise.
func (p *Plugin) tablesPrimary(db *gorm.DB) string {
	if !p.cfg.Stickiness.Tables {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.StartupTimeout)
	defer cancel()
	return primaryIdentity(ctx, sqlDBOf(p.primaryPool), db.Dialector.Name())
}
