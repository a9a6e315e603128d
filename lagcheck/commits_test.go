package lagcheck

import (
	"testing"
	"time"
)

// TestCommitsAfter: the first sample that started strictly after t, never
// a later one; the oldest kept once the first was dropped.
func TestCommitsAfter(t *testing.T) {
	c := newCommits(2) // keeps 2..4 samples
	if _, ok := c.after(0); ok {
		t.Fatal("after on no sample = ok, want false")
	}
	at := func(ns int64) time.Time { return epoch.Add(time.Duration(ns)) }
	for i, ns := range []int64{10, 20, 30} {
		c.add(at(ns), LSNPosition(uint64(100*(i+1))))
	}
	tests := []struct {
		name   string
		give   int64
		want   uint64
		wantOK bool
	}{
		{name: "before every sample", give: 5, want: 100, wantOK: true},
		{name: "at a sample's start: not after it", give: 10, want: 200, wantOK: true},
		{name: "between", give: 11, want: 200, wantOK: true},
		{name: "just before the last", give: 29, want: 300, wantOK: true},
		{name: "at the last", give: 30, wantOK: false},
		{name: "after every sample", give: 40, wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := c.after(tt.give)
			got, _ := s.pos.LSN()
			if ok != tt.wantOK || (ok && got != tt.want) {
				t.Errorf("after(%d) = %d, %v; want %d, %v", tt.give, got, ok, tt.want, tt.wantOK)
			}
		})
	}
	// Full at 4: the fifth keeps the last 2 and appends.
	c.add(at(40), LSNPosition(400))
	ch := c.sampled.Load()
	c.add(at(50), LSNPosition(500))
	select {
	case <-*ch:
	default:
		t.Error("Sampled's channel still open after a sample")
	}
	if s, ok := c.after(5); !ok || s.start != 30 {
		t.Errorf("after(5) once 10 and 20 were dropped = %d, %v; want the oldest kept, 30", s.start, ok)
	}
	if n := len(*c.snap.Load()); n != 3 {
		t.Errorf("snapshot of %d samples, want 3", n)
	}
	if n := testing.AllocsPerRun(100, func() { c.after(35) }); n != 0 {
		t.Errorf("after: %v allocs, want 0", n)
	}
}
