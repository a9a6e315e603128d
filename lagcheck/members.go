package lagcheck

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrClosed is returned by Add, Remove and SetMaxLag after Close.
var ErrClosed = errors.New("lagcheck: checker closed")

// replicas returns the replicas by index, nil where one was removed. The
// slice is an immutable snapshot: Add and Remove publish a new one, and
// an index, once given, always means the same replica.
func (c *Checker) replicas() []*replica { return *c.reps.Load() }

// replica returns replica i, or nil for an index out of range or removed.
func (c *Checker) replica(i int) *replica {
	reps := c.replicas()
	if i < 0 || i >= len(reps) {
		return nil
	}
	return reps[i]
}

// Add watches one more replica and returns its index, the next one never
// given (indices of removed replicas are not reused). Until its first
// probe the replica's lag is unknown (LagNow reports false). Once the
// Checker is started, Add probes it at once and waits for that probe's
// result to be applied, or for ctx; the state it then has is decided by
// that reading, as for the replicas of Start's first round. Errors wrap
// ErrConfig (a nil DB), or are ErrClosed.
func (c *Checker) Add(ctx context.Context, t Target) (int, error) {
	if t.DB == nil {
		return -1, fmt.Errorf("%w: replica %q has a nil *sql.DB", ErrConfig, t.Name)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return -1, ErrClosed
	}
	reps := c.replicas()
	r := c.newReplica(len(reps), t)
	next := append(slices.Clip(reps), r)
	c.reps.Store(&next)
	started := c.started
	if started {
		c.loop(r)
	}
	c.mu.Unlock()
	if started {
		select {
		case r.wake <- struct{}{}:
		default:
		}
		select {
		case <-r.first:
		case <-ctx.Done():
		case <-r.ctx.Done():
		}
	}
	return r.idx, nil
}

// Remove stops watching replica i: its loop is stopped (a probe in
// flight is canceled and its result dropped), Remove waits for it, and
// gives back the connection the Checker held of its pool. From then on
// State reports Evicted for i, Lag and LagNow report false, Covers false,
// and Status leaves it out. A state change of i still queued for
// OnStateChange is delivered. Errors wrap ErrConfig (an index out of
// range or already removed), or are ErrClosed.
func (c *Checker) Remove(i int) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	r := c.replica(i)
	if r == nil {
		c.mu.Unlock()
		return fmt.Errorf("%w: no replica at index %d", ErrConfig, i)
	}
	next := slices.Clone(c.replicas())
	next[i] = nil
	c.reps.Store(&next)
	looping := r.looping
	c.mu.Unlock()

	r.cancel()
	if looping {
		<-r.done
	}
	r.conn.close()
	return nil
}

// SetMaxLag changes Config.MaxLag while the Checker runs: each probe
// result applied from then on is judged against d. d must be above
// Interval, which stays as it is (also when it was derived from MaxLag);
// a ReadmitLag left zero in the Config given to New follows d (d/2), one
// that was set must not exceed d. Errors wrap ErrConfig, or are ErrClosed.
// It does not allocate a new history: samples kept span 4×MaxLag (at least
// 30s) of the MaxLag given to New.
func (c *Checker) SetMaxLag(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%w: MaxLag %v is not positive", ErrConfig, d)
	}
	if d <= c.cfg.Interval {
		return fmt.Errorf("%w: MaxLag %v is not above Interval %v, which stays while the Checker runs: a replica's staleness bound grows by up to an Interval between probes", ErrConfig, d, c.cfg.Interval)
	}
	cfg := c.given
	cfg.MaxLag, cfg.Interval, cfg.Timeout = d, c.cfg.Interval, c.cfg.Timeout
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	ru := rulesOf(cfg)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.rules.Store(&ru)
	return nil
}
