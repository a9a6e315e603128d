package rwsplit_test

import (
	"database/sql"
	"errors"
	"slices"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/connerr"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
)

// TestFallbackFailLastReplicaFails: under FallbackFail, a read whose
// replica fails to connect while no other replica is eligible fails with
// ErrNoReplica, wrapping its own connection error, and runs nowhere
// else. TestChaos found such reads failing with the bare driver error
// ("unexpected EOF", "invalid connection").
func TestFallbackFailLastReplicaFails(t *testing.T) {
	pg := dbtest.Postgres(t, 2)
	proxy := dbtest.Proxy(t, pg.Replicas[1].Addr())
	newDialector := func(db *sql.DB) gorm.Dialector { return postgres.New(postgres.Config{Conn: db}) }
	// Probes every 2s: the read below runs before the checker sees
	// replica2 gone.
	c := openOn(t, newDialector, pg.Primary, []node{pg.Replicas[0], proxied{pg.Replicas[1], proxy, t}},
		clusterOpts{config: rwsplit.Config{Fallback: rwsplit.FallbackFail, Lag: lagcheck.Config{Interval: 2 * time.Second, MaxLag: time.Hour}}})
	setupPosts(t, c, pg.WaitCaughtUp)
	noErr(t, c.Plugin.Drain("replica1")) // replica2 is the only eligible replica

	var got rtPost
	nodes := c.served("rt_posts", func() { noErr(t, c.DB.First(&got, 1).Error) })
	if !slices.Equal(nodes, []string{"replica2"}) {
		t.Fatalf("before: the read ran on %v, want [replica2]", nodes)
	}
	noErr(t, proxy.Close()) // replica2's connections break; new ones are refused
	var err error
	nodes = c.served("rt_posts", func() { err = c.DB.First(&got, 1).Error })
	t.Logf("replica2 gone: %v; ran on %v", err, nodes)
	if !errors.Is(err, rwsplit.ErrNoReplica) || !connerr.Is(err) {
		t.Errorf("the read failed with %v; want ErrNoReplica wrapping the connection error", err)
	}
	if slices.ContainsFunc(nodes, func(n string) bool { return n != "replica2" }) {
		t.Errorf("the read ran on %v; want nowhere but replica2", nodes)
	}
}
