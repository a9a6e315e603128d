package lagcheck

import (
	"math/rand/v2"
	"time"
)

// firstWait is how long the sample loop waits after Start's round before
// its first round on the ticker: interval minus a uniform draw in [0,
// interval), so within (0, interval]. Checkers started together (a fleet of
// processes with the same Interval) then probe at phases spread over the
// Interval instead of all at once, while no gap between two rounds exceeds
// an Interval and the average rate stays one round per Interval
// (docs/health.md, "Fleet cost"). randN draws uniformly in [0, n); nil
// means math/rand/v2's Int64N (tests inject a seeded or fixed one).
func firstWait(interval time.Duration, randN func(n int64) int64) time.Duration {
	if randN == nil {
		randN = rand.Int64N
	}
	return interval - time.Duration(randN(int64(interval)))
}
