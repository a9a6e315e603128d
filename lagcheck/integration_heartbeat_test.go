package lagcheck

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
)

// The read-only heartbeat against real servers: on MariaDB the real
// pt-heartbeat --update (Debian's percona-toolkit) keeps the table; on
// PostgreSQL, which pt-heartbeat does not support, the test keeps a table
// of the same shape with the same text format.

const (
	ptTable    = "lagcheck_pt_heartbeat"
	ptInterval = 50 * time.Millisecond // the writer's update interval
)

// ptPGUpdate is what the PostgreSQL writer runs: pt-heartbeat's UPDATE,
// with the server's clock in pt-heartbeat --utc's format.
const ptPGUpdate = `UPDATE ` + ptTable + ` SET ts = to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') WHERE server_id = 1`

// startPTHeartbeat runs pt-heartbeat --update against the cluster's
// primary, creating its table, and returns a stop that kills it (by its
// pid) and returns once it has exited.
func startPTHeartbeat(t *testing.T, maria *testdb.MariaCluster) (stop func()) {
	t.Helper()
	bin, err := exec.LookPath("pt-heartbeat")
	if err != nil {
		reason := "pt-heartbeat is not installed (Debian package percona-toolkit; .ci/install installs it)"
		if dbtest.Required() {
			t.Fatal(reason)
		}
		t.Skip(reason)
	}
	logPath := filepath.Join(t.TempDir(), "pt-heartbeat.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	p := maria.Primary
	cmd := exec.Command(bin, "--update", "--create-table", "--utc",
		"--interval", fmt.Sprintf("%.3f", ptInterval.Seconds()),
		"--database", testdb.MariaDatabase, "--table", ptTable,
		"--run-time", "600", // an orphan (the test binary killed) ends by itself
		"--no-version-check",
		fmt.Sprintf("h=127.0.0.1,P=%d,u=%s,p=%s", p.Port, testdb.MariaUser, testdb.MariaPassword))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			logFile.Close()
			if out, _ := os.ReadFile(logPath); len(out) > 0 {
				t.Logf("pt-heartbeat output: %s", out)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitHeartbeats waits until the primary's heartbeat row has changed
// twice: the writer is updating it.
func waitHeartbeats(t *testing.T, primary *sql.DB) {
	t.Helper()
	var last string
	changes := 0
	deadline := time.Now().Add(20 * time.Second)
	for changes < 3 {
		var ts sql.NullString
		err := primary.QueryRowContext(t.Context(), "SELECT ts FROM "+ptTable+" WHERE server_id = 1").Scan(&ts)
		if err == nil && ts.String != last {
			last = ts.String
			changes++
		}
		if time.Now().After(deadline) {
			t.Fatalf("the heartbeat row did not change 3 times in 20s (last %q, err %v)", last, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readOnlyPrimary opens the primary for the Checker with a session that
// the server keeps read-only, every statement recorded by rec.
func readOnlyPrimary(t *testing.T, db string, pg *testdb.PGCluster, maria *testdb.MariaCluster, rec *testdb.Recorder) *sql.DB {
	t.Helper()
	var ro *sql.DB
	switch db {
	case "postgres":
		cfg, err := pgx.ParseConfig(pg.Primary.DSN() + " default_transaction_read_only=on")
		if err != nil {
			t.Fatal(err)
		}
		ro = sql.OpenDB(rec.Connector("primary", stdlib.GetConnector(*cfg)))
	default:
		cfg := maria.Primary.Config()
		cfg.Params = map[string]string{"tx_read_only": "1"}
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ro = sql.OpenDB(rec.Connector("primary", conn))
	}
	t.Cleanup(func() { ro.Close() })
	// The assertions below have teeth: this session cannot write.
	if _, err := ro.ExecContext(t.Context(), "UPDATE "+ptTable+" SET ts = ts WHERE server_id = -1"); err == nil ||
		!strings.Contains(strings.ToLower(err.Error()), "read-only") && !strings.Contains(strings.ToLower(err.Error()), "read only") {
		t.Fatalf("an UPDATE on the read-only session: %v; want a read-only error", err)
	}
	return ro
}

// nextRound returns once replica 0 has been probed again since the call.
func nextRound(t *testing.T, c *Checker) {
	t.Helper()
	last := c.Status()[0].LastProbe
	deadline := time.Now().Add(5 * time.Second)
	for c.Status()[0].LastProbe.Equal(last) {
		if time.Now().After(deadline) {
			t.Fatalf("no probe in 5s: %+v", c.Status()[0])
		}
		time.Sleep(time.Millisecond)
	}
}

// TestHeartbeatReadOnly: with Heartbeat.ReadOnly and a writer that is not
// the Checker (pt-heartbeat on MariaDB), alone or with positions:
//   - healthy: every replica's lag is known and below writer interval +
//     Interval + slack;
//   - a replica whose replay stops is evicted once its lag passes MaxLag,
//     the other untouched, and is readmitted after replay resumes;
//   - the writer stopped: the heartbeat alone lets no replica look fresher
//     than the time since the writer's last write, so every replica fails
//     MaxLag and is evicted; with positions they stay healthy;
//   - the Checker writes nothing on the primary: its session is read-only
//     at the server, it records only SELECTs, and the primary's binlog
//     GTID position (MariaDB) does not move, or (PostgreSQL) its WAL gets
//     no heap or transaction record, over rounds with the writer stopped.
func TestHeartbeatReadOnly(t *testing.T) {
	for _, db := range []string{"postgres", "mariadb"} {
		t.Run(db, func(t *testing.T) {
			var (
				primary  *sql.DB
				replicas []*sql.DB
				pg       *testdb.PGCluster
				maria    *testdb.MariaCluster
				dialect  = "postgres"
				stopW    func()
			)
			if db == "postgres" {
				pg, primary, replicas = pgCluster(t)
				mustExec(t, primary, "CREATE EXTENSION IF NOT EXISTS pg_walinspect")
				mustExec(t, primary, `CREATE TABLE IF NOT EXISTS `+ptTable+` (
					ts varchar(26) NOT NULL, server_id int NOT NULL PRIMARY KEY,
					file varchar(255), position bigint, relay_master_log_file varchar(255), exec_master_log_pos bigint)`)
				mustExec(t, primary, "INSERT INTO "+ptTable+" (ts, server_id) VALUES ('1970-01-01T00:00:00', 1) ON CONFLICT DO NOTHING")
				stopW = writeEvery(t, primary, ptInterval, ptPGUpdate)
			} else {
				maria, primary, replicas = mariaCluster(t)
				dialect = "mysql"
				stopW = startPTHeartbeat(t, maria)
			}
			waitHeartbeats(t, primary)
			if pg != nil {
				dbtest.Within(t, 10*time.Second, pg.WaitCaughtUp)
			} else {
				dbtest.Within(t, 10*time.Second, maria.WaitCaughtUp)
			}
			rec := &testdb.Recorder{}
			ro := readOnlyPrimary(t, db, pg, maria, rec)

			// Healthy.
			changes := &changeLog{}
			alone := itConfig(changes)
			alone.Probe = mustHeartbeat(t, Heartbeat{Table: ptTable, ReadOnly: true, ServerID: 1})
			c := startChecker(t, alone, dialect, ro, replicas...)
			for i := range replicas {
				deadline := time.Now().Add(5 * time.Second)
				for _, ok := c.LagNow(i); !ok; _, ok = c.LagNow(i) {
					if time.Now().After(deadline) {
						t.Fatalf("replica %d: no heartbeat bound 5s after Start: %+v", i, c.Status()[i])
					}
					time.Sleep(time.Millisecond)
				}
			}
			var lags []time.Duration
			// The writer's interval and one Interval, plus the slack and
			// 250ms for a probe round that runs late on a loaded 2-core
			// machine (409ms against 400ms was seen in a CI run).
			limit := ptInterval + itInterval + slack + 250*time.Millisecond
			for range 10 {
				nextRound(t, c)
				for i, st := range c.Status() {
					if !st.LagKnown || st.Lag > limit || st.State != Healthy || st.PrimaryErr != nil {
						t.Errorf("healthy: replica %d %v, lag %v (known %v), primary err %v; want healthy, lag at most %v", i, st.State, st.Lag, st.LagKnown, st.PrimaryErr, limit)
					}
					lags = append(lags, st.Lag.Round(100*time.Microsecond))
				}
			}
			sorted := slices.Sorted(slices.Values(lags))
			t.Logf("%s, read-only heartbeat alone, healthy: lag median %v, max %v (writer every %v, Interval %v)", db, sorted[len(sorted)/2], sorted[len(sorted)-1], ptInterval, itInterval)

			// Replay stopped on replica 0.
			paused := time.Now()
			if pg != nil {
				dbtest.Must(t, pg.Replicas[0].PauseReplay(t.Context()))
			} else {
				dbtest.Must(t, maria.Replicas[0].StopSQLThread(t.Context()))
			}
			ev := changes.wait(t, 0, Evicted, paused, 5*time.Second)
			evictedAfter := ev.Reading.At.Sub(paused)
			// The bound exceeds the truth by at most a writer interval, an
			// Interval and a sample's duration (25ms here: a loaded machine);
			// eviction takes EvictAfter (2) readings above MaxLag, an
			// Interval apart.
			if lo, hi := itMaxLag-ptInterval-25*time.Millisecond, itMaxLag+2*itInterval+slack; evictedAfter < lo || evictedAfter > hi || !ev.Reading.LagKnown || ev.Reading.Lag <= itMaxLag {
				t.Errorf("replay stopped: evicted %v after, reading %+v; want within [%v, %v], lag known above %v", evictedAfter, ev.Reading, lo, hi, itMaxLag)
			}
			if len(replicas) > 1 && changes.count(1) != 0 {
				t.Errorf("the other replica changed state: %v", changes)
			}
			resumed := time.Now()
			if pg != nil {
				dbtest.Must(t, pg.Replicas[0].ResumeReplay(t.Context()))
			} else {
				dbtest.Must(t, maria.Replicas[0].StartSQLThread(t.Context()))
			}
			back := changes.wait(t, 0, Healthy, resumed, 5*time.Second)
			t.Logf("%s, read-only heartbeat alone: replay stopped, evicted %v after (lag %v); readmitted %v after resume",
				db, evictedAfter.Round(time.Millisecond), ev.Reading.Lag.Round(time.Millisecond), back.Reading.At.Sub(resumed).Round(time.Millisecond))

			// With positions too; ServerID zero reads the newest row.
			posChanges := &changeLog{}
			withPos := itConfig(posChanges)
			withPos.Heartbeat = &Heartbeat{Table: ptTable, ReadOnly: true}
			cp := startChecker(t, withPos, dialect, ro, replicas...)

			// The writer stops.
			stopW()
			stopped := time.Now()
			var (
				minMargin = time.Hour
				fresh     []string
			)
			deadline := stopped.Add(itMaxLag + 2*itInterval + slack)
			for {
				now := time.Now()
				all := true
				for i := range replicas {
					lag, ok := c.LagNow(i)
					if ok {
						// The replica has nothing newer than the writer's
						// last write, made before stopped: its bound is at
						// least the time since.
						minMargin = min(minMargin, lag-now.Sub(stopped))
						if now.Sub(stopped) > itMaxLag+10*time.Millisecond && lag <= itMaxLag {
							fresh = append(fresh, fmt.Sprintf("replica %d at +%v: LagNow %v", i, now.Sub(stopped), lag))
						}
					}
					all = all && c.State(i) == Evicted
				}
				if all {
					break
				}
				if now.After(deadline) {
					t.Fatalf("writer stopped: not every replica evicted within %v: %v", deadline.Sub(stopped), changes)
				}
				time.Sleep(time.Millisecond)
			}
			evictedAll := time.Since(stopped)
			// 10ms: a probe measures its bound a few µs before the Checker
			// stamps it (a loaded machine may deschedule in between).
			if minMargin < -10*time.Millisecond || len(fresh) > 0 {
				t.Errorf("writer stopped: LagNow fell %v below the time since the last write; fresh beyond MaxLag: %v", -minMargin, fresh)
			}
			t.Logf("%s, read-only heartbeat alone: writer stopped, every replica evicted %v after; LagNow minus the time since the stop, at its smallest: %v",
				db, evictedAll.Round(time.Millisecond), minMargin)

			// No writes from either Checker, over rounds with the writer
			// stopped. Positions: the alone Checker's SQL names server_id,
			// the other's MAX(ts).
			mark := rec.Mark()
			var gtid0, gtid1 string
			var lsn0, lsn1 testdb.LSN
			var err error
			if pg != nil {
				lsn0, err = pg.Primary.CurrentLSN(t.Context())
			} else {
				gtid0, err = maria.Primary.GTIDBinlogPos(t.Context())
			}
			dbtest.Must(t, err)
			for range 5 {
				nextRound(t, c)
				nextRound(t, cp)
			}
			if pg != nil {
				lsn1, err = pg.Primary.CurrentLSN(t.Context())
			} else {
				gtid1, err = maria.Primary.GTIDBinlogPos(t.Context())
			}
			dbtest.Must(t, err)
			stmts := rec.Since(mark)
			var nonSelect []string
			for _, e := range stmts {
				if !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(e.SQL)), "SELECT") {
					nonSelect = append(nonSelect, e.SQL)
				}
			}
			if len(stmts) < 10 || len(nonSelect) > 0 {
				t.Errorf("the Checkers ran %d statements on the primary over 5 rounds each; not SELECT: %q", len(stmts), nonSelect)
			}
			for _, st := range append(c.Status(), cp.Status()...) {
				if st.PrimaryErr != nil {
					t.Errorf("primary sample failed on the read-only session: %v", st.PrimaryErr)
				}
			}
			var walRecords []string
			if pg != nil {
				walRecords = walRecordsBetween(t, primary, lsn0, lsn1)
				for _, r := range walRecords {
					if !strings.HasPrefix(r, "Standby/") && !strings.HasPrefix(r, "XLOG/") {
						t.Errorf("WAL between %v and %v has a record of a write: %v", lsn0, lsn1, walRecords)
						break
					}
				}
			} else if gtid0 != gtid1 {
				t.Errorf("the primary's @@gtid_binlog_pos moved from %q to %q with the writer stopped", gtid0, gtid1)
			}
			t.Logf("%s: no writes: %d statements on the primary over 5 rounds of 2 Checkers, all SELECT; gtid_binlog_pos %q -> %q; LSN %v -> %v, WAL records %v",
				db, len(stmts), gtid0, gtid1, lsn0, lsn1, walRecords)

			for i, st := range cp.Status() {
				if lag, ok := cp.LagNow(i); st.State != Healthy || !ok || lag > itMaxLag {
					t.Errorf("with positions, writer stopped: replica %d %v, LagNow %v (known %v); want healthy within MaxLag", i, st.State, lag, ok)
				}
			}
			c.Close()
			cp.Close()
		})
	}
}

// walRecordsBetween lists the WAL records from a to b as
// "resource_manager/record_type" (pg_walinspect), once the primary has
// flushed b.
func walRecordsBetween(t *testing.T, primary *sql.DB, a, b testdb.LSN) []string {
	t.Helper()
	if b <= a {
		return nil
	}
	dbtest.Within(t, 10*time.Second, func(ctx context.Context) error {
		for {
			var flushed bool
			if err := primary.QueryRowContext(ctx, "SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn", b.String()).Scan(&flushed); err != nil {
				return err
			}
			if flushed {
				return nil
			}
			time.Sleep(time.Millisecond)
		}
	})
	rows, err := primary.QueryContext(t.Context(), "SELECT resource_manager || '/' || record_type FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)", a.String(), b.String())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
