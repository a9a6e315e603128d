package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

const (
	// latencyFloor is added to every latency in the P2C score, so that
	// sub-millisecond noise does not outweigh load.
	latencyFloor = time.Millisecond
	// probeBits: an idle losing candidate is probed with odds
	// 1/2^probeBits per draw, when the draw's top probeBits bits are zero.
	probeBits = 4
)

// DefaultProbeInterval is P2CConfig.ProbeInterval's default.
const DefaultProbeInterval = time.Second

// P2CConfig configures P2C. The zero value is ready to use.
type P2CConfig struct {
	// ProbeInterval is how long a replica may go unheard from (no
	// statement finished on it, no probe sent) before P2C picks it anyway,
	// against the scores, to re-measure it. Zero means 1s.
	ProbeInterval time.Duration

	// DisableProbe turns re-measuring off: a replica that was slow stays
	// avoided until its load, not its latency, makes it the better choice.
	// ProbeInterval must then be zero.
	DisableProbe bool
}

// withDefaults returns c with its zero fields defaulted, or the first
// problem with c, wrapping ErrConfig.
func (c P2CConfig) withDefaults() (P2CConfig, error) {
	switch {
	case c.ProbeInterval < 0:
		return P2CConfig{}, fmt.Errorf("%w: P2C ProbeInterval is negative (%v)", ErrConfig, c.ProbeInterval)
	case c.DisableProbe && c.ProbeInterval != 0:
		return P2CConfig{}, fmt.Errorf("%w: P2C ProbeInterval %v set with DisableProbe", ErrConfig, c.ProbeInterval)
	case c.ProbeInterval == 0 && !c.DisableProbe:
		c.ProbeInterval = DefaultProbeInterval
	}
	return c, nil
}

// P2C returns a policy that draws two distinct replicas at random and picks
// the one with the lower score
//
//	score = (Latency + 1ms) × (InFlight + 1)
//
// from their Stats, and now and then (see P2CConfig.ProbeInterval) the
// loser instead, to re-measure a replica it avoids. With one replica it
// returns it. Pick is lock-free and allocation-free; all state lives in the
// replicas' Stats, so a rebuilt Picker keeps it. Errors wrap ErrConfig.
// docs/policies.md explains the score and the probes.
func P2C(cfg P2CConfig) (Policy, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &p2c{cfg: cfg}, nil
}

type p2c struct{ cfg P2CConfig }

func (*p2c) Name() string { return "p2c" }

func (p *p2c) NewPicker(replicas []Replica) Picker {
	return &p2cPicker{stats: statsOf(replicas), probe: p.cfg.ProbeInterval}
}

type p2cPicker struct {
	stats []*Stats
	probe time.Duration // 0: never probe
}

func (p *p2cPicker) Pick(context.Context) int {
	switch len(p.stats) {
	case 0:
		return -1
	case 1:
		return 0
	}
	r := rand.Uint64() // one draw for both candidates and the probe's odds
	i, j := two(r, len(p.stats))
	a, b := p.stats[i], p.stats[j]
	if score(b) < score(a) {
		i, j, a, b = j, i, b, a
	}
	// a won; b may be due for a probe. Rolling the odds first spares the
	// clock reading in 15 picks out of 16.
	if p.probe > 0 && r>>(64-probeBits) == 0 {
		if now := nanotime(); b.idle(now, p.probe) && b.claimProbe(now, p.probe) {
			return j
		}
	}
	return i
}

// score is P2C's cost of sending one more statement to the replica.
func score(s *Stats) float64 {
	return float64(s.Latency()+latencyFloor) * float64(max(s.InFlight(), 0)+1)
}
