package counter

import (
	"testing"
	"time"
)

func TestStaleness(t *testing.T) {
	t0 := time.Now()
	// Value 0 was superseded before Start; 1 at t0; 2 at t0+10ms; 3 is the latest.
	w := &Writer{superseded: []time.Time{{}, t0, t0.Add(10 * time.Millisecond)}}
	for _, tt := range []struct {
		v    int64
		at   time.Time
		want time.Duration
	}{
		{v: 0, at: t0, want: time.Hour},
		{v: 1, at: t0.Add(-time.Millisecond), want: 0},
		{v: 1, at: t0.Add(25 * time.Millisecond), want: 25 * time.Millisecond},
		{v: 2, at: t0.Add(25 * time.Millisecond), want: 15 * time.Millisecond},
		{v: 3, at: t0.Add(25 * time.Millisecond), want: 0},
	} {
		if got := w.Staleness(tt.v, tt.at); got != tt.want {
			t.Errorf("Staleness(%d, t0%+v) = %v, want %v", tt.v, tt.at.Sub(t0), got, tt.want)
		}
	}
}
