// Package lagcheck measures each replica's replication lag and health in
// the background and decides which replicas may serve reads: a replica
// that lags beyond Config.MaxLag, fails, hangs or stops replicating is
// evicted, and readmitted once it has caught up (below
// Config.ReadmitLag) for Config.ReadmitAfter probes in a row.
//
// It works on *sql.DB handles and knows PostgreSQL streaming replication,
// MariaDB and MySQL 8 GTID replication, and, for any database, an opt-in
// heartbeat table. It does not import GORM or rwsplit: rwsplit wires a
// Checker to its replicas.
//
// # How lag is measured
//
// Every Config.Interval the Checker samples the primary's replication
// position (pg_current_wal_lsn(), @@gtid_binlog_pos, @@gtid_executed) and
// keeps the recent samples with the time each was taken. Right after, it
// probes each replica's replay position. Everything the primary had
// committed when a sample was taken is on a replica whose position covers
// that sample, so the replica's staleness is at most the time since the
// newest sample it covers. The comparison is exact on an idle primary,
// where time-based lag measures mislead (PostgreSQL's
// now() - pg_last_xact_replay_timestamp() grows without bound;
// MariaDB's Seconds_Behind_Master reads 0 while disconnected). Where a
// finer bound exists it is used too (PostgreSQL's replay timestamp, a
// heartbeat row): see Reading.Lag.
//
// # States
//
// See State for the state machine. Probe errors count as bad readings;
// connection-class errors (the server down or the connection lost) and ReportFailure, the passive
// detection path for errors the application's own queries hit, evict at
// once and bump the replica's generation so that a probe already in
// flight cannot readmit it.
//
// # Causal reads
//
// Position, Checker.PrimaryPosition and Checker.Covers let a caller
// route a read to a replica only once it has replayed the caller's last
// write ("read your writes"); Covers is lock-free and does not allocate.
package lagcheck
