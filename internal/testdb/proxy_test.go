package testdb_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
)

// roundTrips times n SELECT 1 round trips on conn.
func roundTrips(t *testing.T, conn *pgx.Conn, n int) []time.Duration {
	t.Helper()
	out := make([]time.Duration, n)
	for i := range out {
		start := time.Now()
		var one int
		if err := conn.QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil {
			t.Fatal(err)
		}
		out[i] = time.Since(start)
	}
	return out
}

func TestProxyLatencyPostgres(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	p := dbtest.Proxy(t, pg.Primary.Addr())
	if p.Port() < 20000 || p.Port() >= 32000 || p.Addr() != fmt.Sprintf("127.0.0.1:%d", p.Port()) {
		t.Fatalf("proxy on %s", p.Addr())
	}
	dsn := strings.Replace(pg.Primary.DSN(), fmt.Sprintf("port=%d", pg.Primary.Port), fmt.Sprintf("port=%d", p.Port()), 1)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol // one chunk each way per query
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	const latency = 20 * time.Millisecond
	// The same connection: the latency applies to live connections.
	p.SetLatency(latency)
	for _, d := range roundTrips(t, conn, 5) {
		if d < latency {
			t.Fatalf("round trip %v with latency %v", d, latency)
		}
	}
	p.SetLatency(0)
	if d := minDuration(roundTrips(t, conn, 5)); d >= latency {
		t.Fatalf("fastest round trip %v without latency", d)
	}

	// Close ends live connections; goleak in TestMain checks the goroutines.
	p.Close()
	var one int
	if err := conn.QueryRow(t.Context(), "SELECT 1").Scan(&one); err == nil {
		t.Fatal("query through a closed proxy succeeded")
	}
}

func TestProxyMariaDB(t *testing.T) {
	my := dbtest.MariaDB(t, 2)
	p := dbtest.Proxy(t, my.Primary.Addr())
	cfg := my.Primary.Config()
	cfg.Addr = p.Addr()
	cfg.InterpolateParams = true
	dsn := cfg.FormatDSN()
	db, err := openMySQL(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	p.SetLatency(20 * time.Millisecond)
	var got string
	start := time.Now()
	big := strings.Repeat("x", 100_000) // several chunks each way
	if err := db.QueryRowContext(t.Context(), "SELECT CONCAT(?, @@hostname)", big).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, big) {
		t.Fatalf("reply of %d bytes does not start with the %d bytes sent", len(got), len(big))
	}
	if took := time.Since(start); took < 20*time.Millisecond {
		t.Fatalf("query took %v through a 20ms proxy", took)
	}
}

func minDuration(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds[1:] {
		m = min(m, d)
	}
	return m
}
