package rwsplit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/stickiness"
	"github.com/rwsplit/rwsplit/stickiness/redisstore"
)

// logBuffer collects JSON log records.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the records whose message is msg.
func (b *logBuffer) records(t testing.TB, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// TestLogRecords: with Config.Logger set, a start, an eviction and a
// readmission each give exactly one record, and so do the stickiness store
// failing and recovering. Nothing is logged per statement.
func TestLogRecords(t *testing.T) {
	var logs logBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	changes := make(chan lagcheck.Change, 64)
	lag := healthLag
	lag.OnStateChange = func(ch lagcheck.Change) { changes <- ch }
	srv := dbtest.Redis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	c, pg := pgCluster(t, clusterOpts{config: rwsplit.Config{Logger: logger, Lag: lag,
		Stickiness: stickiness.Config{Store: redisstore.New(client, redisstore.Options{})}}})
	setupPosts(t, c, pg.WaitCaughtUp)

	// replica1 stops replaying while the primary writes: evicted, then
	// readmitted after it resumes.
	waitFor := func(to lagcheck.State) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case ch := <-changes:
				if ch.Replica == "replica1" && ch.To == to {
					return
				}
			case <-deadline:
				t.Fatalf("replica1 did not become %v", to)
			case <-time.After(10 * time.Millisecond):
				noErr(t, c.DB.Create(&rtPost{Author: "log"}).Error) // keeps the primary moving
			}
		}
	}
	noErr(t, pg.Replicas[0].PauseReplay(t.Context()))
	waitFor(lagcheck.Evicted)
	noErr(t, pg.Replicas[0].ResumeReplay(t.Context()))
	waitFor(lagcheck.Healthy)

	// The store fails, then answers again.
	ctx := rwsplit.WithUser(context.Background(), "log-user")
	noErr(t, srv.Stop(t.Context()))
	for range 20 {
		var p rtPost
		noErr(t, c.DB.WithContext(ctx).First(&p, 1).Error)
	}
	noErr(t, srv.Start(t.Context()))
	deadline := time.Now().Add(20 * time.Second)
	for len(logs.records(t, "rwsplit: sticky store recovered")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no store-recovered record within 20s")
		}
		var p rtPost
		noErr(t, c.DB.WithContext(ctx).First(&p, 1).Error)
		time.Sleep(50 * time.Millisecond) // the store is left alone for 1s after an error
	}

	known := map[string]int{
		"rwsplit: started":            1,
		"rwsplit: replica evicted":    1, // replica1's
		"rwsplit: replica readmitted": 1, // replica1's
		"rwsplit: sticky store failing; keyed reads go to the primary": 1,
		"rwsplit: sticky store recovered":                              1,
	}
	for msg, want := range known {
		recs := logs.records(t, msg)
		if strings.Contains(msg, "replica ") {
			// replica2 may be evicted too on a loaded machine: count
			// replica1's records.
			recs = slices.DeleteFunc(recs, func(r map[string]any) bool { return r["replica"] != "replica1" })
		}
		if len(recs) != want {
			t.Errorf("%d records %q, want %d", len(recs), msg, want)
		}
	}
	// Nothing else is logged: in particular no record per statement.
	logs.mu.Lock()
	all := logs.buf.String()
	logs.mu.Unlock()
	for _, line := range strings.Split(strings.TrimSpace(all), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		// A loaded machine may evict replica2 while replica1 is out, and
		// then reads fall back to the primary, which is logged.
		mayAppear := map[string]bool{
			"rwsplit: reads falling back to the primary: no replica eligible": true,
			"rwsplit: reads back on replicas":                                 true,
		}
		if _, ok := known[r["msg"].(string)]; !ok && !mayAppear[r["msg"].(string)] {
			t.Errorf("unexpected record: %s", line)
		}
	}
}

// failingSample is the PostgreSQL probe whose primary side fails while
// failing is set.
type failingSample struct {
	lagcheck.Probe
	failing atomic.Bool
}

func (f *failingSample) Primary(ctx context.Context, db lagcheck.DB) (lagcheck.Position, error) {
	if f.failing.Load() {
		return lagcheck.Position{}, errors.New("test: primary sample refused")
	}
	return f.Probe.Primary(ctx, db)
}

// TestLogConditions: the conditions no single event reports each give one
// record when they start and one when they end, however many reads or
// probe rounds they last: reads falling back to the primary, and the
// primary sample failing. A replica down at start is logged once.
func TestLogConditions(t *testing.T) {
	defer rwsplit.SetWatchEvery(50 * time.Millisecond)()
	var logs logBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	probe := &failingSample{Probe: lagcheck.PostgresProbe()}
	lag := healthLag
	lag.Probe = probe
	pg := dbtest.Postgres(t, 2)
	noErr(t, pg.Replicas[1].Crash(t.Context()))
	t.Cleanup(func() { _ = pg.Replicas[1].Start(context.Background()) })
	c := pgOn(t, pg, clusterOpts{config: rwsplit.Config{Logger: logger, Lag: lag, StartupTimeout: time.Second}})
	setupPosts(t, c, pg.Replicas[0].WaitCaughtUp)

	waitRecord := func(msg string, traffic bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for len(logs.records(t, msg)) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no record %q within 10s", msg)
			}
			if traffic {
				var p rtPost
				noErr(t, c.DB.First(&p, 1).Error)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Reads fall back while replica1 (the one up) is drained: many reads,
	// over many watch periods.
	noErr(t, c.Plugin.Drain("replica1"))
	waitRecord("rwsplit: reads falling back to the primary: no replica eligible", true)
	nodes := c.served("rt_posts", func() {
		for range 50 {
			var p rtPost
			noErr(t, c.DB.First(&p, 1).Error)
			time.Sleep(5 * time.Millisecond)
		}
	})
	for _, n := range nodes {
		if n != "primary" {
			t.Fatalf("a read ran on %s while every replica was out", n)
		}
	}
	noErr(t, c.Plugin.Undrain("replica1"))
	waitRecord("rwsplit: reads back on replicas", true)

	// The primary cannot be sampled for several rounds, then can. No
	// reads meanwhile: once the bounds pass MaxLag they would fall back,
	// rightly, and log that too.
	probe.failing.Store(true)
	waitRecord("rwsplit: cannot sample the primary; replica lags are not measured", false)
	time.Sleep(5 * healthLag.Interval) // several failed rounds: still one record
	probe.failing.Store(false)
	waitRecord("rwsplit: primary sampled again", false)

	for msg, want := range map[string]int{
		"rwsplit: replica has not passed a probe since start; it serves no reads until it does": 1,
		"rwsplit: reads falling back to the primary: no replica eligible":                       1,
		"rwsplit: reads back on replicas":                                                       1,
		"rwsplit: cannot sample the primary; replica lags are not measured":                     1,
		"rwsplit: primary sampled again":                                                        1,
	} {
		recs := logs.records(t, msg)
		if len(recs) != want {
			t.Errorf("%d records %q, want %d", len(recs), msg, want)
		}
		for _, r := range recs {
			t.Logf("%v", r)
		}
	}
	if recs := logs.records(t, "rwsplit: replica has not passed a probe since start; it serves no reads until it does"); len(recs) == 1 && recs[0]["replica"] != "replica2" {
		t.Errorf("the replica down at start is %v, want replica2", recs[0]["replica"])
	}
}
