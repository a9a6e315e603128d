package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb"
)

// pgpoolServer is a pgpool-II process in front of a PostgreSQL cluster.
type pgpoolServer struct {
	cmd  *exec.Cmd
	dir  string
	port int
	done chan struct{}
}

// startPgpool starts pgpool-II (Debian's pgpool2) with streaming-replication
// load balancing over the cluster: reads to the replicas only (the
// primary's weight is 0, as rwsplit sends no reads there), statement-level
// load balancing, no health checks or delay checks (rwsplit's lag bound has
// no pgpool counterpart here).
func startPgpool(ctx context.Context, cl *testdb.PGCluster) (*pgpoolServer, error) {
	bin, err := exec.LookPath("pgpool")
	if err != nil {
		return nil, fmt.Errorf("pgpool-II is not installed (apt-get install -y pgpool2)")
	}
	dir, err := os.MkdirTemp("", "rwsplit-bench-pgpool-")
	if err != nil {
		return nil, err
	}
	port := freePort(0)
	pcp := freePort(port)
	var conf strings.Builder
	fmt.Fprintf(&conf, `backend_clustering_mode = 'streaming_replication'
listen_addresses = '127.0.0.1'
port = %d
pcp_listen_addresses = '127.0.0.1'
pcp_port = %d
unix_socket_directories = '%s'
pcp_socket_dir = '%s'
pid_file_name = '%s/pgpool.pid'
logdir = '%s'
log_destination = 'stderr'
enable_pool_hba = off
num_init_children = 32
max_pool = 2
load_balance_mode = on
statement_level_load_balance = on
sr_check_period = 0
sr_check_user = 'postgres'
health_check_period = 0
failover_on_backend_error = off
`, port, pcp, dir, dir, dir, dir)
	for i, n := range append([]*testdb.PGNode{cl.Primary}, cl.Replicas...) {
		weight := 1
		if i == 0 {
			weight = 0
		}
		fmt.Fprintf(&conf, "backend_hostname%d = '127.0.0.1'\nbackend_port%d = %d\nbackend_weight%d = %d\nbackend_flag%d = 'DISALLOW_TO_FAILOVER'\nbackend_data_directory%d = '%s'\n",
			i, i, n.Port, i, weight, i, i, n.DataDir())
	}
	files := map[string]string{"pgpool.conf": conf.String(), "pcp.conf": "", "pool_hba.conf": "host all all 127.0.0.1/32 trust\n", "pool_passwd": ""}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(bin, "-n", "-f", filepath.Join(dir, "pgpool.conf"), "-F", filepath.Join(dir, "pcp.conf"), "-a", filepath.Join(dir, "pool_hba.conf"))
	logf, err := os.Create(filepath.Join(dir, "pgpool.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &pgpoolServer{cmd: cmd, dir: dir, port: port, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(s.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(filepath.Join(dir, "pgpool.log"))
			s.close()
			return nil, fmt.Errorf("pgpool exited: %s", lastLines(string(b), 8))
		case <-ctx.Done():
			s.close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "pgpool.log"))
			s.close()
			return nil, fmt.Errorf("pgpool not listening after 20s: %s", lastLines(string(b), 8))
		}
	}
}

func (s *pgpoolServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *pgpoolServer) close() {
	if s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
	}
	os.RemoveAll(s.dir)
}

// freePort returns a loopback port below the ephemeral range that is free
// now (shared/REPLICATION.md: servers on ephemeral-range ports clash).
func freePort(not int) int {
	for p := 20000 + os.Getpid()%5000; ; p++ {
		if p == 32000 {
			p = 20000
		}
		if p == not {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err == nil {
			ln.Close()
			return p
		}
	}
}

func runPgpool(ctx context.Context, b *bench, w *sectionWriter) error {
	o := b.o
	if _, err := exec.LookPath("pgpool"); err != nil {
		return fmt.Errorf("%w: pgpool-II is not installed (Debian: apt-get install -y pgpool2)", errSkip)
	}
	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	cl, err := testdb.StartPostgres(startCtx, 2, nil)
	cancel()
	if err != nil {
		return err
	}
	defer cl.Close()
	pool, err := startPgpool(ctx, cl)
	if err != nil {
		return err
	}
	defer pool.close()
	t := &topology{f: pgFlavor, primary: pgNode(cl.Primary, nil), replicas: []node{pgNode(cl.Replicas[0], nil), pgNode(cl.Replicas[1], nil)}}
	setupDB, err := openPlain(t)
	if err != nil {
		return err
	}
	if err := createRows(ctx, setupDB.db); err != nil {
		return err
	}
	setupDB.close()
	if err := cl.WaitCaughtUp(ctx); err != nil {
		return err
	}
	viaPool := strings.Replace(cl.Primary.DSN(), "port="+strconv.Itoa(cl.Primary.Port), "port="+strconv.Itoa(pool.port), 1)

	var setups []*setup
	for _, open := range []func() (*setup, error){
		func() (*setup, error) { return openPlain(t) },
		func() (*setup, error) {
			s, err := openDirect(pgFlavor, node{name: "pgpool-II", dsn: viaPool})
			if s != nil {
				s.name = "pgpool-II"
			}
			return s, err
		},
		func() (*setup, error) { return openDBResolver(t, t.replicas) },
		func() (*setup, error) { return openRWSplit(t, t.replicas, rwsplit.Config{}) },
	} {
		s, err := open()
		if err != nil {
			return err
		}
		defer s.close()
		keepIdle(s, t.replicas, o.readers+1)
		setups = append(setups, s)
		if err := waitEligible(ctx, s, 10*time.Second); err != nil {
			return err
		}
	}
	res := make([][]scaleResult, len(setups))
	rounds := o.scaleRounds()
	for round := range rounds {
		for k := range setups {
			i := (k + round) % len(setups)
			r, err := measureReads(ctx, setups[i], t, o.readers, 500*time.Millisecond, o.measure)
			if err != nil {
				return err
			}
			if r.errs > 0 && r.total == 0 {
				return fmt.Errorf("%s: every read failed", setups[i].name)
			}
			res[i] = append(res[i], r)
			log.Printf("pgpool section %s: %.0f reads/s p50 %v", setups[i].name, r.readsPerSec, r.p50)
		}
	}
	out, _ := exec.Command("pgpool", "--version").CombinedOutput()
	w.p("A PostgreSQL primary and 2 replicas, no proxy. %s (Debian's pgpool2) in streaming-replication mode in front of them: load balancing on, per statement, "+
		"reads to the two replicas only (the primary's weight 0, as rwsplit sends none there), no health or delay checks; the application runs plain GORM against pgpool's port. "+
		"%d goroutines read rows by primary key; each configuration is measured %d times for %v in a rotating order; medians. The difference between *pgpool-II* and *rwsplit* is the price of the proxy hop "+
		"(and of pgpool's parsing of each statement) against an in-process decision.",
		strings.TrimSpace(string(out)), o.readers, rounds, o.measure)
	var rows [][]string
	for i, s := range setups {
		rows = append(rows, []string{s.name, ms(medDur(res[i], p50Of)), ms(medDur(res[i], p99Of)), spread(thr(res[i]), "%.0f"),
			primaryShare(res[i], t), replicaShares(res[i], t.replicas), fmt.Sprint(sumErrs(res[i]))})
	}
	w.table([]string{"configuration", "p50", "p99", "reads/s (median, range)", "primary's share", "reads per replica", "errors"}, rows)
	return nil
}
