package testdb_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rwsplit/rwsplit/internal/testdb"
)

// The start-up benchmarks time a cluster's start, to ready (replicas
// streaming), without its Close. Run them with a few iterations:
//
//	go test -run '^$' -bench Start -benchtime 5x ./internal/testdb/
//
// median-ms is the median start time.

func BenchmarkStartPostgres(b *testing.B) {
	for _, replicas := range []int{1, 2} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			benchStart(b, func(ctx context.Context) (interface{ Close() error }, error) {
				return testdb.StartPostgres(ctx, replicas, nil)
			})
		})
	}
}

func BenchmarkStartMariaDB(b *testing.B) {
	for _, replicas := range []int{1, 2} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			benchStart(b, func(ctx context.Context) (interface{ Close() error }, error) {
				return testdb.StartMariaDB(ctx, replicas, nil)
			})
		})
	}
}

func BenchmarkStartRedis(b *testing.B) {
	benchStart(b, func(ctx context.Context) (interface{ Close() error }, error) {
		return testdb.StartRedis(ctx, nil)
	})
}

func benchStart(b *testing.B, start func(context.Context) (interface{ Close() error }, error)) {
	var times []time.Duration
	for b.Loop() {
		t0 := time.Now()
		c, err := start(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(t0))
		b.StopTimer()
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms")
}
