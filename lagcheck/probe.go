package lagcheck

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Probe measures replication on one kind of database. Each round the
// Checker calls Primary once, then Replica for every replica, each under
// Config.Timeout; calls for different replicas run concurrently. A probe
// reports raw facts; the Checker turns them into a Reading.
type Probe interface {
	// Primary runs the primary's side of a round and returns the
	// primary's current replication position, or the zero Position if
	// the probe tracks none (a heartbeat writes its row here).
	Primary(ctx context.Context, primary DB) (Position, error)

	// Replica probes one replica. primary is the position Primary
	// returned in this round (zero if it failed). An error means the
	// replica cannot serve fresh reads: the probe failed (lost connection
	// or timeout), or replication is not running (ErrNotReplica,
	// ErrReplicationStopped, ErrNotReceiving). The Replay may still carry
	// the replica's position with an error.
	Replica(ctx context.Context, replica DB, primary Position) (Replay, error)
}

// Replay is what a Probe learnt from a replica.
type Replay struct {
	// Position is how far the replica has replayed (applied, not just
	// received). Zero if the probe does not track positions.
	Position Position

	// LagAtMost, when LagAtMostKnown, is an upper bound on the replica's
	// staleness that the probe measured itself: the age of the newest
	// heartbeat on the replica, or on PostgreSQL the time since the last
	// replayed commit was made.
	LagAtMost      time.Duration
	LagAtMostKnown bool

	// LagAtLeast is a lower bound on the staleness the probe knows of
	// (zero if none), e.g. how long a heartbeat row has been missing.
	LagAtLeast time.Duration

	// Fallback, when not empty, says why the probe has no position for
	// the replica and how it bounded the lag instead (MariaDB and MySQL
	// without GTIDs: Seconds_Behind_*). Status.Fallback reports it.
	Fallback string

	// Disconnected says the replica reports that it is not connected to
	// its primary (PostgreSQL: no WAL receiver; MariaDB and MySQL: the IO
	// thread is not running, which is also ErrNotReceiving). While the
	// primary cannot be sampled either, see Checker.ServesWithoutPrimary.
	Disconnected bool

	// Server is the server that answered, read by the same statement as
	// the position and lag (zero if the probe does not say): the Checker
	// detects several servers behind one address by it.
	Server Server
}

// DB is what a Probe runs its queries on: one connection the Checker
// holds (*sql.Conn), or a pool (*sql.DB).
type DB interface {
	Querier
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Querier runs a query that returns one row: *sql.DB, *sql.Conn and
// *sql.Tx are Queriers.
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// commitPositioner is implemented by every position probe probeFor
// returns: it reads, through q, a position that covers every commit made
// on the primary before the call (Checker.CommitPosition).
type commitPositioner interface {
	commitPosition(ctx context.Context, q Querier) (Position, error)
}

// commitSampler is implemented by the position probes whose sample of the
// primary also reads what commitPosition reads, in the same statement: a
// position that covers every transaction committed before the sample was
// sent (Checker.CommitAfter).
type commitSampler interface {
	primarySample(ctx context.Context, db DB) (pos, commit Position, err error)
}

// probeFor returns the probe Config.Probe, Config.Heartbeat and the
// dialect call for, and the probe that reads primary positions for
// Checker.PrimaryPosition (nil if the dialect has none).
func probeFor(cfg Config, dialect string) (probe, positions Probe, err error) {
	switch strings.ToLower(dialect) {
	case "postgres", "postgresql", "pgx":
		positions = PostgresProbe()
	case "mysql":
		positions = &mysqlAuto{}
	case "mariadb":
		positions = MariaDBProbe()
	}
	probe = cfg.Probe
	if probe == nil {
		probe = positions
	}
	if cfg.Heartbeat != nil {
		hb, err := HeartbeatProbe(*cfg.Heartbeat)
		if err != nil {
			return nil, nil, err
		}
		if probe == nil {
			probe = hb
		} else {
			probe = withHeartbeat{pos: probe, hb: hb}
		}
	}
	if probe == nil {
		return nil, nil, fmt.Errorf("%w: no probe for dialect %q: set Config.Probe or Config.Heartbeat", ErrConfig, dialect)
	}
	return probe, positions, nil
}

// withHeartbeat runs a position probe and a heartbeat probe together: the
// positions serve Covers and Behind, and the tighter of the two lag bounds
// is kept.
type withHeartbeat struct {
	pos, hb Probe
}

func (w withHeartbeat) Primary(ctx context.Context, db DB) (Position, error) {
	if _, err := w.hb.Primary(ctx, db); err != nil {
		return Position{}, err
	}
	return w.pos.Primary(ctx, db)
}

func (w withHeartbeat) primarySample(ctx context.Context, db DB) (pos, commit Position, err error) {
	if _, err := w.hb.Primary(ctx, db); err != nil {
		return Position{}, Position{}, err
	}
	return w.pos.(commitSampler).primarySample(ctx, db)
}

// samplesCommits reports whether p's samples carry commit positions.
func samplesCommits(p Probe) bool {
	switch p := p.(type) {
	case withHeartbeat:
		return samplesCommits(p.pos)
	case *explained:
		return samplesCommits(p.Probe)
	case *mysqlAuto, postgresProbe, mariaProbe, *mysqlProbe:
		return true
	}
	return false
}

func (w withHeartbeat) Replica(ctx context.Context, db DB, primary Position) (Replay, error) {
	r, err := w.pos.Replica(ctx, db, primary)
	if err != nil {
		return r, err
	}
	h, err := w.hb.Replica(ctx, db, primary)
	if err != nil {
		return r, err
	}
	if h.LagAtMostKnown && (!r.LagAtMostKnown || h.LagAtMost < r.LagAtMost) {
		r.LagAtMost, r.LagAtMostKnown = h.LagAtMost, true
	}
	r.LagAtLeast = max(r.LagAtLeast, h.LagAtLeast)
	if r.Fallback != "" {
		r.Fallback += "; heartbeat"
	}
	if r.Server.IsZero() {
		r.Server = h.Server
	}
	return r, nil
}

// mysqlAuto is the probe for gorm's "mysql" dialect, which MariaDB and
// MySQL share: the first call asks SELECT VERSION() and from then on
// delegates to MariaDBProbe or MySQLProbe. A failed detection is retried
// on the next call.
type mysqlAuto struct {
	mu    sync.Mutex
	probe Probe
}

func (a *mysqlAuto) get(ctx context.Context, db Querier) (Probe, error) {
	a.mu.Lock()
	p := a.probe
	a.mu.Unlock()
	if p != nil {
		return p, nil
	}
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return nil, err
	}
	p = MySQLProbe()
	if strings.Contains(strings.ToLower(version), "mariadb") {
		p = MariaDBProbe()
	}
	a.mu.Lock()
	if a.probe == nil {
		a.probe = p
	}
	p = a.probe
	a.mu.Unlock()
	return p, nil
}

func (a *mysqlAuto) Primary(ctx context.Context, db DB) (Position, error) {
	p, err := a.get(ctx, db)
	if err != nil {
		return Position{}, err
	}
	return p.Primary(ctx, db)
}

func (a *mysqlAuto) commitPosition(ctx context.Context, q Querier) (Position, error) {
	p, err := a.get(ctx, q)
	if err != nil {
		return Position{}, err
	}
	return p.(commitPositioner).commitPosition(ctx, q)
}

func (a *mysqlAuto) primarySample(ctx context.Context, db DB) (pos, commit Position, err error) {
	p, err := a.get(ctx, db)
	if err != nil {
		return Position{}, Position{}, err
	}
	return p.(commitSampler).primarySample(ctx, db)
}

func (a *mysqlAuto) Replica(ctx context.Context, db DB, primary Position) (Replay, error) {
	p, err := a.get(ctx, db)
	if err != nil {
		return Replay{}, err
	}
	return p.Replica(ctx, db, primary)
}
