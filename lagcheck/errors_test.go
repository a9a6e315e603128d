package lagcheck

import (
	"testing"

	"github.com/rwsplit/rwsplit/internal/connerr"
)

// A replica that answers but does not replicate, or refuses the probe a
// privilege, is not a connection failure: a read that meets such an error
// is not retried elsewhere as one whose server cannot have run it.
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
		{name: "promoted", give: ErrPromoted, want: false},
		{name: "missing privilege", give: ErrPrivilege, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := connerr.Is(tt.give); got != tt.want {
				t.Errorf("connerr.Is(%v) = %v, want %v", tt.give, got, tt.want)
			}
		})
	}
}
