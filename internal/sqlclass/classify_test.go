package sqlclass

import (
	"strings"
	"testing"
)

// classifyCase is one statement and the verdict it must get.
type classifyCase struct {
	name   string
	give   string
	want   Class
	reason Reason
}

// pgCases are statements in PostgreSQL syntax.
var pgCases = []classifyCase{
	// GORM-generated shapes.
	{"gorm first", `SELECT * FROM "users" WHERE "users"."id" = $1 AND "users"."deleted_at" IS NULL ORDER BY "users"."id" LIMIT $2`, Read, ReasonSelect},
	{"gorm find", `SELECT * FROM "users" WHERE name = $1 AND "users"."deleted_at" IS NULL`, Read, ReasonSelect},
	{"gorm count", `SELECT count(*) FROM "users" WHERE "users"."deleted_at" IS NULL`, Read, ReasonSelect},
	{"gorm preload in", `SELECT * FROM "orders" WHERE "orders"."user_id" IN ($1,$2,$3)`, Read, ReasonSelect},
	{"gorm joins", `SELECT "users"."id","users"."name","Company"."id" AS "Company__id" FROM "users" LEFT JOIN "companies" "Company" ON "users"."company_id" = "Company"."id"`, Read, ReasonSelect},
	{"gorm create", `INSERT INTO "users" ("name","age") VALUES ($1,$2) RETURNING "id"`, Write, ReasonWriteKeyword},
	{"gorm save", `UPDATE "users" SET "name"=$1,"updated_at"=$2 WHERE "id" = $3`, Write, ReasonWriteKeyword},
	{"gorm soft delete", `UPDATE "users" SET "deleted_at"=$1 WHERE "users"."id" = $2 AND "users"."deleted_at" IS NULL`, Write, ReasonWriteKeyword},
	{"gorm unscoped delete", `DELETE FROM "users" WHERE "users"."id" = $1`, Write, ReasonWriteKeyword},
	{"gorm locking update", `SELECT * FROM "users" WHERE "users"."id" = $1 ORDER BY "users"."id" LIMIT $2 FOR UPDATE`, Write, ReasonLocking},
	{"gorm locking share of", `SELECT * FROM "users" FOR SHARE OF "users"`, Write, ReasonLocking},
	{"gorm upsert", `INSERT INTO "users" ("id","name") VALUES ($1,$2) ON CONFLICT ("id") DO UPDATE SET "name"="excluded"."name"`, Write, ReasonWriteKeyword},

	// The dbresolver failures of REPLICATION.md.
	{"dbresolver for share", `SELECT * FROM accounts WHERE id = 1 FOR SHARE`, Write, ReasonLocking},
	{"dbresolver for update nowait", `SELECT * FROM jobs WHERE id = $1 FOR UPDATE NOWAIT`, Write, ReasonLocking},
	{"dbresolver for update semicolon", `SELECT * FROM jobs FOR UPDATE;`, Write, ReasonLocking},
	{"dbresolver nextval", `SELECT nextval('orders_id_seq')`, Write, ReasonPrimaryFunction},
	{"dbresolver with select", `WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '1 day') SELECT count(*) FROM recent`, Read, ReasonWith},
	{"dbresolver parenthesized union", `(SELECT 1) UNION (SELECT 2)`, Read, ReasonSelect},
	{"dbresolver leading comment", `/* c */ SELECT 1`, Read, ReasonSelect},

	// Locking clauses.
	{"for no key update", `SELECT * FROM t WHERE id = 1 FOR NO KEY UPDATE`, Write, ReasonLocking},
	{"for key share", `SELECT * FROM t FOR KEY SHARE`, Write, ReasonLocking},
	{"skip locked queue", `SELECT id FROM queue ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED`, Write, ReasonLocking},
	{"for update of nowait", `SELECT * FROM a JOIN b USING (id) FOR UPDATE OF a NOWAIT`, Write, ReasonLocking},
	{"for update line comment", "SELECT * FROM t FOR UPDATE -- lock it", Write, ReasonLocking},
	{"for comment update", `SELECT * FROM t FOR /* x */ UPDATE`, Write, ReasonLocking},
	{"for newline update", "SELECT * FROM t\nFOR\n\tUPDATE", Write, ReasonLocking},
	{"locking subquery", `SELECT * FROM (SELECT * FROM t FOR UPDATE) s`, Write, ReasonLocking},
	{"locking in IN subquery", `SELECT * FROM t WHERE id IN (SELECT id FROM u FOR SHARE)`, Write, ReasonLocking},
	{"locking lower case", `select * from t for update`, Write, ReasonLocking},
	{"locking in cte", `WITH x AS (SELECT * FROM t FOR UPDATE) SELECT * FROM x`, Write, ReasonLocking},
	{"substring for is not locking", `SELECT substring('abcdef' FROM 2 FOR 3)`, Read, ReasonSelect},

	// SELECT INTO.
	{"select into table", `SELECT * INTO new_users FROM users`, Write, ReasonSelectInto},
	{"select into temp", `SELECT id INTO TEMP t2 FROM t`, Write, ReasonSelectInto},
	{"number dot into", `SELECT 1. INTO x`, Write, ReasonSelectInto},
	{"into inside string", `SELECT 'insert into x' AS s`, Read, ReasonSelect},
	{"dot after keyword is no qualifier", `SELECT . INTO x`, Write, ReasonSelectInto},
	{"qualified column named into", `SELECT t.into, t.update, t.delete FROM t`, Read, ReasonSelect},

	// Statements.
	{"multi statement", `SELECT 1; DELETE FROM users`, Write, ReasonMultiStatement},
	{"two selects", `SELECT 1; SELECT 2`, Write, ReasonMultiStatement},
	{"trailing semicolon", `SELECT 1;`, Read, ReasonSelect},
	{"trailing semicolon and comment", "SELECT 1; -- done\n/* end */", Read, ReasonSelect},
	{"double semicolon", `SELECT 1;;`, Write, ReasonMultiStatement},
	{"semicolon in string", `SELECT ';DROP TABLE users' AS s`, Read, ReasonSelect},
	{"semicolon in quoted identifier", `SELECT 1 AS "a;b"`, Read, ReasonSelect},

	// Data-modifying CTEs.
	{"cte delete returning", `WITH moved AS (DELETE FROM queue WHERE id = $1 RETURNING *) SELECT * FROM moved`, Write, ReasonWritingCTE},
	{"cte insert", `WITH x AS (INSERT INTO log (msg) VALUES ('a') RETURNING id) SELECT id FROM x`, Write, ReasonWritingCTE},
	{"cte update", `WITH u AS (UPDATE t SET n = n + 1 RETURNING n) SELECT n FROM u`, Write, ReasonWritingCTE},
	{"cte merge", `WITH m AS (MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v RETURNING t.*) SELECT * FROM m`, Write, ReasonWritingCTE},
	{"cte not materialized delete", `WITH d AS NOT MATERIALIZED (DELETE FROM t RETURNING id) SELECT 1`, Write, ReasonWritingCTE},
	{"with main update", `WITH ids AS (SELECT id FROM t) UPDATE t SET a = 1 WHERE id IN (SELECT id FROM ids)`, Write, ReasonWritingCTE},
	{"with main insert", `WITH src AS (SELECT 1 AS id) INSERT INTO t SELECT id FROM src`, Write, ReasonWritingCTE},
	{"with recursive", `WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n+1 FROM t WHERE n < 100) SELECT sum(n) FROM t`, Read, ReasonWith},
	{"with materialized", `WITH x AS MATERIALIZED (SELECT 1) SELECT * FROM x`, Read, ReasonWith},
	{"with search cycle", `WITH RECURSIVE g(id, p) AS (SELECT id, parent FROM tree UNION ALL SELECT t.id, t.parent FROM tree t JOIN g ON t.parent = g.id) CYCLE id SET is_cycle USING path SELECT * FROM g`, Read, ReasonWith},

	// Functions.
	{"setval", `SELECT setval('s', 42, true)`, Write, ReasonPrimaryFunction},
	{"currval", `SELECT currval('s')`, Write, ReasonPrimaryFunction},
	{"lastval", `SELECT lastval()`, Write, ReasonPrimaryFunction},
	{"qualified nextval", `SELECT pg_catalog.nextval('s')`, Write, ReasonPrimaryFunction},
	{"quoted nextval", `SELECT "nextval"('s')`, Write, ReasonPrimaryFunction},
	{"nextval upper with space", `SELECT NEXTVAL ('s')`, Write, ReasonPrimaryFunction},
	{"nextval in values", `VALUES (nextval('s'))`, Write, ReasonPrimaryFunction},
	{"nextval as column", `SELECT nextval FROM seqs`, Read, ReasonSelect},
	{"nextval in string", `SELECT 'nextval(x)'`, Read, ReasonSelect},
	{"advisory lock", `SELECT pg_advisory_lock(42)`, Write, ReasonPrimaryFunction},
	{"try advisory xact lock shared", `SELECT pg_try_advisory_xact_lock_shared(hashtext($1))`, Write, ReasonPrimaryFunction},
	{"advisory unlock all", `SELECT pg_advisory_unlock_all()`, Write, ReasonPrimaryFunction},
	{"set_config", `SELECT set_config('app.user_id', '42', false)`, Write, ReasonPrimaryFunction},
	{"pg_notify", `SELECT pg_notify('jobs', 'x')`, Write, ReasonPrimaryFunction},
	{"txid_current", `SELECT txid_current()`, Write, ReasonPrimaryFunction},
	{"pg_current_xact_id", `SELECT pg_current_xact_id()`, Write, ReasonPrimaryFunction},
	{"pg_current_wal_lsn", `SELECT pg_current_wal_lsn()`, Write, ReasonPrimaryFunction},
	{"lo_import", `SELECT lo_import('/tmp/x')`, Write, ReasonPrimaryFunction},
	{"lo_unlink", `SELECT lo_unlink(16401)`, Write, ReasonPrimaryFunction},
	{"dblink_exec", `SELECT dblink_exec('conn', 'DELETE FROM t')`, Write, ReasonPrimaryFunction},
	{"dblink in from", `SELECT * FROM dblink('dbname=x', 'SELECT 1') AS t(a int)`, Write, ReasonPrimaryFunction},
	{"pg_terminate_backend", `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'x'`, Write, ReasonPrimaryFunction},
	{"pg_sleep reads", `SELECT pg_sleep(0.1)`, Read, ReasonSelect},
	{"pure functions read", `SELECT now(), gen_random_uuid(), random(), pg_is_in_recovery(), current_setting('TimeZone')`, Read, ReasonSelect},

	// Other read statements.
	{"values", `VALUES (1, 'a'), (2, 'b')`, Read, ReasonSelect},
	{"table", `TABLE users`, Read, ReasonSelect},
	{"show", `SHOW transaction_isolation`, Read, ReasonShow},
	{"explain select", `EXPLAIN SELECT * FROM t WHERE id = 1`, Read, ReasonExplain},
	{"explain verbose", `EXPLAIN VERBOSE SELECT 1`, Read, ReasonExplain},
	{"explain options", `EXPLAIN (FORMAT JSON, COSTS false) SELECT * FROM t`, Read, ReasonExplain},
	{"explain with", `EXPLAIN WITH x AS (SELECT 1) SELECT * FROM x`, Read, ReasonExplain},
	{"explain analyze", `EXPLAIN ANALYZE SELECT * FROM t`, Write, ReasonExplainAnalyze},
	{"explain analyse", `EXPLAIN ANALYSE SELECT 1`, Write, ReasonExplainAnalyze},
	{"explain (analyze)", `EXPLAIN (ANALYZE) SELECT * FROM t`, Write, ReasonExplainAnalyze},
	{"explain (analyze true, buffers)", `EXPLAIN (ANALYZE true, BUFFERS) SELECT * FROM t`, Write, ReasonExplainAnalyze},
	{"explain (costs, analyze false)", `EXPLAIN (COSTS off, ANALYZE false) SELECT 1`, Write, ReasonExplainAnalyze},
	{"explain analyze delete", `EXPLAIN ANALYZE DELETE FROM t`, Write, ReasonExplainAnalyze},
	{"explain update", `EXPLAIN UPDATE t SET a = 1`, Write, ReasonExplainWrite},
	{"explain execute", `EXPLAIN EXECUTE stmt1(1)`, Write, ReasonExplainWrite},
	{"explain select for update", `EXPLAIN SELECT * FROM t FOR UPDATE`, Write, ReasonLocking},

	// Lexing.
	{"nested comment", `/* outer /* inner */ */ SELECT 1`, Read, ReasonSelect},
	{"nested comment with text", `/* a /* b */ c */ SELECT 1`, Read, ReasonSelect},
	// MySQL ends the comment at the first */ and would run the DELETE.
	{"nested comment hides statement from mysql", `/* a /* b */ DELETE FROM t; */ SELECT 1`, Write, ReasonWriteKeyword},
	{"nested comment trailing", `SELECT 1 /* a /* FOR UPDATE */ b */`, Read, ReasonSelect},
	{"dollar quoted", `SELECT $$it's a string$$`, Read, ReasonSelect},
	{"dollar tag", `SELECT $fn$ don't $$ $fn$ AS body`, Read, ReasonSelect},
	// MySQL reads $x$ as an identifier and runs the DELETE.
	{"dollar quote with statement", `SELECT $x$;DELETE FROM t$x$`, Write, ReasonMultiStatement},
	// MySQL reads the keywords as code: conservative Write.
	{"dollar quote with keywords", `SELECT $$ FOR UPDATE $$`, Write, ReasonLocking},
	// PostgreSQL cannot lex it; MySQL reads the column $$abc.
	{"unterminated dollar quote", `SELECT $$abc`, Read, ReasonSelect},
	{"parameters", `SELECT * FROM t WHERE a = $1 AND b = ANY($2::int[])`, Read, ReasonSelect},
	{"escape string", `SELECT E'line\nbreak\t'`, Read, ReasonSelect},
	{"escape string escaped quote", `SELECT E'it\'s'`, Write, ReasonAmbiguous},
	{"doubled quote", `SELECT 'it''s for update'`, Read, ReasonSelect},
	{"quoted identifiers spelled like keywords", `SELECT "for update", "into", "for" FROM "select"`, Read, ReasonSelect},
	{"words containing keywords", `SELECT for_update, into_x, selection, updated_at FROM t`, Read, ReasonSelect},
	{"selection is not select", `SELECTION * FROM t`, Write, ReasonUnknown},
	{"line comment hides keywords", "SELECT * FROM t -- FOR UPDATE; DELETE\n", Read, ReasonSelect},
	{"block comment hides keywords", `SELECT 1 /* ; DELETE FROM t FOR UPDATE */`, Read, ReasonSelect},
	{"unterminated string", `SELECT 'abc`, Write, ReasonUnterminated},
	{"unterminated comment after semicolon", "SELECT 1; /* x", Write, ReasonUnterminated},
	{"unterminated comment", `SELECT 1 /* x`, Write, ReasonUnterminated},
	{"unterminated nested comment", `SELECT 1 /* x /* y`, Write, ReasonUnterminated},
	// PostgreSQL cannot lex it (the comment nests); MySQL reads SELECT 1.
	{"nested comment unterminated in pg only", `SELECT 1 /* x /* y */`, Read, ReasonSelect},
	{"unterminated identifier", `SELECT "abc`, Write, ReasonUnterminated},
	{"unicode identifier", `SELECT U&"nextv\0061l"('s')`, Write, ReasonAmbiguous},
	{"leading whitespace", "\n\t  \r\n SELECT 1", Read, ReasonSelect},
	{"leading line comment", "-- get users\nSELECT * FROM users", Read, ReasonSelect},
	{"double parentheses", `((SELECT 1))`, Read, ReasonSelect},
	{"union all order", `(SELECT a FROM t) UNION ALL (SELECT a FROM u) ORDER BY 1 LIMIT 5`, Read, ReasonSelect},
	{"mixed case", `SeLeCt * FrOm t`, Read, ReasonSelect},
	{"jsonb hash operators", `SELECT data #>> '{a,b}', data #- '{c}' FROM docs`, Read, ReasonSelect},
	{"jsonb hash operator and locking", `SELECT data #>> '{a}' FROM docs FOR UPDATE`, Write, ReasonLocking},
	// MySQL reads "--1" as minus minus one and runs the DELETE.
	{"dash dash without space", `SELECT 1 --1; DELETE FROM t`, Write, ReasonMultiStatement},
	{"comment ended by carriage return", "SELECT 1 -- c\r; DELETE FROM t", Write, ReasonMultiStatement},
	{"pg_hint_plan hint", `/*+ SeqScan(t) */ SELECT * FROM t`, Read, ReasonSelect},
	{"hint with quote", `/*+ Set(work_mem '64MB') */ SELECT * FROM t`, Write, ReasonAmbiguous},
	{"lock column in list", `SELECT * FROM t WHERE lock IN (1, 2)`, Read, ReasonSelect},
	{"bare update column is conservative", `SELECT update FROM t`, Write, ReasonWriteKeyword},
	{"window and case", "SELECT row_number() OVER (PARTITION BY a ORDER BY b),\n  CASE WHEN c THEN 1 ELSE 0 END\nFROM t", Read, ReasonSelect},
	{"exists", `SELECT EXISTS(SELECT 1 FROM t WHERE id = $1)`, Read, ReasonSelect},

	// Statements that write.
	{"insert select", `INSERT INTO t SELECT * FROM s`, Write, ReasonWriteKeyword},
	{"create table as", `CREATE TABLE t2 AS SELECT * FROM t`, Write, ReasonWriteKeyword},
	{"copy query", `COPY (SELECT 1) TO STDOUT`, Write, ReasonWriteKeyword},
	{"begin", `BEGIN`, Write, ReasonWriteKeyword},
	{"set", `SET search_path TO app`, Write, ReasonWriteKeyword},
	{"lock table", `LOCK TABLE t IN SHARE MODE`, Write, ReasonWriteKeyword},
	{"vacuum", `VACUUM ANALYZE t`, Write, ReasonWriteKeyword},
	{"analyze", `ANALYZE t`, Write, ReasonWriteKeyword},
	{"refresh", `REFRESH MATERIALIZED VIEW mv`, Write, ReasonWriteKeyword},
	{"listen", `LISTEN jobs`, Write, ReasonWriteKeyword},
	{"notify", `NOTIFY jobs, 'x'`, Write, ReasonWriteKeyword},
	{"do", `DO $$BEGIN PERFORM 1; END$$`, Write, ReasonWriteKeyword},
	{"call", `CALL refresh_stats()`, Write, ReasonWriteKeyword},
	{"truncate", `TRUNCATE t`, Write, ReasonWriteKeyword},
	{"merge", `MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE`, Write, ReasonWriteKeyword},
	{"prepare", `PREPARE q AS SELECT 1`, Write, ReasonWriteKeyword},
	{"execute", `EXECUTE q`, Write, ReasonWriteKeyword},
	{"declare cursor", `DECLARE c CURSOR FOR SELECT 1`, Write, ReasonWriteKeyword},
	{"fetch", `FETCH 10 FROM c`, Write, ReasonWriteKeyword},
	{"parenthesized insert", `(INSERT INTO t VALUES (1))`, Write, ReasonWriteKeyword},

	// Empty.
	{"empty", ``, Write, ReasonEmpty},
	{"only whitespace", " \n\t", Write, ReasonEmpty},
	{"only comments", "-- nothing\n/* here */", Write, ReasonEmpty},
	{"only semicolon", `;`, Write, ReasonEmpty},
	{"starts with string", `'SELECT 1'`, Write, ReasonUnknown},
}

// mysqlCases are statements in MySQL or MariaDB syntax.
var mysqlCases = []classifyCase{
	// GORM-generated shapes.
	{"gorm first", "SELECT * FROM `users` WHERE `users`.`id` = ? AND `users`.`deleted_at` IS NULL ORDER BY `users`.`id` LIMIT 1", Read, ReasonSelect},
	{"gorm find in", "SELECT * FROM `orders` WHERE `orders`.`user_id` IN (?,?,?) AND `orders`.`deleted_at` IS NULL", Read, ReasonSelect},
	{"gorm count", "SELECT count(*) FROM `users` WHERE `users`.`deleted_at` IS NULL", Read, ReasonSelect},
	{"gorm joins", "SELECT `users`.`id`,`users`.`name`,`Company`.`id` AS `Company__id` FROM `users` LEFT JOIN `companies` `Company` ON `users`.`company_id` = `Company`.`id`", Read, ReasonSelect},
	{"gorm create", "INSERT INTO `users` (`name`,`age`,`created_at`) VALUES (?,?,?)", Write, ReasonWriteKeyword},
	{"gorm upsert", "INSERT INTO `users` (`id`,`name`) VALUES (?,?) ON DUPLICATE KEY UPDATE `name`=VALUES(`name`)", Write, ReasonWriteKeyword},
	{"gorm save", "UPDATE `users` SET `name`=?,`updated_at`=? WHERE `id` = ?", Write, ReasonWriteKeyword},
	{"gorm delete", "DELETE FROM `users` WHERE `users`.`id` = ?", Write, ReasonWriteKeyword},
	{"gorm locking", "SELECT * FROM `users` WHERE `users`.`id` = ? LIMIT 1 FOR UPDATE", Write, ReasonLocking},
	{"gorm locking share", "SELECT * FROM `users` FOR SHARE OF `users` NOWAIT", Write, ReasonLocking},
	{"gorm raw scan", "SELECT name, age FROM users WHERE name = ?", Read, ReasonSelect},

	// Locking.
	{"lock in share mode", "SELECT * FROM t WHERE id = 1 LOCK IN SHARE MODE", Write, ReasonLocking},
	{"lock in share mode semicolon", "SELECT * FROM t LOCK IN SHARE MODE;", Write, ReasonLocking},
	{"for share", "SELECT * FROM t FOR SHARE", Write, ReasonLocking},
	{"for update nowait", "SELECT * FROM t WHERE id = ? FOR UPDATE NOWAIT", Write, ReasonLocking},
	{"for update skip locked", "SELECT id FROM jobs ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED", Write, ReasonLocking},
	{"for update semicolon", "SELECT * FROM t FOR UPDATE;", Write, ReasonLocking},
	{"for update hash comment", "SELECT * FROM t FOR UPDATE # lock", Write, ReasonLocking},
	{"lock column in list", "SELECT * FROM t WHERE `lock` IN (1)", Read, ReasonSelect},
	{"for update in backticks", "SELECT `for`, `update`, `into` FROM `select`", Read, ReasonSelect},

	// INTO.
	{"into variable", "SELECT count(*) INTO @n FROM t", Write, ReasonSelectInto},
	{"into at end", "SELECT id FROM t WHERE x = 1 INTO @id", Write, ReasonSelectInto},
	{"into outfile", "SELECT * FROM t INTO OUTFILE '/tmp/t.csv'", Write, ReasonSelectInto},
	{"into dumpfile", "SELECT doc FROM t LIMIT 1 INTO DUMPFILE '/tmp/doc'", Write, ReasonSelectInto},
	{"into in string", "SELECT 'INTO @x' FROM t", Read, ReasonSelect},

	// Functions and session state.
	{"get_lock", "SELECT GET_LOCK('job', 10)", Write, ReasonPrimaryFunction},
	{"get_lock lower with space", "select get_lock ('job', 10)", Write, ReasonPrimaryFunction},
	{"get_lock backticks", "SELECT `GET_LOCK`('job', 10)", Write, ReasonPrimaryFunction},
	{"release_lock", "SELECT RELEASE_LOCK('job')", Write, ReasonPrimaryFunction},
	{"release_all_locks", "SELECT RELEASE_ALL_LOCKS()", Write, ReasonPrimaryFunction},
	{"is_free_lock", "SELECT IS_FREE_LOCK('job')", Write, ReasonPrimaryFunction},
	{"is_used_lock", "SELECT IS_USED_LOCK('job')", Write, ReasonPrimaryFunction},
	{"last_insert_id", "SELECT LAST_INSERT_ID()", Write, ReasonPrimaryFunction},
	{"qualified last_insert_id", "SELECT mydb.last_insert_id()", Write, ReasonPrimaryFunction},
	{"found_rows", "SELECT FOUND_ROWS()", Write, ReasonPrimaryFunction},
	{"row_count", "SELECT ROW_COUNT()", Write, ReasonPrimaryFunction},
	{"sql_calc_found_rows", "SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 10", Write, ReasonSessionState},
	{"variable assignment", "SELECT @rownum := @rownum + 1 AS n FROM t, (SELECT @rownum := 0) r", Write, ReasonSessionState},
	{"quoted variable assignment", "SELECT @'x':=1", Write, ReasonSessionState},
	{"identity", "SELECT @@identity", Write, ReasonSessionState},
	{"session last_insert_id", "SELECT @@session.last_insert_id", Write, ReasonSessionState},
	{"warning_count", "SELECT @@warning_count", Write, ReasonSessionState},
	{"system variable reads", "SELECT @@version, @@read_only, @@global.gtid_executed", Read, ReasonSelect},
	{"user variable reads", "SELECT @x, @x = 1", Read, ReasonSelect},
	{"mariadb next value for", "SELECT NEXT VALUE FOR order_seq", Write, ReasonPrimaryFunction},
	{"mariadb previous value for", "SELECT previous value for order_seq", Write, ReasonPrimaryFunction},
	{"mariadb nextval", "SELECT NEXTVAL(order_seq)", Write, ReasonPrimaryFunction},
	{"mariadb lastval", "SELECT LASTVAL(order_seq)", Write, ReasonPrimaryFunction},
	{"mariadb oracle mode nextval", "SELECT order_seq.NEXTVAL FROM DUAL", Write, ReasonPrimaryFunction},
	{"mariadb oracle mode currval", "SELECT app.order_seq.currval", Write, ReasonPrimaryFunction},
	{"mariadb setval", "SELECT SETVAL(order_seq, 100)", Write, ReasonPrimaryFunction},
	{"sleep uuid rand read", "SELECT SLEEP(0), UUID(), RAND(), BENCHMARK(10, MD5('x'))", Read, ReasonSelect},
	{"replica wait functions read", "SELECT SOURCE_POS_WAIT('binlog.000001', 4), WAIT_FOR_EXECUTED_GTID_SET('x', 1)", Read, ReasonSelect},
	{"replace function", "SELECT REPLACE(name, 'a', 'b') FROM t", Read, ReasonSelect},
	{"insert function", "SELECT INSERT('Quadratic', 3, 4, 'What')", Read, ReasonSelect},

	// Comments.
	{"hash comment leading", "# list users\nSELECT * FROM users", Read, ReasonSelect},
	{"hash comment trailing", "SELECT * FROM users # all of them", Read, ReasonSelect},
	{"hash comment with apostrophe", "SELECT 1 # it's fine\n", Read, ReasonSelect},
	{"hash comment then statement", "SELECT 1 # x\n; DELETE FROM t", Write, ReasonMultiStatement},
	// PostgreSQL reads # as an operator and the words as code.
	{"hash comment with keywords is conservative", "SELECT * FROM t # for update\n", Write, ReasonLocking},
	{"only hash comment", "# nothing", Write, ReasonEmpty},
	{"dash dash space comment", "SELECT 1 -- comment", Read, ReasonSelect},
	{"dash dash minus", "SELECT 1 --1; DELETE FROM t", Write, ReasonMultiStatement},
	{"dash dash no space leading", "--comment\nSELECT 1", Read, ReasonSelect},
	{"executable comment", "SELECT /*!40001 SQL_NO_CACHE */ * FROM t", Write, ReasonExecutableComment},
	{"executable comment statement", "/*!50000 SELECT 1 */", Write, ReasonExecutableComment},
	{"mysqldump header", "/*!40101 SET NAMES utf8mb4 */;", Write, ReasonExecutableComment},
	{"mariadb executable comment", "SELECT 1 /*M!100100 FOR UPDATE */", Write, ReasonExecutableComment},
	{"optimizer hint", "SELECT /*+ MAX_EXECUTION_TIME(1000) */ * FROM t", Read, ReasonSelect},
	{"optimizer hint with quoted name", "SELECT /*+ INDEX(t `idx`) */ * FROM t", Write, ReasonAmbiguous},
	{"comment ends at first close", "SELECT 1 /* a /* b */ ; DELETE FROM t; */", Write, ReasonMultiStatement},

	// Literals.
	{"backslash escaped quote", `SELECT * FROM t WHERE name = 'O\'Brien'`, Write, ReasonAmbiguous},
	{"string ending in backslash", `SELECT 'C:\\'`, Write, ReasonAmbiguous},
	{"backslash escapes without quote", `SELECT * FROM t WHERE name LIKE 'a\_%' AND b = 'x\\y'`, Read, ReasonSelect},
	{"double quoted string", `SELECT "for update" FROM t`, Read, ReasonSelect},
	{"double quoted apostrophe", `SELECT "it's"`, Read, ReasonSelect},
	{"double quoted escaped quote", `SELECT "a\"b"`, Write, ReasonAmbiguous},
	{"backtick apostrophe", "SELECT `it's` FROM t", Read, ReasonSelect},
	{"backtick semicolon", "SELECT `a;b` FROM t", Read, ReasonSelect},
	{"backtick unterminated", "SELECT `abc FROM t", Write, ReasonUnterminated},
	{"semicolon in string and trailing", "SELECT * FROM t WHERE a = ';' ;", Read, ReasonSelect},
	{"charset introducer", "SELECT _utf8mb4'abc' COLLATE utf8mb4_bin", Read, ReasonSelect},
	{"hex and bit literals", "SELECT X'4D7953514C', b'1010', 0x1F", Read, ReasonSelect},
	{"json path", "SELECT data->>'$.name', JSON_EXTRACT(doc, '$.a') FROM t", Read, ReasonSelect},

	// DESCRIBE, EXPLAIN, SHOW.
	{"describe table", "DESCRIBE users", Read, ReasonExplain},
	{"desc table", "DESC users", Read, ReasonExplain},
	{"desc qualified", "DESC `db`.`users`;", Read, ReasonExplain},
	{"describe column", "DESCRIBE users name", Read, ReasonExplain},
	{"describe wildcard", "DESCRIBE users 'na%'", Read, ReasonExplain},
	{"explain table", "EXPLAIN users", Read, ReasonExplain},
	{"explain select", "EXPLAIN SELECT * FROM t WHERE id = 1", Read, ReasonExplain},
	{"explain format json", "EXPLAIN FORMAT=JSON SELECT * FROM t", Read, ReasonExplain},
	{"describe select", "DESCRIBE SELECT 1", Read, ReasonExplain},
	{"explain analyze", "EXPLAIN ANALYZE SELECT * FROM t", Write, ReasonExplainAnalyze},
	{"explain format analyze", "EXPLAIN FORMAT=TREE ANALYZE SELECT 1", Write, ReasonExplainAnalyze},
	{"explain into", "EXPLAIN FORMAT=JSON INTO @plan SELECT 1", Write, ReasonSelectInto},
	{"explain delete", "EXPLAIN DELETE FROM t WHERE id = 1", Write, ReasonExplainWrite},
	{"explain replace", "EXPLAIN REPLACE INTO t VALUES (1)", Write, ReasonExplainWrite},
	{"explain for connection", "EXPLAIN FOR CONNECTION 5", Write, ReasonExplainWrite},
	{"show tables", "SHOW TABLES", Read, ReasonShow},
	{"show columns", "SHOW FULL COLUMNS FROM `users`", Read, ReasonShow},
	{"show create table", "SHOW CREATE TABLE `users`", Read, ReasonShow},
	{"show variables", "SHOW VARIABLES LIKE 'read_only'", Read, ReasonShow},
	{"show replica status", "SHOW REPLICA STATUS", Read, ReasonShow},
	{"show grants for", "SHOW GRANTS FOR CURRENT_USER", Read, ReasonShow},
	{"show warnings", "SHOW WARNINGS", Write, ReasonSessionState},
	{"show errors", "SHOW ERRORS LIMIT 5", Write, ReasonSessionState},
	{"show count warnings", "SHOW COUNT(*) WARNINGS", Write, ReasonSessionState},
	{"show profiles", "SHOW PROFILES", Write, ReasonSessionState},

	// Other reads.
	{"table statement", "TABLE t ORDER BY id LIMIT 3", Read, ReasonSelect},
	{"values row", "VALUES ROW(1, 2), ROW(3, 4)", Read, ReasonSelect},
	{"with cte", "WITH cte AS (SELECT id FROM users) SELECT * FROM cte", Read, ReasonWith},
	{"with recursive", "WITH RECURSIVE seq (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 5) SELECT * FROM seq", Read, ReasonWith},
	{"with delete", "WITH old AS (SELECT id FROM t) DELETE FROM t WHERE id IN (SELECT id FROM old)", Write, ReasonWritingCTE},
	{"with update", "WITH x AS (SELECT 1 AS id) UPDATE t, x SET t.a = 1 WHERE t.id = x.id", Write, ReasonWritingCTE},
	{"parenthesized union", "(SELECT id FROM a) UNION (SELECT id FROM b)", Read, ReasonSelect},
	{"straight join and modifiers", "SELECT HIGH_PRIORITY STRAIGHT_JOIN SQL_NO_CACHE * FROM a JOIN b ON a.id = b.id", Read, ReasonSelect},
	{"dual", "SELECT 1 FROM DUAL", Read, ReasonSelect},
	{"multi statement", "SELECT 1; SELECT 2", Write, ReasonMultiStatement},
	{"multi statement write", "SELECT * FROM t; UPDATE t SET a = 1", Write, ReasonMultiStatement},

	// Statements that write.
	{"replace into", "REPLACE INTO t (id, a) VALUES (1, 2)", Write, ReasonWriteKeyword},
	{"handler", "HANDLER t OPEN", Write, ReasonWriteKeyword},
	{"load data", "LOAD DATA INFILE '/tmp/t.csv' INTO TABLE t", Write, ReasonWriteKeyword},
	{"use", "USE app", Write, ReasonWriteKeyword},
	{"set names", "SET NAMES utf8mb4", Write, ReasonWriteKeyword},
	{"lock tables", "LOCK TABLES t READ", Write, ReasonWriteKeyword},
	{"unlock tables", "UNLOCK TABLES", Write, ReasonWriteKeyword},
	{"do", "DO RELEASE_LOCK('x')", Write, ReasonWriteKeyword},
	{"call", "CALL refresh_stats()", Write, ReasonWriteKeyword},
	{"start transaction", "START TRANSACTION READ ONLY", Write, ReasonWriteKeyword},
	{"optimize", "OPTIMIZE TABLE t", Write, ReasonWriteKeyword},
	{"analyze table", "ANALYZE TABLE t", Write, ReasonWriteKeyword},
	{"mariadb analyze select", "ANALYZE SELECT * FROM t", Write, ReasonWriteKeyword},
	{"xa start", "XA START 'x'", Write, ReasonWriteKeyword},
	{"mariadb compound statement", "BEGIN NOT ATOMIC SELECT 1; END", Write, ReasonWriteKeyword},
	{"mariadb label", "lbl: BEGIN NOT ATOMIC SELECT 1; END", Write, ReasonUnknown},
	{"create sequence", "CREATE SEQUENCE s START WITH 1", Write, ReasonWriteKeyword},
	{"upper mixed", "sElEcT * fRoM `t` fOr UpDaTe", Write, ReasonLocking},
}

func TestClassify(t *testing.T) {
	for _, set := range []struct {
		name  string
		cases []classifyCase
	}{{"pg", pgCases}, {"mysql", mysqlCases}} {
		t.Run(set.name, func(t *testing.T) {
			seen := map[string]bool{}
			for _, tt := range set.cases {
				if seen[tt.name] {
					t.Errorf("duplicate case name %q", tt.name)
				}
				seen[tt.name] = true
				t.Run(tt.name, func(t *testing.T) {
					c, r := Classify(tt.give, nil)
					if c != tt.want || r != tt.reason {
						t.Errorf("Classify(%q) = %v, %v; want %v, %v", tt.give, c, r, tt.want, tt.reason)
					}
				})
			}
		})
	}
}

// The brief asks for at least 80 statements of each syntax.
func TestClassifyTableSize(t *testing.T) {
	if len(pgCases) < 80 || len(mysqlCases) < 80 {
		t.Errorf("pgCases: %d, mysqlCases: %d; want at least 80 each", len(pgCases), len(mysqlCases))
	}
}

func TestClassifyNUL(t *testing.T) {
	c, r := Classify("SELECT 1 -- \x00\n; DELETE FROM t", nil)
	if c != Write || r != ReasonAmbiguous {
		t.Errorf("got %v, %v; want write, ambiguous", c, r)
	}
}

func TestClassifyLongInput(t *testing.T) {
	give := "SELECT " + strings.Repeat("a, ", 10000) + "b FROM t"
	if c, r := Classify(give, nil); c != Read || r != ReasonSelect {
		t.Errorf("got %v, %v; want read, select", c, r)
	}
	give += " FOR UPDATE"
	if c, r := Classify(give, nil); c != Write || r != ReasonLocking {
		t.Errorf("got %v, %v; want write, locking", c, r)
	}
}

func TestReasonString(t *testing.T) {
	seen := map[string]Reason{}
	for r := Reason(0); r < numReasons; r++ {
		s := r.String()
		if s == "" || strings.HasPrefix(s, "Reason(") {
			t.Errorf("Reason %d has no name", r)
		}
		if prev, dup := seen[s]; dup {
			t.Errorf("Reasons %d and %d are both %q", prev, r, s)
		}
		seen[s] = r
	}
	if got := Reason(200).String(); got != "Reason(200)" {
		t.Errorf("Reason(200).String() = %q", got)
	}
}

func TestClassString(t *testing.T) {
	for _, tt := range []struct {
		give Class
		want string
	}{{Write, "write"}, {Read, "read"}, {Class(7), "Class(7)"}} {
		if got := tt.give.String(); got != tt.want {
			t.Errorf("%d.String() = %q, want %q", tt.give, got, tt.want)
		}
	}
}
