package lagcheck_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"time"

	"github.com/rwsplit/rwsplit/lagcheck"
)

// A Checker watches two PostgreSQL replicas; reads go to a replica only
// while it is Healthy, and a read that must see the caller's last write
// goes to a replica only once it has replayed it.
func Example() {
	primary, _ := sql.Open("pgx", "host=10.0.0.1 user=app dbname=app")
	r1, _ := sql.Open("pgx", "host=10.0.0.2 user=app dbname=app")
	r2, _ := sql.Open("pgx", "host=10.0.0.3 user=app dbname=app")

	c, err := lagcheck.New(lagcheck.Config{
		MaxLag: 2 * time.Second, // the zero Config means 250ms probes, MaxLag 1s
		OnStateChange: func(ch lagcheck.Change) {
			log.Printf("replica %s: %v -> %v (lag %v, err %v)", ch.Replica, ch.From, ch.To, ch.Reading.Lag, ch.Reading.Err)
		},
	}, "postgres", primary, []lagcheck.Target{{Name: "r1", DB: r1}, {Name: "r2", DB: r2}})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	c.Start(ctx) // one synchronous round: a replica down now starts Evicted
	defer c.Close()

	// Read your writes: after a write, take the primary's position...
	if _, err := primary.ExecContext(ctx, "UPDATE accounts SET balance = balance - 10 WHERE id = 1"); err != nil {
		log.Fatal(err)
	}
	pos, err := c.PrimaryPosition(ctx)
	if err != nil {
		log.Fatal(err)
	}
	// ...and read from a replica only if it is healthy and covers it.
	db := primary
	for i, r := range []*sql.DB{r1, r2} {
		if c.State(i) == lagcheck.Healthy && c.Covers(i, pos) {
			db = r
			break
		}
	}
	_ = db
}

// Positions round-trip through their text form, to travel in a cookie.
func ExampleParsePosition() {
	written, _ := lagcheck.ParsePosition("0-1-100,1-2-7") // MariaDB @@gtid_binlog_pos after a write
	replica, _ := lagcheck.ParsePosition("1-2-9,0-1-99")  // a replica's @@gtid_slave_pos
	fmt.Println(replica.Covers(written), replica)
	behind, _ := replica.Behind(written)
	fmt.Println(behind, "transaction(s) behind")

	set, _ := lagcheck.ParsePosition("8a94f357-aab4-11df-86ab-c80aa9429562:1-5,\n3E11FA47-71CA-11E1-9E33-C80AA9429562:1-100:101-110")
	fmt.Println(set) // MySQL @@gtid_executed, canonical
	lsn, _ := lagcheck.ParsePosition("16/B374D848")
	fmt.Println(lsn.Kind(), lsn)
	var unknown lagcheck.Position
	fmt.Println(unknown.IsZero(), lsn.Covers(unknown))
	// Output:
	// false 0-1-99,1-2-9
	// 1 transaction(s) behind
	// 3e11fa47-71ca-11e1-9e33-c80aa9429562:1-110,8a94f357-aab4-11df-86ab-c80aa9429562:1-5
	// postgres-lsn 16/B374D848
	// true false
}
