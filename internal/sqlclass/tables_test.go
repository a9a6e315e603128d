package sqlclass

import (
	"slices"
	"testing"
)

// tablesCase is a statement and the tables it must give; bad is
// schemaWide for WriteTables and !ok for ReadTables, with no tables.
type tablesCase struct {
	name string
	give string
	want []string
	bad  bool
}

func w(names ...string) []string { return names }

var pgWriteCases = []tablesCase{
	{"gorm create", `INSERT INTO "users" ("name","age") VALUES ($1,$2) RETURNING "id"`, w("users"), false},
	{"gorm save", `UPDATE "users" SET "name"=$1,"updated_at"=$2 WHERE "id" = $3`, w("users"), false},
	{"gorm delete", `DELETE FROM "users" WHERE "users"."id" = $1`, w("users"), false},
	{"gorm upsert", `INSERT INTO "users" ("id","name") VALUES ($1,$2) ON CONFLICT ("id") DO UPDATE SET "name"="excluded"."name"`, w("users"), false},
	{"on conflict do nothing", `INSERT INTO t (a) VALUES (1) ON CONFLICT DO NOTHING`, w("t"), false},
	{"quoted keeps case", `UPDATE "Users" SET a = 1`, w("Users"), false},
	{"unquoted as written", `update Users set a = 1`, w("Users"), false},
	{"schema prefix", `INSERT INTO public.users (a) VALUES (1)`, w("users"), false},
	{"quoted schema prefix", `DELETE FROM "app"."Orders"`, w("Orders"), false},
	{"insert alias", `INSERT INTO users AS u (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET b = u.b + 1`, w("users"), false},
	{"insert select", `INSERT INTO t SELECT * FROM u`, w("t"), false},
	{"insert default values", `INSERT INTO t DEFAULT VALUES`, w("t"), false},
	{"delete where subquery", `DELETE FROM t WHERE id IN (SELECT id FROM u)`, w("t"), false},
	{"delete only", `DELETE FROM ONLY t WHERE a = 1`, w("t"), false},
	{"delete using", `DELETE FROM t USING u WHERE t.id = u.id`, w("t", "u"), false},
	{"delete returning", `DELETE FROM t WHERE a = 1 RETURNING id, a`, w("t"), false},
	{"update subquery", `UPDATE t SET a = (SELECT max(b) FROM u WHERE u.id = t.id)`, w("t"), false},
	{"update from", `UPDATE t SET a = u.a FROM u, v WHERE t.id = u.id`, w("t"), false},
	{"update alias", `UPDATE ONLY t AS x SET a = 1 WHERE x.id = 2`, w("t"), false},
	{"truncate", `TRUNCATE t`, w("t"), false},
	{"truncate table list", `TRUNCATE TABLE t1, ONLY t2 RESTART IDENTITY`, w("t1", "t2"), false},
	{"truncate cascade", `TRUNCATE t CASCADE`, nil, true},
	{"merge", `MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN UPDATE SET a = u.a WHEN NOT MATCHED THEN INSERT (id, a) VALUES (u.id, u.a)`, w("t"), false},
	{"merge delete", `MERGE INTO t AS x USING (SELECT * FROM u) s ON x.id = s.id WHEN MATCHED THEN DELETE`, w("t"), false},
	{"copy from", `COPY t (a, b) FROM STDIN WITH (FORMAT csv)`, w("t"), false},
	{"copy to", `COPY t TO STDOUT`, nil, false},
	{"copy query to", `COPY (SELECT * FROM t) TO STDOUT WITH (FORMAT csv)`, nil, false},
	{"copy returning", `COPY (DELETE FROM t RETURNING *) TO STDOUT`, w("t"), false},
	{"writing cte", `WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d`, w("t"), false},
	{"two writing ctes", `WITH a AS (UPDATE x SET n = 1 RETURNING id), b AS (INSERT INTO y SELECT id FROM a RETURNING id) SELECT * FROM b`, w("x", "y"), false},
	{"cte then insert", `WITH s AS (SELECT * FROM u) INSERT INTO t SELECT * FROM s`, w("t"), false},
	{"select into", `SELECT * INTO new_users FROM users`, w("new_users"), false},
	{"select into temp table", `SELECT id INTO TEMP TABLE t2 FROM t`, w("t2"), false},
	{"explain analyze delete", `EXPLAIN ANALYZE DELETE FROM t`, w("t"), false},
	{"explain options update", `EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1`, w("t"), false},
	{"explain analyze execute", `EXPLAIN ANALYZE EXECUTE p(1)`, nil, true},
	{"multi statement", `INSERT INTO a VALUES (1); UPDATE b SET x = 1; DELETE FROM c`, w("a", "b", "c"), false},
	{"duplicates once", `UPDATE a SET x = 1; UPDATE a SET x = 2`, w("a"), false},
	{"comments between tokens", `/* c */ DELETE /* x */ FROM -- y
	t /* z */ WHERE a = 1`, w("t"), false},
	{"string with from", `INSERT INTO t (s) VALUES ('DELETE FROM x; UPDATE y')`, w("t"), false},
	{"dollar quoted", `INSERT INTO t (s) VALUES ($$ DROP TABLE x $$)`, w("t"), false},
	{"read writes nothing", `SELECT * FROM users WHERE id = 1`, nil, false},
	{"locking read writes nothing", `SELECT * FROM jobs FOR UPDATE SKIP LOCKED`, nil, false},
	{"transaction control", `BEGIN; COMMIT`, nil, false},
	{"empty", ` ; -- nothing`, nil, false},
	{"create table", `CREATE TABLE t (id int)`, nil, true},
	{"create table as", `CREATE TABLE t AS SELECT * FROM u`, nil, true},
	{"alter table", `ALTER TABLE t ADD COLUMN b int`, nil, true},
	{"drop", `DROP TABLE IF EXISTS t`, nil, true},
	{"create index", `CREATE INDEX i ON t (a)`, nil, true},
	{"materialized view", `REFRESH MATERIALIZED VIEW v`, nil, true},
	{"comment on", `COMMENT ON TABLE t IS 'x'`, nil, true},
	{"grant", `GRANT SELECT ON t TO u`, nil, true},
	{"set search path", `SET search_path TO app`, nil, true},
	{"call", `CALL do_things()`, nil, true},
	{"ddl after write", `INSERT INTO t VALUES (1); DROP TABLE u`, nil, true},
	{"unterminated", `UPDATE t SET s = 'x`, nil, true},
	{"unbalanced", `INSERT INTO t VALUES ((1)`, nil, true},
	{"doubled quote in name", `DELETE FROM "a""b"`, nil, true},
	{"unknown nested write", `SELECT (DELETE)`, nil, true},
}

var mysqlWriteCases = []tablesCase{
	{"gorm create", "INSERT INTO `users` (`name`,`age`) VALUES (?,?)", w("users"), false},
	{"gorm save", "UPDATE `users` SET `name`=?,`updated_at`=? WHERE `id` = ?", w("users"), false},
	{"gorm delete", "DELETE FROM `users` WHERE `users`.`id` = ?", w("users"), false},
	{"gorm upsert", "INSERT INTO `users` (`id`,`name`) VALUES (?,?) ON DUPLICATE KEY UPDATE `name`=VALUES(`name`)", w("users"), false},
	{"backticks keep case", "UPDATE `Users` SET a = 1", w("Users"), false},
	{"db prefix", "INSERT INTO `shop`.`orders` (a) VALUES (1)", w("orders"), false},
	{"db prefix unquoted", "DELETE FROM shop.orders WHERE id = 1", w("orders"), false},
	{"insert ignore", "INSERT IGNORE INTO t (a) VALUES (1)", w("t"), false},
	{"insert low priority ignore", "INSERT LOW_PRIORITY IGNORE INTO t VALUES (1)", w("t"), false},
	{"insert without into", "INSERT t VALUES (1)", w("t"), false},
	{"insert set", "INSERT INTO t SET a = 1, b = 2", w("t"), false},
	{"insert select", "INSERT INTO t (a) SELECT a FROM u WHERE b > 1", w("t"), false},
	{"insert function in values", "INSERT INTO t (s) VALUES (INSERT('abc', 1, 1, 'x'))", w("t"), false},
	{"replace into", "REPLACE INTO t (a) VALUES (1)", w("t"), false},
	{"replace delayed", "REPLACE DELAYED t VALUES (1)", w("t"), false},
	{"replace function in update", "UPDATE t SET s = REPLACE(s, 'a', 'b')", w("t"), false},
	{"update low priority", "UPDATE LOW_PRIORITY IGNORE t SET a = 1", w("t"), false},
	{"update join", "UPDATE a JOIN b ON a.id = b.a_id SET a.x = b.x", w("a", "b"), false},
	{"update left join", "UPDATE a LEFT JOIN b ON a.id = b.a_id SET a.x = 1 WHERE b.id IS NULL", w("a", "b"), false},
	{"update comma", "UPDATE a, b SET a.x = b.x WHERE a.id = b.id", w("a", "b"), false},
	{"update order limit", "UPDATE t SET a = a + 1 ORDER BY id DESC LIMIT 10", w("t"), false},
	{"update subquery", "UPDATE t SET a = (SELECT max(b) FROM u)", w("t"), false},
	{"delete quick", "DELETE QUICK IGNORE FROM t WHERE a = 1", w("t"), false},
	{"delete limit", "DELETE FROM t ORDER BY id LIMIT 100", w("t"), false},
	{"delete alias", "DELETE FROM t AS x WHERE x.a = 1", w("t"), false},
	{"delete multi", "DELETE a FROM a JOIN b ON a.id = b.a_id WHERE b.x = 1", w("a", "b"), false},
	{"delete multi star", "DELETE a.*, b.* FROM a INNER JOIN b ON a.id = b.a_id", w("a", "b"), false},
	{"delete multi alias", "DELETE p FROM pets p JOIN users u ON u.id = p.user_id", w("p", "pets", "users"), false},
	{"delete using", "DELETE FROM a, b USING a JOIN b ON a.id = b.id JOIN c ON c.id = a.id", w("a", "b", "c"), false},
	{"delete in subquery", "DELETE FROM t WHERE id IN (SELECT id FROM u)", w("t"), false},
	{"truncate", "TRUNCATE TABLE `t`", w("t"), false},
	{"with delete", "WITH s AS (SELECT id FROM u) DELETE FROM t WHERE id IN (SELECT id FROM s)", w("t"), false},
	{"with update", "WITH s AS (SELECT 1) UPDATE t SET a = 1", w("t"), false},
	{"select into var", "SELECT a INTO @x FROM t", nil, false},
	{"select into outfile", "SELECT * FROM t INTO OUTFILE '/tmp/x'", nil, false},
	{"explain analyze", "EXPLAIN ANALYZE DELETE FROM t", w("t"), false},
	{"explain format", "EXPLAIN FORMAT=JSON UPDATE t SET a = 1", w("t"), false},
	{"describe table", "DESCRIBE t", nil, false},
	{"hash comment", "UPDATE t SET a = 1 # trailing", w("t"), false},
	{"comments", "/* c */ INSERT -- x\n INTO /* y */ t VALUES (1)", w("t"), false},
	{"string with from", "INSERT INTO t (s) VALUES ('SELECT * FROM x')", w("t"), false},
	{"multi statement", "INSERT INTO a VALUES (1); REPLACE INTO b VALUES (2)", w("a", "b"), false},
	{"start transaction", "START TRANSACTION; UPDATE t SET a = 1; COMMIT", w("t"), false},
	{"begin not atomic", "BEGIN NOT ATOMIC UPDATE t SET a = 1; END", nil, true},
	{"create table", "CREATE TABLE t (id INT) ENGINE=InnoDB", nil, true},
	{"rename table", "RENAME TABLE a TO b", nil, true},
	{"drop index", "DROP INDEX i ON t", nil, true},
	{"create schema", "CREATE SCHEMA s", nil, true},
	{"alter sequence", "ALTER SEQUENCE s RESTART", nil, true},
	{"load data", "LOAD DATA INFILE 'x' INTO TABLE t", nil, true},
	{"lock tables", "LOCK TABLES t WRITE", nil, true},
	{"executable comment", "UPDATE t SET a = 1 /*!, b = 2 */", nil, true},
	{"call", "CALL p()", nil, true},
}

var pgReadCases = []tablesCase{
	{"gorm first", `SELECT * FROM "users" WHERE "users"."id" = $1 AND "users"."deleted_at" IS NULL ORDER BY "users"."id" LIMIT $2`, w("users"), false},
	{"gorm joins", `SELECT "users"."id","Company"."id" AS "Company__id" FROM "users" LEFT JOIN "companies" "Company" ON "users"."company_id" = "Company"."id"`, w("users", "companies"), false},
	{"gorm count", `SELECT count(*) FROM "users" WHERE "users"."deleted_at" IS NULL`, w("users"), false},
	{"aliases", `SELECT * FROM users AS u JOIN pets p ON p.user_id = u.id`, w("users", "pets"), false},
	{"comma join", `SELECT * FROM a, b, c WHERE a.id = b.id`, w("a", "b", "c"), false},
	{"comma after join", `SELECT * FROM a JOIN b ON a.id = b.id, c`, w("a", "b", "c"), false},
	{"join kinds", `SELECT 1 FROM a NATURAL JOIN b CROSS JOIN c LEFT OUTER JOIN d USING (id) FULL JOIN e ON true`, w("a", "b", "c", "d", "e"), false},
	{"schema prefix", `SELECT * FROM public.users`, w("users"), false},
	{"quoted keeps case", `SELECT * FROM "Users" u`, w("Users"), false},
	{"subquery in from", `SELECT * FROM (SELECT * FROM t WHERE a > 1) AS s JOIN u ON u.id = s.id`, w("t", "u"), false},
	{"subquery in where", `SELECT * FROM t WHERE id IN (SELECT id FROM u) AND EXISTS (SELECT 1 FROM v)`, w("t", "u", "v"), false},
	{"scalar subquery", `SELECT (SELECT max(x) FROM u), a FROM t`, w("u", "t"), false},
	{"union", `SELECT a FROM t UNION ALL SELECT a FROM u`, w("t", "u"), false},
	{"parenthesized union", `(SELECT a FROM t) UNION (SELECT a FROM u) ORDER BY 1`, w("t", "u"), false},
	{"intersect except", `SELECT a FROM t INTERSECT SELECT a FROM u EXCEPT SELECT a FROM v`, w("t", "u", "v"), false},
	{"cte", `WITH recent AS (SELECT * FROM orders WHERE created_at > now()) SELECT count(*) FROM recent`, w("orders"), false},
	{"two ctes", `WITH a AS (SELECT * FROM x), b AS (SELECT * FROM a JOIN y ON true) SELECT * FROM b`, w("x", "y"), false},
	{"cte shadows its own name", `WITH users AS (SELECT * FROM users WHERE active) SELECT * FROM users`, w("users"), false},
	{"recursive cte", `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT * FROM n`, w("n"), false},
	{"materialized cte", `WITH c AS MATERIALIZED (SELECT * FROM t) SELECT * FROM c`, w("t"), false},
	{"cte in subquery is scoped", `SELECT * FROM x WHERE id IN (WITH x AS (SELECT 1 AS id) SELECT id FROM x)`, w("x"), false},
	{"qualified name is no cte", `WITH t AS (SELECT 1) SELECT * FROM t, public.t`, w("t"), false},
	{"quoted cte differs", `WITH "X" AS (SELECT 1) SELECT * FROM X`, w("X"), false},
	{"parenthesized join", `SELECT * FROM (a JOIN b ON a.id = b.id) LEFT JOIN c ON c.id = a.id`, w("a", "b", "c"), false},
	{"is distinct from", `SELECT a IS DISTINCT FROM b FROM t`, w("t"), false},
	{"extract from", `SELECT extract(year FROM created_at), substring(s FROM 2 FOR 3) FROM t`, w("t"), false},
	{"table statement", `TABLE t`, w("t"), false},
	{"union table", `SELECT * FROM t UNION TABLE u`, w("t", "u"), false},
	{"only and star", `SELECT * FROM ONLY t, u *`, w("t", "u"), false},
	{"generate_series", `SELECT * FROM generate_series(1, 10) AS g(i) JOIN t ON t.id = g.i`, w("t"), false},
	{"unnest with ordinality", `SELECT * FROM unnest($1::int[]) WITH ORDINALITY AS x(v, n)`, nil, false},
	{"tablesample", `SELECT * FROM t TABLESAMPLE SYSTEM (10) REPEATABLE (1), u`, w("t", "u"), false},
	{"no from", `SELECT 1, now()`, nil, false},
	{"values", `VALUES (1), (2)`, nil, false},
	{"array subscripts", `SELECT * FROM t JOIN u ON u.a = ARRAY[1,2] WHERE t.x = 1`, w("t", "u"), false},
	{"locking read", `SELECT * FROM jobs FOR UPDATE SKIP LOCKED`, w("jobs"), false},
	{"offset fetch", `SELECT * FROM t OFFSET 10 FETCH FIRST 5 ROWS ONLY`, w("t"), false},
	{"comments", `SELECT /* FROM x */ * -- FROM y
	FROM /* z */ t`, w("t"), false},
	{"string with from", `SELECT 'FROM x JOIN y' FROM t`, w("t"), false},
	{"dollar quoted is code in mysql", `SELECT $$ FROM x $$ FROM t`, w("t", "x"), false},
	{"column named from", `SELECT t.from FROM t`, w("t"), false},
	{"order by commas", `SELECT * FROM t ORDER BY a, b`, w("t"), false},
	{"lateral", `SELECT * FROM t, LATERAL (SELECT * FROM u WHERE u.id = t.id) s`, nil, true},
	{"join lateral", `SELECT * FROM t LEFT JOIN LATERAL f(t.x) ON true`, nil, true},
	{"unknown table function", `SELECT * FROM my_func(1)`, nil, true},
	{"qualified table function", `SELECT * FROM app.generate_series(1, 2)`, nil, true},
	{"rows from", `SELECT * FROM ROWS FROM (f(), g())`, nil, true},
	{"writing cte", `WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d`, nil, true},
	{"select into", `SELECT * INTO x FROM t`, nil, true},
	{"insert", `INSERT INTO t VALUES (1)`, nil, true},
	{"explain", `EXPLAIN SELECT * FROM t`, nil, true},
	{"show", `SHOW search_path`, nil, true},
	{"cte search clause", `WITH RECURSIVE t(n) AS (SELECT 1) SEARCH DEPTH FIRST BY n SET o SELECT * FROM t`, nil, true},
	{"unterminated", `SELECT * FROM t WHERE a = 'x`, nil, true},
	{"unbalanced", `SELECT * FROM (SELECT 1`, nil, true},
	{"from nothing", `SELECT * FROM`, nil, true},
	{"multi statement", `SELECT * FROM a; SELECT * FROM b`, w("a", "b"), false},
}

var mysqlReadCases = []tablesCase{
	{"gorm first", "SELECT * FROM `users` WHERE `users`.`id` = ? AND `users`.`deleted_at` IS NULL ORDER BY `users`.`id` LIMIT 1", w("users"), false},
	{"gorm joins", "SELECT `users`.`id`,`Company`.`id` AS `Company__id` FROM `users` LEFT JOIN `companies` `Company` ON `users`.`company_id` = `Company`.`id`", w("users", "companies"), false},
	{"gorm preload", "SELECT * FROM `orders` WHERE `orders`.`user_id` IN (?,?,?)", w("orders"), false},
	{"backticks keep case", "SELECT * FROM `Users` AS `u`", w("Users"), false},
	{"db prefix", "SELECT * FROM `shop`.`orders` o JOIN shop.items i ON i.order_id = o.id", w("orders", "items"), false},
	{"aliases", "SELECT * FROM users AS u JOIN pets p ON p.user_id = u.id", w("users", "pets"), false},
	{"comma join", "SELECT * FROM a, b WHERE a.id = b.id", w("a", "b"), false},
	{"straight join", "SELECT * FROM a STRAIGHT_JOIN b ON a.id = b.id", w("a", "b"), false},
	{"straight join modifier", "SELECT STRAIGHT_JOIN * FROM a, b", w("a", "b"), false},
	{"inner join", "SELECT * FROM a INNER JOIN b USING (id) RIGHT JOIN c ON c.id = b.id", w("a", "b", "c"), false},
	{"use index", "SELECT * FROM t USE INDEX (i1, i2), u", w("t", "u"), false},
	{"force index for join", "SELECT * FROM t FORCE INDEX FOR JOIN (i) JOIN u ON u.id = t.id", w("t", "u"), false},
	{"ignore index for order by", "SELECT * FROM t AS x IGNORE KEY FOR ORDER BY (i), u", w("t", "u"), false},
	{"partition", "SELECT * FROM t PARTITION (p0, p1) AS x", w("t"), false},
	{"dual", "SELECT 1 FROM DUAL", nil, false},
	{"subquery in from", "SELECT * FROM (SELECT * FROM t) AS s", w("t"), false},
	{"subquery in where", "SELECT * FROM t WHERE id IN (SELECT id FROM u)", w("t", "u"), false},
	{"derived join", "SELECT * FROM a JOIN (SELECT id FROM b WHERE x = 1) d ON d.id = a.id", w("a", "b"), false},
	{"union", "SELECT a FROM t UNION SELECT a FROM u", w("t", "u"), false},
	{"cte", "WITH s AS (SELECT * FROM t) SELECT * FROM s JOIN u ON u.id = s.id", w("t", "u"), false},
	{"recursive cte", "WITH RECURSIVE c (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 5) SELECT * FROM c", w("c"), false},
	{"table statement", "TABLE t ORDER BY a LIMIT 1", w("t"), false},
	{"lock in share mode", "SELECT * FROM t WHERE id = 1 LOCK IN SHARE MODE", w("t"), false},
	{"for share", "SELECT * FROM t FOR SHARE", w("t"), false},
	{"limit offset", "SELECT * FROM t LIMIT 10 OFFSET 5", w("t"), false},
	{"limit comma", "SELECT * FROM t LIMIT 5, 10", w("t"), false},
	{"group by rollup", "SELECT a, count(*) FROM t GROUP BY a WITH ROLLUP", w("t"), false},
	{"having", "SELECT a FROM t GROUP BY a HAVING count(*) > (SELECT 1 FROM u LIMIT 1)", w("t", "u"), false},
	{"json_table", "SELECT * FROM t, JSON_TABLE(t.doc, '$[*]' COLUMNS (x INT PATH '$.x')) AS j", w("t"), false},
	{"insert function", "SELECT INSERT(s, 1, 2, 'x') FROM t", w("t"), false},
	{"replace function", "SELECT REPLACE(s, 'a', 'b') FROM t", w("t"), false},
	{"column named update", "SELECT t.update FROM t", w("t"), false},
	{"hash comment", "SELECT * /* FROM x */ FROM -- y\n t # z", w("t"), false},
	{"block comments", "SELECT * /* FROM x */ FROM -- y\n t", w("t"), false},
	{"string with from", "SELECT 'FROM x', \"FROM y\" FROM t", w("t"), false},
	{"keyword alias", "SELECT * FROM a x, b `order`", w("a", "b"), false},
	{"dup once", "SELECT * FROM t JOIN t AS t2 ON t2.id = t.parent_id", w("t"), false},
	{"offset alias", "SELECT * FROM a offset, b", w("a", "b"), false},
	{"system time", "SELECT * FROM t FOR SYSTEM_TIME AS OF '2020-01-01', u", nil, true},
	{"select into var", "SELECT a INTO @x FROM t", nil, true},
	{"select calc into outfile", "SELECT * FROM t INTO OUTFILE '/tmp/x'", nil, true},
	{"update", "UPDATE t SET a = 1", nil, true},
	{"replace into", "REPLACE INTO t VALUES (1)", nil, true},
	{"describe", "DESC t", nil, true},
	{"show tables", "SHOW TABLES", nil, true},
	{"executable comment", "SELECT * FROM t /*! JOIN u */", nil, true},
	{"unknown function in from", "SELECT * FROM f()", nil, true},
	{"unterminated", "SELECT * FROM `t", nil, true},
	{"backslash quote", `SELECT * FROM t WHERE a = 'x\'`, nil, true},
}

var baseTableCases = []struct {
	name string
	give string
	want string
}{
	{"plain", "users", "users"},
	{"as", "users as u", "users"},
	{"as upper", "users AS u", "users"},
	{"space alias", "users u", "users"},
	{"pg quoted", `"users" AS "u"`, "users"},
	{"pg quoted case", `"Users"`, "Users"},
	{"mysql quoted", "`users` `u`", "users"},
	{"mysql quoted as", "`Users` AS `U`", "Users"},
	{"schema", "public.users", "users"},
	{"quoted schema", `"public"."users" u`, "users"},
	{"db", "`shop`.`orders` AS o", "orders"},
	{"unquoted case as written", "Users", "Users"},
	{"comment", "users /* x */ u", "users"},
	{"empty", "", ""},
	{"subquery", "(SELECT * FROM users) AS u", ""},
	{"two tables", "users, pets", ""},
	{"as without alias", "users AS", ""},
	{"trailing dot", "public.", ""},
	{"doubled quote", `"a""b"`, ""},
	{"string", "'users'", ""},
	{"unterminated", `"users`, ""},
	{"three words", "users u x", ""},
}

func testTables(t *testing.T, cases []tablesCase, f func(string, []string) ([]string, bool), bad bool) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			dst := []string{"keep"}
			got, b := f(tt.give, dst)
			if b == bad != tt.bad || !slices.Equal(got[1:], tt.want) || got[0] != "keep" {
				t.Errorf("%q: got %q, %v; want %q, %v", tt.give, got[1:], b, tt.want, bad == tt.bad)
			}
		})
	}
}

func TestWriteTablesPostgres(t *testing.T) { testTables(t, pgWriteCases, WriteTables, true) }
func TestWriteTablesMySQL(t *testing.T)    { testTables(t, mysqlWriteCases, WriteTables, true) }
func TestReadTablesPostgres(t *testing.T)  { testTables(t, pgReadCases, ReadTables, false) }
func TestReadTablesMySQL(t *testing.T)     { testTables(t, mysqlReadCases, ReadTables, false) }

func TestBaseTable(t *testing.T) {
	for _, tt := range baseTableCases {
		t.Run(tt.name, func(t *testing.T) {
			if got := BaseTable(tt.give); got != tt.want {
				t.Errorf("BaseTable(%q) = %q, want %q", tt.give, got, tt.want)
			}
		})
	}
}
