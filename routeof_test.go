package rwsplit_test

import (
	"context"
	"slices"
	"testing"

	"gorm.io/gorm"

	"github.com/rwsplit/rwsplit"
)

// TestRouteOf: an After callback reads, with RouteOf, the node and reason
// of the statement that just ran, and they are where the driver saw it run
// and what OnRoute received.
func TestRouteOf(t *testing.T) {
	c, pg := pgCluster(t, clusterOpts{})
	setupPosts(t, c, pg.WaitCaughtUp)

	var seen []rwsplit.Route
	record := func(db *gorm.DB) {
		if r, ok := rwsplit.RouteOf(db); ok {
			seen = append(seen, r)
		}
	}
	cb := c.DB.Callback()
	noErr(t, cb.Query().After("gorm:query").Register("test:route-of", record))
	noErr(t, cb.Create().After("gorm:create").Register("test:route-of", record))
	noErr(t, cb.Row().After("gorm:row").Register("test:route-of", record))

	ctx := context.Background()
	for _, tt := range []struct {
		name string
		run  func(db *gorm.DB) error
		want rwsplit.Reason
	}{
		{"First", func(db *gorm.DB) error { return db.First(&rtPost{}).Error }, rwsplit.ReasonRead},
		{"Primary clause", func(db *gorm.DB) error { return db.Clauses(rwsplit.Primary).First(&rtPost{}).Error }, rwsplit.ReasonForcedPrimary},
		{"Replica clause", func(db *gorm.DB) error {
			return db.Clauses(rwsplit.Replica{Name: "replica2"}).First(&rtPost{}).Error
		}, rwsplit.ReasonForcedReplica},
		{"Create", func(db *gorm.DB) error { return db.Create(&rtPost{Author: "route-of"}).Error }, rwsplit.ReasonWrite},
		{"locking Row", func(db *gorm.DB) error {
			return db.Raw("SELECT id FROM rt_posts ORDER BY id LIMIT 1 FOR UPDATE").Row().Err()
		}, rwsplit.ReasonLocking},
		{"Raw Row", func(db *gorm.DB) error {
			return db.Raw("SELECT id FROM rt_posts ORDER BY id LIMIT 1").Row().Err()
		}, rwsplit.ReasonRead},
	} {
		seen = nil
		c.takeRoutes()
		nodes := c.served("rt_posts", func() { noErr(t, tt.run(c.DB.WithContext(ctx))) })
		routes := c.takeRoutes()
		if len(seen) != 1 || len(routes) != 1 || len(nodes) != 1 {
			t.Errorf("%s: RouteOf gave %v, OnRoute %v, the driver ran it on %v; want one of each", tt.name, seen, routes, nodes)
			continue
		}
		if got := seen[0]; got != routes[0] || got.Reason != tt.want || got.Node != nodes[0] {
			t.Errorf("%s: RouteOf = %+v; OnRoute got %+v, the driver ran it on %s; want reason %v", tt.name, got, routes[0], nodes[0], tt.want)
		}
	}
	if !slices.Equal(c.served("rt_posts", func() {}), nil) {
		t.Fatal("served recorded statements that did not run")
	}
	if _, ok := rwsplit.RouteOf(c.DB); ok {
		t.Error("RouteOf of a *gorm.DB that ran nothing reported a route")
	}
	if _, ok := rwsplit.RouteOf(nil); ok {
		t.Error("RouteOf(nil) reported a route")
	}
}
