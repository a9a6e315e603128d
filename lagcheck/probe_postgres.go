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
	pgCommitSQL  = `SELECT pg_current_wal_insert_lsn()::text`
	pgReplicaSQL = `SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,` +
		` (extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000000)::bigint`
)

// PostgresProbe returns the probe for PostgreSQL streaming replication: it
// compares the primary's pg_current_wal_lsn() with a replica's
// pg_last_wal_replay_lsn() (Reading.Behind is in bytes), and also bounds
// the lag by the replica's time since its last replayed commit. A server
// not in recovery fails with ErrNotReplica; a NULL replay position with
// ErrReplicationStopped. docs/health.md says why these functions.
func PostgresProbe() Probe { return postgresProbe{} }

type postgresProbe struct{}

func (postgresProbe) Primary(ctx context.Context, db *sql.DB) (Position, error) {
	return pgPosition(ctx, db, pgPrimarySQL)
}

// commitPosition reads the WAL insert position: a commit's record is
// inserted before the commit returns, but with synchronous_commit=off it
// may not be written yet, and pg_current_wal_lsn() is the write position.
func (postgresProbe) commitPosition(ctx context.Context, q Querier) (Position, error) {
	return pgPosition(ctx, q, pgCommitSQL)
}

func pgPosition(ctx context.Context, q Querier, query string) (Position, error) {
	var lsn string
	if err := q.QueryRowContext(ctx, query).Scan(&lsn); err != nil {
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
