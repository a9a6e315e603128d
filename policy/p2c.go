package policy

import (
	"context"
	"math/rand/v2"
	"time"
)

const (
	// latencyFloor is added to every replica's average latency in the P2C
	// score, so that sub-millisecond differences (noise on a LAN) do not
	// outweigh load, and a replica with no measurement yet still has a
	// score proportional to its load.
	latencyFloor = time.Millisecond
	// defaultProbeInterval is P2C's default ProbeInterval.
	defaultProbeInterval = time.Second
	// probeOdds: an idle candidate that lost is probed with probability
	// 1/probeOdds per draw, which keeps probes to a small share of the
	// reads when traffic is light.
	probeOdds = 16
)

// P2COption configures the policy returned by P2C.
type P2COption func(*p2cConfig)

type p2cConfig struct {
	probe time.Duration
}

// ProbeInterval sets how long a replica may go unheard from before P2C
// picks it anyway, against the scores, to re-measure it: no statement
// finished on it and no probe sent for longer than d. Zero means 1s; a
// negative d disables probing, so a replica that was slow stays avoided
// until its load, not its latency, makes it the better choice.
func ProbeInterval(d time.Duration) P2COption {
	return func(c *p2cConfig) { c.probe = d }
}

// P2C returns a policy that draws two distinct replicas at random and picks
// the one with the lower score
//
//	score = (Latency + 1ms) × (InFlight + 1)
//
// from the replicas' Stats: the expected time to get an answer if the
// statement queues behind the ones in flight. With two replicas it
// compares both; with one it returns it. Latency is the time-decayed EWMA
// described on Stats.Latency (τ = 600ms, failures count as at least 1s).
// Unlike kratos and go-zero, which take the square root of the latency,
// the score is linear in it: a replica at 20ms among peers at 0.5ms scores
// 21.5/1.5 ≈ 14 times worse at equal load, so it wins a draw only when its
// rival's InFlight+1 is 14 times its own; with the square root, 4 times
// would do, and a slow replica would take a real share of reads under
// load. The 1ms floor keeps sub-millisecond noise from outweighing load,
// and gives replicas not measured yet a score that still counts load.
//
// Under light load, when nothing is in flight, the replica with the lowest
// average wins every draw it is in, so equal replicas share reads unevenly
// until load evens them out; that costs nothing, since none is busy.
//
// A replica that scores badly gets no reads, so its Latency would never
// improve after it recovers. To re-measure it, when the losing candidate
// has been idle (no statement finished on it, and not probed) for longer
// than the probe interval, 1s by default (see ProbeInterval), P2C picks it
// instead, with odds of 1 in 16 per draw; a compare-and-swap on its Stats
// lets one concurrent read through per interval. Under load a slow replica
// thus gets about one read per second; under light load, where that would
// be a large share, about one in 16 of the reads it is drawn for. As the
// probe comes after a quiet spell, its latency all but replaces the
// average, so a recovered replica is back in rotation after a probe or
// two.
//
// Cost: two random draws, a third for the probe odds, four atomic loads,
// and in one pick out of 16 a clock reading and two more loads; a probe
// adds one compare-and-swap. No lock, no allocation, and
// no write to shared memory on an ordinary pick. All state lives in the
// replicas' Stats, so a rebuilt Picker keeps it.
func P2C(opts ...P2COption) Policy {
	p := &p2c{p2cConfig{probe: defaultProbeInterval}}
	for _, o := range opts {
		if o != nil {
			o(&p.cfg)
		}
	}
	if p.cfg.probe == 0 {
		p.cfg.probe = defaultProbeInterval
	}
	return p
}

type p2c struct{ cfg p2cConfig }

func (*p2c) Name() string { return "p2c" }

func (p *p2c) NewPicker(replicas []Replica) Picker {
	return &p2cPicker{stats: statsOf(replicas), probe: p.cfg.probe}
}

type p2cPicker struct {
	stats []*Stats
	probe time.Duration // <= 0: never probe
}

func (p *p2cPicker) Pick(context.Context) int {
	switch len(p.stats) {
	case 0:
		return -1
	case 1:
		return 0
	}
	i, j := two(len(p.stats))
	a, b := p.stats[i], p.stats[j]
	if score(b) < score(a) {
		i, j, a, b = j, i, b, a
	}
	// a won; b may be due for a probe. Rolling the odds first spares the
	// clock reading in 15 picks out of 16.
	if p.probe > 0 && rand.IntN(probeOdds) == 0 {
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
