package rwsplit

import "errors"

var (
	// ErrReadOnly is returned for a write (Create, Update, Delete, or raw
	// SQL that may write) issued inside a transaction that runs on a
	// replica. rwsplit never sends a write to a replica, and never moves a
	// transaction's statement to another node, so the statement fails
	// without reaching any server.
	ErrReadOnly = errors.New("rwsplit: write in a read-only replica transaction")

	// ErrNoReplica is returned for a read when no replica is eligible and
	// Config.Fallback is FallbackFail.
	ErrNoReplica = errors.New("rwsplit: no replica available")

	// ErrUnknownReplica is returned for a statement with a Replica clause
	// naming no configured replica.
	ErrUnknownReplica = errors.New("rwsplit: no replica of that name")

	// ErrPrimaryUnreachable wraps the driver's error for a statement or
	// transaction on the primary that could not reach it (a connection
	// error, not an error the server reported). rwsplit never sends such a
	// statement elsewhere and never retries it.
	ErrPrimaryUnreachable = errors.New("rwsplit: primary unreachable")

	// ErrClosed is returned by Initialize, SetMaxLag, AddReplica and
	// RemoveReplica after Close.
	ErrClosed = errors.New("rwsplit: plugin closed")

	// ErrConfig wraps every configuration error, so callers can tell bad
	// configuration from a failure to reach a database.
	ErrConfig = errors.New("rwsplit: invalid config")
)
