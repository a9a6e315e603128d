package lagcheck

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strconv"
	"time"
)

// PostgreSQL probe queries.
const (
	pgPrimarySQL = `SELECT pg_current_wal_lsn()::text`
	// pgSampleSQL is the Checker's sample: the write position for the
	// lag, the insert position for the causal marks (commitPosition).
	pgSampleSQL = `SELECT pg_current_wal_lsn()::text, pg_current_wal_insert_lsn()::text,` +
		` current_setting('wal_block_size')::bigint, pg_size_bytes(current_setting('wal_segment_size'))`
	pgCommitSQL = `SELECT pg_current_wal_insert_lsn()::text, current_setting('wal_block_size')::bigint,` +
		` pg_size_bytes(current_setting('wal_segment_size'))`
	pgReplicaSQL = `SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,` +
		` (extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000000)::bigint,` +
		` EXISTS (SELECT 1 FROM pg_stat_wal_receiver),` +
		` host(inet_server_addr()), coalesce(inet_server_port(), current_setting('port')::int),` +
		` (extract(epoch FROM pg_postmaster_start_time()) * 1000000)::bigint`
)

// PostgresProbe returns the probe for PostgreSQL streaming replication: it
// compares the primary's pg_current_wal_lsn() with a replica's
// pg_last_wal_replay_lsn() (Reading.Behind is in bytes), and also bounds
// the lag by the replica's time since its last replayed commit. A server
// not in recovery fails with ErrNotReplica; a NULL replay position with
// ErrReplicationStopped. The same statement reads the answering server's
// identity (Replay.Server): its address and port as it sees them, and its
// start time. docs/health.md says why these functions.
func PostgresProbe() Probe { return postgresProbe{} }

type postgresProbe struct{}

func (postgresProbe) Primary(ctx context.Context, db DB) (Position, error) {
	return pgPosition(ctx, db, pgPrimarySQL)
}

// commitPosition reads the WAL insert position: a commit's record is
// inserted before the commit returns, but with synchronous_commit=off it
// may not be written yet, and pg_current_wal_lsn() is the write position.
func (postgresProbe) commitPosition(ctx context.Context, q Querier) (Position, error) {
	var (
		lsn        string
		block, seg int64
	)
	if err := q.QueryRowContext(ctx, pgCommitSQL).Scan(&lsn, &block, &seg); err != nil {
		return Position{}, err
	}
	p, err := ParseLSN(lsn)
	if err != nil {
		return Position{}, err
	}
	return LSNPosition(pageStart(p.lsn, uint64(block), uint64(seg))), nil
}

// primarySample reads, in one statement, the position Primary reads and
// the one commitPosition reads.
func (postgresProbe) primarySample(ctx context.Context, db DB) (pos, commit Position, err error) {
	var (
		write, insert string
		block, seg    int64
	)
	if err := db.QueryRowContext(ctx, pgSampleSQL).Scan(&write, &insert, &block, &seg); err != nil {
		return Position{}, Position{}, err
	}
	if pos, err = ParseLSN(write); err != nil {
		return Position{}, Position{}, err
	}
	c, err := ParseLSN(insert)
	if err != nil {
		return Position{}, Position{}, err
	}
	return pos, LSNPosition(pageStart(c.lsn, uint64(block), uint64(seg))), nil
}

// WAL page header sizes (64-bit builds): the first page of a segment has
// the long one.
const pgShortPageHeader, pgLongPageHeader = 24, 40

// pageStart returns the start of the page when an insert position lies
// just past a page header: nothing is inserted on that page yet, and a
// replica that replayed every record before it reports the page's start,
// which the insert position would exceed until the next record.
func pageStart(lsn, block, seg uint64) uint64 {
	switch {
	case seg > 0 && lsn%seg == pgLongPageHeader:
		return lsn - pgLongPageHeader
	case block > 0 && lsn%block == pgShortPageHeader:
		return lsn - pgShortPageHeader
	}
	return lsn
}

func pgPosition(ctx context.Context, q Querier, query string) (Position, error) {
	var lsn string
	if err := q.QueryRowContext(ctx, query).Scan(&lsn); err != nil {
		return Position{}, err
	}
	return ParseLSN(lsn)
}

func (postgresProbe) Replica(ctx context.Context, db DB, _ Position) (Replay, error) {
	var (
		inRecovery    bool
		lsn           sql.NullString
		ageMicros     sql.NullInt64
		receiving     bool
		host          sql.NullString
		port          int64
		startedMicros sql.NullInt64
	)
	if err := db.QueryRowContext(ctx, pgReplicaSQL).Scan(&inRecovery, &lsn, &ageMicros, &receiving, &host, &port, &startedMicros); err != nil {
		return Replay{}, err
	}
	// pg_stat_wal_receiver has its row (its pid, to any role) only while
	// the WAL receiver is connected to the primary.
	r := Replay{Disconnected: inRecovery && !receiving, Server: pgServer(host, port, startedMicros)}
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

// pgServer is the identity of a PostgreSQL server: "local" stands for
// the host over a Unix socket, where inet_server_addr() is NULL.
func pgServer(host sql.NullString, port int64, startedMicros sql.NullInt64) Server {
	h := "local"
	if host.Valid {
		h = host.String
	}
	s := Server{Addr: net.JoinHostPort(h, strconv.FormatInt(port, 10))}
	if startedMicros.Valid {
		s.Started = time.UnixMicro(startedMicros.Int64)
	}
	return s
}
