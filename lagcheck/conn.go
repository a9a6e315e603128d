package lagcheck

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/rwsplit/rwsplit/internal/connerr"
)

// ErrPoolBusy is a reading's error when the Checker could not get a
// connection from the server's pool within Config.Timeout because every
// connection was in use: the pool's fault, not the server's. Such a
// reading counts as neither good nor bad (the state stays), and it bounds
// no lag, so LagNow keeps growing until a probe gets through.
var ErrPoolBusy = errors.New("lagcheck: no free connection in the pool")

// held is the one connection the Checker keeps to a server for its probes.
// It is taken from the pool before the first probe, and again after a
// probe on it fails; the wait for it is never part of a probe, so it
// counts neither as the server's failure nor as its latency. A held
// connection is used by one goroutine at a time: the sample loop for the
// primary, the replica's own loop for a replica.
//
// Of a pool capped below holdMinConns open connections (SetMaxOpenConns),
// the Checker does not keep one between probes, which would take a large
// share of the application's connections (all of them at 1): it takes one
// for each probe and gives it back.
type held struct {
	pool *sql.DB
	conn *sql.Conn
}

// get returns the held connection, taking one from the pool, under ctx, if
// none is held. A wait that runs out of ctx without a connection attempt
// failing is ErrPoolBusy; a failed connection attempt is the server's
// error.
func (h *held) get(ctx context.Context) (DB, error) {
	if h.conn != nil {
		return h.conn, nil
	}
	c, err := h.pool.Conn(ctx)
	switch {
	case err == nil:
		h.conn = c
		return c, nil
	case ctx.Err() != nil && !connerr.Is(err):
		return nil, fmt.Errorf("%w (%w)", ErrPoolBusy, err)
	}
	return nil, err
}

// holdMinConns is the smallest cap on a pool's open connections (or 0, no
// cap) of which the Checker keeps one between probes.
const holdMinConns = 4

// done returns the connection to the pool after a probe that failed (a
// failed or timed-out query may leave it broken or busy, and the next
// probe takes a fresh one), or when the pool is too small to keep it.
func (h *held) done(err error) {
	if h.conn == nil {
		return
	}
	if m := h.pool.Stats().MaxOpenConnections; err != nil || (m > 0 && m < holdMinConns) {
		_ = h.conn.Close()
		h.conn = nil
	}
}

// close returns the held connection to the pool.
func (h *held) close() { h.done(errClosing) }

var errClosing = errors.New("lagcheck: closing")
