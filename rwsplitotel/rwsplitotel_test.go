package rwsplitotel_test

import (
	"os"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/opentelemetry/tracing"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/rwsplitotel"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

type otelRow struct {
	ID   int64
	Name string
}

// TestSpans: with gorm.io/plugin/opentelemetry's tracing, rwsplit and
// rwsplitotel installed, each statement's span names the node the driver
// ran it on, and the reason, on a real PostgreSQL cluster.
func TestSpans(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	rec := &testdb.Recorder{}
	primary := pg.Primary.OpenDB(rec)
	t.Cleanup(func() { primary.Close() })
	db, err := gorm.Open(postgres.New(postgres.Config{Conn: primary}), &gorm.Config{Logger: logger.Discard})
	dbtest.Must(t, err)

	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	dbtest.Must(t, db.Use(tracing.NewPlugin(tracing.WithTracerProvider(tp), tracing.WithoutMetrics())))
	p := rwsplit.New(rwsplit.Config{Replicas: []rwsplit.Replica{
		{Name: "replica1", Dialector: postgres.New(postgres.Config{Conn: pg.Replicas[0].OpenDB(rec)})},
		{Name: "replica2", Dialector: postgres.New(postgres.Config{Conn: pg.Replicas[1].OpenDB(rec)})},
	}})
	dbtest.Must(t, db.Use(p))
	t.Cleanup(func() { p.Close() })
	dbtest.Must(t, db.Use(rwsplitotel.New()))

	dbtest.Must(t, db.Migrator().DropTable(&otelRow{}))
	dbtest.Must(t, db.AutoMigrate(&otelRow{}))
	dbtest.Within(t, 10*time.Second, pg.WaitCaughtUp)

	for _, tt := range []struct {
		name   string
		run    func() error
		reason rwsplit.Reason
	}{
		{"Create", func() error { return db.Create(&otelRow{Name: "a"}).Error }, rwsplit.ReasonWrite},
		{"Find", func() error { return db.Find(&[]otelRow{}).Error }, rwsplit.ReasonRead},
		{"Primary clause", func() error { return db.Clauses(rwsplit.Primary).Find(&[]otelRow{}).Error }, rwsplit.ReasonForcedPrimary},
		{"Replica clause", func() error {
			return db.Clauses(rwsplit.Replica{Name: "replica2"}).Find(&[]otelRow{}).Error
		}, rwsplit.ReasonForcedReplica},
		{"Update", func() error {
			return db.Model(&otelRow{}).Where("name = ?", "a").Update("name", "b").Error
		}, rwsplit.ReasonWrite},
		{"Raw Row", func() error { return db.Raw("SELECT count(*) FROM otel_rows").Row().Err() }, rwsplit.ReasonRead},
		{"Exec", func() error { return db.Exec("DELETE FROM otel_rows WHERE name = 'none'").Error }, rwsplit.ReasonExec},
	} {
		spans.Reset()
		mark := rec.Mark()
		dbtest.Must(t, tt.run())
		var ran []string
		for _, e := range rec.Since(mark) {
			if strings.Contains(e.SQL, "otel_rows") {
				ran = append(ran, e.Node)
			}
		}
		got := spans.GetSpans()
		if len(got) != 1 || len(ran) != 1 {
			t.Errorf("%s: %d spans, ran on %v; want one span and one statement", tt.name, len(got), ran)
			continue
		}
		attrs := map[string]string{}
		for _, kv := range got[0].Attributes {
			attrs[string(kv.Key)] = kv.Value.Emit()
		}
		if attrs[string(rwsplitotel.NodeKey)] != ran[0] || attrs[string(rwsplitotel.ReasonKey)] != tt.reason.String() {
			t.Errorf("%s: span %q has node %q, reason %q; the driver ran it on %s, want reason %v", tt.name, got[0].Name,
				attrs[string(rwsplitotel.NodeKey)], attrs[string(rwsplitotel.ReasonKey)], ran[0], tt.reason)
		}
	}
}
