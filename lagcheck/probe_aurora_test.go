package lagcheck

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
)

// auroraPGColumns are the columns of aurora_replica_status(), in order, as
// the Amazon Aurora user guide documents them.
var auroraPGColumns = strings.Fields(`server_id session_id durable_lsn highest_lsn_rcvd current_read_lsn
	cur_replay_latency_in_usec active_txns is_current last_transport_error last_error_timestamp
	last_update_timestamp feedback_xmin feedback_epoch replica_lag_in_msec
	log_stream_speed_in_kib_per_second log_buffer_sequence_number oldest_read_view_trx_id
	oldest_read_view_lsn pending_read_ios read_ios iops cpu`)

// auroraMySQLColumns are the columns of information_schema.replica_host_status
// on Aurora MySQL, in order, as the Amazon Aurora user guide documents them.
var auroraMySQLColumns = strings.Fields(`SERVER_ID SESSION_ID IOPS READ_IOS PENDING_READ_IOS CPU
	DURABLE_LSN ACTIVE_TRANSACTIONS LAST_TRANSPORT_ERROR LAST_ERROR_TIMESTAMP LAST_UPDATE_TIMESTAMP
	MASTER_SLAVE_LATENCY_IN_MICROSECONDS REPLICA_LAG_IN_MILLISECONDS LOG_STREAM_SPEED_IN_KiB_PER_SECOND
	LOG_BUFFER_SEQUENCE_NUMBER IS_CURRENT OLDEST_READ_VIEW_TRX_ID OLDEST_READ_VIEW_LSN
	HIGHEST_LSN_RCVD CURRENT_READ_POINT CURRENT_REPLAY_LATENCY_IN_MICROSECONDS
	AVERAGE_REPLAY_LATENCY_IN_MICROSECONDS MAX_REPLAY_LATENCY_IN_MICROSECONDS`)

func TestAuroraProbes(t *testing.T) {
	probes := []struct {
		name             string
		probe            Probe
		query            string
		cols             []string
		server, session  string
		lagCol, fallback string
	}{
		{name: "postgres", probe: AuroraPostgresProbe(), query: auroraPGReplicaSQL, cols: auroraPGColumns,
			server: "server_id", session: "session_id", lagCol: "replica_lag_in_msec", fallback: "aurora_replica_status().replica_lag_in_msec"},
		{name: "mysql", probe: AuroraMySQLProbe(), query: auroraMySQLReplicaSQL, cols: auroraMySQLColumns,
			server: "SERVER_ID", session: "SESSION_ID", lagCol: "REPLICA_LAG_IN_MILLISECONDS", fallback: "replica_host_status.REPLICA_LAG_IN_MILLISECONDS"},
	}
	reader := "4e1c6b3a-55e6-4f5b-8c6e-3d2a9c7e1f00"
	tests := []struct {
		name       string
		session    string
		lag        driver.Value // nil: NULL
		noRow      bool
		queryErr   error
		wantAtMost time.Duration
		wantErr    error
		wantText   string
	}{
		{name: "reader 17ms behind", session: reader, lag: "17", wantAtMost: 17 * time.Millisecond},
		{name: "fractional milliseconds", session: reader, lag: "2.5", wantAtMost: 2500 * time.Microsecond},
		{name: "caught up", session: reader, lag: "0", wantAtMost: 0},
		{name: "NULL lag is lagging, never 0", session: reader, lag: nil, wantErr: ErrReplicationStopped, wantText: "is \"NULL\""},
		{name: "negative lag is not a measurement", session: reader, lag: "-1", wantErr: ErrReplicationStopped},
		{name: "the writer", session: auroraWriterSession, lag: "0", wantErr: ErrNotReplica, wantText: "writer"},
		{name: "no row for this instance", noRow: true, wantErr: ErrNotReplica, wantText: "no row"},
		{name: "lost connection", queryErr: io.ErrUnexpectedEOF, wantErr: io.ErrUnexpectedEOF},
	}
	for _, p := range probes {
		for _, tt := range tests {
			t.Run(p.name+"/"+tt.name, func(t *testing.T) {
				db, mock := newMock(t)
				q := mock.ExpectQuery(p.query)
				switch {
				case tt.queryErr != nil:
					q.WillReturnError(tt.queryErr)
				case tt.noRow:
					q.WillReturnRows(sqlmock.NewRows(p.cols))
				default:
					q.WillReturnRows(sqlmock.NewRows(p.cols).AddRow(statusRow(p.cols, map[string]driver.Value{
						p.server: "reader-1", p.session: tt.session, p.lagCol: tt.lag,
					})...))
				}
				if pos, err := p.probe.Primary(context.Background(), db); err != nil || !pos.IsZero() {
					t.Errorf("Primary = %q, %v; want no position, no error", pos, err)
				}
				rep, err := p.probe.Replica(context.Background(), db, Position{})
				if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) || !strings.Contains(errText(err), tt.wantText) {
					t.Errorf("Replica error = %v, want %v containing %q", err, tt.wantErr, tt.wantText)
				}
				wantKnown := tt.wantErr == nil
				if rep.LagAtMost != tt.wantAtMost || rep.LagAtMostKnown != wantKnown {
					t.Errorf("LagAtMost = %v, %v; want %v, %v", rep.LagAtMost, rep.LagAtMostKnown, tt.wantAtMost, wantKnown)
				}
				if !rep.Position.IsZero() || !strings.Contains(rep.Fallback, p.fallback) {
					t.Errorf("Position %q, Fallback %q; want none, and %q named", rep.Position, rep.Fallback, p.fallback)
				}
				if wantKnown && rep.Server.String() != "reader-1" {
					t.Errorf("Server %q, want the instance reader-1", rep.Server)
				}
			})
		}
	}
}

// TestAuroraProbeInChecker: Config.Probe selects the Aurora probe; a
// reader's lag is known from its own row, and it covers no position.
func TestAuroraProbeInChecker(t *testing.T) {
	primary, _ := newMock(t)
	replica, mock := newMock(t)
	mock.ExpectQuery(auroraPGReplicaSQL).WillReturnRows(sqlmock.NewRows(auroraPGColumns).AddRow(statusRow(auroraPGColumns,
		map[string]driver.Value{"server_id": "reader-1", "session_id": "4e1c6b3a", "replica_lag_in_msec": "12"})...))
	c, err := New(Config{Interval: time.Hour, MaxLag: 2 * time.Hour, Probe: AuroraPostgresProbe()}, "postgres", primary, []Target{{Name: "reader-1", DB: replica}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Start(context.Background()) // one round; the next an hour later
	st := c.Status()[0]
	if st.State != Healthy || !st.LagKnown || st.Lag > time.Second || st.LastErr != nil || !strings.Contains(st.Fallback, "Aurora") {
		t.Errorf("Status = %+v; want healthy, lag known (12ms + the probe), Fallback naming Aurora", st)
	}
	if c.Covers(0, LSNPosition(1)) {
		t.Error("Covers = true for an Aurora reader")
	}
}
