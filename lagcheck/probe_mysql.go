package lagcheck

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/go-sql-driver/mysql"
)

// MariaDB and MySQL probe queries.
const (
	mariaPrimarySQL = `SELECT @@GLOBAL.gtid_binlog_pos, @@GLOBAL.log_bin`
	mariaReplicaSQL = `SELECT @@GLOBAL.gtid_slave_pos`
	mariaStatusSQL  = `SHOW ALL SLAVES STATUS`

	mysqlPrimarySQL     = `SELECT @@GLOBAL.gtid_executed, @@GLOBAL.gtid_mode`
	mysqlReplicaSQL     = `SELECT @@GLOBAL.gtid_executed`
	mysqlStatusSQL      = `SHOW REPLICA STATUS`
	mysqlOldStatusSQL   = `SHOW SLAVE STATUS`
	mysqlSyntaxErrorNum = 1064
)

// MariaDBProbe returns the probe for MariaDB replication with GTIDs: it
// compares the primary's @@gtid_binlog_pos (log_bin on) with a replica's
// @@gtid_slave_pos; Reading.Behind counts transactions. A replica whose
// SQL thread is stopped fails with ErrReplicationStopped, one whose IO
// thread is not connected with ErrNotReceiving. The probe's user needs
// SLAVE MONITOR (or REPLICATION CLIENT) on replicas.
func MariaDBProbe() Probe { return mariaProbe{} }

type mariaProbe struct{}

func (p mariaProbe) Primary(ctx context.Context, db *sql.DB) (Position, error) {
	return p.commitPosition(ctx, db)
}

// commitPosition reads @@gtid_binlog_pos, which a commit has passed when
// it returns.
func (mariaProbe) commitPosition(ctx context.Context, q Querier) (Position, error) {
	var pos string
	var logBin sql.NullInt64
	if err := q.QueryRowContext(ctx, mariaPrimarySQL).Scan(&pos, &logBin); err != nil {
		return Position{}, err
	}
	if logBin.Valid && logBin.Int64 == 0 {
		return Position{}, errors.New("lagcheck: the MariaDB primary has log_bin off: no GTID positions to compare")
	}
	return ParseMariaDBGTID(pos)
}

func (mariaProbe) Replica(ctx context.Context, db *sql.DB, _ Position) (Replay, error) {
	var pos string
	if err := db.QueryRowContext(ctx, mariaReplicaSQL).Scan(&pos); err != nil {
		return Replay{}, err
	}
	p, err := ParseMariaDBGTID(pos)
	if err != nil {
		return Replay{}, err
	}
	r := Replay{Position: p}
	rows, err := db.QueryContext(ctx, mariaStatusSQL)
	if err != nil {
		return r, err
	}
	return r, replicaStatus(rows)
}

// MySQLProbe returns the probe for MySQL 8 replication with GTIDs
// (gtid_mode=ON): it compares @@gtid_executed sets, and checks replication
// as MariaDBProbe does. The probe's user needs REPLICATION CLIENT on
// replicas.
func MySQLProbe() Probe { return &mysqlProbe{} }

type mysqlProbe struct {
	oldSyntax atomic.Bool // the server rejected SHOW REPLICA STATUS
}

func (m *mysqlProbe) Primary(ctx context.Context, db *sql.DB) (Position, error) {
	return m.commitPosition(ctx, db)
}

// commitPosition reads @@gtid_executed, which a commit has passed when it
// returns.
func (*mysqlProbe) commitPosition(ctx context.Context, q Querier) (Position, error) {
	var set string
	var mode sql.NullString
	if err := q.QueryRowContext(ctx, mysqlPrimarySQL).Scan(&set, &mode); err != nil {
		return Position{}, err
	}
	if mode.Valid && !strings.EqualFold(mode.String, "ON") {
		return Position{}, fmt.Errorf("lagcheck: the MySQL primary has gtid_mode=%s: no GTID positions to compare", mode.String)
	}
	return ParseMySQLGTIDSet(set)
}

func (m *mysqlProbe) Replica(ctx context.Context, db *sql.DB, _ Position) (Replay, error) {
	var set string
	if err := db.QueryRowContext(ctx, mysqlReplicaSQL).Scan(&set); err != nil {
		return Replay{}, err
	}
	p, err := ParseMySQLGTIDSet(set)
	if err != nil {
		return Replay{}, err
	}
	r := Replay{Position: p}
	query := mysqlStatusSQL
	if m.oldSyntax.Load() {
		query = mysqlOldStatusSQL
	}
	rows, err := db.QueryContext(ctx, query)
	var my *mysql.MySQLError
	if errors.As(err, &my) && my.Number == mysqlSyntaxErrorNum && query == mysqlStatusSQL {
		m.oldSyntax.Store(true)
		rows, err = db.QueryContext(ctx, mysqlOldStatusSQL)
	}
	if err != nil {
		return r, err
	}
	return r, replicaStatus(rows)
}

// replicaStatus checks the rows of SHOW [ALL] SLAVE|REPLICA STATUS, with
// either the Slave_*/Master_* (MariaDB, MySQL before 8.0.22) or the
// Replica_*/Source_* (MySQL 8.0.22+) column names. It closes rows.
func replicaStatus(rows *sql.Rows) (err error) {
	defer func() {
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
	}()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	col := func(names ...string) int {
		for i, c := range cols {
			for _, n := range names {
				if strings.EqualFold(c, n) {
					return i
				}
			}
		}
		return -1
	}
	var (
		io     = col("Slave_IO_Running", "Replica_IO_Running")
		sqlRun = col("Slave_SQL_Running", "Replica_SQL_Running")
		behind = col("Seconds_Behind_Master", "Seconds_Behind_Source")
		ioErr  = col("Last_IO_Error")
		sqlErr = col("Last_SQL_Error")
		name   = col("Connection_name", "Channel_Name")
	)
	if io < 0 || sqlRun < 0 || behind < 0 {
		return fmt.Errorf("lagcheck: replica status without IO/SQL running and seconds-behind columns: %v", cols)
	}
	vals := make([]sql.NullString, len(cols))
	dest := make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	get := func(i int) string {
		if i < 0 {
			return ""
		}
		return vals[i].String
	}
	n := 0
	var stopped error
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		n++
		if stopped != nil {
			continue // report the first channel that is not running
		}
		channel := ""
		if c := get(name); c != "" {
			channel = fmt.Sprintf(" (connection %q)", c)
		}
		switch {
		case !strings.EqualFold(get(sqlRun), "Yes"):
			stopped = fmt.Errorf("%w: %s=%s%s%s", ErrReplicationStopped, cols[sqlRun], get(sqlRun), channel, lastError(get(sqlErr)))
		case !strings.EqualFold(get(io), "Yes"):
			stopped = fmt.Errorf("%w: %s=%s%s%s", ErrNotReceiving, cols[io], get(io), channel, lastError(get(ioErr)))
		case !vals[behind].Valid:
			stopped = fmt.Errorf("%w: %s is NULL%s", ErrReplicationStopped, cols[behind], channel)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: replica status is empty", ErrNotReplica)
	}
	return stopped
}

func lastError(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}
