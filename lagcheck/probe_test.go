package lagcheck

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// mysql8StatusColumns are the columns of MySQL 8.0.22+'s SHOW REPLICA
// STATUS, in order, as documented in the MySQL 8.0 reference manual.
var mysql8StatusColumns = strings.Fields(`Replica_IO_State Source_Host Source_User Source_Port Connect_Retry
	Source_Log_File Read_Source_Log_Pos Relay_Log_File Relay_Log_Pos Relay_Source_Log_File
	Replica_IO_Running Replica_SQL_Running Replicate_Do_DB Replicate_Ignore_DB Replicate_Do_Table
	Replicate_Ignore_Table Replicate_Wild_Do_Table Replicate_Wild_Ignore_Table Last_Errno Last_Error
	Skip_Counter Exec_Source_Log_Pos Relay_Log_Space Until_Condition Until_Log_File Until_Log_Pos
	Source_SSL_Allowed Source_SSL_CA_File Source_SSL_CA_Path Source_SSL_Cert Source_SSL_Cipher
	Source_SSL_Key Seconds_Behind_Source Source_SSL_Verify_Server_Cert Last_IO_Errno Last_IO_Error
	Last_SQL_Errno Last_SQL_Error Replicate_Ignore_Server_Ids Source_Server_Id Source_UUID
	Source_Info_File SQL_Delay SQL_Remaining_Delay Replica_SQL_Running_State Source_Retry_Count
	Source_Bind Last_IO_Error_Timestamp Last_SQL_Error_Timestamp Source_SSL_Crl Source_SSL_Crlpath
	Retrieved_Gtid_Set Executed_Gtid_Set Auto_Position Replicate_Rewrite_DB Channel_Name
	Source_TLS_Version Source_public_key_path Get_Source_public_key Network_Namespace`)

// mysql57StatusColumns: SHOW SLAVE STATUS before 8.0.22 (a subset in
// order; the probe finds columns by name).
var mysql57StatusColumns = strings.Fields(`Slave_IO_State Master_Host Master_User Master_Port
	Slave_IO_Running Slave_SQL_Running Seconds_Behind_Master Last_IO_Error Last_SQL_Error Channel_Name`)

// mariaStatusColumns: MariaDB 10.11's SHOW ALL SLAVES STATUS (a subset in
// order; the probe finds columns by name).
var mariaStatusColumns = strings.Fields(`Connection_name Slave_SQL_State Slave_IO_State Master_Host
	Master_User Master_Port Slave_IO_Running Slave_SQL_Running Seconds_Behind_Master Last_IO_Errno
	Last_IO_Error Last_SQL_Errno Last_SQL_Error Using_Gtid Gtid_IO_Pos Gtid_Slave_Pos`)

// statusRow returns a row for cols with the named values set and every
// other column "".
func statusRow(cols []string, set map[string]driver.Value) []driver.Value {
	row := make([]driver.Value, len(cols))
	for i, c := range cols {
		row[i] = ""
		if v, ok := set[c]; ok {
			row[i] = v
		}
	}
	return row
}

// mysqlReplicaRow is the answer of mysqlReplicaSQL from server_id 2.
func mysqlReplicaRow(set string, mode driver.Value) *sqlmock.Rows {
	return sqlmock.NewRows([]string{"@@GLOBAL.gtid_executed", "@@GLOBAL.gtid_mode", "@@hostname", "@@port", "@@server_id"}).
		AddRow(set, mode, "db-2", 3306, 2)
}

func newMock(t *testing.T) (*sql.DB, sqlmock.Sqlmock) {
	t.Helper()
	db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(starMatcher))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := mock.ExpectationsWereMet(); err != nil {
			t.Error(err)
		}
		db.Close()
	})
	return db, mock
}

// starMatcher matches SQL exactly, except that {n} in the expected SQL
// stands for a number (the heartbeat's timestamp).
var starMatcher = sqlmock.QueryMatcherFunc(func(expected, actual string) error {
	parts := strings.Split(expected, "{n}")
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	if !regexp.MustCompile("^" + strings.Join(parts, "-?[0-9]+") + "$").MatchString(actual) {
		return fmt.Errorf("SQL %q does not match %q", actual, expected)
	}
	return nil
})

const mysqlPrimaryGTID = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-100:102-110,\n8a94f357-aab4-11df-86ab-c80aa9429562:1-5"

func TestMySQLProbePrimary(t *testing.T) {
	db, mock := newMock(t)
	mock.ExpectQuery(mysqlPrimarySQL).WillReturnRows(sqlmock.NewRows([]string{"@@GLOBAL.gtid_executed", "@@GLOBAL.gtid_mode"}).AddRow(mysqlPrimaryGTID, "ON"))
	mock.ExpectQuery(mysqlPrimarySQL).WillReturnRows(sqlmock.NewRows([]string{"@@GLOBAL.gtid_executed", "@@GLOBAL.gtid_mode"}).AddRow("", "OFF"))
	p := MySQLProbe()
	pos, err := p.Primary(context.Background(), db)
	want := "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-100:102-110,8a94f357-aab4-11df-86ab-c80aa9429562:1-5"
	if err != nil || pos.Kind() != MySQLGTID || pos.String() != want {
		t.Errorf("Primary = %q, %v; want %q", pos, err, want)
	}
	// Without GTIDs the round's sample has no position and no error (the
	// replicas are measured by Seconds_Behind_Source); a causal mark gets
	// ErrNoPosition.
	if pos, err := p.Primary(context.Background(), db); err != nil || !pos.IsZero() {
		t.Errorf("Primary with gtid_mode OFF = %q, %v; want the zero Position, no error", pos, err)
	}
	mock.ExpectQuery(mysqlPrimarySQL).WillReturnRows(sqlmock.NewRows([]string{"@@GLOBAL.gtid_executed", "@@GLOBAL.gtid_mode"}).AddRow("", "OFF_PERMISSIVE"))
	if _, err := p.(commitPositioner).commitPosition(context.Background(), db); !errors.Is(err, ErrNoPosition) || !strings.Contains(err.Error(), "gtid_mode=OFF_PERMISSIVE") {
		t.Errorf("commitPosition with gtid_mode OFF_PERMISSIVE = %v, want ErrNoPosition", err)
	}
}

func TestMySQLProbeReplica(t *testing.T) {
	primary, err := ParseMySQLGTIDSet(mysqlPrimaryGTID)
	if err != nil {
		t.Fatal(err)
	}
	running := map[string]driver.Value{"Replica_IO_Running": "Yes", "Replica_SQL_Running": "Yes", "Seconds_Behind_Source": "0", "Source_Host": "10.0.0.1"}
	with := func(kv ...any) map[string]driver.Value {
		m := map[string]driver.Value{}
		for k, v := range running {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name       string
		gtid       string
		rows       []map[string]driver.Value
		mode       string // @@GLOBAL.gtid_mode; "" means ON
		statusErr  error
		wantErr    error  // errors.Is
		wantText   string // in the error
		wantBehind int64  // -1: no position
		wantAtMost time.Duration
		wantFallbk string // in Replay.Fallback
	}{
		{name: "running, caught up", gtid: mysqlPrimaryGTID, rows: []map[string]driver.Value{running}, wantBehind: 0},
		{name: "running, behind", gtid: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-90,\n8a94f357-aab4-11df-86ab-c80aa9429562:1-5", rows: []map[string]driver.Value{running}, wantBehind: 10 + 9},
		{name: "replica has its own extra gtids", gtid: mysqlPrimaryGTID + ",\nb0000000-0000-0000-0000-000000000001:1-3", rows: []map[string]driver.Value{running}, wantBehind: 0},
		{name: "sql thread stopped", gtid: mysqlPrimaryGTID, rows: []map[string]driver.Value{with("Replica_SQL_Running", "No", "Seconds_Behind_Source", nil, "Last_SQL_Error", "Error 1062 on apply")},
			wantErr: ErrReplicationStopped, wantText: "Replica_SQL_Running=No: Error 1062 on apply", wantBehind: 0},
		{name: "io thread connecting", gtid: mysqlPrimaryGTID, rows: []map[string]driver.Value{with("Replica_IO_Running", "Connecting", "Seconds_Behind_Source", nil, "Last_IO_Error", "can't connect")},
			wantErr: ErrNotReceiving, wantText: "Replica_IO_Running=Connecting", wantBehind: 0},
		{name: "NULL seconds behind is lagging, never 0", gtid: mysqlPrimaryGTID, rows: []map[string]driver.Value{with("Seconds_Behind_Source", nil)},
			wantErr: ErrReplicationStopped, wantText: "Seconds_Behind_Source is NULL", wantBehind: 0},
		{name: "not a replica", gtid: mysqlPrimaryGTID, rows: nil, wantErr: ErrNotReplica, wantBehind: 0},
		{name: "second channel stopped", gtid: mysqlPrimaryGTID,
			rows:    []map[string]driver.Value{with("Channel_Name", "a"), with("Channel_Name", "b", "Replica_SQL_Running", "No")},
			wantErr: ErrReplicationStopped, wantText: `(connection "b")`, wantBehind: 0},
		{name: "status query fails", gtid: mysqlPrimaryGTID, statusErr: io.ErrUnexpectedEOF, wantErr: io.ErrUnexpectedEOF, wantBehind: 0},
		{name: "no GTIDs: Seconds_Behind_Source 0 bounds the lag by 1s", gtid: "", mode: "OFF", rows: []map[string]driver.Value{running},
			wantBehind: -1, wantAtMost: time.Second, wantFallbk: "no GTIDs (gtid_mode=OFF): lag from Seconds_Behind_Source"},
		{name: "no GTIDs: 3 seconds behind", gtid: "", mode: "OFF_PERMISSIVE", rows: []map[string]driver.Value{with("Seconds_Behind_Source", "3")},
			wantBehind: -1, wantAtMost: 4 * time.Second, wantFallbk: "gtid_mode=OFF_PERMISSIVE"},
		{name: "no GTIDs: the largest of the channels", gtid: "", mode: "OFF",
			rows:       []map[string]driver.Value{with("Channel_Name", "a", "Seconds_Behind_Source", "2"), with("Channel_Name", "b", "Seconds_Behind_Source", "7")},
			wantBehind: -1, wantAtMost: 8 * time.Second, wantFallbk: "Seconds_Behind_Source"},
		{name: "no GTIDs: NULL is lagging, never 0", gtid: "", mode: "OFF", rows: []map[string]driver.Value{with("Seconds_Behind_Source", nil)},
			wantErr: ErrReplicationStopped, wantText: "Seconds_Behind_Source is NULL", wantBehind: -1, wantFallbk: "gtid_mode=OFF"},
		{name: "no GTIDs: IO thread down", gtid: "", mode: "OFF", rows: []map[string]driver.Value{with("Replica_IO_Running", "No")},
			wantErr: ErrNotReceiving, wantBehind: -1, wantAtMost: 0, wantFallbk: "gtid_mode=OFF"}, // it reads 0 while disconnected: no bound
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, mock := newMock(t)
			mode := tt.mode
			if mode == "" {
				mode = "ON"
			}
			mock.ExpectQuery(mysqlReplicaSQL).WillReturnRows(mysqlReplicaRow(tt.gtid, mode))
			q := mock.ExpectQuery(mysqlStatusSQL)
			if tt.statusErr != nil {
				q.WillReturnError(tt.statusErr)
			} else {
				rows := sqlmock.NewRows(mysql8StatusColumns)
				for _, r := range tt.rows {
					rows.AddRow(statusRow(mysql8StatusColumns, r)...)
				}
				q.WillReturnRows(rows)
			}
			rep, err := MySQLProbe().Replica(context.Background(), db, primary)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) || !strings.Contains(errText(err), tt.wantText) {
				t.Errorf("Replica error = %v, want %v containing %q", err, tt.wantErr, tt.wantText)
			}
			checkReplay(t, rep, primary, tt.wantBehind, tt.wantAtMost, tt.wantFallbk)
			if got := rep.Server.String(); got != "db-2:3306 server_id=2" {
				t.Errorf("Server %q, want the server_id 2 of the first statement", got)
			}
		})
	}
}

// checkReplay checks a probe's Replay: how far behind primary its position
// is (-1: no position, so Covers is false), its own upper bound on the lag
// (0: none) and its Fallback (substring; "": none).
func checkReplay(t *testing.T, rep Replay, primary Position, wantBehind int64, wantAtMost time.Duration, wantFallback string) {
	t.Helper()
	if wantBehind < 0 {
		if !rep.Position.IsZero() {
			t.Errorf("Position = %q, want none", rep.Position)
		}
	} else if behind, ok := rep.Position.Behind(primary); !ok || behind != wantBehind {
		t.Errorf("Behind = %d, %v; want %d", behind, ok, wantBehind)
	}
	if rep.LagAtMost != wantAtMost || rep.LagAtMostKnown != (wantAtMost > 0) {
		t.Errorf("LagAtMost = %v, %v; want %v", rep.LagAtMost, rep.LagAtMostKnown, wantAtMost)
	}
	if wantFallback == "" && rep.Fallback != "" || !strings.Contains(rep.Fallback, wantFallback) {
		t.Errorf("Fallback = %q, want %q", rep.Fallback, wantFallback)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestMySQLProbeOldSyntax: a server before 8.0.22 rejects SHOW REPLICA
// STATUS; the probe falls back to SHOW SLAVE STATUS and remembers.
func TestMySQLProbeOldSyntax(t *testing.T) {
	db, mock := newMock(t)
	running := statusRow(mysql57StatusColumns, map[string]driver.Value{"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": "3"})
	mock.ExpectQuery(mysqlReplicaSQL).WillReturnRows(mysqlReplicaRow(mysqlPrimaryGTID, "ON"))
	mock.ExpectQuery(mysqlStatusSQL).WillReturnError(&mysql.MySQLError{Number: 1064, Message: "You have an error in your SQL syntax"})
	mock.ExpectQuery(mysqlOldStatusSQL).WillReturnRows(sqlmock.NewRows(mysql57StatusColumns).AddRow(running...))
	mock.ExpectQuery(mysqlReplicaSQL).WillReturnRows(mysqlReplicaRow(mysqlPrimaryGTID, "ON"))
	mock.ExpectQuery(mysqlOldStatusSQL).WillReturnRows(sqlmock.NewRows(mysql57StatusColumns).AddRow(running...))
	p := MySQLProbe()
	for i := range 2 {
		if _, err := p.Replica(context.Background(), db, Position{}); err != nil {
			t.Errorf("Replica #%d: %v", i, err)
		}
	}
}

func TestMariaDBProbePrimary(t *testing.T) {
	db, mock := newMock(t)
	cols := []string{"@@GLOBAL.gtid_binlog_pos", "@@GLOBAL.log_bin"}
	mock.ExpectQuery(mariaPrimarySQL).WillReturnRows(sqlmock.NewRows(cols).AddRow("1-2-7,0-1-100", "1"))
	mock.ExpectQuery(mariaPrimarySQL).WillReturnRows(sqlmock.NewRows(cols).AddRow("", "1"))
	mock.ExpectQuery(mariaPrimarySQL).WillReturnRows(sqlmock.NewRows(cols).AddRow("", "0"))
	p := MariaDBProbe()
	if pos, err := p.Primary(context.Background(), db); err != nil || pos.String() != "0-1-100,1-2-7" {
		t.Errorf("Primary = %q, %v", pos, err)
	}
	// A primary that has logged nothing yet: the empty position, which
	// every replica covers.
	if pos, err := p.Primary(context.Background(), db); err != nil || pos.Kind() != MariaDBGTID || !mustParse(t, "0-1-1").Covers(pos) {
		t.Errorf("Primary (empty) = %q %v, %v", pos, pos.Kind(), err)
	}
	if _, err := p.Primary(context.Background(), db); err == nil || !strings.Contains(err.Error(), "log_bin off") {
		t.Errorf("Primary with log_bin off = %v", err)
	}
}

func TestMariaDBProbeReplica(t *testing.T) {
	primary := mustParse(t, "0-1-100,1-2-7")
	running := map[string]driver.Value{"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": "0"}
	tests := []struct {
		name       string
		slavePos   string
		rows       []map[string]driver.Value
		wantErr    error
		wantText   string
		wantBehind int64 // -1: no position
		wantAtMost time.Duration
		wantFallbk string
	}{
		{name: "running, caught up", slavePos: "0-1-100,1-2-7", rows: []map[string]driver.Value{running}},
		{name: "running by GTID (Using_Gtid=Slave_Pos)", slavePos: "0-1-100,1-2-7",
			rows: []map[string]driver.Value{{"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": "0", "Using_Gtid": "Slave_Pos"}}},
		{name: "MASTER_USE_GTID=no: Seconds_Behind_Master, no position", slavePos: "0-1-100,1-2-7",
			rows:       []map[string]driver.Value{{"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": "2", "Using_Gtid": "No"}},
			wantBehind: -1, wantAtMost: 3 * time.Second, wantFallbk: "no GTIDs (Using_Gtid=No): lag from Seconds_Behind_Master"},
		{name: "empty gtid_slave_pos: Seconds_Behind_Master", slavePos: "",
			rows:       []map[string]driver.Value{running},
			wantBehind: -1, wantAtMost: time.Second, wantFallbk: "@@gtid_slave_pos is empty"},
		{name: "empty gtid_slave_pos of a GTID replica that applied nothing: an empty set, no fallback", slavePos: "",
			rows:       []map[string]driver.Value{{"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": "0", "Using_Gtid": "Slave_Pos"}},
			wantBehind: 100 + 7},
		{name: "MASTER_USE_GTID=no on one connection of two", slavePos: "0-1-100,1-2-7",
			rows: []map[string]driver.Value{
				{"Connection_name": "", "Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": "0", "Using_Gtid": "Slave_Pos"},
				{"Connection_name": "east", "Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": "5", "Using_Gtid": "No"},
			},
			wantBehind: -1, wantAtMost: 6 * time.Second, wantFallbk: `Using_Gtid=No (connection "east")`},
		{name: "MASTER_USE_GTID=no, NULL seconds behind is lagging", slavePos: "",
			rows:    []map[string]driver.Value{{"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": nil, "Using_Gtid": "No"}},
			wantErr: ErrReplicationStopped, wantText: "Seconds_Behind_Master is NULL", wantBehind: -1, wantFallbk: "Using_Gtid=No"},
		{name: "running, behind", slavePos: "0-1-97,1-2-7", rows: []map[string]driver.Value{running}, wantBehind: 3},
		{name: "sql thread stopped: NULL seconds behind", slavePos: "0-1-97,1-2-7",
			rows:    []map[string]driver.Value{{"Slave_IO_Running": "Yes", "Slave_SQL_Running": "No", "Seconds_Behind_Master": nil}},
			wantErr: ErrReplicationStopped, wantText: "Slave_SQL_Running=No", wantBehind: 3},
		{name: "NULL seconds behind with threads running is lagging", slavePos: "0-1-100,1-2-7",
			rows:    []map[string]driver.Value{{"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": nil}},
			wantErr: ErrReplicationStopped, wantText: "Seconds_Behind_Master is NULL"},
		{name: "io thread stopped", slavePos: "0-1-100,1-2-7",
			rows:    []map[string]driver.Value{{"Slave_IO_Running": "No", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": nil, "Last_IO_Error": "lost connection"}},
			wantErr: ErrNotReceiving, wantText: "Slave_IO_Running=No: lost connection"},
		{name: "not a replica", slavePos: "", rows: nil, wantErr: ErrNotReplica, wantBehind: -1, wantFallbk: "@@gtid_slave_pos is empty"},
		{name: "multi-source, one connection stopped", slavePos: "0-1-100,1-2-7",
			rows: []map[string]driver.Value{
				{"Connection_name": "", "Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": "0"},
				{"Connection_name": "east", "Slave_IO_Running": "Yes", "Slave_SQL_Running": "No", "Seconds_Behind_Master": nil},
			},
			wantErr: ErrReplicationStopped, wantText: `(connection "east")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, mock := newMock(t)
			mock.ExpectQuery(mariaReplicaSQL).WillReturnRows(sqlmock.NewRows([]string{"@@GLOBAL.gtid_slave_pos", "@@hostname", "@@port", "@@server_id"}).AddRow(tt.slavePos, "db-2", 3306, 2))
			rows := sqlmock.NewRows(mariaStatusColumns)
			for _, r := range tt.rows {
				rows.AddRow(statusRow(mariaStatusColumns, r)...)
			}
			mock.ExpectQuery(mariaStatusSQL).WillReturnRows(rows)
			rep, err := MariaDBProbe().Replica(context.Background(), db, primary)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) || !strings.Contains(errText(err), tt.wantText) {
				t.Errorf("Replica error = %v, want %v containing %q", err, tt.wantErr, tt.wantText)
			}
			checkReplay(t, rep, primary, tt.wantBehind, tt.wantAtMost, tt.wantFallbk)
			if got := rep.Server.String(); got != "db-2:3306 server_id=2" {
				t.Errorf("Server %q, want the server_id 2 of the first statement", got)
			}
		})
	}
}

// TestMySQLDialectDetects: gorm's "mysql" dialect covers MariaDB and
// MySQL; the first probe asks the server which.
func TestMySQLDialectDetects(t *testing.T) {
	tests := []struct {
		name    string
		version string
		wantSQL string
		cols    []string
		value   string
	}{
		{name: "mariadb", version: "10.11.6-MariaDB-0+deb12u1-log", wantSQL: mariaPrimarySQL, cols: []string{"pos", "log_bin"}, value: "0-1-5"},
		{name: "mysql", version: "8.0.36", wantSQL: mysqlPrimarySQL, cols: []string{"set", "mode"}, value: uuidA + ":1-5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, mock := newMock(t)
			mock.ExpectQuery("SELECT VERSION()").WillReturnError(mysql.ErrInvalidConn) // a failed detection is retried
			mock.ExpectQuery("SELECT VERSION()").WillReturnRows(sqlmock.NewRows([]string{"VERSION()"}).AddRow(tt.version))
			second := "1"
			if tt.name == "mysql" {
				second = "ON"
			}
			mock.ExpectQuery(tt.wantSQL).WillReturnRows(sqlmock.NewRows(tt.cols).AddRow(tt.value, second))
			mock.ExpectQuery(tt.wantSQL).WillReturnRows(sqlmock.NewRows(tt.cols).AddRow(tt.value, second))
			p := &mysqlAuto{}
			if _, err := p.Primary(context.Background(), db); !errors.Is(err, mysql.ErrInvalidConn) {
				t.Fatalf("Primary with the server down = %v", err)
			}
			for range 2 {
				if pos, err := p.Primary(context.Background(), db); err != nil || pos.String() != tt.value {
					t.Fatalf("Primary = %q, %v", pos, err)
				}
			}
		})
	}
}

func TestPostgresProbe(t *testing.T) {
	cols := []string{"pg_is_in_recovery", "pg_last_wal_replay_lsn", "int8", "exists", "host", "coalesce", "int8"}
	const started = int64(1796000000123456) // pg_postmaster_start_time(), microseconds
	at := func(host any) []driver.Value { return []driver.Value{host, int64(5432), started} }
	const server = "10.0.0.7:5432 (started 2026-11-30T00:53:20.123456Z)"
	tests := []struct {
		name       string
		row        []driver.Value // the first four columns; the identity's follow
		id         []driver.Value
		wantPos    string
		wantLag    time.Duration
		wantKnown  bool
		wantErr    error
		wantServer string

		wantDisconnected bool
	}{
		{name: "replica", row: []driver.Value{true, "16/B374D848", int64(1500), true}, id: at("10.0.0.7"), wantPos: "16/B374D848", wantLag: 1500 * time.Microsecond, wantKnown: true,
			wantServer: server},
		{name: "over a Unix socket the address is local", row: []driver.Value{true, "16/B374D848", int64(1500), true}, id: at(nil), wantPos: "16/B374D848", wantLag: 1500 * time.Microsecond, wantKnown: true,
			wantServer: "local:5432 (started 2026-11-30T00:53:20.123456Z)"},
		{name: "IPv6", row: []driver.Value{true, "16/B374D848", int64(1500), true}, id: at("fd00::7"), wantPos: "16/B374D848", wantLag: 1500 * time.Microsecond, wantKnown: true,
			wantServer: "[fd00::7]:5432 (started 2026-11-30T00:53:20.123456Z)"},
		{name: "nothing replayed since start: no timestamp bound", row: []driver.Value{true, "0/3000060", nil, true}, id: at("10.0.0.7"), wantPos: "0/3000060",
			wantServer: server},
		{name: "clock skew never gives a negative bound", row: []driver.Value{true, "0/3000060", int64(-300), true}, id: at("10.0.0.7"), wantPos: "0/3000060", wantLag: 0, wantKnown: true,
			wantServer: server},
		{name: "promoted: the Replay still names the server", row: []driver.Value{false, "0/3000060", nil, false}, id: at("10.0.0.7"), wantPos: "0/3000060", wantErr: ErrNotReplica,
			wantServer: server},
		{name: "no WAL receiver: disconnected", row: []driver.Value{true, "0/3000060", int64(1500), false}, id: at("10.0.0.7"), wantPos: "0/3000060", wantLag: 1500 * time.Microsecond, wantKnown: true, wantDisconnected: true,
			wantServer: server},
		{name: "NULL replay position is lagging", row: []driver.Value{true, nil, nil, true}, id: at("10.0.0.7"), wantErr: ErrReplicationStopped,
			wantServer: server},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, mock := newMock(t)
			mock.ExpectQuery(pgReplicaSQL).WillReturnRows(sqlmock.NewRows(cols).AddRow(append(tt.row, tt.id...)...))
			rep, err := PostgresProbe().Replica(context.Background(), db, Position{})
			if !errors.Is(err, tt.wantErr) || rep.Position.String() != tt.wantPos || rep.LagAtMost != tt.wantLag || rep.LagAtMostKnown != tt.wantKnown || rep.Disconnected != tt.wantDisconnected {
				t.Errorf("Replica = %+v, %v; want %s %v %v, %v", rep, err, tt.wantPos, tt.wantLag, tt.wantKnown, tt.wantErr)
			}
			if got := rep.Server.String(); got != tt.wantServer {
				t.Errorf("Server %q, want %q", got, tt.wantServer)
			}
		})
	}
	db, mock := newMock(t)
	mock.ExpectQuery(pgPrimarySQL).WillReturnRows(sqlmock.NewRows([]string{"pg_current_wal_lsn"}).AddRow("16/B374D848"))
	if pos, err := PostgresProbe().Primary(context.Background(), db); err != nil || pos.String() != "16/B374D848" {
		t.Errorf("Primary = %q, %v", pos, err)
	}
}

func TestHeartbeatProbe(t *testing.T) {
	db, mock := newMock(t)
	mock.MatchExpectationsInOrder(true)
	p := mustHeartbeat(t, Heartbeat{Table: "ops.hb", ID: 7})

	// Before any write, a replica without the row tells nothing.
	mock.ExpectQuery("SELECT ts FROM ops.hb WHERE id = 7").WillReturnError(sql.ErrNoRows)
	if rep, err := p.Replica(context.Background(), db, Position{}); err != nil || rep.LagAtMostKnown || rep.LagAtLeast != 0 || !rep.Position.IsZero() {
		t.Errorf("Replica before any write = %+v, %v", rep, err)
	}

	// First round: create, update (no row yet), insert.
	mock.ExpectExec("CREATE TABLE IF NOT EXISTS ops.hb (id BIGINT NOT NULL PRIMARY KEY, ts BIGINT NOT NULL)").WillReturnResult(sqlmock.NewResult(0, 0))
	expectUpdate(mock, "ops.hb", 7).WillReturnResult(sqlmock.NewResult(0, 0))
	mock.ExpectExec("INSERT INTO ops.hb (id, ts) VALUES (7, {n})").WillReturnResult(sqlmock.NewResult(0, 1))
	// Second round: the row exists.
	expectUpdate(mock, "ops.hb", 7).WillReturnResult(sqlmock.NewResult(0, 1))
	for i := range 2 {
		if pos, err := p.Primary(context.Background(), db); err != nil || !pos.IsZero() {
			t.Fatalf("Primary #%d = %v, %v", i, pos, err)
		}
	}

	// A replica with a row written 300ms ago.
	ts := time.Now().Add(-300 * time.Millisecond).UnixMicro()
	mock.ExpectQuery("SELECT ts FROM ops.hb WHERE id = 7").WillReturnRows(sqlmock.NewRows([]string{"ts"}).AddRow(ts))
	rep, err := p.Replica(context.Background(), db, Position{})
	if err != nil || !rep.LagAtMostKnown || rep.LagAtMost < 300*time.Millisecond || rep.LagAtMost > 5*time.Second {
		t.Errorf("Replica = %+v, %v; want a bound of about 300ms", rep, err)
	}
	// A replica that has not replayed the table yet: lag unknown, at
	// least the time since the first write.
	mock.ExpectQuery("SELECT ts FROM ops.hb WHERE id = 7").WillReturnError(&pgconn.PgError{Code: "42P01", Message: `relation "ops.hb" does not exist`})
	if rep, err := p.Replica(context.Background(), db, Position{}); err != nil || rep.LagAtMostKnown || rep.LagAtLeast < 0 {
		t.Errorf("Replica without the table = %+v, %v", rep, err)
	}
	// Other errors are the probe's.
	mock.ExpectQuery("SELECT ts FROM ops.hb WHERE id = 7").WillReturnError(io.ErrUnexpectedEOF)
	if _, err := p.Replica(context.Background(), db, Position{}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Replica on a bad connection = %v", err)
	}
}

func TestHeartbeatSkipCreateAndRace(t *testing.T) {
	db, mock := newMock(t)
	mock.MatchExpectationsInOrder(true)
	p := mustHeartbeat(t, Heartbeat{SkipCreate: true})
	expectUpdate(mock, "rwsplit_heartbeat", 1).WillReturnResult(sqlmock.NewResult(0, 0))
	// Another writer inserted the row between our UPDATE and INSERT.
	mock.ExpectExec("INSERT INTO rwsplit_heartbeat (id, ts) VALUES (1, {n})").WillReturnError(&mysql.MySQLError{Number: 1062, Message: "Duplicate entry"})
	if _, err := p.Primary(context.Background(), db); err != nil {
		t.Errorf("Primary = %v", err)
	}
}

func mustHeartbeat(t testing.TB, h Heartbeat) Probe {
	t.Helper()
	p, err := HeartbeatProbe(h)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHeartbeatProbeErrors(t *testing.T) {
	tests := []struct {
		name string
		give Heartbeat
		want string
	}{
		{name: "injection", give: Heartbeat{Table: "hb; DROP TABLE users"}, want: `Heartbeat.Table "hb; DROP TABLE users"`},
		{name: "three parts", give: Heartbeat{Table: "a.b.c"}, want: `Heartbeat.Table "a.b.c"`},
		{name: "read-only with a row to write", give: Heartbeat{ReadOnly: true, ID: 2}, want: "Heartbeat.ID 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := HeartbeatProbe(tt.give)
			if p != nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("HeartbeatProbe() = %v, %v; want ErrConfig containing %q", p, err, tt.want)
			}
		})
	}
}

func expectUpdate(mock sqlmock.Sqlmock, table string, id int) *sqlmock.ExpectedExec {
	return mock.ExpectExec(fmt.Sprintf("UPDATE %s SET ts = {n} WHERE id = %d", table, id))
}

// TestCheckerWithoutGTIDs: MySQL with gtid_mode=OFF. The replica is
// measured by Seconds_Behind_Source, Status says so, its lag is known and
// bounded by a second, and Covers is false, so causal reads go to the
// primary; CommitPosition fails with ErrNoPosition.
func TestCheckerWithoutGTIDs(t *testing.T) {
	primary, pmock := newMock(t)
	replica, rmock := newMock(t)
	pmock.ExpectQuery(mysqlPrimarySQL).WillReturnRows(sqlmock.NewRows([]string{"@@GLOBAL.gtid_executed", "@@GLOBAL.gtid_mode"}).AddRow("", "OFF"))
	rmock.ExpectQuery(mysqlReplicaSQL).WillReturnRows(mysqlReplicaRow("", "OFF"))
	rmock.ExpectQuery(mysqlStatusSQL).WillReturnRows(sqlmock.NewRows(mysql8StatusColumns).AddRow(statusRow(mysql8StatusColumns,
		map[string]driver.Value{"Replica_IO_Running": "Yes", "Replica_SQL_Running": "Yes", "Seconds_Behind_Source": "0"})...))
	pmock.ExpectQuery("SELECT VERSION()").WillReturnRows(sqlmock.NewRows([]string{"VERSION()"}).AddRow("8.0.36")) // CommitPosition's dialect detection
	pmock.ExpectQuery(mysqlPrimarySQL).WillReturnRows(sqlmock.NewRows([]string{"@@GLOBAL.gtid_executed", "@@GLOBAL.gtid_mode"}).AddRow("", "OFF"))

	// One round, in Start; the next would come an hour later.
	c, err := New(Config{Interval: time.Hour, MaxLag: 2 * time.Hour, Probe: MySQLProbe()}, "mysql", primary, []Target{{Name: "r", DB: replica}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Start(context.Background())

	st := c.Status()[0]
	// 1s, and the probe's own duration: the bound held when the server
	// answered, counted from the probe's start.
	if st.State != Healthy || !st.LagKnown || st.Lag > time.Second+100*time.Millisecond || st.LastErr != nil || st.PrimaryErr != nil {
		t.Errorf("Status = %+v; want healthy, lag known and at most 1s (and the probe's time), no error", st)
	}
	if !strings.Contains(st.Fallback, "Seconds_Behind_Source") || !st.ReplayPosition.IsZero() {
		t.Errorf("Status.Fallback = %q, ReplayPosition %q; want the fallback named, no position", st.Fallback, st.ReplayPosition)
	}
	if lag, ok := c.LagNow(0); !ok || lag > 2*time.Second {
		t.Errorf("LagNow = %v, %v; want known, about 1s", lag, ok)
	}
	for _, p := range []Position{mustParseMySQL(t, uuidA+":1-5"), mustParse(t, "0-1-1"), LSNPosition(1)} {
		if c.Covers(0, p) {
			t.Errorf("Covers(%q) = true without positions", p)
		}
	}
	if _, err := c.CommitPosition(context.Background(), nil); !errors.Is(err, ErrNoPosition) {
		t.Errorf("CommitPosition = %v, want ErrNoPosition", err)
	}
}

func mustParseMySQL(t *testing.T, s string) Position {
	t.Helper()
	p, err := ParseMySQLGTIDSet(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
