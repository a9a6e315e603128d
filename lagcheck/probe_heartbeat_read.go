package lagcheck

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNoHeartbeat is the primary's sample error when a ReadOnly heartbeat
// finds no row on the primary: no writer (pt-heartbeat --update) keeps the
// table, or Heartbeat.Table or ServerID names the wrong one.
var ErrNoHeartbeat = errors.New("lagcheck: no heartbeat row on the primary")

// readOnlyHeartbeat is the probe for Heartbeat.ReadOnly. Each round it
// reads the newest ts on the primary and keeps, for each value it read, the
// Checker-clock times of the samples that read it; a replica's own newest
// ts is then placed among those values. Only ts values are compared with
// each other, never with a clock: docs/health.md has the argument.
type readOnlyHeartbeat struct {
	query string

	mu    sync.Mutex
	runs  []hbRun   // ascending v; at most maxHeartbeatRuns
	first time.Time // end of the first sample that found a row
	// After the primary's value went down (the writer's clock was set
	// back), a replica's value at or below floor is trusted only if the
	// primary was seen to hold it since.
	floor   int64
	stepped bool
}

// hbRun is one ts value read on the primary, in microseconds, with the end
// of the first sample and the start of the last sample that read it.
type hbRun struct {
	v                   int64
	firstEnd, lastStart time.Time
}

// maxHeartbeatRuns bounds the values kept: 256 rounds at least, a minute
// at the default Interval when every round reads a new value. A replica
// older than all of them has no upper bound, and a lower bound of at least
// that span.
const maxHeartbeatRuns = 256

func newReadOnlyHeartbeat(h Heartbeat) *readOnlyHeartbeat {
	q := "SELECT MAX(ts) FROM " + h.Table
	if h.ServerID != 0 {
		q = "SELECT ts FROM " + h.Table + " WHERE server_id = " + strconv.FormatInt(h.ServerID, 10)
	}
	return &readOnlyHeartbeat{query: q}
}

func (hb *readOnlyHeartbeat) Primary(ctx context.Context, db DB) (Position, error) {
	start := time.Now()
	v, ok, err := hb.read(ctx, db)
	end := time.Now()
	if err != nil {
		return Position{}, err
	}
	if !ok {
		return Position{}, fmt.Errorf("%w: %s (is pt-heartbeat --update running against the primary?)", ErrNoHeartbeat, hb.query)
	}
	hb.mu.Lock()
	hb.record(v, start, end)
	hb.mu.Unlock()
	return Position{}, nil
}

func (hb *readOnlyHeartbeat) Replica(ctx context.Context, db DB, _ Position) (Replay, error) {
	start := time.Now()
	v, ok, err := hb.read(ctx, db)
	end := time.Now()
	if err != nil {
		return Replay{}, err
	}
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if !ok {
		// The replica has not replayed the row the primary had.
		if hb.first.IsZero() {
			return Replay{}, nil
		}
		return Replay{LagAtLeast: max(0, start.Sub(hb.first))}, nil
	}
	return hb.bound(v, start, end), nil
}

// record adds a primary sample that read v between start and end.
func (hb *readOnlyHeartbeat) record(v int64, start, end time.Time) {
	if hb.first.IsZero() {
		hb.first = end
	}
	n := len(hb.runs)
	switch {
	case n > 0 && v == hb.runs[n-1].v:
		hb.runs[n-1].lastStart = start
		return
	case n > 0 && v < hb.runs[n-1].v:
		// The writer's clock went back: earlier values no longer say
		// which write came first.
		hb.floor, hb.stepped = max(hb.floor, hb.runs[n-1].v), true
		hb.runs = hb.runs[:0]
	case n == maxHeartbeatRuns:
		hb.runs = slices.Delete(hb.runs, 0, 1)
	}
	hb.runs = append(hb.runs, hbRun{v: v, firstEnd: end, lastStart: start})
}

// bound places a replica's value v, read between start and end, among the
// primary's: the write of v came after the newest sample that read an
// older value (so the replica has every commit made before that sample
// started), and the replica lacks the oldest value read that is newer
// than v (so it misses a commit made before that sample ended). The lower
// bound holds even after the writer's clock went back: the replica lacks
// every write made after the step.
func (hb *readOnlyHeartbeat) bound(v int64, start, end time.Time) Replay {
	j, found := slices.BinarySearchFunc(hb.runs, v, func(r hbRun, v int64) int { return cmp.Compare(r.v, v) })
	var rep Replay
	// The write of v came after the samples before j. Once the writer's
	// clock has gone back, that holds only for values the primary was seen
	// to hold, or above the old maximum and no newer than the primary's
	// newest (a value newer than every sample is then possibly a write
	// from before the step).
	ambiguous := hb.stepped && !found && (v <= hb.floor || j == len(hb.runs))
	if j > 0 && !ambiguous {
		rep.LagAtMost, rep.LagAtMostKnown = max(0, end.Sub(hb.runs[j-1].lastStart)), true
	}
	if found {
		j++
	}
	if j < len(hb.runs) {
		rep.LagAtLeast = max(0, start.Sub(hb.runs[j].firstEnd))
	}
	return rep
}

// read returns the newest ts on db, in microseconds; false when there is
// no row or no table.
func (hb *readOnlyHeartbeat) read(ctx context.Context, db DB) (int64, bool, error) {
	var raw any
	err := db.QueryRowContext(ctx, hb.query).Scan(&raw)
	switch {
	case errors.Is(err, sql.ErrNoRows) || isUndefinedTable(err):
		return 0, false, nil
	case err != nil:
		return 0, false, err
	case raw == nil: // MAX over no rows
		return 0, false, nil
	}
	v, err := parseHeartbeatTS(raw)
	if err != nil {
		return 0, false, err
	}
	return v, true, nil
}

// parseHeartbeatTS reads pt-heartbeat's ts, 'YYYY-MM-DDTHH:MM:SS.ffffff'
// (a space for the T, and any number of fraction digits, accepted), or a
// DATETIME/TIMESTAMP value, as microseconds. A text without a zone is read
// as UTC; only the order of the values matters.
func parseHeartbeatTS(raw any) (int64, error) {
	var s string
	switch v := raw.(type) {
	case time.Time:
		return v.UnixMicro(), nil
	case []byte:
		s = string(v)
	case string:
		s = v
	default:
		return 0, fmt.Errorf("lagcheck: heartbeat ts is a %T, not text or a timestamp", raw)
	}
	s = strings.TrimSpace(s)
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMicro(), nil
		}
	}
	return 0, fmt.Errorf("lagcheck: heartbeat ts %q is not YYYY-MM-DDTHH:MM:SS[.ffffff]", s)
}
