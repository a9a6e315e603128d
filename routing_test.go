package rwsplit_test

import (
	"testing"
	"time"
)

type user struct {
	ID   uint
	Name string
}

func TestRoutingSmoke(t *testing.T) {
	c, pg := pgCluster(t, clusterOpts{})
	if err := c.DB.AutoMigrate(&user{}); err != nil {
		t.Fatal(err)
	}
	pg.WaitCaughtUp(t, 5*time.Second)
	got := c.served(`INSERT INTO "users"`, func() {
		if err := c.DB.Create(&user{Name: "a"}).Error; err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("create: %v", got)
	got = c.served(`FROM "users"`, func() {
		var u []user
		if err := c.DB.Find(&u).Error; err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("find: %v routes %v", got, c.takeRoutes())
}
