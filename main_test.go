package rwsplit_test

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// Runnable examples cannot skip themselves: without the servers they
	// would fail. Leave them out, with a one-line reason, unless CI asks
	// for the servers (RWSPLIT_REQUIRE_DB=1), in which case they fail.
	if err := testdb.CheckPostgres(); err != nil && !dbtest.Required() {
		fmt.Printf("rwsplit: skipping the examples: %v\n", strings.ReplaceAll(err.Error(), "\n", " "))
		_ = flag.Set("test.skip", "^Example")
	}
	code := dbtest.Main(m)
	if code == 0 {
		// Every plugin was closed by its test: nothing it started may
		// still run (the checker's loops, pools' openers, dbresolver's
		// statement stores), and every test stopped the statement store
		// GORM made for its own DB (rwsplit.StopUserStore).
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "rwsplit: goroutines left after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// cluster is a GORM database with rwsplit over a real replication cluster,
// where every statement is recorded, at the driver, with the node that
// executed it.
type cluster struct {
	t      testing.TB
	DB     *gorm.DB
	Plugin *rwsplit.Plugin
	rec    *testdb.Recorder

	mu     sync.Mutex
	routes []rwsplit.Route
}

type clusterOpts struct {
	gorm    gorm.Config
	config  rwsplit.Config
	weights []int // Replica.Weight, one per replica (default all 1)
}

// pgCluster opens the package's PostgreSQL cluster (a primary and two
// streaming replicas) through rwsplit.
func pgCluster(t testing.TB, o clusterOpts) (*cluster, *testdb.PGCluster) {
	t.Helper()
	pg := dbtest.Postgres(t, 2)
	return pgOn(t, pg, o), pg
}

// pgOn opens pg through rwsplit, as it is (a test may have crashed or
// paused a node first).
func pgOn(t testing.TB, pg *testdb.PGCluster, o clusterOpts) *cluster {
	t.Helper()
	newDialector := func(db *sql.DB) gorm.Dialector { return postgres.New(postgres.Config{Conn: db}) }
	nodes := make([]node, len(pg.Replicas))
	for i, r := range pg.Replicas {
		nodes[i] = r
	}
	return openOn(t, newDialector, pg.Primary, nodes, o)
}

// node is a testdb server, PostgreSQL or MariaDB.
type node interface {
	OpenDB(*testdb.Recorder) *sql.DB
}

// openOn opens primary and replicas (named replica1, replica2, ...)
// through rwsplit, every statement recorded.
func openOn(t testing.TB, newDialector func(*sql.DB) gorm.Dialector, primary node, replicas []node, o clusterOpts) *cluster {
	t.Helper()
	c := &cluster{t: t, rec: &testdb.Recorder{}}
	rs := make([]rwsplit.Replica, len(replicas))
	for i, r := range replicas {
		rs[i] = rwsplit.Replica{Name: fmt.Sprintf("replica%d", i+1), Dialector: newDialector(r.OpenDB(c.rec))}
	}
	c.open(newDialector(primary.OpenDB(c.rec)), rs, o)
	return c
}

// mariaCluster opens the package's MariaDB cluster (a primary and two GTID
// replicas) through rwsplit.
func mariaCluster(t testing.TB, o clusterOpts) (*cluster, *testdb.MariaCluster) {
	t.Helper()
	my := dbtest.MariaDB(t, 2)
	return mariaOn(t, my, o), my
}

// mariaOn opens my through rwsplit, as it is.
func mariaOn(t testing.TB, my *testdb.MariaCluster, o clusterOpts) *cluster {
	t.Helper()
	newDialector := func(db *sql.DB) gorm.Dialector { return mysql.New(mysql.Config{Conn: db}) }
	nodes := make([]node, len(my.Replicas))
	for i, r := range my.Replicas {
		nodes[i] = r
	}
	return openOn(t, newDialector, my.Primary, nodes, o)
}

func (c *cluster) open(primary gorm.Dialector, replicas []rwsplit.Replica, o clusterOpts) {
	t := c.t
	t.Helper()
	gcfg := o.gorm
	if gcfg.Logger == nil {
		gcfg.Logger = logger.Discard
	}
	db, err := gorm.Open(primary, &gcfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := o.config
	if cfg.Replicas == nil {
		cfg.Replicas = replicas
	}
	if o.weights != nil {
		if len(o.weights) != len(cfg.Replicas) {
			t.Fatalf("%d weights for %d replicas", len(o.weights), len(cfg.Replicas))
		}
		for i, w := range o.weights {
			cfg.Replicas[i].Weight = w
		}
	}
	userHook := cfg.OnRoute
	cfg.OnRoute = func(ctx context.Context, r rwsplit.Route) {
		c.mu.Lock()
		c.routes = append(c.routes, r)
		c.mu.Unlock()
		if userHook != nil {
			userHook(ctx, r)
		}
	}
	c.Plugin = rwsplit.New(cfg)
	if err := db.Use(c.Plugin); err != nil {
		t.Fatal(err)
	}
	c.DB = db
	t.Cleanup(func() {
		if err := c.Plugin.Close(); err != nil {
			t.Errorf("Plugin.Close: %v", err)
		}
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
		rwsplit.StopUserStore(db)
	})
}

// served runs fn and returns, for each statement recorded at the driver
// whose SQL contains marker, the node that executed it.
func (c *cluster) served(marker string, fn func()) []string {
	c.t.Helper()
	mark := c.rec.Mark()
	fn()
	var nodes []string
	for _, e := range c.rec.Since(mark) {
		if strings.Contains(e.SQL, marker) && !isProbe(e.SQL) {
			nodes = append(nodes, e.Node)
		}
	}
	return nodes
}

// isProbe reports whether sql is one of the lag checker's statements,
// which run on a connection of the recorded pools (given to rwsplit as
// existing *sql.DBs) and may contain a test's marker ("rt_" is in
// pg_postmaster_start_time).
func isProbe(sql string) bool {
	for _, s := range []string{"pg_is_in_recovery()", "pg_current_wal", "@@GLOBAL.gtid", "SLAVES STATUS", "REPLICA STATUS", "SELECT VERSION()"} {
		if strings.Contains(sql, s) {
			return true
		}
	}
	return false
}

// routed returns the routing records since the last call.
func (c *cluster) takeRoutes() []rwsplit.Route {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.routes
	c.routes = nil
	return r
}

// noErr fails the test on err.
func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func isReplica(node string) bool { return strings.HasPrefix(node, "replica") }

func allOn(nodes []string, want func(string) bool) bool {
	return len(nodes) > 0 && !slices.ContainsFunc(nodes, func(n string) bool { return !want(n) })
}
