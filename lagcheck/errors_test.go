package lagcheck

import (
	"testing"

	"github.com/rwsplit/rwsplit/internal/connerr"
)

// A replica that answers but does not replicate is a bad reading, not a
// connection failure: it must not evict at once.
func TestErrorsAreNotConnectionClass(t *testing.T) {
	tests := []struct {
		name string
		give error
		want bool
	}{
		{name: "not replica", give: ErrNotReplica, want: false},
		{name: "replication stopped", give: ErrReplicationStopped, want: false},
		{name: "not receiving", give: ErrNotReceiving, want: false},
		{name: "no position", give: ErrNoPosition, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := connerr.Is(tt.give); got != tt.want {
				t.Errorf("connerr.Is(%v) = %v, want %v", tt.give, got, tt.want)
			}
		})
	}
}
