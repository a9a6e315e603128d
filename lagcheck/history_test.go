package lagcheck

import (
	"errors"
	"testing"
	"time"
)

func TestEstimate(t *testing.T) {
	ms := time.Millisecond
	t0 := time.Unix(1_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	// Primary samples every 250ms, each taking 1ms: LSN 100, 200, 300, 400
	// at 0, 250, 500, 750ms.
	samples := []sample{
		{start: at(0), end: at(1 * ms), pos: LSNPosition(100)},
		{start: at(250 * ms), end: at(251 * ms), pos: LSNPosition(200)},
		{start: at(500 * ms), end: at(501 * ms), pos: LSNPosition(300)},
		{start: at(750 * ms), end: at(751 * ms), pos: LSNPosition(400)},
	}
	down := errors.New("primary down")
	tests := []struct {
		name       string
		samples    []sample
		primaryErr error
		give       Replay
		probeErr   error
		start, end time.Duration // of the replica probe, from t0
		wantLag    time.Duration
		wantKnown  bool
		wantBehind int64
		wantFresh  time.Duration // from t0; -1: no bound (fresh zero)
	}{
		{name: "caught up: bound is the probe's distance from the last sample",
			samples: samples, give: Replay{Position: LSNPosition(400)}, start: 752 * ms, end: 753 * ms,
			wantLag: 3 * ms, wantKnown: true, wantBehind: 0, wantFresh: 750 * ms},
		{name: "ahead of the last sample",
			samples: samples, give: Replay{Position: LSNPosition(450)}, start: 752 * ms, end: 753 * ms,
			wantLag: 3 * ms, wantKnown: true, wantBehind: 0, wantFresh: 750 * ms},
		{name: "one sample behind: up to an interval, at least since the missed sample",
			samples: samples, give: Replay{Position: LSNPosition(350)}, start: 752 * ms, end: 753 * ms,
			wantLag: 253 * ms, wantKnown: true, wantBehind: 50, wantFresh: 500 * ms},
		{name: "three samples behind",
			samples: samples, give: Replay{Position: LSNPosition(150)}, start: 752 * ms, end: 753 * ms,
			wantLag: 753 * ms, wantKnown: true, wantBehind: 250, wantFresh: 0},
		{name: "replay timestamp tightens the bound, counted from the probe's start",
			samples: samples, give: Replay{Position: LSNPosition(150), LagAtMost: 600 * ms, LagAtMostKnown: true}, start: 752 * ms, end: 753 * ms,
			wantLag: 601 * ms, wantKnown: true, wantBehind: 250, wantFresh: 152 * ms},
		{name: "a slow probe's own bound: the answer's way back counts too",
			samples: samples, give: Replay{Position: LSNPosition(150), LagAtMost: 600 * ms, LagAtMostKnown: true}, start: 752 * ms, end: 772 * ms,
			wantLag: 620 * ms, wantKnown: true, wantBehind: 250, wantFresh: 152 * ms},
		{name: "a looser own bound changes nothing",
			samples: samples, give: Replay{Position: LSNPosition(400), LagAtMost: 22 * time.Second, LagAtMostKnown: true}, start: 752 * ms, end: 753 * ms,
			wantLag: 3 * ms, wantKnown: true, wantBehind: 0, wantFresh: 750 * ms},
		{name: "own bound below what the samples prove is raised to it",
			samples: samples, give: Replay{Position: LSNPosition(150), LagAtMost: 10 * ms, LagAtMostKnown: true}, start: 752 * ms, end: 753 * ms,
			wantLag: 501 * ms, wantKnown: true, wantBehind: 250, wantFresh: 252 * ms},
		{name: "behind every sample: only a lower bound",
			samples: samples, give: Replay{Position: LSNPosition(50)}, start: 752 * ms, end: 753 * ms,
			wantLag: 751 * ms, wantKnown: false, wantBehind: 350, wantFresh: -1},
		{name: "no samples yet",
			samples: nil, give: Replay{Position: LSNPosition(50)}, start: 752 * ms, end: 753 * ms,
			wantLag: 0, wantKnown: false, wantBehind: -1, wantFresh: -1},
		{name: "heartbeat only",
			samples: []sample{{start: at(0), end: at(1 * ms)}}, give: Replay{LagAtMost: 2 * ms, LagAtMostKnown: true}, start: 2 * ms, end: 3 * ms,
			wantLag: 3 * ms, wantKnown: true, wantBehind: -1, wantFresh: 0},
		{name: "heartbeat row missing: lower bound",
			samples: []sample{{start: at(0), end: at(1 * ms)}}, give: Replay{LagAtLeast: 700 * ms}, start: 702 * ms, end: 703 * ms,
			wantLag: 700 * ms, wantKnown: false, wantBehind: -1, wantFresh: -1},
		{name: "primary down: caught-up replica only has a lower bound of 0, and stays fresh as of the last sample",
			samples: samples, primaryErr: down, give: Replay{Position: LSNPosition(400)}, start: 1752 * ms, end: 1753 * ms,
			wantLag: 0, wantKnown: false, wantBehind: 0, wantFresh: 750 * ms},
		{name: "primary down: a replica proven behind keeps its lower bound, and the sample it covers",
			samples: samples, primaryErr: down, give: Replay{Position: LSNPosition(150)}, start: 1752 * ms, end: 1753 * ms,
			wantLag: 1501 * ms, wantKnown: false, wantBehind: 250, wantFresh: 0},
		{name: "probe error: lag unknown, the position read still bounds it",
			samples: samples, give: Replay{Position: LSNPosition(400)}, probeErr: ErrReplicationStopped, start: 752 * ms, end: 753 * ms,
			wantLag: 0, wantKnown: false, wantBehind: 0, wantFresh: 750 * ms},
		{name: "sample newer than the probe covered: zero staleness",
			samples: samples, give: Replay{Position: LSNPosition(400)}, start: 740 * ms, end: 745 * ms,
			wantLag: 0, wantKnown: true, wantBehind: 0, wantFresh: 745 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory(16)
			for _, s := range tt.samples {
				h.record(s, nil)
			}
			if tt.primaryErr != nil {
				h.record(sample{}, tt.primaryErr)
			}
			got := h.estimate(tt.give, tt.probeErr, at(tt.start), at(tt.end))
			if got.Lag != tt.wantLag || got.LagKnown != tt.wantKnown || got.Behind != tt.wantBehind {
				t.Errorf("estimate = lag %v known %v behind %d; want %v %v %d", got.Lag, got.LagKnown, got.Behind, tt.wantLag, tt.wantKnown, tt.wantBehind)
			}
			wantFresh := time.Time{}
			if tt.wantFresh >= 0 {
				wantFresh = at(tt.wantFresh)
			}
			if !got.fresh.Equal(wantFresh) {
				t.Errorf("estimate = fresh %v, want %v", got.fresh, wantFresh)
			}
			if got.Err != tt.probeErr || got.PrimaryErr != tt.primaryErr || !got.At.Equal(at(tt.end)) || got.Took != tt.end-tt.start {
				t.Errorf("estimate = err %v primary %v at %v took %v", got.Err, got.PrimaryErr, got.At, got.Took)
			}
		})
	}
}

func TestHistoryRing(t *testing.T) {
	h := newHistory(4)
	t0 := time.Unix(0, 0)
	for i := range 10 {
		h.record(sample{start: t0.Add(time.Duration(i) * time.Second), end: t0.Add(time.Duration(i) * time.Second), pos: LSNPosition(uint64(i))}, nil)
	}
	if h.n != 4 || h.at(0).pos.lsn != 6 || h.at(3).pos.lsn != 9 {
		t.Errorf("ring keeps %d samples, oldest %d newest %d; want 4, 6, 9", h.n, h.at(0).pos.lsn, h.at(3).pos.lsn)
	}
	if got := h.latest(); got.lsn != 9 {
		t.Errorf("latest = %v", got)
	}
	h.record(sample{}, errors.New("down"))
	if got := h.latest(); !got.IsZero() || h.n != 4 {
		t.Errorf("latest after a failed sample = %v (n %d), want zero", got, h.n)
	}
}

func TestHistoryCap(t *testing.T) {
	tests := []struct {
		name string
		give Config
		want int
	}{
		{name: "defaults: 30s at 250ms", give: Config{}, want: 122},
		{name: "long max lag", give: Config{MaxLag: 20 * time.Second, Interval: time.Second}, want: 82},
		{name: "slow interval floor", give: Config{Interval: 10 * time.Second, MaxLag: 20 * time.Second}, want: 16},
		{name: "fast interval cap", give: Config{Interval: time.Millisecond}, want: 1024},
	}
	for _, tt := range tests {
		if got := historyCap(defaulted(t, tt.give)); got != tt.want {
			t.Errorf("%s: historyCap = %d, want %d", tt.name, got, tt.want)
		}
	}
}
