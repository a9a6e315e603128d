package lagcheck

import (
	"errors"
	"fmt"
)

// Errors a probe reports about a replica that answers but cannot serve
// fresh reads. They count as bad readings (see Config.EvictAfter), except
// ErrNotReplica, which evicts at once. None is connection-class.
var (
	// ErrNotReplica: the server is not replicating from anything. On
	// PostgreSQL pg_is_in_recovery() is false (the replica was promoted or
	// never was one); on MariaDB and MySQL SHOW REPLICA STATUS has no row.
	// It evicts a replica at once (see docs/health.md, "Role changes").
	ErrNotReplica = errors.New("lagcheck: server is not a replica")

	// ErrPromoted marks an ErrNotReplica error of a replica that an
	// earlier probe saw replicating: it was promoted, or its replication
	// was removed (RESET SLAVE ALL). Such an error matches both.
	ErrPromoted = errors.New("lagcheck: replica promoted, or its replication removed")

	// ErrPrivilege: the probe's user may not run a query the probe needs
	// (SHOW SLAVE STATUS without SLAVE MONITOR, a function whose EXECUTE
	// was revoked, a heartbeat table it may not read or write). The
	// error's text names the GRANT that fixes it. It counts as a bad
	// reading, on the primary's side as a failed sample.
	ErrPrivilege = errors.New("lagcheck: missing privilege")

	// ErrReplicationStopped: the replica does not apply what it receives.
	// MariaDB/MySQL: the SQL (applier) thread is not running, or
	// Seconds_Behind_Master is NULL. PostgreSQL: pg_last_wal_replay_lsn()
	// is NULL.
	ErrReplicationStopped = errors.New("lagcheck: replication stopped")

	// ErrNotReceiving: the replica's IO (receiver) thread is not connected
	// to its primary. It wraps ErrReplicationStopped. While the primary
	// cannot be sampled either, the replica's state is left alone.
	ErrNotReceiving = fmt.Errorf("%w: not receiving from the primary", ErrReplicationStopped)

	// ErrNoPosition: the Checker has no way to read the primary's
	// replication position (a custom Probe on a dialect lagcheck does not
	// know).
	ErrNoPosition = errors.New("lagcheck: no replication position for this dialect")
)
