package lagcheck

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// Errors a probe reports about a replica that answers but cannot serve
// fresh reads. They count as bad readings (see Config.EvictAfter); they are
// not connection-class, so they do not evict at once.
var (
	// ErrNotReplica: the server is not replicating from anything. On
	// PostgreSQL pg_is_in_recovery() is false (the replica was promoted or
	// never was one); on MariaDB and MySQL SHOW REPLICA STATUS has no row.
	ErrNotReplica = errors.New("lagcheck: server is not a replica")

	// ErrReplicationStopped: the replica does not apply what it receives.
	// MariaDB/MySQL: the SQL (applier) thread is not running, or
	// Seconds_Behind_Master is NULL. PostgreSQL: pg_last_wal_replay_lsn()
	// is NULL.
	ErrReplicationStopped = errors.New("lagcheck: replication stopped")

	// ErrNotReceiving: the replica's IO (receiver) thread is not connected
	// to its primary (MariaDB/MySQL: Slave_IO_Running / Replica_IO_Running
	// is No or Connecting). It wraps ErrReplicationStopped. While the
	// primary cannot be sampled either, the Checker takes it as explained
	// by the primary's outage and leaves the replica's state alone.
	ErrNotReceiving = fmt.Errorf("%w: not receiving from the primary", ErrReplicationStopped)

	// ErrNoPosition: the Checker has no way to read the primary's
	// replication position (a custom Probe on a dialect lagcheck does not
	// know).
	ErrNoPosition = errors.New("lagcheck: no replication position for this dialect")
)

// IsConnError reports whether err means that the connection to the server
// could not be made or was lost: the server is down, unreachable, shutting
// down, or the connection broke under the statement. Errors the server
// reports about a statement (syntax, constraint, read-only, ...) are not
// connection-class, and neither is a bare context.DeadlineExceeded (a
// caller's short deadline says nothing about the server; see IsTimeout) or
// anything caused by context.Canceled.
//
// rwsplit uses it for passive detection (Checker.ReportFailure) and to
// decide that a read may be retried elsewhere: a statement that failed
// this way has not produced a result for the caller.
//
// It recognises driver.ErrBadConn, mysql.ErrInvalidConn,
// *pgconn.ConnectError (any failure to connect, including a dial that ran
// out of time, but not one the caller canceled), pgconn.ErrConnClosed, *net.OpError and *net.DNSError,
// refused/reset/aborted/unreachable/broken-pipe errnos, io.EOF and
// io.ErrUnexpectedEOF, PostgreSQL SQLSTATE class 08 (connection exception)
// and 57P01/57P02/57P03/57P05 (server shutting down, cannot connect now,
// idle session timeout), and MySQL/MariaDB server errors that end the
// connection (1040, 1053, 1152, 1158-1161, 1927, 4031). As a last resort
// it matches the messages of drivers that flatten errors to text.
func IsConnError(err error) bool {
	// A cancellation is the caller's decision, even in the middle of a
	// dial: it says nothing about the server.
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	// A failed connection attempt, whatever the cause (the PostgreSQL
	// server's own refusal included), means the statement never ran.
	var connect *pgconn.ConnectError
	if errors.As(err, &connect) {
		return true
	}
	// Server-reported errors: decided by their code alone.
	var state interface{ SQLState() string }
	if errors.As(err, &state) {
		return pgConnState(state.SQLState())
	}
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		return mysqlConnErrno(my.Number)
	}
	switch {
	case errors.Is(err, driver.ErrBadConn),
		errors.Is(err, mysql.ErrInvalidConn),
		errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENOTCONN):
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	msg := strings.ToLower(err.Error())
	for _, s := range connMessages {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// connMessages are matched, lower-cased, against errors that carry no
// type to inspect (a driver or wrapper that formatted the cause with %v).
var connMessages = []string{
	"bad connection",
	"invalid connection",
	"connection refused",
	"connection reset",
	"broken pipe",
	"conn closed",
	"connection is closed",
	"server closed the connection",
	"unexpected eof",
	"no such host",
	"i/o timeout",
}

// pgConnState reports whether a PostgreSQL SQLSTATE means the connection
// is gone or could not be made.
func pgConnState(code string) bool {
	if strings.HasPrefix(code, "08") { // connection_exception
		return true
	}
	switch code {
	case "57P01", // admin_shutdown
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now (starting up, or in recovery without hot_standby)
		"57P05": // idle_session_timeout
		return true
	}
	return false
}

// mysqlConnErrno reports whether a MySQL/MariaDB server error number ends
// or refuses the connection.
func mysqlConnErrno(n uint16) bool {
	switch n {
	case 1040, // ER_CON_COUNT_ERROR: too many connections
		1053,                   // ER_SERVER_SHUTDOWN
		1152,                   // ER_ABORTING_CONNECTION
		1158, 1159, 1160, 1161, // ER_NET_READ_ERROR .. ER_NET_WRITE_INTERRUPTED
		1927, // ER_CONNECTION_KILLED (MariaDB)
		4031: // ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8)
		return true
	}
	return false
}

// IsTimeout reports whether err comes from a deadline: a context deadline,
// an I/O timeout, or pgconn's timeout wrapper (not a cancellation). A probe that times out
// counts as a bad reading (Config.EvictAfter); a frozen replica is evicted
// this way.
func IsTimeout(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || pgconn.Timeout(err) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
