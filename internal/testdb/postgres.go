package testdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// PGCluster is a PostgreSQL primary with streaming hot-standby replicas,
// each a real server process on its own loopback port.
//
// Replicas run with max_standby_streaming_delay=-1: WAL replay waits for a
// conflicting query instead of cancelling it, so a test never sees a
// spurious "canceling statement due to conflict with recovery". The price is
// that a transaction left open on a replica can hold its replay back;
// WaitCaughtUp then times out and names the replica.
type PGCluster struct {
	// Primary accepts writes.
	Primary *PGNode
	// Replicas are hot standbys named replica1, replica2, ... that stream
	// from Primary through the replication slots slot_1, slot_2, ...
	Replicas []*PGNode

	cluster
}

// PGNode is one PostgreSQL server of a PGCluster. Its methods are safe for
// concurrent use; the fault helpers are meant for replicas.
type PGNode struct {
	// Name is "primary" or "replicaN"; it is the replica's cluster_name,
	// hence its application_name in the primary's pg_stat_replication.
	Name string
	// Port is the TCP port on 127.0.0.1. It never changes, across Crash
	// and Start too.
	Port int

	node
	cluster *PGCluster
	replica bool
	slot    string
	dataDir string
	logFile string
}

// LSN is a PostgreSQL write-ahead-log position.
type LSN uint64

// ParseLSN parses the text form of a pg_lsn, "16/B374D848".
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("testdb: bad LSN %q", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("testdb: bad LSN %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("testdb: bad LSN %q: %w", s, err)
	}
	return LSN(h<<32 | l), nil
}

// String returns the text form of the LSN, as PostgreSQL prints it.
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint32(l)) }

var errAddrInUse = errors.New("address already in use")

// StartPostgres starts a PostgreSQL primary with the given number of
// streaming replicas. logf, if not nil, receives progress messages. Without
// the server binaries, the error wraps ErrMissingBinaries. The caller must
// Close the cluster; Teardown also does.
func StartPostgres(ctx context.Context, replicas int, logf func(string, ...any)) (*PGCluster, error) {
	return startCluster(ctx, "postgres", replicas, logf, findPGBins, startPG)
}

// findPGBins finds postgres, initdb and pg_basebackup: in
// RWSPLIT_PG_BINDIR, else in the newest /usr/lib/postgresql/*/bin (Debian),
// else on PATH.
func findPGBins() (map[string]string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(d string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	return findBins("RWSPLIT_PG_BINDIR", "postgresql", dirs, "postgres", "initdb", "pg_basebackup")
}

func startPG(ctx context.Context, bins map[string]string, replicas int, logf func(string, ...any)) (*PGCluster, error) {
	c := &PGCluster{}
	if err := c.init("postgres", "pg", "postgres", replicas, bins, logf); err != nil {
		return nil, err
	}
	dir, u, logf := c.dir, c.user, c.logf
	track(c)
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	c.Primary = c.newNode("primary", 0)
	for i := range replicas {
		c.Replicas = append(c.Replicas, c.newNode(fmt.Sprintf("replica%d", i+1), i+1))
	}

	p := c.Primary
	err := runProcess(ctx, procSpec{
		name: "initdb (postgres primary)", path: bins["initdb"], dir: dir, user: u, log: p.logFile, env: childEnv(dir),
		args: []string{"-D", p.dataDir, "-U", "postgres", "--auth=trust", "--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C"},
	})
	if err != nil {
		return nil, err
	}
	logf("initdb done (%s)", dir)
	if err := appendConf(filepath.Join(p.dataDir, "postgresql.conf"), pgConf(dir), u); err != nil {
		return nil, err
	}
	if err := p.startNew(ctx); err != nil {
		return nil, err
	}
	logf("primary accepting connections on %s", p.Addr())

	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i, r := range c.Replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.basebackupAndStart(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := c.waitStreaming(ctx, c.Replicas...); err != nil {
		return nil, err
	}
	logf("every replica streaming")
	ok = true
	return c, nil
}

func (c *PGCluster) newNode(name string, replica int) *PGNode {
	n := &PGNode{
		Name:    name,
		cluster: c,
		replica: replica > 0,
		dataDir: filepath.Join(c.dir, name),
		logFile: filepath.Join(c.dir, name+".log"),
		// Close and a failed start shut the server down at once (SIGQUIT,
		// no checkpoint): the data is thrown away anyway.
		node: node{server{what: "postgres " + name, quit: syscall.SIGQUIT, grace: 5 * time.Second}},
	}
	if replica > 0 {
		n.slot = fmt.Sprintf("slot_%d", replica)
	}
	return n
}

// pgConf is appended to the primary's postgresql.conf; pg_basebackup copies
// it to the replicas.
func pgConf(dir string) string {
	return fmt.Sprintf(`
# testdb
listen_addresses = '127.0.0.1'
unix_socket_directories = '%s'
cluster_name = 'primary'
max_connections = 100
shared_buffers = 32MB
huge_pages = off
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
# Two pg_basebackups at once: one's checkpoint could recycle the WAL the
# other still had to stream (its slot pins WAL only once streaming starts).
wal_keep_size = 128MB
hot_standby = on
hot_standby_feedback = on
max_standby_streaming_delay = -1
max_standby_archive_delay = -1
wal_receiver_status_interval = 1s
fsync = off
full_page_writes = off
autovacuum = off
jit = off
logging_collector = off
log_line_prefix = '%%m [%%p] %%q%%a '
`, dir)
}

func appendConf(path, text string, u *osUser) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("testdb: %w", err)
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return fmt.Errorf("testdb: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("testdb: %w", err)
	}
	return u.chown(path)
}

// basebackupAndStart clones the primary into the replica's data folder and
// starts the replica.
func (n *PGNode) basebackupAndStart(ctx context.Context) error {
	c := n.cluster
	err := runProcess(ctx, procSpec{
		name: "pg_basebackup (postgres " + n.Name + ")", path: c.bins["pg_basebackup"], dir: c.dir, user: c.user, log: n.logFile,
		env: childEnv(c.dir),
		args: []string{"-h", "127.0.0.1", "-p", strconv.Itoa(c.Primary.Port), "-U", "postgres", "-D", n.dataDir,
			"-R", "-X", "stream", "-C", "-S", n.slot, "--checkpoint=fast", "--no-sync"},
	})
	if err != nil {
		return err
	}
	c.logf("%s: base backup done", n.Name)
	if err := n.startNew(ctx); err != nil {
		return err
	}
	c.logf("%s accepting connections on %s", n.Name, n.Addr())
	return nil
}

// startNew starts a node for the first time on a fresh port, retrying on
// another port if someone else took it meanwhile.
func (n *PGNode) startNew(ctx context.Context) error {
	conf := "postgresql.conf"
	if n.replica {
		// basebackup copied the primary's port; postgresql.auto.conf wins.
		conf = "postgresql.auto.conf"
	}
	usePort := func(port int) error {
		text := fmt.Sprintf("port = %d\n", port)
		if n.replica {
			text += fmt.Sprintf("cluster_name = '%s'\n", n.Name)
		}
		if err := appendConf(filepath.Join(n.dataDir, conf), text, n.cluster.user); err != nil {
			return err
		}
		n.Port = port
		return nil
	}
	err := n.startOnFreePort(ctx, usePort, n.startLocked, n.cluster.retrying(n.Name))
	if err != nil {
		// startOnFreePort released the port: Close must not release it
		// again, when another server may hold it.
		n.Port = 0
	}
	return err
}

// startLocked starts the server process and waits until it accepts
// connections. n.mu must be held.
func (n *PGNode) startLocked(ctx context.Context) error {
	c := n.cluster
	if err := c.errIfClosed(n.what); err != nil {
		return err
	}
	return n.launch(ctx, procSpec{
		name: n.what, path: c.bins["postgres"], dir: c.dir, user: c.user, log: n.logFile,
		env: childEnv(c.dir), args: []string{"-D", n.dataDir}, pids: filepath.Join(c.dir, pidsFile),
	}, n.Port, 10*time.Millisecond, n.ping)
}

// ping connects and pings the server, within a second.
// It goes through the node's unix socket, in the cluster's own folder: a
// server that took the node's TCP port meanwhile cannot answer for it.
func (n *PGNode) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(n.DSN() + " application_name=testdb")
	if err != nil {
		return fmt.Errorf("testdb: postgres %s: %w", n.Name, err)
	}
	cfg.Host = n.cluster.dir
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}

// connect opens an administrative connection (simple protocol, no
// statement cache).
func (n *PGNode) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(n.DSN() + " application_name=testdb connect_timeout=10")
	if err != nil {
		return nil, fmt.Errorf("testdb: postgres %s: %w", n.Name, err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("testdb: postgres %s: %w", n.Name, err)
	}
	return conn, nil
}

// exec runs one administrative statement on the node.
func (n *PGNode) exec(ctx context.Context, what, query string, args ...any) error {
	conn, err := n.connect(ctx)
	if err != nil {
		return fmt.Errorf("testdb: %s on postgres %s: %w", what, n.Name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, query, args...); err != nil {
		return fmt.Errorf("testdb: %s on postgres %s: %w", what, n.Name, err)
	}
	return nil
}

// queryRow runs one administrative query on the node and scans its row.
func (n *PGNode) queryRow(ctx context.Context, what, query string, args []any, dest ...any) error {
	conn, err := n.connect(ctx)
	if err != nil {
		return fmt.Errorf("testdb: %s on postgres %s: %w", what, n.Name, err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, query, args...).Scan(dest...); err != nil {
		return fmt.Errorf("testdb: %s on postgres %s: %w", what, n.Name, err)
	}
	return nil
}

// waitStreaming waits until the primary's pg_stat_replication shows each of
// the replicas streaming.
func (c *PGCluster) waitStreaming(ctx context.Context, replicas ...*PGNode) error {
	if len(replicas) == 0 {
		return nil
	}
	names := make([]string, len(replicas))
	for i, r := range replicas {
		names[i] = r.Name
	}
	what := "wait for postgres " + strings.Join(names, ", ") + " to stream from the primary"
	return poll(ctx, 10*time.Millisecond, what, func(ctx context.Context) (bool, error) {
		for _, r := range replicas {
			if p := r.process(); p == nil || p.exited() {
				return false, stopPolling(fmt.Errorf("testdb: %s: postgres %s is not running%s", what, r.Name, logTail(r.logFile, 0)))
			}
		}
		var streaming int
		err := c.Primary.queryRow(ctx, "pg_stat_replication",
			`SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND application_name = ANY($1)`,
			[]any{names}, &streaming)
		return err == nil && streaming == len(names), err
	})
}

// DSN returns the node's connection string for pgx and lib/pq, as user
// postgres (trust authentication) on database postgres.
func (n *PGNode) DSN() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", n.Port)
}

// Addr returns the node's "127.0.0.1:port".
func (n *PGNode) Addr() string { return addr(n.Port) }

// DataDir returns the node's data folder.
func (n *PGNode) DataDir() string { return n.dataDir }

// LogFile returns the file that receives the node's server log.
func (n *PGNode) LogFile() string { return n.logFile }

// DSNAs returns the node's connection string for another user, who needs
// no password (trust authentication), e.g. a role the test created with
// Admin.
func (n *PGNode) DSNAs(user string) string {
	return strings.Replace(n.DSN(), "user=postgres", "user="+user, 1)
}

// Connector returns a pgx stdlib connector for the node, recorded by r under
// the node's Name unless r is nil. Every node gets the same driver settings.
func (n *PGNode) Connector(r *Recorder) (driver.Connector, error) { return n.connector(r, n.DSN()) }

func (n *PGNode) connector(r *Recorder, dsn string) (driver.Connector, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("testdb: postgres %s: %w", n.Name, err)
	}
	var c driver.Connector = stdlib.GetConnector(*cfg)
	if r != nil {
		c = r.Connector(n.Name, c)
	}
	return c, nil
}

// OpenDB returns a *sql.DB on the node through pgx's stdlib driver, with
// every statement recorded by r under the node's Name (r may be nil). The
// caller closes it.
func (n *PGNode) OpenDB(r *Recorder) *sql.DB { return openDB(n.Connector(r)) }

// OpenDBAs is OpenDB as another user (see DSNAs).
func (n *PGNode) OpenDBAs(r *Recorder, user string) *sql.DB {
	return openDB(n.connector(r, n.DSNAs(user)))
}

// Admin runs the statements on the node, in order, as the superuser
// postgres: to create the roles and grants a test needs. Run them on the
// primary; the replicas replay them.
func (n *PGNode) Admin(ctx context.Context, stmts ...string) error {
	conn, err := n.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, stmt := range stmts {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("testdb: postgres %s: %s: %w", n.Name, stmt, err)
		}
	}
	return nil
}

// Promote makes a replica a primary of its own, as a failover would
// (SELECT pg_promote()): it leaves recovery on a new timeline, stops
// replaying the cluster's primary, and accepts writes that no other node
// sees. It returns once the server is out of recovery. A cluster with a
// promoted replica cannot be Reset or caught up: promote only replicas of
// a cluster of the test's own (dbtest.PrivatePostgres).
func (n *PGNode) Promote(ctx context.Context) error {
	var promoted bool
	if err := n.queryRow(ctx, "promote", "SELECT pg_promote(true, 60)", nil, &promoted); err != nil {
		return err
	}
	if !promoted {
		return fmt.Errorf("testdb: promote postgres %s: not out of recovery within 60s", n.Name)
	}
	return nil
}

// PauseReplay pauses WAL replay on a replica (pg_wal_replay_pause): it keeps
// serving reads, ever staler, until ResumeReplay.
func (n *PGNode) PauseReplay(ctx context.Context) error {
	return n.exec(ctx, "pause replay", "SELECT pg_wal_replay_pause()")
}

// ResumeReplay resumes WAL replay on a replica (pg_wal_replay_resume).
func (n *PGNode) ResumeReplay(ctx context.Context) error {
	return n.exec(ctx, "resume replay", "SELECT pg_wal_replay_resume()")
}

// SetApplyDelay makes a replica apply each commit d after it was made on
// the primary (recovery_min_apply_delay, millisecond resolution); 0 removes
// the delay. It returns once the new setting is in force.
func (n *PGNode) SetApplyDelay(ctx context.Context, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("testdb: postgres %s: negative apply delay %v", n.Name, d)
	}
	ms := d.Round(time.Millisecond).Milliseconds()
	stmt := "ALTER SYSTEM RESET recovery_min_apply_delay"
	if ms > 0 {
		stmt = fmt.Sprintf("ALTER SYSTEM SET recovery_min_apply_delay = '%dms'", ms)
	}
	if err := n.exec(ctx, "set apply delay", stmt); err != nil {
		return err
	}
	if err := n.exec(ctx, "set apply delay", "SELECT pg_reload_conf()"); err != nil {
		return err
	}
	// The postmaster reloads, then signals its children; a new backend
	// forks from the reloaded postmaster, so once it sees the value the
	// startup process has been told as well.
	return poll(ctx, 5*time.Millisecond, "apply delay on postgres "+n.Name, func(ctx context.Context) (bool, error) {
		got, err := n.applyDelay(ctx)
		return err == nil && got == time.Duration(ms)*time.Millisecond, err
	})
}

// applyDelay returns the replica's recovery_min_apply_delay as a new
// session sees it.
func (n *PGNode) applyDelay(ctx context.Context) (time.Duration, error) {
	var ms int64
	err := n.queryRow(ctx, "read apply delay", `SELECT setting::bigint FROM pg_settings WHERE name = 'recovery_min_apply_delay'`, nil, &ms)
	return time.Duration(ms) * time.Millisecond, err
}

// Crash stops the server the way a crash would (pg_ctl stop -m immediate:
// SIGQUIT, no shutdown checkpoint) and waits until it is gone: connections
// are then refused. Start brings it back.
func (n *PGNode) Crash(ctx context.Context) error {
	return n.halt(ctx, "crash", syscall.SIGQUIT, 10*time.Second)
}

// Start restarts a crashed node on the same port and data folder, and waits
// until it accepts connections and, for a replica, streams from the primary
// again. It does nothing if the node is running.
func (n *PGNode) Start(ctx context.Context) error {
	var streaming func(context.Context) error
	if n.replica {
		streaming = func(ctx context.Context) error { return n.cluster.waitStreaming(ctx, n) }
	}
	return n.start(ctx, n.startLocked, streaming)
}

// ReplayLSN returns a replica's pg_last_wal_replay_lsn(): how far it has
// applied the primary's WAL.
func (n *PGNode) ReplayLSN(ctx context.Context) (LSN, error) {
	var s *string
	if err := n.queryRow(ctx, "read replay LSN", "SELECT pg_last_wal_replay_lsn()::text", nil, &s); err != nil {
		return 0, err
	}
	if s == nil {
		return 0, fmt.Errorf("testdb: postgres %s: pg_last_wal_replay_lsn() is NULL (not a replica?)", n.Name)
	}
	return ParseLSN(*s)
}

// CurrentLSN returns the primary's pg_current_wal_lsn(): the end of its WAL.
func (n *PGNode) CurrentLSN(ctx context.Context) (LSN, error) {
	var s string
	if err := n.queryRow(ctx, "read current LSN", "SELECT pg_current_wal_lsn()::text", nil, &s); err != nil {
		return 0, err
	}
	return ParseLSN(s)
}

// WaitCaughtUp waits until the replica has replayed the primary's WAL up to
// pg_current_wal_lsn() as of the call, or until ctx ends.
func (n *PGNode) WaitCaughtUp(ctx context.Context) error {
	return waitCaughtUp(ctx, n.cluster.Primary.CurrentLSN, []*PGNode{n}, (*PGNode).waitReplay)
}

// waitReplay waits until the replica's replay LSN reaches target.
func (n *PGNode) waitReplay(ctx context.Context, target LSN) error {
	what := fmt.Sprintf("wait for postgres %s to replay up to %v", n.Name, target)
	if err := n.serving(what); err != nil {
		return err
	}
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	var last string
	err := poll(ctx, 2*time.Millisecond, what, func(ctx context.Context) (bool, error) {
		if conn == nil {
			c, err := n.connect(ctx)
			if err != nil {
				return false, err
			}
			conn = c
		}
		var s *string
		if err := conn.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn()::text").Scan(&s); err != nil {
			conn.Close(context.Background())
			conn = nil
			return false, err
		}
		if s == nil {
			return false, stopPolling(fmt.Errorf("testdb: %s: it is not a replica", what))
		}
		last = *s
		l, err := ParseLSN(*s)
		return err == nil && l >= target, err
	})
	if err != nil && last != "" {
		return fmt.Errorf("%w (replayed up to %s)", err, last)
	}
	return err
}

// WaitCaughtUp waits until every replica has replayed the primary's WAL up
// to pg_current_wal_lsn() as of the call, or until ctx ends.
func (c *PGCluster) WaitCaughtUp(ctx context.Context) error {
	return waitCaughtUp(ctx, c.Primary.CurrentLSN, c.Replicas, (*PGNode).waitReplay)
}

// Reset restores the cluster to health: every node thawed and running, WAL
// replay resumed, no apply delay, every replica streaming and caught up.
// dbtest.Postgres calls it before returning an existing cluster.
func (c *PGCluster) Reset(ctx context.Context) error {
	if err := resetNodes(ctx, c.nodes()); err != nil {
		return err
	}
	for _, r := range c.Replicas {
		var paused string
		var delay int64
		err := r.queryRow(ctx, "read replica state",
			`SELECT pg_get_wal_replay_pause_state(), (SELECT setting::bigint FROM pg_settings WHERE name = 'recovery_min_apply_delay')`,
			nil, &paused, &delay)
		if err != nil {
			return fmt.Errorf("testdb: reset: %w", err)
		}
		if paused != "not paused" {
			if err := r.ResumeReplay(ctx); err != nil {
				return fmt.Errorf("testdb: reset: %w", err)
			}
		}
		if delay != 0 {
			if err := r.SetApplyDelay(ctx, 0); err != nil {
				return fmt.Errorf("testdb: reset: %w", err)
			}
		}
	}
	if err := c.waitStreaming(ctx, c.Replicas...); err != nil {
		return fmt.Errorf("testdb: reset: %w", err)
	}
	if err := c.WaitCaughtUp(ctx); err != nil {
		return fmt.Errorf("testdb: reset: %w", err)
	}
	return nil
}

func (c *PGCluster) nodes() []*PGNode {
	return slices.DeleteFunc(append([]*PGNode{c.Primary}, c.Replicas...), func(n *PGNode) bool { return n == nil })
}

func (n *PGNode) port() int { return n.Port }

// Close stops every server of the cluster, removes its folder and frees its
// ports. It is safe to call more than once.
func (c *PGCluster) Close() error { return closeCluster(&c.cluster, c, c.nodes()) }
