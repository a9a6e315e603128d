package connerr

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestIs(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	dialTimeout := &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
	// A real *pgconn.ConnectError, from dialing a port nothing listens on.
	cfg, err := pgconn.ParseConfig("host=127.0.0.1 port=1 user=x connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	_, pgConnectErr := pgconn.ConnectConfig(context.Background(), cfg)
	var connectErr *pgconn.ConnectError
	if !errors.As(pgConnectErr, &connectErr) {
		t.Fatalf("ConnectConfig to port 1: %T %v, want a *pgconn.ConnectError", pgConnectErr, pgConnectErr)
	}
	// And a connect attempt that runs out of time, as a frozen server makes it.
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	_, pgConnectTimeout := pgconn.ConnectConfig(ctx, cfg)
	// A connect attempt the caller canceled says nothing about the server.
	canceled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	_, pgConnectCanceled := pgconn.ConnectConfig(canceled, cfg)
	if !errors.As(pgConnectCanceled, &connectErr) {
		t.Fatalf("ConnectConfig canceled: %T %v, want a *pgconn.ConnectError", pgConnectCanceled, pgConnectCanceled)
	}

	tests := []struct {
		name string
		give error
		want bool
	}{
		{name: "nil", give: nil, want: false},
		{name: "driver.ErrBadConn", give: driver.ErrBadConn, want: true},
		{name: "wrapped ErrBadConn", give: fmt.Errorf("query: %w", driver.ErrBadConn), want: true},
		{name: "mysql.ErrInvalidConn", give: mysql.ErrInvalidConn, want: true},
		{name: "pgconn.ErrConnClosed", give: fmt.Errorf("exec: %w", pgconn.ErrConnClosed), want: true},
		{name: "net.ErrClosed", give: net.ErrClosed, want: true},
		{name: "io.EOF", give: io.EOF, want: true},
		{name: "io.ErrUnexpectedEOF", give: fmt.Errorf("failed to receive message: %w", io.ErrUnexpectedEOF), want: true},
		{name: "connection refused", give: refused, want: true},
		{name: "wrapped ECONNREFUSED", give: fmt.Errorf("dial: %w", syscall.ECONNREFUSED), want: true},
		{name: "connection reset", give: reset, want: true},
		{name: "broken pipe", give: fmt.Errorf("write: %w", syscall.EPIPE), want: true},
		{name: "dial i/o timeout", give: dialTimeout, want: true},
		{name: "dns", give: &net.DNSError{Err: "no such host", Name: "replica.invalid", IsNotFound: true}, want: true},
		{name: "pgconn.ConnectError refused", give: pgConnectErr, want: true},
		{name: "pgconn.ConnectError deadline while dialing", give: pgConnectTimeout, want: true},
		{name: "pgconn.ConnectError canceled by the caller", give: pgConnectCanceled, want: false},
		{name: "dial canceled", give: &net.OpError{Op: "dial", Net: "tcp", Err: fmt.Errorf("operation was canceled: %w", context.Canceled)}, want: false},
		{name: "pg admin shutdown 57P01", give: &pgconn.PgError{Code: "57P01"}, want: true},
		{name: "pg crash shutdown 57P02", give: &pgconn.PgError{Code: "57P02"}, want: true},
		{name: "pg cannot connect now 57P03", give: &pgconn.PgError{Code: "57P03"}, want: true},
		{name: "pg connection failure 08006", give: &pgconn.PgError{Code: "08006"}, want: true},
		{name: "pg syntax error 42601", give: &pgconn.PgError{Code: "42601"}, want: false},
		{name: "pg read-only transaction 25006", give: &pgconn.PgError{Code: "25006"}, want: false},
		{name: "pg query canceled 57014", give: &pgconn.PgError{Code: "57014"}, want: false},
		{name: "pg cached plan 0A000", give: fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "0A000"}), want: false},
		{name: "mysql syntax 1064", give: &mysql.MySQLError{Number: 1064, Message: "You have an error in your SQL syntax"}, want: false},
		{name: "mysql read-only 1290", give: &mysql.MySQLError{Number: 1290}, want: false},
		{name: "mysql duplicate 1062", give: &mysql.MySQLError{Number: 1062}, want: false},
		{name: "mysql server shutdown 1053", give: &mysql.MySQLError{Number: 1053}, want: true},
		{name: "mysql too many connections 1040", give: &mysql.MySQLError{Number: 1040}, want: true},
		{name: "mariadb connection killed 1927", give: &mysql.MySQLError{Number: 1927}, want: true},
		{name: "context.DeadlineExceeded", give: context.DeadlineExceeded, want: false},
		{name: "context.Canceled", give: context.Canceled, want: false},
		{name: "wrapped deadline", give: fmt.Errorf("timeout: %w", context.DeadlineExceeded), want: false},
		{name: "sql.ErrNoRows", give: sql.ErrNoRows, want: false},
		{name: "sql.ErrTxDone", give: sql.ErrTxDone, want: false},
		{name: "sentinel without a connection word", give: fmt.Errorf("%w: not receiving from the primary", errors.New("lagcheck: replication stopped")), want: false},
		{name: "flattened bad connection", give: errors.New("driver: bad connection"), want: true},
		{name: "flattened refused", give: errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"), want: true},
		{name: "plain error", give: errors.New("something else"), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Is(tt.give); got != tt.want {
				t.Errorf("Is(%T %v) = %v, want %v", tt.give, tt.give, got, tt.want)
			}
		})
	}
}

func TestBlames(t *testing.T) {
	cfg, err := pgconn.ParseConfig("host=127.0.0.1 port=1 user=x")
	if err != nil {
		t.Fatal(err)
	}
	expired, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	<-expired.Done()
	_, connectTimeout := pgconn.ConnectConfig(expired, cfg) // the caller's deadline cut the dial short
	canceled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	_, connectCanceled := pgconn.ConnectConfig(canceled, cfg)
	live := context.Background()
	past := time.Now().Add(-time.Millisecond)
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}

	tests := []struct {
		name string
		ctx  context.Context
		give error
		want bool
	}{
		{name: "nil error", ctx: live, give: nil, want: false},
		{name: "refused, live ctx", ctx: live, give: refused, want: true},
		{name: "bad conn, live ctx", ctx: live, give: driver.ErrBadConn, want: true},
		{name: "syntax error, live ctx", ctx: live, give: &pgconn.PgError{Code: "42601"}, want: false},
		{name: "connect error wrapping the caller's deadline", ctx: expired, give: connectTimeout, want: false},
		{name: "connect error wrapping the caller's cancel", ctx: canceled, give: connectCanceled, want: false},
		{name: "refused while the caller's ctx ran out", ctx: expired, give: refused, want: false},
		{name: "bad conn after the caller canceled", ctx: canceled, give: driver.ErrBadConn, want: false},
		{name: "connect deadline of its own (connect_timeout), live ctx", ctx: live, give: connectTimeout, want: true},
		{name: "dial timed out at the caller's deadline, before ctx's timer fired", ctx: timerLate{past}, give: connectTimeout, want: false},
		{name: "refused, deadline still ahead", ctx: timerLate{time.Now().Add(time.Hour)}, give: refused, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Blames(tt.ctx, tt.give); got != tt.want {
				t.Errorf("Blames(ctx err %v, %T %v) = %v, want %v", tt.ctx.Err(), tt.give, tt.give, got, tt.want)
			}
		})
	}
}

// timerLate is a context whose deadline may have passed while its Err is
// still nil, as a context.WithDeadline's is until its timer fires.
type timerLate struct{ deadline time.Time }

func (c timerLate) Deadline() (time.Time, bool) { return c.deadline, true }
func (timerLate) Done() <-chan struct{}         { return nil }
func (timerLate) Err() error                    { return nil }
func (timerLate) Value(any) any                 { return nil }

func TestIsTimeout(t *testing.T) {
	tests := []struct {
		name string
		give error
		want bool
	}{
		{name: "nil", give: nil, want: false},
		{name: "context.DeadlineExceeded", give: context.DeadlineExceeded, want: true},
		{name: "wrapped deadline", give: fmt.Errorf("probe: %w", context.DeadlineExceeded), want: true},
		{name: "os.ErrDeadlineExceeded", give: os.ErrDeadlineExceeded, want: true},
		{name: "net i/o timeout", give: &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, want: true},
		{name: "context.Canceled", give: context.Canceled, want: false},
		{name: "refused", give: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, want: false},
		{name: "io.EOF", give: io.EOF, want: false},
		{name: "pg syntax", give: &pgconn.PgError{Code: "42601"}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsTimeout(tt.give); got != tt.want {
				t.Errorf("IsTimeout(%v) = %v, want %v", tt.give, got, tt.want)
			}
		})
	}
}

// TestMySQLErrorType: AsMySQL knows the driver's error type by name; a
// rename or a change of its fields in a new driver version fails here.
func TestMySQLErrorType(t *testing.T) {
	typ := reflect.TypeOf(&mysql.MySQLError{}).Elem()
	if typ.PkgPath() != mysqlErrorPkg || typ.Name() != mysqlErrorName {
		t.Fatalf("the driver's error type is %s.%s, AsMySQL looks for %s.%s", typ.PkgPath(), typ.Name(), mysqlErrorPkg, mysqlErrorName)
	}
	if !strings.Contains(strings.ToLower(mysql.ErrInvalidConn.Error()), "invalid connection") {
		t.Fatalf("mysql.ErrInvalidConn reads %q, which connMessages does not match", mysql.ErrInvalidConn)
	}
}

func TestAsMySQL(t *testing.T) {
	denied := &mysql.MySQLError{Number: 1227, Message: "Access denied; you need (at least one of) the SLAVE MONITOR privilege(s)"}
	var typedNil *mysql.MySQLError
	for _, tc := range []struct {
		name string
		give error
		want MySQLError
		ok   bool
	}{
		{name: "bare", give: denied, want: MySQLError{1227, denied.Message}, ok: true},
		{name: "wrapped", give: fmt.Errorf("probe: %w", denied), want: MySQLError{1227, denied.Message}, ok: true},
		{name: "joined", give: errors.Join(io.EOF, fmt.Errorf("x: %w", &mysql.MySQLError{Number: 1146})), want: MySQLError{Number: 1146}, ok: true},
		{name: "first of two", give: fmt.Errorf("%w, then %w", &mysql.MySQLError{Number: 1062}, denied), want: MySQLError{Number: 1062}, ok: true},
		{name: "typed nil", give: typedNil, ok: false},
		{name: "text only", give: errors.New(denied.Error()), ok: false},
		{name: "postgres", give: &pgconn.PgError{Code: "42501"}, ok: false},
		{name: "nil", give: nil, ok: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := AsMySQL(tc.give)
			if got != tc.want || ok != tc.ok {
				t.Errorf("AsMySQL(%v) = %+v, %v; want %+v, %v", tc.give, got, ok, tc.want, tc.ok)
			}
			if tc.ok && !IsMySQL(tc.give, tc.want.Number) {
				t.Errorf("IsMySQL(%v, %d) = false", tc.give, tc.want.Number)
			}
			if IsMySQL(tc.give, 9999) {
				t.Errorf("IsMySQL(%v, 9999) = true", tc.give)
			}
		})
	}
}

func BenchmarkAsMySQL(b *testing.B) {
	err := fmt.Errorf("probe: %w", &mysql.MySQLError{Number: 1146})
	for b.Loop() {
		if !IsMySQL(err, 1146) {
			b.Fatal("not found")
		}
	}
}
