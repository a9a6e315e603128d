package rwsplit

import (
	"context"
	"database/sql"
	"slices"
	"testing"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"

	"github.com/rwsplit/rwsplit/internal/fakedb"
	"github.com/rwsplit/rwsplit/stickiness"
)

type tmUser struct {
	ID   uint
	Name string
}

// tmDB is GORM over fakedb, for building statements without running them.
func tmDB(t testing.TB) *gorm.DB {
	t.Helper()
	sqlDB := sql.OpenDB(&fakedb.Connector{})
	t.Cleanup(func() { sqlDB.Close() })
	db, err := gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// routed returns q's statement as routing sees it: its model parsed, as
// GORM's processor does before the callbacks run.
func routed(t testing.TB, q *gorm.DB) *gorm.Statement {
	t.Helper()
	stmt := q.Statement
	if stmt.Model != nil {
		if err := stmt.Parse(stmt.Model); err != nil {
			t.Fatal(err)
		}
	}
	return stmt
}

func TestReadTables(t *testing.T) {
	db := tmDB(t)
	sub := db.Table("posts").Select("user_id")
	all := stickiness.Tables{All: true}
	names := func(n ...string) stickiness.Tables { return stickiness.Tables{Names: n} }
	tests := []struct {
		name string
		give *gorm.DB // nil: no statement (a read-only transaction)
		want stickiness.Tables
	}{
		{name: "model", give: db.Model(&tmUser{}).Where("id = ?", 1), want: names("tm_users")},
		{name: "model, parenthesis in a condition", give: db.Model(&tmUser{}).Where("lower(name) = ?", "select"), want: names("tm_users")},
		{name: "table", give: db.Table("users"), want: names("users")},
		{name: "alias with AS", give: db.Table("users as u"), want: names("users")},
		{name: "alias", give: db.Table("users u"), want: names("users")},
		{name: "quoted alias", give: db.Table(`"Users" AS "u"`), want: names("Users")},
		{name: "schema", give: db.Table("public.users"), want: names("users")},
		{name: "table subquery", give: db.Table("(?) as u", sub), want: all},
		{name: "several tables", give: db.Table("users, posts"), want: all},
		{name: "joins", give: db.Model(&tmUser{}).Joins("JOIN posts ON posts.user_id = tm_users.id"), want: all},
		{name: "raw select in a condition", give: db.Model(&tmUser{}).Where("id IN (SELECT user_id FROM posts)"), want: all},
		{name: "subquery argument", give: db.Model(&tmUser{}).Where("id IN (?)", sub), want: all},
		{name: "subquery in a struct condition", give: db.Model(&tmUser{}).Where(map[string]any{"id": sub}), want: all},
		{name: "or with raw select", give: db.Model(&tmUser{}).Where("id = 1").Or("id IN (select user_id from posts)"), want: all},
		{name: "select subquery", give: db.Model(&tmUser{}).Select("(SELECT count(*) FROM posts) AS n"), want: all},
		{name: "having subquery", give: db.Model(&tmUser{}).Group("name").Having("count(*) > (SELECT 1 FROM posts)"), want: all},
		{name: "from clause", give: db.Model(&tmUser{}).Clauses(clause.From{Tables: []clause.Table{{Name: "posts"}}}), want: all},
		{name: "selected column named like a keyword", give: db.Model(&tmUser{}).Select("selected, name"), want: names("tm_users")},
		{name: "raw", give: db.Raw("SELECT * FROM a JOIN b ON a.id = b.id WHERE a.id IN (SELECT id FROM c)"), want: names("a", "b", "c")},
		{name: "raw, function in FROM", give: db.Raw("SELECT * FROM my_func(1)"), want: all},
		{name: "raw, no table", give: db.Raw("SELECT 1"), want: names()},
		{name: "no statement", want: all},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stmt *gorm.Statement
			if tt.give != nil {
				stmt = routed(t, tt.give)
			}
			got := readTables(stmt, nil)
			if got.All != tt.want.All || !slices.Equal(got.Names, tt.want.Names) {
				t.Errorf("readTables = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestWriteTables(t *testing.T) {
	db := tmDB(t)
	tests := []struct {
		name string
		give *gorm.DB
		want stickiness.Tables
	}{
		{name: "insert", give: db.Raw("INSERT INTO users (name) VALUES ('a') RETURNING id"), want: stickiness.Tables{Names: []string{"users"}}},
		{name: "update with subquery", give: db.Raw("UPDATE users SET n = 1 WHERE id IN (SELECT user_id FROM posts)"), want: stickiness.Tables{Names: []string{"users"}}},
		{name: "delete and truncate", give: db.Raw("DELETE FROM a; TRUNCATE b, c"), want: stickiness.Tables{Names: []string{"a", "b", "c"}}},
		{name: "ddl", give: db.Raw("ALTER TABLE users ADD COLUMN x int"), want: stickiness.Tables{All: true}},
		{name: "unparsed", give: db.Raw("INSERT INTO 'users"), want: stickiness.Tables{All: true}},
		{name: "no SQL ran, alias", give: db.Table("users as u"), want: stickiness.Tables{Names: []string{"users"}}},
		{name: "no SQL ran, no table", give: db.Where("id = 1"), want: stickiness.Tables{All: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := writeTables(routed(t, tt.give), nil)
			if got.All != tt.want.All || !slices.Equal(got.Names, tt.want.Names) {
				t.Errorf("writeTables = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestTableLookupAllocs: in table mode, the lookup of an ordinary GORM
// read, an aliased one and a raw join allocates nothing.
func TestTableLookupAllocs(t *testing.T) {
	db := tmDB(t)
	tr, err := stickiness.New(stickiness.Config{Tables: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	p := &Plugin{sticky: tr}
	w, _ := tr.Pending(context.Background(), stickiness.Tables{Names: []string{"tm_users", "b"}})
	tr.Mark(lsn("0/10"), w)
	for _, tt := range []struct {
		name string
		give *gorm.DB
	}{
		{"first", db.Model(&tmUser{}).Where("id = ?", 1).Order("id").Limit(1)},
		{"alias", db.Table("tm_users as u").Where("u.name = ?", "a")},
		{"raw join", db.Raw("SELECT * FROM a JOIN b ON a.id = b.id")},
	} {
		stmt := routed(t, tt.give)
		if _, sticky := p.stickyLookup(context.Background(), stmt); !sticky {
			t.Errorf("%s: not sticky", tt.name)
		}
		if n := testing.AllocsPerRun(100, func() { p.stickyLookup(context.Background(), stmt) }); n != 0 {
			t.Errorf("%s: %v allocs per lookup, want 0", tt.name, n)
		}
	}
}
