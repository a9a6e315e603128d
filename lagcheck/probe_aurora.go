package lagcheck

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Aurora probe queries: each reader reads its own row of the cluster's
// replica status.
const (
	auroraPGReplicaSQL    = `SELECT * FROM aurora_replica_status() WHERE server_id = aurora_db_instance_identifier()`
	auroraMySQLReplicaSQL = `SELECT * FROM information_schema.replica_host_status WHERE SERVER_ID = @@aurora_server_id`
	auroraWriterSession   = "MASTER_SESSION_ID"
)

// AuroraPostgresProbe returns the probe for Aurora PostgreSQL readers: each
// reader's lag is its own replica_lag_in_msec in aurora_replica_status(),
// the row whose server_id is aurora_db_instance_identifier(). Aurora
// readers share the writer's storage and have no replay position to
// compare, so Checker.Covers is false for them and causal reads go to the
// primary; Status.Fallback says so. A NULL or negative lag fails with
// ErrReplicationStopped; the writer's own row (session_id
// MASTER_SESSION_ID), or no row, with ErrNotReplica. The bound is Aurora's
// own figure, refreshed by Aurora: add Config.Heartbeat for one the
// Checker measures. Replay.Server is the row's server_id, so a reader
// endpoint's instances are told apart. Set it as Config.Probe.
func AuroraPostgresProbe() Probe {
	return auroraProbe{query: auroraPGReplicaSQL, session: "session_id", lag: "replica_lag_in_msec", source: "aurora_replica_status()"}
}

// AuroraMySQLProbe returns the probe for Aurora MySQL readers, as
// AuroraPostgresProbe does it for PostgreSQL: each reader's lag is its own
// REPLICA_LAG_IN_MILLISECONDS in information_schema.replica_host_status,
// the row whose SERVER_ID is @@aurora_server_id. Set it as Config.Probe.
func AuroraMySQLProbe() Probe {
	return auroraProbe{query: auroraMySQLReplicaSQL, session: "SESSION_ID", lag: "REPLICA_LAG_IN_MILLISECONDS", source: "information_schema.replica_host_status"}
}

type auroraProbe struct {
	query, session, lag, source string
}

// Primary does nothing: the readers report their own lag. The round's
// sample has no position.
func (auroraProbe) Primary(context.Context, DB) (Position, error) { return Position{}, nil }

func (p auroraProbe) Replica(ctx context.Context, db DB, _ Position) (Replay, error) {
	r := Replay{Fallback: "Aurora: lag from " + p.source + "." + p.lag + "; no positions for causal reads"}
	rows, err := db.QueryContext(ctx, p.query)
	if err != nil {
		return r, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return r, err
	}
	session, lag, id := -1, -1, -1
	for i, c := range cols {
		switch {
		case strings.EqualFold(c, "server_id"):
			id = i
		case strings.EqualFold(c, p.session):
			session = i
		case strings.EqualFold(c, p.lag):
			lag = i
		}
	}
	if session < 0 || lag < 0 {
		return r, fmt.Errorf("lagcheck: %s without %s and %s columns: %v", p.source, p.session, p.lag, cols)
	}
	vals := make([]sql.NullString, len(cols))
	dest := make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return r, err
		}
		return r, fmt.Errorf("%w: %s has no row for this instance", ErrNotReplica, p.source)
	}
	if err := rows.Scan(dest...); err != nil {
		return r, err
	}
	if err := rows.Close(); err != nil {
		return r, err
	}
	if id >= 0 {
		r.Server = Server{Addr: vals[id].String} // the instance identifier
	}
	if vals[session].String == auroraWriterSession {
		return r, fmt.Errorf("%w: %s says this instance is the writer (%s %s)", ErrNotReplica, p.source, cols[session], auroraWriterSession)
	}
	ms, err := strconv.ParseFloat(strings.TrimSpace(vals[lag].String), 64)
	if !vals[lag].Valid || err != nil || ms < 0 {
		return r, fmt.Errorf("%w: %s %s is %q", ErrReplicationStopped, p.source, cols[lag], nullText(vals[lag]))
	}
	r.LagAtMost, r.LagAtMostKnown = time.Duration(ms*float64(time.Millisecond)), true
	return r, nil
}

func nullText(v sql.NullString) string {
	if !v.Valid {
		return "NULL"
	}
	return v.String
}
