package lagcheck

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config says how often to probe and when a replica stops and starts
// serving reads. The zero Config is ready to use: each zero field means
// the default its comment names. A negative duration or count is an error,
// and so is an Interval that is not below MaxLag.
type Config struct {
	// Interval is how often every replica is probed, at least 1ms and
	// below MaxLag: a replica's staleness bound (Checker.LagNow) grows by
	// up to an Interval between probes, so with MaxLag at or below it
	// reads would leave healthy replicas between probes. Zero means 250ms,
	// or MaxLag/4 (at least 1ms) when MaxLag is below 500ms. A lag may
	// read up to about an Interval above the truth, so keep ReadmitLag
	// well above it.
	Interval time.Duration

	// Timeout bounds each probe query (the primary's sample, and each
	// replica's probe), so a replica that hangs costs one Timeout per round.
	// Zero means Interval.
	Timeout time.Duration

	// MaxLag is the replication lag above which a replica stops serving
	// reads (after EvictAfter readings). Zero means 1s.
	MaxLag time.Duration

	// ReadmitLag is the lag a replica must be at or below, ReadmitAfter
	// readings in a row, to serve reads again. Zero means MaxLag/2. It must
	// not exceed MaxLag.
	ReadmitLag time.Duration

	// EvictAfter is how many bad readings in a row (lag above MaxLag, a
	// probe error or timeout, replication stopped) evict a healthy
	// replica; a lost connection, a server that is not a replica
	// (ErrNotReplica) and Checker.ReportFailure evict at once. Zero means 2.
	EvictAfter int

	// ReadmitAfter is how many good readings in a row (lag at or below
	// ReadmitLag) readmit an evicted replica: the first moves it to
	// Probation, the ReadmitAfter-th back to Healthy. Zero means 3.
	ReadmitAfter int

	// Probe measures the replicas. Nil means the probe for the dialect
	// given to New: PostgresProbe for "postgres", and for "mysql"
	// MariaDBProbe or MySQLProbe, chosen at the first probe from SELECT
	// VERSION(). With Heartbeat set, the heartbeat is added to it. For
	// Aurora, set AuroraPostgresProbe or AuroraMySQLProbe.
	Probe Probe

	// Heartbeat, when set, adds a heartbeat probe (see HeartbeatProbe).
	// Nil means no heartbeat.
	Heartbeat *Heartbeat

	// OnStateChange, if set, is called after each change of a replica's
	// State, in order, one call at a time, on a goroutine of the Checker
	// and outside any lock. It must not call Checker.Close.
	OnStateChange func(Change)

	// OnServerChange, if set, is called when a second server answers
	// behind one replica's address, and when one server alone has answered
	// again for the hold (see Status.Servers), in order with
	// OnStateChange, on the same goroutine, outside any lock. It must not
	// call Checker.Close.
	OnServerChange func(ServerChange)
}

// Heartbeat configures the heartbeat probe. The zero value is ready to
// use: it writes its own row. The table is the same on PostgreSQL, MySQL
// and MariaDB:
//
//	CREATE TABLE IF NOT EXISTS rwsplit_heartbeat (
//	    id BIGINT NOT NULL PRIMARY KEY,
//	    ts BIGINT NOT NULL -- the writer's clock, microseconds since 1970
//	);
//
// With ReadOnly, the Checker writes nothing and reads instead a table that
// another writer keeps, in the shape of pt-heartbeat's (Percona Toolkit):
// a ts column holding 'YYYY-MM-DDTHH:MM:SS.ffffff' (a space for the T and
// fewer fraction digits are accepted, as is a DATETIME or TIMESTAMP
// column), and a server_id column naming the server the writer updates.
type Heartbeat struct {
	// Table is the heartbeat table, optionally schema-qualified
	// ("ops.heartbeat"). Zero means "rwsplit_heartbeat", or with ReadOnly
	// "heartbeat" (pt-heartbeat's default).
	Table string

	// ID is the row this Checker writes. Zero means 1. Processes whose
	// clocks may differ need their own IDs. It must be zero with ReadOnly.
	ID int64

	// SkipCreate stops the Checker from creating the table when missing
	// (once, before the first write): set it when the Checker's user may
	// not run DDL. ReadOnly never creates the table.
	SkipCreate bool

	// ReadOnly reads the heartbeat that another writer (pt-heartbeat
	// --update, or any job) keeps on the primary, instead of writing one:
	// the Checker then issues no write at all. The lag it proves does not
	// depend on any clock but the Checker's, and grows without bound when
	// the writer stops (see HeartbeatProbe and docs/health.md).
	ReadOnly bool

	// ServerID, with ReadOnly, is the server_id of the row to read: the
	// @@server_id of the primary that pt-heartbeat --update runs against.
	// Zero means the row with the newest ts (SELECT MAX(ts)), which also
	// follows a failover to a primary with another server_id. It must be
	// zero without ReadOnly, and is never negative.
	ServerID int64
}

// Defaults for the zero fields of Config and Heartbeat.
const (
	DefaultInterval       = 250 * time.Millisecond // at the default MaxLag; see Config.Interval
	DefaultMaxLag         = time.Second
	DefaultEvictAfter     = 2
	DefaultReadmitAfter   = 3
	DefaultHeartbeatTable = "rwsplit_heartbeat"
	// DefaultReadOnlyHeartbeatTable is pt-heartbeat's default --table.
	DefaultReadOnlyHeartbeatTable = "heartbeat"
)

// ErrConfig is wrapped by every error Validate and New return for a bad
// Config or bad arguments.
var ErrConfig = errors.New("lagcheck: invalid config")

// Validate reports the first problem with c, as New would: a negative
// duration or count, an Interval below a millisecond or not below MaxLag,
// ReadmitLag above MaxLag (after defaults), a heartbeat table name that is
// not a plain, optionally schema-qualified, identifier, or heartbeat fields
// of the writing and the ReadOnly mode mixed. Errors wrap ErrConfig. It lets
// a caller check a Config before it has the databases New needs.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// withDefaults returns c with every zero field replaced by its default,
// or the first problem with c. It is the one place where a Config is
// validated and defaulted.
func (c Config) withDefaults() (Config, error) {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Interval", c.Interval}, {"Timeout", c.Timeout}, {"MaxLag", c.MaxLag}, {"ReadmitLag", c.ReadmitLag}} {
		if d.v < 0 {
			return Config{}, fmt.Errorf("%w: %s is negative (%v)", ErrConfig, d.name, d.v)
		}
	}
	if c.Interval > 0 && c.Interval < time.Millisecond {
		return Config{}, fmt.Errorf("%w: Interval %v is below 1ms", ErrConfig, c.Interval)
	}
	if c.EvictAfter < 0 {
		return Config{}, fmt.Errorf("%w: EvictAfter is negative (%d)", ErrConfig, c.EvictAfter)
	}
	if c.ReadmitAfter < 0 {
		return Config{}, fmt.Errorf("%w: ReadmitAfter is negative (%d)", ErrConfig, c.ReadmitAfter)
	}
	if c.MaxLag == 0 {
		c.MaxLag = DefaultMaxLag
	}
	if c.Interval == 0 {
		// 250ms up to MaxLag/2; below that, MaxLag/4, to leave the
		// bound's growth between probes well under MaxLag. (Always
		// MaxLag/4 probed a 500ms MaxLag every 125ms with a 125ms
		// Timeout, which evicted healthy replicas of the demo under
		// load.)
		c.Interval = DefaultInterval
		if 2*c.Interval > c.MaxLag {
			c.Interval = max(c.MaxLag/4, time.Millisecond)
		}
	}
	if c.Interval >= c.MaxLag {
		return Config{}, fmt.Errorf("%w: MaxLag %v is not above Interval %v: a replica's staleness bound grows by up to an Interval between probes, so reads would leave healthy replicas; set Interval to MaxLag/4 or less, or leave it zero", ErrConfig, c.MaxLag, c.Interval)
	}
	if c.Timeout == 0 {
		c.Timeout = c.Interval
	}
	if c.ReadmitLag == 0 {
		c.ReadmitLag = c.MaxLag / 2
	}
	if c.ReadmitLag > c.MaxLag {
		return Config{}, fmt.Errorf("%w: ReadmitLag %v is above MaxLag %v", ErrConfig, c.ReadmitLag, c.MaxLag)
	}
	if c.EvictAfter == 0 {
		c.EvictAfter = DefaultEvictAfter
	}
	if c.ReadmitAfter == 0 {
		c.ReadmitAfter = DefaultReadmitAfter
	}
	if c.Heartbeat != nil {
		h, err := c.Heartbeat.withDefaults()
		if err != nil {
			return Config{}, err
		}
		c.Heartbeat = &h
	}
	return c, nil
}

// withDefaults returns h with its zero fields defaulted, or an error
// wrapping ErrConfig if Table is not a plain identifier or the fields of
// the two modes are mixed.
func (h Heartbeat) withDefaults() (Heartbeat, error) {
	switch {
	case h.ServerID < 0:
		return Heartbeat{}, fmt.Errorf("%w: Heartbeat.ServerID is negative (%d)", ErrConfig, h.ServerID)
	case h.ReadOnly && h.ID != 0:
		return Heartbeat{}, fmt.Errorf("%w: Heartbeat.ID %d is the row a writing heartbeat writes; with ReadOnly, set ServerID to the row to read", ErrConfig, h.ID)
	case !h.ReadOnly && h.ServerID != 0:
		return Heartbeat{}, fmt.Errorf("%w: Heartbeat.ServerID %d is read only with ReadOnly; a writing heartbeat writes row ID", ErrConfig, h.ServerID)
	}
	if h.Table == "" {
		h.Table = DefaultHeartbeatTable
		if h.ReadOnly {
			h.Table = DefaultReadOnlyHeartbeatTable
		}
	}
	if h.ID == 0 && !h.ReadOnly {
		h.ID = 1
	}
	if !validTable(h.Table) {
		return Heartbeat{}, fmt.Errorf("%w: Heartbeat.Table %q is not an identifier like rwsplit_heartbeat or schema.table", ErrConfig, h.Table)
	}
	return h, nil
}

// validTable accepts name or schema.name, each [A-Za-z_][A-Za-z0-9_]* of
// at most 63 bytes: the name is written into SQL text.
func validTable(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) > 2 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 63 {
			return false
		}
		for i := 0; i < len(p); i++ {
			switch c := p[i]; {
			case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
			case '0' <= c && c <= '9' && i > 0:
			default:
				return false
			}
		}
	}
	return true
}
