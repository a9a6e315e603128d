package rwsplit

import (
	"context"
	"database/sql"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/rwsplit/rwsplit/internal/fakedb"
	"github.com/rwsplit/rwsplit/lagcheck"
)

// chainFuncs returns the names of the functions a GORM callback chain
// runs, in order (GORM keeps them unexported).
func chainFuncs(proc any) []string {
	v := reflect.ValueOf(proc).Elem().FieldByName("fns")
	fns := reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
	names := make([]string, fns.Len())
	for i := range names {
		names[i] = runtime.FuncForPC(fns.Index(i).Pointer()).Name()
	}
	return names
}

// TestCallbackChains: in every chain rwsplit's routing runs first and
// dbresolver's resolver not at all, and db.Use logs nothing about it.
func TestCallbackChains(t *testing.T) {
	open := func() gorm.Dialector {
		conn := sql.OpenDB(&fakedb.Connector{})
		t.Cleanup(func() { conn.Close() })
		return postgres.New(postgres.Config{Conn: conn})
	}
	var log strings.Builder
	db, err := gorm.Open(open(), &gorm.Config{Logger: logger.New(writerLogger{&log}, logger.Config{LogLevel: logger.Warn})})
	if err != nil {
		t.Fatal(err)
	}
	p := New(Config{Replicas: []Replica{{Name: "r1", Dialector: open()}}, Lag: lagFresh()})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cb := db.Callback()
	for name, proc := range map[string]any{
		"create": cb.Create(), "update": cb.Update(), "delete": cb.Delete(),
		"query": cb.Query(), "row": cb.Row(), "raw": cb.Raw(),
	} {
		fns := chainFuncs(proc)
		if len(fns) == 0 || !strings.Contains(fns[0], "rwsplit.(*Plugin).route") {
			t.Errorf("%s chain starts with %v, want rwsplit's routing", name, fns)
		}
		for _, f := range fns {
			if strings.Contains(f, "gorm.io/plugin/dbresolver") {
				t.Errorf("%s chain runs %s", name, f)
			}
		}
	}
	if log.Len() > 0 {
		t.Errorf("db.Use logged:\n%s", log.String())
	}
}

type writerLogger struct{ b *strings.Builder }

func (w writerLogger) Printf(format string, args ...any) { w.b.WriteString(format) }

// freshProbe reports every replica caught up: fakedb cannot answer a real
// probe.
type freshProbe struct{}

func (freshProbe) Primary(context.Context, lagcheck.DB) (lagcheck.Position, error) {
	return lagcheck.Position{}, nil
}

func (freshProbe) Replica(context.Context, lagcheck.DB, lagcheck.Position) (lagcheck.Replay, error) {
	return lagcheck.Replay{LagAtMostKnown: true}, nil
}

func lagFresh() lagcheck.Config { return lagcheck.Config{Probe: freshProbe{}} }
