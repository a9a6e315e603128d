package rwsplit_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"strings"
	"sync"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/policy"
)

// The examples run against a real PostgreSQL primary with two streaming
// replicas that internal/testdb starts on free loopback ports. In your
// code, primaryDSN and replicaDSN are your own servers' DSNs.
var (
	exampleOnce    sync.Once
	exampleCluster *testdb.PGCluster
)

func exampleDSNs() (primaryDSN string, replicaDSN [2]string) {
	exampleOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := testdb.StartPostgres(ctx, 2, nil)
		if err != nil {
			log.Fatal(err)
		}
		exampleCluster = c
	})
	c := exampleCluster
	return c.Primary.DSN(), [2]string{c.Replicas[0].DSN(), c.Replicas[1].DSN()}
}

type Article struct {
	ID    uint
	Title string
}

// node prints where each statement ran, for the examples' output.
func printRoute(_ context.Context, r rwsplit.Route) {
	node := r.Node
	if strings.HasPrefix(node, "replica") {
		node = "replica" // either one: the policy chooses
	}
	fmt.Printf("  -> %s (%s)\n", node, r.Reason)
}

// waitReplicas waits until both replicas have replayed everything the
// primary has written: only the examples need this, to print a stable
// output.
func waitReplicas() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := exampleCluster.WaitCaughtUp(ctx); err != nil {
		log.Fatal(err)
	}
}

// Example shows the basic set-up: writes go to the primary, reads to a
// replica, and Clauses(rwsplit.Primary) forces the primary.
func Example() {
	primaryDSN, replicaDSN := exampleDSNs()

	db, err := gorm.Open(postgres.Open(primaryDSN), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		log.Fatal(err)
	}
	sqlDB, _ := db.DB()
	defer sqlDB.Close() // the primary pool is yours to close
	p := rwsplit.New(rwsplit.Config{
		Replicas: []rwsplit.Replica{
			{Name: "replica-a", Dialector: postgres.Open(replicaDSN[0])},
			{Name: "replica-b", Dialector: postgres.Open(replicaDSN[1]), Weight: 2},
		},
		OnRoute: printRoute, // optional: observe every routing decision
	})
	if err := db.Use(p); err != nil { // configuration errors; never panics
		log.Fatal(err)
	}
	defer p.Close() // stops the checker and closes the replica pools

	fmt.Println("DropTable:")
	_ = db.Migrator().DropTable(&Article{})
	fmt.Println("AutoMigrate:")
	if err := db.AutoMigrate(&Article{}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("Create:")
	a := Article{Title: "hello"}
	db.Create(&a)
	waitReplicas()

	fmt.Println("First:")
	var got Article
	db.First(&got, a.ID)
	fmt.Println("First with rwsplit.Primary:")
	db.Clauses(rwsplit.Primary).First(&got, a.ID)
	fmt.Println("Raw SELECT ... FOR UPDATE:")
	db.Raw("SELECT id FROM articles WHERE id = ? FOR UPDATE", a.ID).Scan(&got.ID)
	fmt.Println(got.Title)
	// Output:
	// DropTable:
	//   -> primary (migrator)
	// AutoMigrate:
	//   -> primary (migrator)
	//   -> primary (migrator)
	// Create:
	//   -> primary (write)
	// First:
	//   -> replica (read)
	// First with rwsplit.Primary:
	//   -> primary (forced-primary)
	// Raw SELECT ... FOR UPDATE:
	//   -> primary (locking)
	// hello
}

// ExampleReplica runs a read-only transaction on one replica; a write
// inside it fails with ErrReadOnly and never reaches a server.
func ExampleReplica() {
	primaryDSN, replicaDSN := exampleDSNs()
	db, _ := gorm.Open(postgres.Open(primaryDSN), &gorm.Config{Logger: logger.Discard})
	sqlDB, _ := db.DB()
	defer sqlDB.Close()
	p := rwsplit.New(rwsplit.Config{Replicas: []rwsplit.Replica{
		{Name: "replica-a", Dialector: postgres.Open(replicaDSN[0])},
		{Name: "replica-b", Dialector: postgres.Open(replicaDSN[1])},
	}})
	if err := db.Use(p); err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	_ = db.AutoMigrate(&Article{})
	waitReplicas()

	err := db.Clauses(rwsplit.Replica{}).Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Article{}).Count(&n).Error; err != nil {
			return err
		}
		fmt.Println("count ok")
		return tx.Create(&Article{Title: "not here"}).Error
	})
	fmt.Println(errors.Is(err, rwsplit.ErrReadOnly))

	// The same with database/sql's read-only option.
	err = db.Transaction(func(tx *gorm.DB) error {
		return tx.Exec("DELETE FROM articles").Error
	}, &sql.TxOptions{ReadOnly: true})
	fmt.Println(errors.Is(err, rwsplit.ErrReadOnly))
	// Output:
	// count ok
	// true
	// true
}

// ExampleMaxStaleness bounds how stale one read may be.
func ExampleMaxStaleness() {
	primaryDSN, replicaDSN := exampleDSNs()
	db, _ := gorm.Open(postgres.Open(primaryDSN), &gorm.Config{Logger: logger.Discard})
	sqlDB, _ := db.DB()
	defer sqlDB.Close()
	p := rwsplit.New(rwsplit.Config{
		Replicas: []rwsplit.Replica{
			{Name: "replica-a", Dialector: postgres.Open(replicaDSN[0])},
			{Name: "replica-b", Dialector: postgres.Open(replicaDSN[1])},
		},
		OnRoute: printRoute,
	})
	if err := db.Use(p); err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	var n int64
	// Within a minute of the primary: a healthy replica qualifies.
	db.Clauses(rwsplit.MaxStaleness(time.Minute)).Model(&Article{}).Count(&n)
	// No replica can be known to be 1ns fresh: the primary serves it.
	db.Clauses(rwsplit.MaxStaleness(time.Nanosecond)).Model(&Article{}).Count(&n)
	// Output:
	//   -> replica (read)
	//   -> primary (stale)
}

// ExamplePlugin_Stats reads the per-replica health and policy counters.
func ExamplePlugin_Stats() {
	primaryDSN, replicaDSN := exampleDSNs()
	db, _ := gorm.Open(postgres.Open(primaryDSN), &gorm.Config{Logger: logger.Discard})
	sqlDB, _ := db.DB()
	defer sqlDB.Close()
	p := rwsplit.New(rwsplit.Config{
		Replicas: []rwsplit.Replica{
			{Name: "replica-a", Dialector: postgres.Open(replicaDSN[0])},
			{Name: "replica-b", Dialector: postgres.Open(replicaDSN[1])},
		},
		Policy: policy.RoundRobin(),
	})
	if err := db.Use(p); err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	for range 4 {
		var n int64
		db.Model(&Article{}).Count(&n)
	}
	s := p.Stats()
	fmt.Println("policy:", s.Policy, "reads:", s.Routes[rwsplit.ReasonRead])
	for _, r := range s.Replicas {
		fmt.Printf("%s eligible=%v state=%v served>=2:%v\n", r.Name, r.Eligible, r.Health.State, r.Served >= 2)
	}
	// Output:
	// policy: roundrobin reads: 4
	// replica-a eligible=true state=healthy served>=2:true
	// replica-b eligible=true state=healthy served>=2:true
}

// ExamplePlugin_AddReplica changes the replicas and MaxLag while the
// plugin runs, as an autoscaler or an operator would.
func ExamplePlugin_AddReplica() {
	primaryDSN, replicaDSN := exampleDSNs()
	db, _ := gorm.Open(postgres.Open(primaryDSN), &gorm.Config{Logger: logger.Discard})
	sqlDB, _ := db.DB()
	defer sqlDB.Close()
	p := rwsplit.New(rwsplit.Config{
		Replicas: []rwsplit.Replica{{Name: "replica-a", Dialector: postgres.Open(replicaDSN[0])}},
		OnRoute:  printRoute,
	})
	if err := db.Use(p); err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	// A replica came up: it is opened, probed once, and serves reads.
	if err := p.AddReplica(rwsplit.Replica{Name: "replica-b", Dialector: postgres.Open(replicaDSN[1])}); err != nil {
		log.Fatal(err)
	}
	// A replica goes away: no new reads; statements and transactions
	// still on it finish; then its pools are closed.
	if err := p.RemoveReplica("replica-a"); err != nil {
		log.Fatal(err)
	}
	var n int
	db.Raw("SELECT 1").Scan(&n)

	// Fresher reads during an incident, validated like Config.Lag.
	if err := p.SetMaxLag(500 * time.Millisecond); err != nil {
		log.Fatal(err)
	}
	s := p.Stats()
	fmt.Println("max lag:", s.MaxLag, "readmit lag:", s.ReadmitLag)
	fmt.Println(errors.Is(p.SetMaxLag(0), rwsplit.ErrConfig), errors.Is(p.RemoveReplica("replica-a"), rwsplit.ErrUnknownReplica))
	for _, r := range s.Replicas {
		fmt.Println(r.Name, "eligible:", r.Eligible)
	}
	// Output:
	//   -> replica (read)
	// max lag: 500ms readmit lag: 250ms
	// true true
	// replica-b eligible: true
}

// Example_primaryShare lets the primary serve about a quarter of the
// reads, the rest going to the replicas in turn.
func Example_primaryShare() {
	primaryDSN, replicaDSN := exampleDSNs()
	db, _ := gorm.Open(postgres.Open(primaryDSN), &gorm.Config{Logger: logger.Discard})
	sqlDB, _ := db.DB()
	defer sqlDB.Close()
	pol, err := policy.PrimaryShare(policy.RoundRobin(), 0.25)
	if err != nil {
		log.Fatal(err)
	}
	p := rwsplit.New(rwsplit.Config{
		Replicas: []rwsplit.Replica{
			{Name: "replica-a", Dialector: postgres.Open(replicaDSN[0])},
			{Name: "replica-b", Dialector: postgres.Open(replicaDSN[1])},
		},
		Policy: pol,
	})
	if err := db.Use(p); err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	for range 400 {
		var n int
		db.Raw("SELECT 1").Scan(&n)
	}
	s := p.Stats()
	share := float64(s.Routes[rwsplit.ReasonPolicyPrimary]) / 400
	fmt.Println(s.Policy, "on the primary:", share > 0.15 && share < 0.35)
	// Output:
	// roundrobin+primary(0.25) on the primary: true
}
