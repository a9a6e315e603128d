// Package lagcheck measures each replica's replication lag and health in
// the background and decides which replicas may serve reads: a replica
// that lags beyond Config.MaxLag, fails, hangs or stops replicating is
// evicted, and readmitted once it has caught up (see State).
//
// It works on *sql.DB handles and knows PostgreSQL streaming replication,
// MariaDB and MySQL 8 GTID replication, and, for any database, an opt-in
// heartbeat table. Lag is bounded by comparing each replica's replay
// position with the primary's recent positions (see Reading.Lag).
// Position, Checker.PrimaryPosition and Checker.Covers support causal
// ("read your writes") routing. It does not import GORM or rwsplit.
//
// docs/health.md explains how lag is measured and why.
package lagcheck
