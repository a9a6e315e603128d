package lagcheck

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestReadOnlyHeartbeatBound: where a replica's heartbeat value falls
// among the values the primary was sampled with. Times are in ms after
// epoch; values are the writer's, compared only with each other.
func TestReadOnlyHeartbeatBound(t *testing.T) {
	type read struct {
		v          int64
		start, end int // ms
	}
	ms := func(d int) time.Time { return epoch.Add(time.Duration(d) * time.Millisecond) }
	tests := []struct {
		name        string
		primary     []read // samples, in order
		replica     read
		wantAtMost  time.Duration
		wantKnown   bool
		wantAtLeast time.Duration
	}{
		{name: "one value seen: no write known to follow a sample",
			primary: []read{{10, 0, 1}, {10, 100, 101}}, replica: read{10, 102, 103}},
		{name: "caught up: bounded by the last sample before the write",
			primary: []read{{10, 0, 1}, {20, 100, 101}}, replica: read{20, 102, 103},
			wantAtMost: 103 * time.Millisecond, wantKnown: true},
		{name: "the last sample of the older value counts",
			primary: []read{{10, 0, 1}, {10, 100, 101}, {20, 200, 201}}, replica: read{20, 202, 203},
			wantAtMost: 103 * time.Millisecond, wantKnown: true},
		{name: "writer stopped: the bound grows with every round",
			primary: []read{{10, 0, 1}, {20, 100, 101}, {20, 200, 201}, {20, 900, 901}}, replica: read{20, 902, 903},
			wantAtMost: 903 * time.Millisecond, wantKnown: true},
		{name: "behind: lacks a value the primary had",
			primary: []read{{10, 0, 1}, {20, 100, 101}, {30, 200, 201}, {30, 300, 301}}, replica: read{20, 302, 303},
			wantAtMost: 303 * time.Millisecond, wantKnown: true, wantAtLeast: 101 * time.Millisecond},
		{name: "a value between two samples",
			primary: []read{{10, 0, 1}, {30, 200, 201}}, replica: read{20, 202, 203},
			wantAtMost: 203 * time.Millisecond, wantKnown: true, wantAtLeast: time.Millisecond},
		{name: "newer than the primary's newest: written after the last sample",
			primary: []read{{10, 0, 1}, {20, 100, 101}}, replica: read{25, 102, 103},
			wantAtMost: 3 * time.Millisecond, wantKnown: true},
		{name: "older than every value kept",
			primary: []read{{10, 0, 1}, {20, 100, 101}}, replica: read{5, 102, 103},
			wantAtLeast: 101 * time.Millisecond},
		{name: "clock set back: a value the primary held since counts",
			primary: []read{{10, 0, 1}, {20, 100, 101}, {15, 200, 201}, {16, 300, 301}}, replica: read{16, 302, 303},
			wantAtMost: 103 * time.Millisecond, wantKnown: true},
		{name: "clock set back: an unseen value below the old maximum may be from before",
			primary: []read{{10, 0, 1}, {20, 100, 101}, {15, 200, 201}, {17, 300, 301}}, replica: read{16, 302, 303},
			wantAtLeast: time.Millisecond},
		{name: "clock set back: newer than every sample may be from before",
			primary: []read{{10, 0, 1}, {20, 100, 101}, {15, 200, 201}, {16, 300, 301}, {30, 400, 401}}, replica: read{35, 402, 403}},
		{name: "clock set back: above the old maximum counts again",
			primary: []read{{10, 0, 1}, {20, 100, 101}, {15, 200, 201}, {16, 300, 301}, {30, 400, 401}}, replica: read{25, 402, 403},
			wantAtMost: 103 * time.Millisecond, wantKnown: true, wantAtLeast: time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hb := newReadOnlyHeartbeat(Heartbeat{Table: "heartbeat", ReadOnly: true})
			for _, s := range tt.primary {
				hb.record(s.v, ms(s.start), ms(s.end))
			}
			got := hb.bound(tt.replica.v, ms(tt.replica.start), ms(tt.replica.end))
			if got.LagAtMost != tt.wantAtMost || got.LagAtMostKnown != tt.wantKnown || got.LagAtLeast != tt.wantAtLeast || !got.Position.IsZero() {
				t.Errorf("bound = %+v; want at most %v (known %v), at least %v", got, tt.wantAtMost, tt.wantKnown, tt.wantAtLeast)
			}
		})
	}
}

// TestReadOnlyHeartbeatKeepsRuns: the values kept are bounded; a replica
// older than all of them is proven stale by at least their span.
func TestReadOnlyHeartbeatKeepsRuns(t *testing.T) {
	hb := newReadOnlyHeartbeat(Heartbeat{Table: "heartbeat", ReadOnly: true})
	for k := range 3 * maxHeartbeatRuns {
		hb.record(int64(k+1), epoch.Add(time.Duration(k)*time.Second), epoch.Add(time.Duration(k)*time.Second+time.Millisecond))
	}
	if len(hb.runs) != maxHeartbeatRuns {
		t.Fatalf("%d values kept, want %d", len(hb.runs), maxHeartbeatRuns)
	}
	now := epoch.Add(3 * maxHeartbeatRuns * time.Second)
	got := hb.bound(1, now, now)
	if span := (maxHeartbeatRuns - 1) * time.Second; got.LagAtMostKnown || got.LagAtLeast < span {
		t.Errorf("bound of a value no longer kept = %+v; want no upper bound and a lower one of at least %v", got, span)
	}
}

// TestReadOnlyHeartbeatProbe: the SQL, read-only on both sides, and the
// answers to missing rows and tables.
func TestReadOnlyHeartbeatProbe(t *testing.T) {
	db, mock := newMock(t) // no Exec expected: any write fails the test
	mock.MatchExpectationsInOrder(true)
	p := mustHeartbeat(t, Heartbeat{Table: "percona.heartbeat", ReadOnly: true, ServerID: 12})
	const q = "SELECT ts FROM percona.heartbeat WHERE server_id = 12"
	cols := []string{"ts"}
	ctx := context.Background()

	// Before any sample: a replica without the table tells nothing.
	mock.ExpectQuery(q).WillReturnError(&mysql.MySQLError{Number: 1146, Message: "Table 'percona.heartbeat' doesn't exist"})
	if rep, err := p.Replica(ctx, db, Position{}); err != nil || rep.LagAtMostKnown || rep.LagAtLeast != 0 {
		t.Errorf("Replica before any sample = %+v, %v", rep, err)
	}
	// No row on the primary: loud.
	mock.ExpectQuery(q).WillReturnError(sql.ErrNoRows)
	if _, err := p.Primary(ctx, db); !errors.Is(err, ErrNoHeartbeat) || !strings.Contains(err.Error(), "pt-heartbeat --update") {
		t.Errorf("Primary without a row = %v, want ErrNoHeartbeat", err)
	}
	// pt-heartbeat's text, as go-sql-driver returns it, twice the same
	// value, then a newer one.
	for _, ts := range []string{"2026-12-03T10:00:00.250000", "2026-12-03T10:00:00.250000", "2026-12-03T10:00:01.250000"} {
		mock.ExpectQuery(q).WillReturnRows(sqlmock.NewRows(cols).AddRow([]byte(ts)))
		if pos, err := p.Primary(ctx, db); err != nil || !pos.IsZero() {
			t.Fatalf("Primary(%s) = %v, %v", ts, pos, err)
		}
	}
	// A replica at the newest value is bounded; one at the first value
	// read is not (no older value was read before its write).
	mock.ExpectQuery(q).WillReturnRows(sqlmock.NewRows(cols).AddRow("2026-12-03T10:00:01.250000"))
	if rep, err := p.Replica(ctx, db, Position{}); err != nil || !rep.LagAtMostKnown || rep.LagAtMost > 5*time.Second {
		t.Errorf("caught-up replica = %+v, %v", rep, err)
	}
	mock.ExpectQuery(q).WillReturnRows(sqlmock.NewRows(cols).AddRow(time.Date(2026, 12, 3, 10, 0, 0, 250000000, time.UTC)))
	if rep, err := p.Replica(ctx, db, Position{}); err != nil || rep.LagAtMostKnown {
		t.Errorf("replica at the first value read = %+v, %v", rep, err)
	}
	// A replica without the table once the primary had it: at least the
	// time since.
	mock.ExpectQuery(q).WillReturnError(&pgconn.PgError{Code: "42P01", Message: `relation "percona.heartbeat" does not exist`})
	if rep, err := p.Replica(ctx, db, Position{}); err != nil || rep.LagAtMostKnown || rep.LagAtLeast <= 0 {
		t.Errorf("replica without the table = %+v, %v", rep, err)
	}
	// Text that is not a timestamp, and other errors, are the probe's.
	mock.ExpectQuery(q).WillReturnRows(sqlmock.NewRows(cols).AddRow("yesterday"))
	if _, err := p.Replica(ctx, db, Position{}); err == nil || !strings.Contains(err.Error(), `"yesterday"`) {
		t.Errorf("Replica with a bad ts = %v", err)
	}
	mock.ExpectQuery(q).WillReturnError(io.ErrUnexpectedEOF)
	if _, err := p.Primary(ctx, db); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Primary on a bad connection = %v", err)
	}

	// ServerID zero: the newest row; an empty table reads NULL.
	p = mustHeartbeat(t, Heartbeat{ReadOnly: true})
	mock.ExpectQuery("SELECT MAX(ts) FROM heartbeat").WillReturnRows(sqlmock.NewRows([]string{"max"}).AddRow(nil))
	if _, err := p.Primary(ctx, db); !errors.Is(err, ErrNoHeartbeat) {
		t.Errorf("Primary on an empty table = %v, want ErrNoHeartbeat", err)
	}
}

func TestParseHeartbeatTS(t *testing.T) {
	at := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixMicro()
	}
	tests := []struct {
		name    string
		give    any
		want    int64
		wantErr string
	}{
		{name: "pt-heartbeat", give: []byte("2026-12-03T10:00:00.123456"), want: at("2026-12-03T10:00:00.123456Z")},
		{name: "pt-heartbeat, whole second", give: "2026-12-03T10:00:01", want: at("2026-12-03T10:00:01Z")},
		{name: "NOW() of --create-table's first row", give: "2026-12-03 10:00:00", want: at("2026-12-03T10:00:00Z")},
		{name: "short fraction", give: "2026-12-03 10:00:00.5", want: at("2026-12-03T10:00:00.5Z")},
		{name: "timestamp column", give: time.Date(2026, 12, 3, 11, 0, 0, 7000, time.FixedZone("CET", 3600)), want: at("2026-12-03T10:00:00.000007Z")},
		{name: "garbage", give: "2026-12-03T10:00", wantErr: `"2026-12-03T10:00" is not`},
		{name: "empty", give: []byte{}, wantErr: `"" is not`},
		{name: "a number", give: int64(1764111111000000), wantErr: "is a int64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHeartbeatTS(tt.give)
			switch {
			case tt.wantErr == "" && (err != nil || got != tt.want):
				t.Errorf("parseHeartbeatTS(%v) = %d, %v; want %d", tt.give, got, err, tt.want)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("parseHeartbeatTS(%v) = %d, %v; want an error containing %q", tt.give, got, err, tt.wantErr)
			}
		})
	}
}
