package rwsplit_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
)

// primaryNode is a primary the test can crash and start again.
type primaryNode interface {
	Crash(context.Context) error
	Start(context.Context) error
}

// TestPrimaryDown: the primary crashes and comes back, on PostgreSQL and
// MariaDB. While it is down:
//   - writes fail at once with ErrPrimaryUnreachable, on no other node;
//   - reads go on on the replicas, which lost the primary too, long past
//     MaxLag, and see what was committed before the crash; with
//     FallbackFail, so a read that found no replica would fail;
//   - Stats and the log say so.
//
// When it is back, writes succeed again and reads on the replicas see
// them, with no restart of the application.
func TestPrimaryDown(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		pg := dbtest.PrivatePostgres(t, 2)
		cfg, logs := primaryDownConfig()
		c := pgOn(t, pg, clusterOpts{config: cfg})
		setupPosts(t, c, pg.WaitCaughtUp)
		checkPrimaryDown(t, c, logs, pg.Primary, pg.WaitCaughtUp)
	})
	t.Run("mariadb", func(t *testing.T) {
		my := dbtest.PrivateMariaDB(t, 2)
		cfg, logs := primaryDownConfig()
		c := mariaOn(t, my, clusterOpts{config: cfg})
		setupPosts(t, c, my.WaitCaughtUp)
		checkPrimaryDown(t, c, logs, my.Primary, my.WaitCaughtUp)
	})
}

// primaryDownConfig is the health tests' lag settings, FallbackFail, and
// a logger into the returned buffer.
func primaryDownConfig() (rwsplit.Config, *logBuffer) {
	logs := &logBuffer{}
	return rwsplit.Config{
		Lag:      healthLag,
		Fallback: rwsplit.FallbackFail,
		Logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}, logs
}

func checkPrimaryDown(t *testing.T, c *cluster, logs *logBuffer, primary primaryNode, waitCaughtUp func(context.Context) error) {
	t.Helper()
	before := rtPost{Author: "before-crash"}
	noErr(t, c.DB.Create(&before).Error)
	dbtest.Within(t, 10*time.Second, waitCaughtUp)

	noErr(t, primary.Crash(t.Context()))
	crashed := time.Now()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = primary.Start(context.Background())
		}
	})

	// A write fails at once, and no other node sees it.
	var writeErr error
	nodes := c.served("rt_posts", func() { writeErr = c.DB.Create(&rtPost{Author: "during-crash"}).Error })
	took := time.Since(crashed)
	if !errors.Is(writeErr, rwsplit.ErrPrimaryUnreachable) {
		t.Errorf("a write with the primary down: %v; want ErrPrimaryUnreachable", writeErr)
	}
	// A refused connection is immediate; 2s is for a loaded machine.
	if took > 2*time.Second {
		t.Errorf("the write took %v to fail", took)
	}
	for _, n := range nodes {
		if isReplica(n) {
			t.Errorf("the write reached %s", n)
		}
	}

	// Reads, for 4×MaxLag after the crash: each on a replica, each seeing
	// the row committed before it.
	var reads, late int
	byNode := map[string]int{}
	for time.Since(crashed) < 4*healthLag.MaxLag {
		var got []rtPost
		var err error
		nodes := c.served("rt_posts", func() { err = c.DB.Where("author = ?", "before-crash").Find(&got).Error })
		if err != nil {
			t.Fatalf("a read %v after the crash failed: %v; replicas %+v", time.Since(crashed).Round(time.Millisecond), err, c.Plugin.Stats().Replicas)
		}
		if len(nodes) != 1 || !isReplica(nodes[0]) || len(got) != 1 {
			t.Fatalf("a read %v after the crash ran on %v and found %d rows; want 1 row from a replica", time.Since(crashed).Round(time.Millisecond), nodes, len(got))
		}
		reads++
		byNode[nodes[0]]++
		if time.Since(crashed) > 2*healthLag.MaxLag {
			late++
		}
		time.Sleep(2 * time.Millisecond)
	}
	st := c.Plugin.Stats()
	var serving []string
	for _, r := range st.Replicas {
		if r.ServesWithoutPrimary {
			serving = append(serving, r.Name)
		}
	}
	t.Logf("primary down: write failed in %v (%v); %d reads, %d of them over 2×MaxLag after the crash, by node %v; serving without the primary: %v; primary error: %v",
		took.Round(time.Millisecond), writeErr, reads, late, byNode, serving, st.PrimaryErr)
	if late < 20 {
		t.Fatalf("only %d reads over 2×MaxLag after the crash: nothing measured", late)
	}
	if st.PrimaryErr == nil || len(serving) == 0 {
		t.Errorf("Stats: primary error %v, replicas serving without it %v; want both set", st.PrimaryErr, serving)
	}
	waitLog(t, logs, "rwsplit: primary down; reads go on on the replicas that lost it too, at the newest position any replica has")

	// The primary comes back: writes succeed, the replicas replay them,
	// and the plugin is back to normal on its own.
	noErr(t, primary.Start(t.Context()))
	restarted = true
	deadline := time.Now().Add(30 * time.Second)
	after := rtPost{Author: "after-restart"}
	for {
		err := c.DB.Create(&after).Error
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes still fail 30s after the primary started: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	dbtest.Within(t, 30*time.Second, waitCaughtUp)
	for time.Now().Before(deadline) && (c.Plugin.Stats().PrimaryErr != nil || !bothEligible(c)) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := c.Plugin.Stats(); st.PrimaryErr != nil || !bothEligible(c) {
		t.Fatalf("30s after the restart: primary error %v, replicas %+v", st.PrimaryErr, st.Replicas)
	}
	var got rtPost
	nodes = c.served("rt_posts", func() { noErr(t, c.DB.Where("author = ?", "after-restart").First(&got).Error) })
	if len(nodes) != 1 || !isReplica(nodes[0]) {
		t.Errorf("after the restart, a read ran on %v; want a replica", nodes)
	}
	waitLog(t, logs, "rwsplit: primary sampled again")
}

func bothEligible(c *cluster) bool {
	for _, r := range c.Plugin.Stats().Replicas {
		if !r.Eligible || r.ServesWithoutPrimary {
			return false
		}
	}
	return true
}

// waitLog waits up to 10s for a record msg in logs (the plugin's watcher
// looks once a second).
func waitLog(t *testing.T, logs *logBuffer, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(logs.records(t, msg)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no log record %q within 10s", msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
