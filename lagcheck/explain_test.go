package lagcheck

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// The server messages below are the ones PostgreSQL 15 and MariaDB 10.11
// gave here to a user without the privilege (MySQL 8's 1227 names
// REPLICATION CLIENT instead).
func TestGrantFor(t *testing.T) {
	pgDenied := func(msg string) error { return &pgconn.PgError{Severity: "ERROR", Code: "42501", Message: msg} }
	myErr := func(n uint16, msg string) error { return &mysql.MySQLError{Number: n, Message: msg} }
	hb := &Heartbeat{Table: "ops.hb", ID: 1}
	hbCreate := &Heartbeat{Table: "rwsplit_heartbeat", ID: 1}
	hbSkip := &Heartbeat{Table: "rwsplit_heartbeat", ID: 1, SkipCreate: true}
	tests := []struct {
		name    string
		give    error
		replica bool
		hb      *Heartbeat
		want    string // "" for no privilege error
	}{
		{name: "pg function revoked", give: pgDenied("permission denied for function pg_last_wal_replay_lsn"), replica: true,
			want: "GRANT EXECUTE ON FUNCTION pg_last_wal_replay_lsn TO u"},
		{name: "pg primary function revoked", give: pgDenied("permission denied for function pg_current_wal_lsn"),
			want: "GRANT EXECUTE ON FUNCTION pg_current_wal_lsn TO u"},
		{name: "pg heartbeat write", give: pgDenied("permission denied for table hb"), hb: hb,
			want: "GRANT SELECT, INSERT, UPDATE ON ops.hb TO u"},
		{name: "pg heartbeat read", give: pgDenied("permission denied for table hb"), replica: true, hb: hb,
			want: "GRANT SELECT ON ops.hb TO u"},
		{name: "pg heartbeat create", give: fmt.Errorf("lagcheck: creating the heartbeat table: %w", pgDenied("permission denied for schema public")), hb: hbCreate,
			want: "GRANT CREATE ON SCHEMA public TO u, or create the heartbeat table yourself and set Heartbeat.SkipCreate"},
		{name: "pg schema usage", give: pgDenied("permission denied for schema ops"), hb: hbSkip,
			want: "GRANT USAGE ON SCHEMA ops TO u"},
		{name: "pg other 42501", give: pgDenied("keine Berechtigung"), replica: true,
			want: "GRANT the privilege the message below names TO u"},
		{name: "pg other error", give: &pgconn.PgError{Code: "42P01", Message: "relation does not exist"}},
		{name: "mariadb status", give: myErr(1227, "Access denied; you need (at least one of) the SUPER, SLAVE MONITOR privilege(s) for this operation"), replica: true,
			want: "GRANT SLAVE MONITOR ON *.* TO u"},
		{name: "mysql status", give: myErr(1227, "Access denied; you need (at least one of) the SUPER, REPLICATION CLIENT privilege(s) for this operation"), replica: true,
			want: "GRANT REPLICATION CLIENT ON *.* TO u"},
		{name: "1227 unparsed", give: myErr(1227, "Zugriff verweigert"), replica: true,
			want: "GRANT SLAVE MONITOR (MariaDB) or REPLICATION CLIENT (MySQL) ON *.* TO u"},
		{name: "mariadb heartbeat write", give: myErr(1142, "UPDATE command denied to user 'app'@'127.0.0.1' for table `test`.`rwsplit_heartbeat`"), hb: hbSkip,
			want: "GRANT SELECT, INSERT, UPDATE ON `test`.`rwsplit_heartbeat` TO u"},
		{name: "mariadb heartbeat where", give: myErr(1143, "SELECT command denied to user 'app'@'127.0.0.1' for column 'id' in table 'rwsplit_heartbeat'"), hb: hbSkip,
			want: "GRANT SELECT, INSERT, UPDATE ON rwsplit_heartbeat TO u"},
		{name: "mariadb heartbeat read", give: myErr(1142, "SELECT command denied to user 'probe'@'127.0.0.1' for table `test`.`rwsplit_heartbeat`"), replica: true, hb: hbSkip,
			want: "GRANT SELECT ON `test`.`rwsplit_heartbeat` TO u"},
		{name: "mysql heartbeat read", give: myErr(1142, "SELECT command denied to user 'probe'@'localhost' for table 'rwsplit_heartbeat'"), replica: true, hb: hbSkip,
			want: "GRANT SELECT ON rwsplit_heartbeat TO u"},
		{name: "mariadb heartbeat create", give: fmt.Errorf("lagcheck: creating the heartbeat table: %w", myErr(1142, "CREATE command denied to user 'app'@'127.0.0.1' for table `test`.`rwsplit_heartbeat`")), hb: hbCreate,
			want: "GRANT CREATE ON `test`.`rwsplit_heartbeat` TO u, or create the heartbeat table yourself and set Heartbeat.SkipCreate"},
		{name: "mariadb other error", give: myErr(1146, "Table 'test.rwsplit_heartbeat' doesn't exist"), replica: true},
		{name: "not a server error", give: context.DeadlineExceeded, replica: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fix := grantFor(tt.give, tt.replica, tt.hb)
			got := ""
			if fix != nil {
				got = fix("u")
			}
			if got != tt.want {
				t.Errorf("grantFor(%v) = %q, want %q", tt.give, got, tt.want)
			}
		})
	}
}

// TestExplainPrivilege: the error names the account the server matched,
// asked on the probe's own connection, written as a GRANT takes it.
func TestExplainPrivilege(t *testing.T) {
	tests := []struct {
		name     string
		give     error
		query    string
		user     string // "" : the query fails
		want     string
		wantWrap error
	}{
		{name: "mariadb account", give: &mysql.MySQLError{Number: 1227, Message: "Access denied; you need (at least one of) the SUPER, SLAVE MONITOR privilege(s) for this operation"},
			query: "SELECT CURRENT_USER()", user: "rwsplit_probe@%", want: "lagcheck: missing privilege: GRANT SLAVE MONITOR ON *.* TO 'rwsplit_probe'@'%': Error 1227: Access denied"},
		{name: "postgres role", give: &pgconn.PgError{Severity: "ERROR", Code: "42501", Message: "permission denied for function pg_last_wal_replay_lsn"},
			query: "SELECT quote_ident(current_user)", user: `"Probe"`, want: `lagcheck: missing privilege: GRANT EXECUTE ON FUNCTION pg_last_wal_replay_lsn TO "Probe": ERROR: permission denied`},
		{name: "user unknown", give: &pgconn.PgError{Code: "42501", Message: "permission denied for function pg_last_wal_replay_lsn"},
			query: "SELECT quote_ident(current_user)", want: "GRANT EXECUTE ON FUNCTION pg_last_wal_replay_lsn TO <the user in its DSN>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			exp := mock.ExpectQuery(tt.query)
			if tt.user != "" {
				exp.WillReturnRows(sqlmock.NewRows([]string{"u"}).AddRow(tt.user))
			} else {
				exp.WillReturnError(errors.New("connection reset"))
			}
			e := explain(nil, nil)
			got := e.privilege(context.Background(), db, tt.give, true)
			if !errors.Is(got, ErrPrivilege) || !errors.Is(got, tt.give) || !strings.Contains(got.Error(), tt.want) {
				t.Errorf("privilege(%v) = %v\nwant ErrPrivilege wrapping it, containing %q", tt.give, got, tt.want)
			}
		})
	}
}

// TestExplainRole: ErrNotReplica from a replica that an earlier probe saw
// replicate (passing, or with replication stopped) is ErrPromoted; from
// one never seen replicating it stays plain ErrNotReplica. Failures that
// say nothing of the role (a timeout) change nothing.
func TestExplainRole(t *testing.T) {
	notReplica := fmt.Errorf("%w: pg_is_in_recovery() is false", ErrNotReplica)
	tests := []struct {
		name         string
		give         []error // one replica's probe results, in order
		wantPromoted bool    // for the last
	}{
		{name: "never a replica", give: []error{notReplica}},
		{name: "never a replica, probed again", give: []error{notReplica, notReplica}},
		{name: "promoted", give: []error{nil, notReplica}, wantPromoted: true},
		{name: "stays promoted", give: []error{nil, notReplica, notReplica}, wantPromoted: true},
		{name: "stopped, then promoted", give: []error{ErrReplicationStopped, notReplica}, wantPromoted: true},
		{name: "down at first, then not a replica", give: []error{context.DeadlineExceeded, notReplica}},
		{name: "promoted while down", give: []error{nil, context.DeadlineExceeded, notReplica}, wantPromoted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := explain(nil, nil)
			var got error
			for _, err := range tt.give {
				got = e.role(3, err)
			}
			if !errors.Is(got, ErrNotReplica) || errors.Is(got, ErrPromoted) != tt.wantPromoted {
				t.Fatalf("last error %v: want ErrNotReplica, ErrPromoted %v", got, tt.wantPromoted)
			}
			if other := e.role(4, notReplica); errors.Is(other, ErrPromoted) {
				t.Errorf("another replica's ErrNotReplica is %v, want it not promoted", other)
			}
		})
	}
}
