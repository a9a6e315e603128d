// Package sqlclass decides whether a raw SQL string may run on a read-only
// replica.
//
// The contract is conservative: Classify returns Read only when it can
// show that the text is one read-only query under the rules below, for
// PostgreSQL and for MySQL/MariaDB alike. Anything it does not recognise,
// cannot lex, or finds ambiguous is Write, which sends it to the primary.
// A wrong Write costs a read on the primary; a wrong Read sends a write, a
// lock or a session-state query to a replica.
//
// Classify runs on every routed statement: it reads the text in one
// forward pass (two for the rare text that PostgreSQL and MySQL lex
// differently), allocates nothing, and uses no regular expressions.
//
// # Decisions
//
// Where the rules leave a choice, sqlclass takes the primary:
//
//   - EXPLAIN, DESCRIBE and DESC are Read only for a read query (SELECT,
//     VALUES, TABLE, WITH) or MySQL's table form (DESC t [col]). EXPLAIN of
//     anything else is Write even without ANALYZE (ReasonExplainWrite), and
//     any ANALYZE/ANALYSE option is Write, "ANALYZE false" included.
//   - Functions: IS_FREE_LOCK and IS_USED_LOCK are Write (the locks live on
//     the primary); so are ROW_COUNT, FOUND_ROWS and SQL_CALC_FOUND_ROWS
//     (results of the previous statement on the connection),
//     pg_current_wal_lsn and its kin (they fail during recovery), every
//     lo_* function (lo_get too), every dblink* function, setseed, and
//     server-control functions (pg_reload_conf, pg_promote, ...). pg_sleep,
//     SLEEP, uuid functions, random and now are Read. The list is in
//     functions.go.
//   - Session state: "@v := ..." assignments, @@identity, @@last_insert_id,
//     @@warning_count, @@error_count, SHOW WARNINGS/ERRORS/PROFILE(S) and
//     SHOW COUNT(*) ... are Write; other SHOW statements are Read.
//   - Optimizer hints /*+ ... */ are comments (hints cannot write), unless
//     they contain a quote character; MySQL /*! */ and MariaDB /*M! */
//     executable comments are always Write.
//   - INSERT, UPDATE, DELETE, MERGE and REPLACE anywhere in a read (other
//     than MySQL's INSERT(...) and REPLACE(...) functions and "t.update"
//     style qualified names) make it Write: that catches data-modifying
//     CTEs at any depth and WITH ... UPDATE, at the price of a bare column
//     named update.
//   - Text that PostgreSQL and MySQL lex differently is read both ways
//     (see Classify); so keywords inside a PostgreSQL dollar-quoted string
//     count, because MySQL reads them as code: SELECT $$ FOR UPDATE $$ is
//     Write, SELECT $$it's$$ is Read.
package sqlclass
