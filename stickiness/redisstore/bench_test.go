package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/stickiness"
)

func BenchmarkRedisGet(b *testing.B) {
	srv := dbtest.Redis(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer client.Close()
	s := New(client, Options{})
	ctx := context.Background()
	if err := s.Set(ctx, "user-1", stickiness.Record{Until: time.Now().Add(time.Hour), Position: lagcheck.LSNPosition(1)}); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok, err := s.Get(ctx, "user-1"); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, ok, err := s.Get(ctx, "user-1"); !ok || err != nil {
					b.Error(ok, err)
					return
				}
			}
		})
	})
}

func BenchmarkRedisSet(b *testing.B) {
	srv := dbtest.Redis(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer client.Close()
	s := New(client, Options{})
	ctx := context.Background()
	base := time.Now().Add(time.Hour)
	b.ReportAllocs()
	var i uint64
	for b.Loop() {
		i++ // newer writes: one script call each
		if err := s.Set(ctx, "user-1", stickiness.Record{Until: base.Add(time.Duration(i)), Position: lagcheck.LSNPosition(i)}); err != nil {
			b.Fatal(err)
		}
	}
}
