package lagcheck

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rwsplit/rwsplit/internal/connerr"
)

// MariaDB and MySQL probe queries.
const (
	mariaPrimarySQL = `SELECT @@GLOBAL.gtid_binlog_pos, @@GLOBAL.log_bin`
	mariaReplicaSQL = `SELECT @@GLOBAL.gtid_slave_pos, @@hostname, @@port, @@server_id`
	mariaStatusSQL  = `SHOW ALL SLAVES STATUS`

	mysqlPrimarySQL     = `SELECT @@GLOBAL.gtid_executed, @@GLOBAL.gtid_mode`
	mysqlReplicaSQL     = `SELECT @@GLOBAL.gtid_executed, @@GLOBAL.gtid_mode, @@hostname, @@port, @@server_id`
	mysqlStatusSQL      = `SHOW REPLICA STATUS`
	mysqlOldStatusSQL   = `SHOW SLAVE STATUS`
	mysqlSyntaxErrorNum = 1064
)

// MariaDBProbe returns the probe for MariaDB replication with GTIDs: it
// compares the primary's @@gtid_binlog_pos (log_bin on) with a replica's
// @@gtid_slave_pos; Reading.Behind counts transactions. A replica whose
// SQL thread is stopped fails with ErrReplicationStopped, one whose IO
// thread is not connected with ErrNotReceiving. A replica that does not
// replicate by GTID (MASTER_USE_GTID=no, or an empty @@gtid_slave_pos) is
// measured by Seconds_Behind_Master instead (see secondsBehind), without
// a position: Status.Fallback says so, and Checker.Covers is false for
// it. The first statement also reads the answering server's identity
// (Replay.Server): @@hostname, @@port and @@server_id. The probe's user
// needs SLAVE MONITOR (alias REPLICA MONITOR) or SUPER on replicas; since
// MariaDB 10.5 REPLICATION CLIENT is BINLOG MONITOR, which is not enough.
func MariaDBProbe() Probe { return mariaProbe{} }

type mariaProbe struct{}

func (p mariaProbe) Primary(ctx context.Context, db DB) (Position, error) {
	return p.commitPosition(ctx, db)
}

// primarySample: @@gtid_binlog_pos is both.
func (p mariaProbe) primarySample(ctx context.Context, db DB) (pos, commit Position, err error) {
	pos, err = p.Primary(ctx, db)
	return pos, pos, err
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

func (mariaProbe) Replica(ctx context.Context, db DB, _ Position) (Replay, error) {
	var pos string
	var id myServerID
	if err := db.QueryRowContext(ctx, mariaReplicaSQL).Scan(&pos, &id.host, &id.port, &id.serverID); err != nil {
		return Replay{}, err
	}
	p, err := ParseMariaDBGTID(pos)
	if err != nil {
		return Replay{}, err
	}
	r := Replay{Position: p, Server: id.server()}
	rows, err := db.QueryContext(ctx, mariaStatusSQL)
	if err != nil {
		return r, err
	}
	st, err := replicaStatus(rows)
	switch {
	case st.noGTID != "":
		r = secondsBehind(st, err, st.noGTID)
	case strings.TrimSpace(pos) == "" && !st.byGTID:
		// Nothing replicated by GTID, and no channel says it replicates by
		// GTID. (A GTID replica that has applied nothing yet has an empty
		// @@gtid_slave_pos too: its empty set is compared as it is.)
		r = secondsBehind(st, err, "no GTIDs (@@gtid_slave_pos is empty)")
	}
	r.Server = id.server()
	return r, err
}

// myServerID is what tells MariaDB and MySQL servers apart: server_id
// must differ between the servers of one replication topology; host and
// port name it for people.
type myServerID struct {
	host     sql.NullString
	port     sql.NullInt64
	serverID sql.NullInt64
}

func (id myServerID) server() Server {
	return Server{Addr: fmt.Sprintf("%s:%d server_id=%d", id.host.String, id.port.Int64, id.serverID.Int64)}
}

// secondsBehind is the Replay of a replica without GTID positions: its lag
// is at most Seconds_Behind_Master (Seconds_Behind_Source) plus a second,
// since the server truncates it to whole seconds. A NULL value never gets
// here: replicaStatus reports it as ErrReplicationStopped. The value reads
// 0 on an idle primary while the replica is disconnected, which is why
// replicaStatus also requires the IO thread to be running, and no bound
// comes from a status that replicaStatus found wrong (statusErr).
func secondsBehind(st replStatus, statusErr error, why string) Replay {
	r := Replay{Fallback: why + ": lag from " + cmp.Or(st.behindCol, "Seconds_Behind_*") + " (whole seconds, +1s); no positions for causal reads"}
	if st.behindKnown && statusErr == nil {
		r.LagAtMost, r.LagAtMostKnown = st.behind+time.Second, true
	}
	return r
}

// MySQLProbe returns the probe for MySQL 8 replication with GTIDs
// (gtid_mode=ON): it compares @@gtid_executed sets, and checks replication
// as MariaDBProbe does. Without GTIDs (gtid_mode not ON) it measures a
// replica by Seconds_Behind_Source, as MariaDBProbe does, and the primary
// has no position (Checker.CommitPosition fails with ErrNoPosition). It
// reads the answering server's identity as MariaDBProbe does. The probe's
// user needs REPLICATION CLIENT on replicas.
func MySQLProbe() Probe { return &mysqlProbe{} }

type mysqlProbe struct {
	oldSyntax atomic.Bool // the server rejected SHOW REPLICA STATUS
}

// Primary returns the zero Position, and no error, for a primary without
// GTIDs: its replicas are measured by Seconds_Behind_Source.
func (m *mysqlProbe) Primary(ctx context.Context, db DB) (Position, error) {
	p, err := m.commitPosition(ctx, db)
	if errors.Is(err, ErrNoPosition) {
		return Position{}, nil
	}
	return p, err
}

// primarySample: @@gtid_executed is both (zero without GTIDs).
func (m *mysqlProbe) primarySample(ctx context.Context, db DB) (pos, commit Position, err error) {
	pos, err = m.Primary(ctx, db)
	return pos, pos, err
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
		return Position{}, fmt.Errorf("%w: the MySQL primary has gtid_mode=%s: no GTID positions to compare", ErrNoPosition, mode.String)
	}
	return ParseMySQLGTIDSet(set)
}

func (m *mysqlProbe) Replica(ctx context.Context, db DB, _ Position) (Replay, error) {
	var set string
	var mode sql.NullString
	var id myServerID
	if err := db.QueryRowContext(ctx, mysqlReplicaSQL).Scan(&set, &mode, &id.host, &id.port, &id.serverID); err != nil {
		return Replay{}, err
	}
	r := Replay{Server: id.server()}
	noGTID := ""
	if mode.Valid && !strings.EqualFold(mode.String, "ON") {
		noGTID = "no GTIDs (gtid_mode=" + mode.String + ")"
	} else {
		p, err := ParseMySQLGTIDSet(set)
		if err != nil {
			return Replay{}, err
		}
		r.Position = p
	}
	query := mysqlStatusSQL
	if m.oldSyntax.Load() {
		query = mysqlOldStatusSQL
	}
	rows, err := db.QueryContext(ctx, query)
	if connerr.IsMySQL(err, mysqlSyntaxErrorNum) && query == mysqlStatusSQL {
		m.oldSyntax.Store(true)
		rows, err = db.QueryContext(ctx, mysqlOldStatusSQL)
	}
	if err != nil {
		return r, err
	}
	st, err := replicaStatus(rows)
	if noGTID != "" {
		r = secondsBehind(st, err, noGTID)
		r.Server = id.server()
	}
	return r, err
}

// replStatus is what SHOW [ALL] SLAVE|REPLICA STATUS says besides whether
// replication runs.
type replStatus struct {
	behind      time.Duration // the largest Seconds_Behind_* over the channels
	behindKnown bool          // every channel had a value
	behindCol   string        // the column's name on this server
	noGTID      string        // why a channel does not replicate by GTID (MariaDB's Using_Gtid=No); "" otherwise
	byGTID      bool          // every channel reports Using_Gtid other than No
}

// replicaStatus checks the rows of SHOW [ALL] SLAVE|REPLICA STATUS, with
// either the Slave_*/Master_* (MariaDB, MySQL before 8.0.22) or the
// Replica_*/Source_* (MySQL 8.0.22+) column names. It closes rows.
func replicaStatus(rows *sql.Rows) (st replStatus, err error) {
	defer func() {
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
	}()
	cols, err := rows.Columns()
	if err != nil {
		return st, err
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
		gtid   = col("Using_Gtid") // MariaDB: No, Slave_Pos or Current_Pos
	)
	if io < 0 || sqlRun < 0 || behind < 0 {
		return st, fmt.Errorf("lagcheck: replica status without IO/SQL running and seconds-behind columns: %v", cols)
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
	st.behindCol, st.behindKnown = cols[behind], true
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return st, err
		}
		n++
		channel := ""
		if c := get(name); c != "" {
			channel = fmt.Sprintf(" (connection %q)", c)
		}
		if v := get(gtid); st.noGTID == "" && strings.EqualFold(v, "No") {
			st.noGTID = fmt.Sprintf("no GTIDs (%s=%s%s)", cols[gtid], v, channel)
		} else if n == 1 {
			st.byGTID = v != ""
		} else {
			st.byGTID = st.byGTID && v != ""
		}
		if secs, err := strconv.ParseInt(get(behind), 10, 64); vals[behind].Valid && err == nil {
			st.behind = max(st.behind, time.Duration(secs)*time.Second)
		} else {
			st.behindKnown = false
		}
		if stopped != nil {
			continue // report the first channel that is not running
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
		return st, err
	}
	if n == 0 {
		return replStatus{}, fmt.Errorf("%w: replica status is empty", ErrNotReplica)
	}
	return st, stopped
}

func lastError(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}
