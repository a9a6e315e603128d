// Package connerr tells connection failures and timeouts apart from the
// errors a database server reports about a statement. The root package
// uses it to retry reads and to evict replicas passively; lagcheck uses it
// to classify probe errors.
package connerr

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Is reports whether err means that the connection to the server could
// not be made or was lost, so the statement cannot have produced a result.
// Errors the server reports about a statement (syntax, constraint,
// read-only, ...) are not, nor is a bare context.DeadlineExceeded (see
// IsTimeout) or anything caused by context.Canceled. nil is not.
//
// It recognises driver, pgx and MySQL connection errors, network and errno
// errors, io.EOF, PostgreSQL SQLSTATE class 08 and 57P01/02/03/05, and
// MySQL/MariaDB errors that end the connection; as a last resort, the
// messages of drivers that flatten errors to text.
func Is(err error) bool {
	// A cancellation is the caller's decision, even mid-dial.
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	// A failed connection attempt, whatever the cause (the server's own
	// refusal or a dial deadline included), means the statement never ran.
	var connect *pgconn.ConnectError
	if errors.As(err, &connect) {
		return true
	}
	// Server-reported errors: decided by their code alone.
	var state interface{ SQLState() string }
	if errors.As(err, &state) {
		return pgConnState(state.SQLState())
	}
	if my, ok := AsMySQL(err); ok {
		return mysqlConnErrno(my.Number)
	}
	switch {
	case errors.Is(err, driver.ErrBadConn),
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
	if errors.Is(err, context.DeadlineExceeded) {
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
// type to inspect (a driver or wrapper that formatted the cause with %v),
// and against the MySQL driver's ErrInvalidConn ("invalid connection"),
// which is matched by its text so that rwsplit does not link that driver.
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

// Blames reports whether err, returned by a statement run under ctx,
// counts against the server: it is a connection error (Is) and ctx was
// neither canceled nor past its deadline when the statement returned. A
// statement whose own context ran out says nothing about the server, even
// when the error is a connection error: pgx reports a dial that the
// caller's deadline cut short as a *pgconn.ConnectError wrapping
// context.DeadlineExceeded, which a connect_timeout on a frozen server
// produces too, so only ctx can tell the two apart.
func Blames(ctx context.Context, err error) bool {
	return err != nil && !CallerDone(ctx) && Is(err)
}

// CallerDone reports whether ctx was canceled or its deadline has passed.
// It reads the clock when ctx has a deadline and no error yet: the network
// poller fails a dial at the deadline, a moment before the context's own
// timer sets Err, and a statement failing in that moment failed because of
// the deadline all the same.
func CallerDone(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// IsTimeout reports whether err comes from a deadline: a context deadline,
// an I/O timeout, or pgconn's timeout wrapper. A cancellation is not; nil
// is not.
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
