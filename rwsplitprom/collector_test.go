package rwsplitprom_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/rwsplitprom"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

type promRow struct {
	ID   uint
	Name string
}

// TestScrape: a real registry scraped through promhttp has every metric,
// with the values the plugin's traffic on a real PostgreSQL cluster gave.
func TestScrape(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	rec := &testdb.Recorder{}
	primary := pg.Primary.OpenDB(rec)
	t.Cleanup(func() { primary.Close() })
	db, err := gorm.Open(postgres.New(postgres.Config{Conn: primary}), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	p := rwsplit.New(rwsplit.Config{Replicas: []rwsplit.Replica{
		{Name: "replica1", Dialector: postgres.New(postgres.Config{Conn: pg.Replicas[0].OpenDB(rec)})},
		{Name: "replica2", Dialector: postgres.New(postgres.Config{Conn: pg.Replicas[1].OpenDB(rec)})},
	}})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })

	dbtest.Must(t, db.Migrator().DropTable(&promRow{}))
	dbtest.Must(t, db.AutoMigrate(&promRow{}))
	ctx := rwsplit.WithUser(context.Background(), "prom-user")
	dbtest.Must(t, db.WithContext(ctx).Create(&promRow{Name: "a"}).Error)
	dbtest.Within(t, 10*time.Second, pg.WaitCaughtUp)
	for range 20 {
		var r []promRow
		dbtest.Must(t, db.Find(&r).Error)
	}
	// The writer reads back: a sticky read (the primary) or a causal one
	// (a replica that has replayed the write).
	var back promRow
	dbtest.Must(t, db.WithContext(ctx).Take(&back).Error)
	// No replica eligible: one read falls back to the primary.
	dbtest.Must(t, p.Drain("replica2"))
	dbtest.Must(t, p.Drain("replica1"))
	dbtest.Must(t, db.Take(&back).Error)
	dbtest.Must(t, p.Undrain("replica1"))
	p.SetReadsToPrimary(true)
	dbtest.Must(t, p.SetMaxLag(1500*time.Millisecond))

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(rwsplitprom.NewCollector(p))
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	value := func(series string) (float64, bool) {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
		if m == nil {
			return 0, false
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		return v, err == nil
	}
	for _, tc := range []struct {
		series string
		ok     func(float64) bool
	}{
		{`rwsplit_routes_total{reason="write"}`, func(v float64) bool { return v >= 1 }},
		{`rwsplit_routes_total{reason="read"}`, func(v float64) bool { return v >= 20 }},
		{`rwsplit_routes_total{reason="migrator"}`, func(v float64) bool { return v >= 1 }},
		{`rwsplit_routes_total{reason="no-replica"}`, func(v float64) bool { return v == 1 }},
		{`rwsplit_routes_total{reason="retry"}`, func(v float64) bool { return v == 0 }},
		{`rwsplit_routes_total{reason="stale"}`, func(v float64) bool { return v == 0 }},
		{`rwsplit_statements_total{node="primary",reason="write"}`, func(v float64) bool { return v >= 1 }},
		{`rwsplit_statements_total{node="primary",reason="migrator"}`, func(v float64) bool { return v >= 1 }},
		{`rwsplit_statements_total{node="primary",reason="no-replica"}`, func(v float64) bool { return v == 1 }},
		{`rwsplit_reads_to_primary`, func(v float64) bool { return v == 1 }},
		{`rwsplit_max_lag_seconds`, func(v float64) bool { return v == 1.5 }},
		{`rwsplit_readmit_lag_seconds`, func(v float64) bool { return v == 0.75 }},
		{`rwsplit_replica_drained{replica="replica2"}`, func(v float64) bool { return v == 1 }},
		{`rwsplit_replica_drained{replica="replica1"}`, func(v float64) bool { return v == 0 }},
		{`rwsplit_replica_eligible{replica="replica1"}`, func(v float64) bool { return v == 1 }},
		{`rwsplit_replica_state{replica="replica1",state="healthy"}`, func(v float64) bool { return v == 1 }},
		{`rwsplit_replica_state{replica="replica1",state="evicted"}`, func(v float64) bool { return v == 0 }},
		{`rwsplit_replica_lag_known{replica="replica1"}`, func(v float64) bool { return v == 1 }},
		{`rwsplit_replica_lag_seconds{replica="replica1"}`, func(v float64) bool { return v >= 0 && v < 1 }},
		{`rwsplit_replica_evictions_total{replica="replica1"}`, func(v float64) bool { return v == 0 }},
		{`rwsplit_replica_readmissions_total{replica="replica1"}`, func(v float64) bool { return v == 0 }},
		{`rwsplit_replica_statements_total{replica="replica1"}`, func(v float64) bool { return v >= 1 }},
		{`rwsplit_replica_failures_total{replica="replica1"}`, func(v float64) bool { return v == 0 }},
		{`rwsplit_replica_in_flight{replica="replica1"}`, func(v float64) bool { return v == 0 }},
		{`rwsplit_replica_latency_ewma_seconds{replica="replica1"}`, func(v float64) bool { return v > 0 && v < 1 }},
		{`rwsplit_replica_pool_open_connections{replica="replica1"}`, func(v float64) bool { return v >= 1 }},
		// The lag checker holds one connection of a pool given as an
		// existing *sql.DB, as these are.
		{`rwsplit_replica_pool_in_use_connections{replica="replica1"}`, func(v float64) bool { return v == 1 }},
		{`rwsplit_replica_pool_idle_connections{replica="replica1"}`, func(v float64) bool { return v >= 1 }},
		{`rwsplit_replica_pool_max_open_connections{replica="replica1"}`, func(v float64) bool { return v == 0 }},
		{`rwsplit_replica_pool_waits_total{replica="replica1"}`, func(v float64) bool { return v == 0 }},
		{`rwsplit_replica_pool_wait_seconds_total{replica="replica1"}`, func(v float64) bool { return v == 0 }},
		{`rwsplit_sticky_marks_total`, func(v float64) bool { return v >= 1 }},
		{`rwsplit_sticky_notes_total`, func(v float64) bool { return v == 0 }},
		{`rwsplit_sticky_store_errors_total`, func(v float64) bool { return v == 0 }},
		{`rwsplit_sticky_store_skipped_total`, func(v float64) bool { return v == 0 }},
		{`rwsplit_sticky_store_retries_total`, func(v float64) bool { return v == 0 }},
		{`rwsplit_sticky_resolved_total`, func(v float64) bool { return v == 0 }},
	} {
		v, ok := value(tc.series)
		if !ok || !tc.ok(v) {
			t.Errorf("%s = %v (found %v)", tc.series, v, ok)
		}
	}
	// By node: the replicas ran the 20 plain reads between them, and each
	// replica's statements by reason add up to what it served; the
	// writer's read back is sticky (primary) or causal (a replica).
	sum := func(prefix string) float64 {
		total := 0.0
		for _, m := range regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(prefix)+`[^}]*\} (\S+)$`).FindAllSubmatch(body, -1) {
			v, _ := strconv.ParseFloat(string(m[1]), 64)
			total += v
		}
		return total
	}
	r1, _ := value(`rwsplit_statements_total{node="replica1",reason="read"}`)
	r2, _ := value(`rwsplit_statements_total{node="replica2",reason="read"}`)
	if r1+r2 != 20 {
		t.Errorf("reads by node: replica1 %v + replica2 %v, want 20", r1, r2)
	}
	for _, name := range []string{"replica1", "replica2"} {
		byReason := sum(`rwsplit_statements_total{node="` + name + `",`)
		served, _ := value(`rwsplit_replica_statements_total{replica="` + name + `"}`)
		if byReason != served {
			t.Errorf("%s: statements by reason add up to %v, served %v", name, byReason, served)
		}
	}
	sticky, _ := value(`rwsplit_routes_total{reason="sticky"}`)
	causal, _ := value(`rwsplit_routes_total{reason="causal"}`)
	primarySticky, _ := value(`rwsplit_statements_total{node="primary",reason="sticky"}`)
	if sticky+causal != 1 || primarySticky != sticky {
		t.Errorf("the writer's read back: sticky %v (on the primary %v), causal %v; want one of them, sticky ones on the primary", sticky, primarySticky, causal)
	}
	// The series (without HELP and TYPE), shown with -v and on failure.
	var series []string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "rwsplit_") {
			series = append(series, line)
		}
	}
	t.Logf("scrape:\n%s", strings.Join(series, "\n"))
}
