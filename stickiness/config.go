package stickiness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// Mode says how a sticky user's reads are routed.
type Mode uint8

const (
	// ModeCausal, the default, sends a sticky user's reads to the replicas
	// that have replayed the user's last write (Record.Position), and to
	// the primary when the position is unknown. Config.Window bounds it.
	ModeCausal Mode = iota
	// ModeWindow sends a user's reads to the primary for Config.Window
	// after each write.
	ModeWindow
)

// String returns "causal" or "window".
func (m Mode) String() string {
	switch m {
	case ModeCausal:
		return "causal"
	case ModeWindow:
		return "window"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Defaults of Config's zero values.
const (
	DefaultWindow       = 30 * time.Second
	DefaultStoreTimeout = 50 * time.Millisecond
)

// ErrConfig wraps every configuration error of this package.
var ErrConfig = errors.New("stickiness: invalid config")

// Config configures a Tracker (rwsplit.Config.Stickiness). The zero Config
// is ready to use: each zero field means the default its comment names.
type Config struct {
	// Mode says how a sticky user's reads are routed. Zero means ModeCausal.
	Mode Mode

	// Window is how long a user stays sticky after a write: the whole
	// time in ModeWindow, the upper bound in ModeCausal.
	// Zero means DefaultWindow (30s). Negative is an error.
	Window time.Duration

	// Key returns the key of the user a statement runs for, or false for
	// none. It runs on every read: keep it fast. Nil means User.
	Key func(ctx context.Context) (string, bool)

	// Store keeps each key's Record, shared by the application servers.
	// Nil means this process's memory only. The caller owns a Store given
	// here: the Tracker never closes it.
	Store Store

	// StoreTimeout bounds each Store call. A call that fails or times out
	// does not fail the statement: its read goes to the primary.
	// Zero means DefaultStoreTimeout (50ms). Negative is an error.
	StoreTimeout time.Duration

	// ExactMarks, in ModeCausal, takes each marking write's position with
	// a query on the primary right after it commits (one round trip per
	// keyed write: +0.10ms, +27% per insert on PostgreSQL in
	// BENCHMARKS.md), so that its user's reads may go back to a replica
	// as soon as one has replayed it. False, the default, marks for free:
	// the position is the one of the lag checker's first sample of the
	// primary sent after the commit returned, so the user's reads stay on
	// the primary until that sample (up to one lagcheck Interval) and a
	// replica probe after it shows a replica that covers it. Writes whose
	// record leaves the process with the request (a carrier: the cookie
	// middleware, WithCarrier, WithToken) are always marked exactly, and
	// so is every write when the checker cannot sample commit positions
	// (a custom lagcheck Probe). True with ModeWindow is an error.
	ExactMarks bool

	// Tables turns on table mode: a write to a table also makes every
	// read of that table sticky, in this process, whoever runs it. The
	// Trackers of one primary share these marks (NewForPrimary).
	Tables bool

	// Logger, if set, gets one record when the Store starts failing and
	// one when it answers again. Nil means no logging; rwsplit passes its
	// Config.Logger.
	Logger *slog.Logger
}

// Validate reports the first problem with c; New reports the same. It lets
// a caller check a Config before it creates the Tracker.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// withDefaults validates c and returns it with its zero values replaced by
// their defaults. Store stays nil. Errors wrap ErrConfig.
func (c Config) withDefaults() (Config, error) {
	switch c.Mode {
	case ModeCausal, ModeWindow:
	default:
		return c, fmt.Errorf("%w: unknown Mode %v", ErrConfig, c.Mode)
	}
	if c.ExactMarks && c.Mode != ModeCausal {
		return c, fmt.Errorf("%w: ExactMarks needs ModeCausal, not %v", ErrConfig, c.Mode)
	}
	if c.Window < 0 {
		return c, fmt.Errorf("%w: negative Window %v", ErrConfig, c.Window)
	}
	if c.StoreTimeout < 0 {
		return c, fmt.Errorf("%w: negative StoreTimeout %v", ErrConfig, c.StoreTimeout)
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.StoreTimeout == 0 {
		c.StoreTimeout = DefaultStoreTimeout
	}
	if c.Key == nil {
		c.Key = User
	}
	return c, nil
}
