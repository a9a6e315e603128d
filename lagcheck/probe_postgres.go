package lagcheck

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// PostgreSQL probe queries.
const (
	pgPrimarySQL = `SELECT pg_current_wal_lsn()::text`
	pgReplicaSQL = `SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,` +
		` (extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000000)::bigint`
)

// PostgresProbe returns the probe for PostgreSQL streaming replication.
//
// The primary's position is pg_current_wal_lsn(); a replica's is
// pg_last_wal_replay_lsn(), what it has applied (pg_last_wal_receive_lsn
// reads as caught up while the walreceiver is cut off). Comparing the two
// is exact even while the primary is idle. Reading.Behind is in bytes.
//
// The lag bound is the smaller of two upper bounds: the one the Checker
// derives from the primary's recent positions, and now minus
// pg_last_xact_replay_timestamp() on the replica. The second alone grows
// without bound while the primary is idle, and it uses the two servers'
// clocks; it tightens the bound while the replica is behind a busy
// primary. pg_stat_replication.replay_lag is not used: it trails the truth
// and vanishes while the replica is disconnected.
//
// A server that is not in recovery (a promoted replica) fails with
// ErrNotReplica; a NULL replay position with ErrReplicationStopped.
func PostgresProbe() Probe { return postgresProbe{} }

type postgresProbe struct{}

func (postgresProbe) Primary(ctx context.Context, db *sql.DB) (Position, error) {
	var lsn string
	if err := db.QueryRowContext(ctx, pgPrimarySQL).Scan(&lsn); err != nil {
		return Position{}, err
	}
	return ParseLSN(lsn)
}

func (postgresProbe) Replica(ctx context.Context, db *sql.DB, _ Position) (Replay, error) {
	var (
		inRecovery bool
		lsn        sql.NullString
		ageMicros  sql.NullInt64
	)
	if err := db.QueryRowContext(ctx, pgReplicaSQL).Scan(&inRecovery, &lsn, &ageMicros); err != nil {
		return Replay{}, err
	}
	var r Replay
	if lsn.Valid {
		p, err := ParseLSN(lsn.String)
		if err != nil {
			return Replay{}, err
		}
		r.Position = p
	}
	if !inRecovery {
		return r, fmt.Errorf("%w: pg_is_in_recovery() is false", ErrNotReplica)
	}
	if !lsn.Valid {
		return r, fmt.Errorf("%w: pg_last_wal_replay_lsn() is NULL", ErrReplicationStopped)
	}
	if ageMicros.Valid {
		r.LagAtMost, r.LagAtMostKnown = max(0, time.Duration(ageMicros.Int64)*time.Microsecond), true
	}
	return r, nil
}
