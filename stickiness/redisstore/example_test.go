package redisstore_test

import (
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rwsplit/rwsplit/stickiness"
	"github.com/rwsplit/rwsplit/stickiness/redisstore"
)

func ExampleNew() {
	client := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer client.Close() // the caller owns the client, not the store
	store := redisstore.New(client, redisstore.Options{Prefix: "myapp:sticky:"})
	cfg := stickiness.Config{
		Window: 10 * time.Second,
		Store:  store,
	}
	_ = cfg // rwsplit.Config{Stickiness: cfg, ...}
}
