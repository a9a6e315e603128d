package stickiness

import "context"

// Store keeps Records by user key. Implementations must be safe for
// concurrent use.
type Store interface {
	// Get returns the key's record, and false when it has none or it has
	// expired. Get never extends a record's lifetime.
	Get(ctx context.Context, key string) (rec Record, ok bool, err error)

	// Set records a write by key. It merges rec into the key's active
	// record as Record.Merge does, so that a late Set of an older write
	// never shortens or rolls back stickiness, and keeps the result until
	// its Until. A rec that has already expired changes nothing.
	Set(ctx context.Context, key string, rec Record) error

	// Close releases what the store owns. It does not wait for calls in
	// flight and is safe to call more than once.
	Close() error
}
