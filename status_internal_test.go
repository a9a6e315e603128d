package rwsplit

import (
	"testing"
	"time"
)

// TestStatusWindow: the window figures are counted from the newest sample
// at least a minute old, or else the oldest, whatever the requests' pace.
func TestStatusWindow(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	// statsAt is a plugin whose replica r1 serves 10 reads a second and
	// whose primary serves 1; r2 joins at 100s with 5 reads a second.
	statsAt := func(sec int) Stats {
		s := Stats{PrimaryReads: uint64(sec), Replicas: []ReplicaStats{{Name: "r1"}}}
		s.Replicas[0].Served = uint64(10 * sec)
		if sec >= 100 {
			s.Replicas = append(s.Replicas, ReplicaStats{Name: "r2"})
			s.Replicas[1].Served = uint64(5 * (sec - 100))
		}
		return s
	}
	tests := []struct {
		name       string
		requests   []int // seconds after the handler started at 0
		at         int
		wantWindow int
		wantReads  []uint64 // r1, [r2]
	}{
		{name: "first request", at: 3, wantWindow: 3, wantReads: []uint64{30}},
		{name: "page open for 2 minutes", requests: every(2, 2, 120), at: 122, wantWindow: 62, wantReads: []uint64{620, 110}},
		{name: "page open for 10 minutes", requests: every(2, 2, 600), at: 602, wantWindow: 62, wantReads: []uint64{620, 310}},
		{name: "a request a second", requests: every(1, 1, 90), at: 91, wantWindow: 61, wantReads: []uint64{610}},
		{name: "after a pause", requests: every(2, 2, 30), at: 600, wantWindow: 570, wantReads: []uint64{5700, 2500}},
		{name: "under a minute", requests: every(2, 2, 40), at: 42, wantWindow: 42, wantReads: []uint64{420}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &statusHandler{p: &Plugin{}}
			h.sample(statsAt(0), t0)
			for _, sec := range tt.requests {
				h.sample(statsAt(sec), t0.Add(time.Duration(sec)*time.Second))
			}
			rep := h.report(statsAt(tt.at), t0.Add(time.Duration(tt.at)*time.Second))
			if rep.WindowSeconds != float64(tt.wantWindow) {
				t.Errorf("window %vs, want %ds", rep.WindowSeconds, tt.wantWindow)
			}
			var reads []uint64
			total := rep.Primary.WindowReads
			for _, r := range rep.Replicas {
				reads = append(reads, r.WindowReads)
				total += r.WindowReads
			}
			if len(reads) != len(tt.wantReads) || reads[0] != tt.wantReads[0] || (len(reads) > 1 && reads[1] != tt.wantReads[1]) {
				t.Errorf("window reads %v, want %v", reads, tt.wantReads)
			}
			if rep.Primary.WindowReads != uint64(tt.wantWindow) {
				t.Errorf("primary window reads %d, want %d", rep.Primary.WindowReads, tt.wantWindow)
			}
			if want := float64(reads[0]) / float64(total); rep.Replicas[0].ReadShare != want {
				t.Errorf("r1's share %v, want %v", rep.Replicas[0].ReadShare, want)
			}
		})
	}
}

// every returns from, from+step, ... up to to.
func every(step, from, to int) []int {
	var out []int
	for s := from; s <= to; s += step {
		out = append(out, s)
	}
	return out
}

func TestFmtSeconds(t *testing.T) {
	tests := []struct {
		give float64
		want string
	}{
		{give: 0, want: "0"},
		{give: 0.000_850, want: "850µs"},
		{give: 0.012_34, want: "12.3ms"},
		{give: 1.254, want: "1.25s"},
		{give: 200, want: "3m20s"},
	}
	for _, tt := range tests {
		if got := fmtSeconds(tt.give); got != tt.want {
			t.Errorf("fmtSeconds(%v) = %q, want %q", tt.give, got, tt.want)
		}
	}
}
