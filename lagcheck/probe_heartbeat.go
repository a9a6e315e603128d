package lagcheck

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/rwsplit/rwsplit/internal/connerr"
)

// HeartbeatProbe returns a probe that works on any SQL database that
// replicates a table: each round it writes the Checker's clock into row
// h.ID of h.Table on the primary (creating the table first unless
// h.SkipCreate), and reads the row on each replica; the row's age bounds
// the replica's lag. With h.ReadOnly it writes nothing and reads instead
// the newest ts another writer keeps in the table (pt-heartbeat --update),
// on the primary and on each replica (see readOnlyHeartbeat). It gives no
// positions, so Checker.Covers is never true with it alone. A replica
// without the row yet has an unknown lag, at least the time since the
// primary first had it. Invalid fields are an error wrapping ErrConfig.
// docs/health.md shows the SQL. A probe serves one Checker: it keeps what
// it read from the primary.
func HeartbeatProbe(h Heartbeat) (Probe, error) {
	h, err := h.withDefaults()
	if err != nil {
		return nil, err
	}
	if h.ReadOnly {
		return newReadOnlyHeartbeat(h), nil
	}
	id := strconv.FormatInt(h.ID, 10)
	return &heartbeat{
		h:      h,
		create: "CREATE TABLE IF NOT EXISTS " + h.Table + " (id BIGINT NOT NULL PRIMARY KEY, ts BIGINT NOT NULL)",
		update: "UPDATE " + h.Table + " SET ts = %d WHERE id = " + id,
		insert: "INSERT INTO " + h.Table + " (id, ts) VALUES (" + id + ", %d)",
		read:   "SELECT ts FROM " + h.Table + " WHERE id = " + id,
	}, nil
}

type heartbeat struct {
	h                            Heartbeat
	create, update, insert, read string

	mu      sync.Mutex
	created bool
	first   time.Time // end of the first successful write
}

func (hb *heartbeat) Primary(ctx context.Context, db DB) (Position, error) {
	hb.mu.Lock()
	created := hb.created || hb.h.SkipCreate
	hb.mu.Unlock()
	if !created {
		if _, err := db.ExecContext(ctx, hb.create); err != nil {
			return Position{}, fmt.Errorf("lagcheck: creating the heartbeat table: %w", err)
		}
		hb.mu.Lock()
		hb.created = true
		hb.mu.Unlock()
	}
	ts := time.Now().UnixMicro()
	res, err := db.ExecContext(ctx, fmt.Sprintf(hb.update, ts))
	if err != nil {
		return Position{}, err
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		if _, err := db.ExecContext(ctx, fmt.Sprintf(hb.insert, ts)); err != nil && !isDuplicateKey(err) {
			return Position{}, err
		}
		// A duplicate key means another writer created the row between
		// our UPDATE and INSERT; its value is as recent as ours.
	}
	hb.mu.Lock()
	if hb.first.IsZero() {
		hb.first = time.Now()
	}
	hb.mu.Unlock()
	return Position{}, nil
}

func (hb *heartbeat) Replica(ctx context.Context, db DB, _ Position) (Replay, error) {
	var ts int64
	err := db.QueryRowContext(ctx, hb.read).Scan(&ts)
	now := time.Now()
	if errors.Is(err, sql.ErrNoRows) || isUndefinedTable(err) {
		hb.mu.Lock()
		first := hb.first
		hb.mu.Unlock()
		if first.IsZero() {
			return Replay{}, nil
		}
		return Replay{LagAtLeast: max(0, now.Sub(first))}, nil
	}
	if err != nil {
		return Replay{}, err
	}
	return Replay{LagAtMost: max(0, now.Sub(time.UnixMicro(ts))), LagAtMostKnown: true}, nil
}

// isUndefinedTable: PostgreSQL 42P01, MySQL/MariaDB 1146.
func isUndefinedTable(err error) bool {
	var state interface{ SQLState() string }
	if errors.As(err, &state) {
		return state.SQLState() == "42P01"
	}
	return connerr.IsMySQL(err, 1146)
}

// isDuplicateKey: PostgreSQL 23505, MySQL/MariaDB 1062.
func isDuplicateKey(err error) bool {
	var state interface{ SQLState() string }
	if errors.As(err, &state) {
		return state.SQLState() == "23505"
	}
	return connerr.IsMySQL(err, 1062)
}
