package lagcheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

var testRules = rules{maxLag: 500 * time.Millisecond, readmitLag: 250 * time.Millisecond, evictAfter: 2, readmitAfter: 3}

func lagReading(ms int) Reading {
	return Reading{Lag: time.Duration(ms) * time.Millisecond, LagKnown: true}
}

// connectTimeout returns pgx's error for a connection attempt that ran out
// of time: a *pgconn.ConnectError wrapping context.DeadlineExceeded.
func connectTimeout(t *testing.T) error {
	t.Helper()
	cfg, err := pgconn.ParseConfig("host=127.0.0.1 port=1 user=x")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	_, err = pgconn.ConnectConfig(ctx, cfg)
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ConnectConfig past its deadline: %T %v, want a *pgconn.ConnectError wrapping DeadlineExceeded", err, err)
	}
	return err
}

func TestClassify(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		give Reading
		want verdict
	}{
		{name: "caught up", give: lagReading(0), want: good},
		{name: "at readmit lag", give: lagReading(250), want: good},
		{name: "between the marks", give: lagReading(251), want: fair},
		{name: "at max lag", give: lagReading(500), want: fair},
		{name: "above max lag", give: lagReading(501), want: bad},
		{name: "unknown lag", give: Reading{}, want: unknown},
		{name: "lower bound below max lag", give: Reading{Lag: 400 * ms}, want: unknown},
		{name: "lower bound above max lag", give: Reading{Lag: 600 * ms}, want: bad},
		{name: "primary down, lag only a lower bound", give: Reading{Lag: 10 * ms, PrimaryErr: syscall.ECONNREFUSED}, want: unknown},
		{name: "primary down, proven behind", give: Reading{Lag: 900 * ms, PrimaryErr: syscall.ECONNREFUSED}, want: bad},
		{name: "probe timeout", give: Reading{Err: context.DeadlineExceeded}, want: bad},
		{name: "connection refused", give: Reading{Err: fmt.Errorf("dial: %w", syscall.ECONNREFUSED)}, want: fatal},
		{name: "connect attempt timed out", give: Reading{Err: connectTimeout(t)}, want: bad},
		{name: "dial i/o timeout", give: Reading{Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}}, want: bad},
		{name: "replication stopped", give: Reading{Err: ErrReplicationStopped, LagKnown: true}, want: bad},
		{name: "not a replica", give: Reading{Err: ErrNotReplica}, want: fatal},
		{name: "promoted", give: Reading{Err: promotedError{fmt.Errorf("%w: pg_is_in_recovery() is false", ErrNotReplica)}}, want: fatal},
		{name: "missing privilege", give: Reading{Err: fmt.Errorf("%w: GRANT SLAVE MONITOR ON *.* TO 'u'@'%%'", ErrPrivilege)}, want: bad},
		{name: "not receiving", give: Reading{Err: ErrNotReceiving}, want: bad},
		{name: "not receiving while the primary is down", give: Reading{Err: ErrNotReceiving, PrimaryErr: syscall.ECONNREFUSED}, want: unknown},
		// MariaDB quotes the IO thread's own connection error.
		{name: "not receiving, quoting a connection reset", give: Reading{Err: fmt.Errorf("%w: Slave_IO_Running=Connecting: Connection reset by peer", ErrNotReceiving)}, want: bad},
		{name: "not receiving, quoting a connection reset, primary down", give: Reading{Err: fmt.Errorf("%w: Slave_IO_Running=Connecting: Connection reset by peer", ErrNotReceiving), PrimaryErr: syscall.ECONNREFUSED}, want: unknown},
		{name: "sql thread stopped while the primary is down", give: Reading{Err: ErrReplicationStopped, PrimaryErr: syscall.ECONNREFUSED}, want: bad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testRules.classify(tt.give); got != tt.want {
				t.Errorf("classify(%+v) = %v, want %v", tt.give, got, tt.want)
			}
		})
	}
}

// TestStep covers every transition of the state machine, and the cases
// that must not transition.
func TestStep(t *testing.T) {
	now := time.Unix(1000, 0)
	seen := health{observed: true}
	tests := []struct {
		name   string
		give   health
		v      verdict
		gen    uint64
		want   health
		wantTr transition
	}{
		// First reading decides at once (Start's round).
		{name: "first good stays healthy", give: health{}, v: good,
			want: health{observed: true}, wantTr: transition{from: Healthy, to: Healthy}},
		{name: "first fair stays healthy", give: health{}, v: fair,
			want: health{observed: true}, wantTr: transition{from: Healthy, to: Healthy}},
		{name: "first unknown stays unobserved", give: health{}, v: unknown,
			want: health{}, wantTr: transition{from: Healthy, to: Healthy}},
		{name: "first bad evicts at once", give: health{}, v: bad,
			want: health{state: Evicted, observed: true, since: now, evictions: 1}, wantTr: transition{from: Healthy, to: Evicted, changed: true}},
		{name: "first fatal evicts", give: health{}, v: fatal,
			want: health{state: Evicted, observed: true, since: now, evictions: 1}, wantTr: transition{from: Healthy, to: Evicted, changed: true}},

		// Healthy.
		{name: "healthy good resets bad count", give: health{observed: true, bad: 1}, v: good,
			want: seen, wantTr: transition{from: Healthy, to: Healthy}},
		{name: "healthy fair resets bad count", give: health{observed: true, bad: 1}, v: fair,
			want: seen, wantTr: transition{from: Healthy, to: Healthy}},
		{name: "healthy unknown keeps bad count", give: health{observed: true, bad: 1}, v: unknown,
			want: health{observed: true, bad: 1}, wantTr: transition{from: Healthy, to: Healthy}},
		{name: "healthy first bad counts", give: seen, v: bad,
			want: health{observed: true, bad: 1}, wantTr: transition{from: Healthy, to: Healthy}},
		{name: "healthy EvictAfter-th bad evicts", give: health{observed: true, bad: 1, readmissions: 4}, v: bad,
			want: health{state: Evicted, observed: true, since: now, evictions: 1, readmissions: 4}, wantTr: transition{from: Healthy, to: Evicted, changed: true}},
		{name: "healthy fatal evicts at once", give: seen, v: fatal,
			want: health{state: Evicted, observed: true, since: now, evictions: 1}, wantTr: transition{from: Healthy, to: Evicted, changed: true}},

		// Evicted.
		{name: "evicted good starts probation", give: health{state: Evicted, observed: true}, v: good,
			want: health{state: Probation, observed: true, good: 1, since: now}, wantTr: transition{from: Evicted, to: Probation, changed: true}},
		{name: "evicted fair stays", give: health{state: Evicted, observed: true}, v: fair,
			want: health{state: Evicted, observed: true}, wantTr: transition{from: Evicted, to: Evicted}},
		{name: "evicted bad stays", give: health{state: Evicted, observed: true}, v: bad,
			want: health{state: Evicted, observed: true}, wantTr: transition{from: Evicted, to: Evicted}},
		{name: "evicted fatal stays", give: health{state: Evicted, observed: true}, v: fatal,
			want: health{state: Evicted, observed: true}, wantTr: transition{from: Evicted, to: Evicted}},
		{name: "evicted unknown stays", give: health{state: Evicted, observed: true}, v: unknown,
			want: health{state: Evicted, observed: true}, wantTr: transition{from: Evicted, to: Evicted}},

		// Probation.
		{name: "probation good counts", give: health{state: Probation, observed: true, good: 1}, v: good,
			want: health{state: Probation, observed: true, good: 2}, wantTr: transition{from: Probation, to: Probation}},
		{name: "probation ReadmitAfter-th good readmits", give: health{state: Probation, observed: true, good: 2, evictions: 1}, v: good,
			want: health{state: Healthy, observed: true, since: now, evictions: 1, readmissions: 1}, wantTr: transition{from: Probation, to: Healthy, changed: true}},
		{name: "probation fair goes back", give: health{state: Probation, observed: true, good: 2}, v: fair,
			want: health{state: Evicted, observed: true, since: now}, wantTr: transition{from: Probation, to: Evicted, changed: true}},
		{name: "probation bad goes back", give: health{state: Probation, observed: true, good: 2}, v: bad,
			want: health{state: Evicted, observed: true, since: now}, wantTr: transition{from: Probation, to: Evicted, changed: true}},
		{name: "probation fatal goes back", give: health{state: Probation, observed: true, good: 1}, v: fatal,
			want: health{state: Evicted, observed: true, since: now}, wantTr: transition{from: Probation, to: Evicted, changed: true}},
		{name: "probation unknown keeps count", give: health{state: Probation, observed: true, good: 2}, v: unknown,
			want: health{state: Probation, observed: true, good: 2}, wantTr: transition{from: Probation, to: Probation}},

		// Generations.
		{name: "old generation cannot readmit", give: health{state: Probation, observed: true, good: 2, gen: 3}, v: good, gen: 2,
			want: health{state: Probation, observed: true, good: 2, gen: 3}, wantTr: transition{from: Probation, to: Probation, dropped: true}},
		{name: "old generation cannot evict", give: health{observed: true, bad: 1, gen: 1}, v: bad, gen: 0,
			want: health{observed: true, bad: 1, gen: 1}, wantTr: transition{from: Healthy, to: Healthy, dropped: true}},
		{name: "current generation applies", give: health{state: Evicted, observed: true, gen: 3}, v: good, gen: 3,
			want: health{state: Probation, observed: true, good: 1, gen: 3, since: now}, wantTr: transition{from: Evicted, to: Probation, changed: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, tr := testRules.step(tt.give, tt.v, tt.gen, now)
			if got != tt.want || tr != tt.wantTr {
				t.Errorf("step(%+v, %v, gen %d)\n got %+v %+v\nwant %+v %+v", tt.give, tt.v, tt.gen, got, tr, tt.want, tt.wantTr)
			}
		})
	}
}

func TestStepReadmitAfterOne(t *testing.T) {
	ru := testRules
	ru.readmitAfter = 1
	now := time.Unix(1, 0)
	got, tr := ru.step(health{state: Evicted, observed: true, evictions: 1}, good, 0, now)
	want := health{state: Healthy, observed: true, since: now, evictions: 1, readmissions: 1}
	if got != want || tr != (transition{from: Evicted, to: Healthy, changed: true}) {
		t.Errorf("ReadmitAfter=1: %+v %+v", got, tr)
	}
}

// TestHysteresis feeds sequences of readings (ms of lag, or -1 for a probe
// error) and checks the state after each.
func TestHysteresis(t *testing.T) {
	H, E, P := Healthy, Evicted, Probation
	tests := []struct {
		name  string
		start State
		lags  []int
		want  []State
	}{
		{name: "oscillating around MaxLag stays healthy",
			start: H, lags: []int{600, 400, 600, 400, 600, 400}, want: []State{H, H, H, H, H, H}},
		{name: "two above MaxLag evict",
			start: H, lags: []int{600, 600}, want: []State{H, E}},
		{name: "oscillating around MaxLag stays evicted",
			start: E, lags: []int{400, 600, 400, 600, 400}, want: []State{E, E, E, E, E}},
		{name: "readmitted only below ReadmitLag",
			start: E, lags: []int{400, 200, 200, 200}, want: []State{E, P, P, H}},
		{name: "probation failure goes back",
			start: E, lags: []int{100, 100, 300, 100, 100, 100}, want: []State{P, P, E, P, P, H}},
		{name: "probe error counts as bad",
			start: H, lags: []int{100, -1, 100, -1, -1}, want: []State{H, H, H, H, E}},
		{name: "probe error in probation goes back",
			start: E, lags: []int{100, -1, 100, 100, 100}, want: []State{P, E, P, P, H}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := health{state: tt.start, observed: true}
			var got []State
			for i, ms := range tt.lags {
				r := lagReading(ms)
				if ms < 0 {
					r = Reading{Err: errors.New("probe failed")}
				}
				h, _ = testRules.step(h, testRules.classify(r), 0, time.Unix(int64(i), 0))
				got = append(got, h.state)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("states %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStateString(t *testing.T) {
	tests := []struct {
		give State
		want string
	}{{Healthy, "healthy"}, {Evicted, "evicted"}, {Probation, "probation"}, {State(9), "State(9)"}}
	for _, tt := range tests {
		if got := tt.give.String(); got != tt.want {
			t.Errorf("%d.String() = %q, want %q", int(tt.give), got, tt.want)
		}
	}
	if !Healthy.Eligible() || Evicted.Eligible() || Probation.Eligible() {
		t.Error("only Healthy is eligible")
	}
}
