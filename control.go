package rwsplit

import "fmt"

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
