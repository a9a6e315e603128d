package stickiness

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Mode says how long a user stays sticky after a write.
type Mode uint8

const (
	// ModeCausal, the default, keeps a user's reads off the replicas that
	// have not replayed the user's last write: the plugin compares the
	// Record's Position with each replica's. Config.Window is the upper
	// bound: after it, the record is dropped even if no replica caught up.
	// A record with the zero (unknown) Position is sticky to the primary
	// for the whole Window.
	ModeCausal Mode = iota
	// ModeWindow keeps a user's reads on the primary for Config.Window
	// after each write, whatever the replicas' positions.
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
	// DefaultWindow is the default Config.Window.
	DefaultWindow = 30 * time.Second
	// DefaultStoreTimeout is the default Config.StoreTimeout.
	DefaultStoreTimeout = 50 * time.Millisecond
)

// ErrConfig wraps every configuration error of this package.
var ErrConfig = errors.New("stickiness: invalid config")

// Config configures read-your-own-writes stickiness. rwsplit embeds it as
// rwsplit.Config.Stickiness. Every zero value means the documented
// default; WithDefaults applies them.
type Config struct {
	// Mode says how long a user stays sticky after a write.
	// Zero means ModeCausal.
	Mode Mode

	// Window is how long a user stays sticky after a write: the whole
	// time in ModeWindow, the upper bound in ModeCausal.
	// Zero means DefaultWindow (30s). Negative is an error.
	Window time.Duration

	// Key returns the key of the user a statement runs for, and false for
	// none, in which case only the context's carrier (FromContext) makes
	// the statement sticky. It runs on the query path: keep it fast.
	// Nil means User.
	Key func(ctx context.Context) (string, bool)

	// Store keeps each key's Record. Nil means a Memory store
	// (NewMemory(MemoryOptions{})) that the plugin creates and closes.
	// A Store given here is owned by the caller: the plugin does not
	// close it.
	Store Store

	// StoreTimeout bounds each Store call the plugin makes. A call that
	// fails or times out does not fail the statement.
	// Zero means DefaultStoreTimeout (50ms). Negative is an error.
	StoreTimeout time.Duration

	// Tables opts in to table mode, which the plugin implements (see
	// rwsplit): stickiness that applies only to reads of the tables the
	// user wrote. This package only carries the flag. Off by default.
	Tables bool
}

// WithDefaults validates c and returns it with its zero values replaced by
// their defaults. Store stays nil when it is nil: the plugin owns the
// default Memory store. Errors wrap ErrConfig.
func (c Config) WithDefaults() (Config, error) {
	switch c.Mode {
	case ModeCausal, ModeWindow:
	default:
		return c, fmt.Errorf("%w: unknown Mode %v", ErrConfig, c.Mode)
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
