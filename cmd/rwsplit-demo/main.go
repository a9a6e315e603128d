// Command rwsplit-demo shows what rwsplit changes, on real replication.
//
// It starts a PostgreSQL primary with two streaming hot-standby replicas
// from the system's server binaries, in a temporary folder, on free
// loopback ports (replica2 behind a TCP proxy that can add latency), and
// runs the same workloads through GORM with plain gorm.io/plugin/dbresolver
// and with rwsplit:
//
//   - read your own write: a user inserts a row and reads it back at once;
//   - a replica stops replaying WAL for a few seconds;
//   - a replica crashes and restarts;
//   - a replica answers 20ms slower than the other.
//
// It prints what each plugin did and how many statements each node of
// rwsplit served and why, then removes everything it started. While it
// runs it serves rwsplit's status page (rwsplit.StatusHandler) on -http,
// whose address it prints at start.
//
//	go run ./cmd/rwsplit-demo
//
// With -watch it runs no comparison: it keeps the cluster running under a
// mixed workload (readers, users who read their own writes, sticky) and
// redraws a per-replica table every second, until Ctrl-C. Typed commands
// pause, resume, crash and restart a replica, drain it, or send every read
// to the primary, so the table and the status page show what follows.
//
//	go run ./cmd/rwsplit-demo -watch -http 127.0.0.1:8080
//
// With -primary and -replica it uses servers of yours instead (PostgreSQL,
// or MySQL/MariaDB with -driver mysql) and runs a mixed read/write workload
// through rwsplit only, since it cannot inject faults there:
//
//	go run ./cmd/rwsplit-demo -primary 'host=db1 ...' -replica 'host=db2 ...' -replica 'host=db3 ...'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rwsplit/rwsplit/internal/testdb"
)

func main() {
	var o options
	flag.IntVar(&o.writes, "writes", 1000, "insert-then-read iterations in the read-your-writes workload")
	flag.DurationVar(&o.fault, "fault", 3*time.Second, "how long each fault (pause, crash, slow) lasts")
	flag.IntVar(&o.readers, "readers", 8, "concurrent readers in the fault workloads and with -watch")
	flag.StringVar(&o.primary, "primary", "", "use this primary `DSN` instead of starting a local cluster")
	flag.Func("replica", "a replica `DSN` (repeat the flag for each; with -primary)", func(v string) error {
		o.replicas = append(o.replicas, v)
		return nil
	})
	flag.StringVar(&o.driver, "driver", "postgres", "with -primary: postgres or mysql")
	flag.StringVar(&o.http, "http", "127.0.0.1:0", "serve the status page on this `address` while the demo runs (port 0: a free one)")
	flag.BoolVar(&o.watch, "watch", false, "keep the cluster running under a mixed workload, with a live per-replica table, until Ctrl-C")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("rwsplit-demo: ")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := 0
	runner := run
	if o.primary != "" {
		runner = runExternal
	}
	if err := runner(ctx, o); err != nil {
		log.Print(err)
		code = 1
	}
	if err := testdb.Teardown(); err != nil {
		log.Print(err)
		code = 1
	}
	os.Exit(code)
}

type options struct {
	writes  int
	fault   time.Duration
	readers int

	primary  string
	replicas []string
	driver   string

	http  string
	watch bool
}

func run(ctx context.Context, o options) error {
	fmt.Println("Starting a PostgreSQL primary and two streaming replicas on loopback ports...")
	start := time.Now()
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cl, err := testdb.StartPostgres(startCtx, 2, nil)
	if err != nil {
		if errors.Is(err, testdb.ErrMissingBinaries) {
			return fmt.Errorf("%w\ninstall PostgreSQL (apt-get install -y postgresql, or bash .ci/demo does it), or point the demo at your servers with -primary and -replica", err)
		}
		return err
	}
	proxy, err := testdb.StartProxy(cl.Replicas[1].Addr())
	if err != nil {
		return err
	}
	fmt.Printf("  primary %s, replica1 %s, replica2 %s (through a proxy on %s), ready in %v\n\n",
		cl.Primary.Addr(), cl.Replicas[0].Addr(), cl.Replicas[1].Addr(), proxy.Addr(), time.Since(start).Round(time.Millisecond))

	env := &env{ctx: ctx, cluster: cl, proxy: proxy, o: o}
	if err := env.setup(); err != nil {
		return err
	}
	defer env.close()
	status, err := serveStatus(o.http, env.plugin)
	if err != nil {
		return err
	}
	defer status.stop()
	fmt.Printf("Status page of rwsplit: %s\n\n", status.url)
	if o.watch {
		return watch(ctx, env.split, env.plugin, &faults{cluster: cl}, status.url, o.readers)
	}

	var rows []result
	for _, w := range []workload{env.readYourWrites, env.pausedReplica, env.crashedReplica, env.slowReplica} {
		r, err := w()
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	printTable(rows)
	printStats(env.plugin)
	return nil
}

// result is one workload's outcome under both plugins.
type result struct {
	name, measure     string
	dbresolver, split string
}

type workload func() (result, error)

func printTable(rows []result) {
	fmt.Println()
	fmt.Printf("%-34s %-40s %-28s %s\n", "workload", "measure", "dbresolver", "rwsplit")
	fmt.Println(strings.Repeat("-", 140))
	for _, r := range rows {
		fmt.Printf("%-34s %-40s %-28s %s\n", r.name, r.measure, r.dbresolver, r.split)
	}
}
