package rwsplit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rwsplit/rwsplit/internal/connerr"
	"github.com/rwsplit/rwsplit/lagcheck"
)

// SetReadsToPrimary turns the operator's switch on or off. While it is on,
// every read runs on the primary (ReasonReadsToPrimary), clauses included,
// and read-only transactions begin there. It takes effect for the next
// statement and is safe to call at any time.
func (p *Plugin) SetReadsToPrimary(on bool) {
	if p.readsToPrimary.Swap(on) != on && p.cfg.Logger != nil {
		p.cfg.Logger.Warn("rwsplit: reads to the primary", "on", on)
	}
}

// Drain stops new reads to the named replica: the policy no longer picks
// it, and a Replica{Name} clause naming it reads from another replica.
// Statements already running there finish. Undrain ends it. Both take
// effect for the next statement. A name that is not configured gives
// ErrUnknownReplica.
func (p *Plugin) Drain(name string) error { return p.setDrained(name, true) }

// Undrain lets a drained replica serve reads again, as soon as the checker
// finds it healthy.
func (p *Plugin) Undrain(name string) error { return p.setDrained(name, false) }

func (p *Plugin) setDrained(name string, on bool) error {
	n := p.replicas().byName[name]
	if n == nil {
		return fmt.Errorf("%w: %q", ErrUnknownReplica, name)
	}
	if n.drained.Swap(on) != on {
		p.rebuild()
		if p.cfg.Logger != nil {
			p.cfg.Logger.Info("rwsplit: replica drained", "replica", name, "drained", on)
		}
	}
	return nil
}

// controllable reports why the plugin cannot be changed now: before
// Initialize, or after Close. ctlMu must be held.
func (p *Plugin) controllable() error {
	switch {
	case p.closed.Load():
		return ErrClosed
	case !p.running.Load():
		return fmt.Errorf("%w: the plugin is not installed; call db.Use first", ErrConfig)
	}
	return nil
}

// SetMaxLag changes Lag.MaxLag while the plugin runs. The next statement
// reads only from replicas whose staleness bound is at most d, and the
// checker judges its next probe results by d: a replica lagging beyond it
// is evicted after Lag.EvictAfter readings, one below the readmission mark
// readmitted after Lag.ReadmitAfter. The readmission mark, Lag.ReadmitLag,
// follows d (d/2) when it was left zero, and must not exceed d when it
// was set. d must be above Lag.Interval, which stays as it is (also when
// it was derived from MaxLag). A bad d returns an error wrapping ErrConfig
// and changes nothing. Stats.MaxLag and Stats.ReadmitLag show the values
// in force.
func (p *Plugin) SetMaxLag(d time.Duration) error {
	p.ctlMu.Lock()
	defer p.ctlMu.Unlock()
	if err := p.controllable(); err != nil {
		return err
	}
	if err := p.checker.SetMaxLag(d); err != nil {
		if errors.Is(err, lagcheck.ErrClosed) {
			return ErrClosed
		}
		return fmt.Errorf("%w: SetMaxLag: %w", ErrConfig, err)
	}
	p.maxLag.Store(int64(d))
	if l := p.cfg.Logger; l != nil {
		cfg := p.checker.Config()
		l.Info("rwsplit: max lag set", "max_lag", cfg.MaxLag, "readmit_lag", cfg.ReadmitLag)
	}
	return nil
}

// AddReplica adds a replica while the plugin runs, as Initialize adds
// those of Config.Replicas: r is validated the same way (a Name that is
// not empty and not taken by a replica or the primary, a Dialector of the
// primary's dialect, a Weight not negative), opened with the primary's
// driver settings, given a pool for the lag checker, and probed once,
// for up to Config.StartupTimeout. A misconfiguration that probe shows
// (failed authentication, unknown database, a server that is not a
// replica, a missing privilege) returns an error wrapping ErrConfig and
// leaves nothing open. Otherwise the replica joins: it serves reads while
// the checker finds it healthy with its lag known and within MaxLag.
// AddReplica returns once a probe has bounded its lag or evicted it, or
// after StartupTimeout: a replica that answers serves the next read, one
// that is down joins evicted, as at start-up. It is safe to call while
// statements run; after Close it returns ErrClosed.
func (p *Plugin) AddReplica(r Replica) error {
	p.ctlMu.Lock()
	defer p.ctlMu.Unlock()
	if err := p.controllable(); err != nil {
		return err
	}
	set := p.replicas()
	switch {
	case r.Name == "":
		return fmt.Errorf("%w: AddReplica: the replica has no Name", ErrConfig)
	case r.Name == p.primaryName || set.byName[r.Name] != nil:
		return fmt.Errorf("%w: AddReplica: duplicate name %q", ErrConfig, r.Name)
	case r.Dialector == nil:
		return fmt.Errorf("%w: AddReplica: replica %q has no Dialector", ErrConfig, r.Name)
	case r.Weight < 0:
		return fmt.Errorf("%w: AddReplica: replica %q has negative Weight %d", ErrConfig, r.Name, r.Weight)
	}
	n, d, err := p.newReplica(p.db, -1, r)
	if err != nil {
		return err
	}
	if err := p.openReplica(p.db, d); err != nil {
		return errors.Join(err, n.close())
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.StartupTimeout)
	defer cancel()
	idx, err := p.checker.Add(ctx, n.checkTarget())
	if err != nil {
		if errors.Is(err, lagcheck.ErrClosed) {
			err = ErrClosed
		}
		return errors.Join(err, n.close())
	}
	n.idx = idx
	if n.openErr != nil {
		p.checker.ReportFailure(idx, n.openErr)
	}
	p.settle(ctx, idx)
	for _, s := range p.checker.Status() {
		if serr := startupError(r.Name, s.LastErr); s.Index == idx && serr != nil {
			return errors.Join(serr, p.checker.Remove(idx), n.close())
		}
	}
	p.publish(append(slices.Clip(set.nodes), n))
	if l := p.cfg.Logger; l != nil {
		l.Info("rwsplit: replica added", "replica", r.Name, "state", p.state.State(idx).String(), "eligible", p.eligible(n))
	}
	return nil
}

// settle waits, until ctx ends, for a probe of replica idx that tells
// what the server is: one that bounded its lag, or one that evicted it
// for an answer (a misconfiguration, a refused connection, a lag over
// MaxLag). A probe that timed out, or waited for a connection of a busy
// pool (lagcheck.ErrPoolBusy, as a new pool's slow first connection
// reads), tells nothing: the first such reading evicts a new replica
// (lagcheck's start-up rule), but AddReplica must still see the next
// probe's answer before it admits a server it has not identified, such as
// the primary itself.
func (p *Plugin) settle(ctx context.Context, idx int) {
	t := time.NewTicker(quiesceEvery)
	defer t.Stop()
	for {
		if _, known := p.state.LagNow(idx); known {
			return
		}
		if p.state.State(idx) != lagcheck.Healthy && !p.inconclusive(idx) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// inconclusive reports whether replica idx's last probe ended without an
// answer from its server: it timed out or waited for a pool connection.
func (p *Plugin) inconclusive(idx int) bool {
	for _, s := range p.checker.Status() {
		if s.Index == idx {
			return errors.Is(s.LastErr, lagcheck.ErrPoolBusy) || connerr.IsTimeout(s.LastErr)
		}
	}
	return false
}

// RemoveTimeout bounds how long RemoveReplica waits for the statements and
// transactions still running on the replica it removes.
const RemoveTimeout = 30 * time.Second

// RemoveReplica removes the named replica while the plugin runs, for up to
// RemoveTimeout: see RemoveReplicaContext.
func (p *Plugin) RemoveReplica(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), RemoveTimeout)
	defer cancel()
	return p.RemoveReplicaContext(ctx, name)
}

// RemoveReplicaContext removes the named replica while the plugin runs.
// First it drains it: from the next statement on, no read goes there, and
// a Replica{Name} clause naming it fails with ErrUnknownReplica; a read
// that routing had sent there just before runs on another replica or the
// primary instead (ReasonRetry). Then it stops the checker's probes of it,
// waits until every statement, open transaction and unread result on it
// has finished, and closes its pools and its prepared statements. Callers
// see no error from any of it.
//
// The wait ends with ctx: the pools are closed then anyway, what still
// runs there fails, and the error returned wraps ctx.Err() and says what
// was still open. A transaction left open (neither committed nor rolled
// back) holds it that long. The wait also ends when the plugin is closed.
// Removing the last replica is allowed: reads then follow Config.Fallback.
// An unknown name returns ErrUnknownReplica; after Close, ErrClosed.
func (p *Plugin) RemoveReplicaContext(ctx context.Context, name string) error {
	p.ctlMu.Lock()
	defer p.ctlMu.Unlock()
	if err := p.controllable(); err != nil {
		return err
	}
	set := p.replicas()
	n := set.byName[name]
	if n == nil {
		return fmt.Errorf("%w: %q", ErrUnknownReplica, name)
	}
	p.publish(slices.DeleteFunc(slices.Clone(set.nodes), func(m *node) bool { return m == n }))
	n.gone.Store(true)
	err := p.checker.Remove(n.idx) // gives back the connection it held of n's pool
	if errors.Is(err, lagcheck.ErrClosed) {
		err = nil // Close is under way: it stopped the probes
	}
	start := time.Now()
	werr := p.quiesce(ctx, n)
	err = errors.Join(err, werr, n.close())
	if l := p.cfg.Logger; l != nil {
		attrs := []any{"replica", name, "waited", time.Since(start).Round(time.Millisecond)}
		if err != nil {
			l.Warn("rwsplit: replica removed", append(attrs, "err", err.Error())...)
		} else {
			l.Info("rwsplit: replica removed", attrs...)
		}
	}
	return err
}

// quiesceEvery is how often RemoveReplica looks whether a replica it
// removes is idle.
const quiesceEvery = 2 * time.Millisecond

// quiesce waits until nothing runs on n, which no statement can reach any
// longer: no statement in flight, no transaction open, no connection of
// its pool in use (a result still being read holds one). It reads them in
// that order, the order in which a statement releases them (see enter and
// beginTx). It returns early, with nil, once the plugin is closed, and
// with an error wrapping ctx.Err() when ctx ends first.
func (p *Plugin) quiesce(ctx context.Context, n *node) error {
	t := time.NewTicker(quiesceEvery)
	defer t.Stop()
	for {
		inflight, txs := n.stats.InFlight(), n.txs.Load()
		inUse := n.sqlDB.Stats().InUse
		if inflight == 0 && txs == 0 && inUse == 0 || p.closed.Load() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rwsplit: RemoveReplica(%q): %d statements, %d transactions and %d connections still in use when the wait ended; its pools are closed: %w",
				n.name, inflight, txs, inUse, ctx.Err())
		case <-t.C:
		}
	}
}
