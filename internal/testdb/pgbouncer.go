package testdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Bouncer is a PgBouncer (Debian's pgbouncer) on a loopback port, in
// transaction pooling mode, in front of one PostgreSQL server or of several
// given as ONE database: the database "postgres" of the DSN reaches them
// all, as one address. Clients authenticate as postgres without a password
// (auth_type=trust, like the test clusters).
//
// In front of several servers, PgBouncer's host list spreads the server
// connections over them round-robin, and server_round_robin=1 hands them
// out in turn, so successive transactions of one client run on different
// servers; min_pool_size keeps one connection per server open. PgBouncer
// 1.18 takes one port for the whole host list, and the test servers share
// 127.0.0.1 on ports of their own, so each server is listed as a folder of
// the Bouncer's own, holding a link named for that common port to the
// server's Unix socket.
type Bouncer struct {
	// Name is "pgbouncer(replica1)", "pgbouncer(replica1,replica2)": the
	// node name its connections are recorded under.
	Name string
	// Port is the TCP port on 127.0.0.1. It never changes.
	Port int
	// Targets are the servers behind it.
	Targets []*PGNode

	server  // its mu serializes the start and Close
	bin     string
	dir     string
	user    *osUser
	logFile string

	closeOnce sync.Once
	closed    bool // guarded by mu
	closeErr  error
}

// bouncerLinkPort is the port named by the socket links of a host list:
// any number does, as only the file name uses it.
const bouncerLinkPort = 5432

// CheckBouncer is CheckPostgres for pgbouncer.
func CheckBouncer() error {
	_, err := findBouncerBin()
	return err
}

// findBouncerBin finds pgbouncer: in RWSPLIT_PGBOUNCER_BINDIR, else in
// /usr/sbin or on PATH.
func findBouncerBin() (string, error) {
	bins, err := findBins("RWSPLIT_PGBOUNCER_BINDIR", "pgbouncer", []string{"/usr/sbin", "/usr/bin"}, "pgbouncer")
	if err != nil {
		return "", err
	}
	return bins["pgbouncer"], nil
}

// StartBouncer starts a PgBouncer in front of targets (at least one), as
// one database, and waits until it answers. It runs as the OS user
// postgres when the process runs as root (PgBouncer refuses root, and it
// must reach the servers' sockets). logf, if not nil, receives progress
// messages. Without the binary, the error wraps ErrMissingBinaries. The
// caller must Close it; Teardown also does. Stopping it does not stop the
// targets.
func StartBouncer(ctx context.Context, targets []*PGNode, logf func(string, ...any)) (*Bouncer, error) {
	bin, err := findBouncerBin()
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, errors.New("testdb: pgbouncer: no target server")
	}
	names := make([]string, len(targets))
	for i, n := range targets {
		if n == nil || n.Port == 0 {
			return nil, fmt.Errorf("testdb: pgbouncer: target %d is not a started PostgreSQL node", i)
		}
		names[i] = n.Name
	}
	u, err := serviceUser("postgres")
	if err != nil {
		return nil, err
	}
	dir, err := makeClusterDir("pgbouncer", u)
	if err != nil {
		return nil, err
	}
	b := &Bouncer{
		Name:    "pgbouncer(" + strings.Join(names, ",") + ")",
		Targets: targets,
		// SIGTERM is PgBouncer's immediate shutdown.
		server:  server{what: "pgbouncer", quit: syscall.SIGTERM, grace: 5 * time.Second},
		bin:     bin,
		dir:     dir,
		user:    u,
		logFile: filepath.Join(dir, "pgbouncer.log"),
	}
	track(b)
	if err := b.writeFiles(); err != nil {
		b.Close()
		return nil, err
	}
	usePort := func(port int) error {
		b.Port = port
		return b.writeConf()
	}
	retrying := func(port int) {
		if logf != nil {
			logf("testdb: pgbouncer: port %d taken, retrying on another", port)
		}
	}
	if err := b.startOnFreePort(ctx, usePort, b.startLocked, retrying); err != nil {
		b.Port = 0 // released
		b.Close()
		return nil, err
	}
	if logf != nil {
		logf("testdb: %s accepting connections on %s (%s)", b.Name, b.Addr(), dir)
	}
	return b, nil
}

// writeFiles writes the user list and, for several targets, the socket
// links of the host list.
func (b *Bouncer) writeFiles() error {
	if err := b.writeFile("userlist.txt", `"postgres" ""`+"\n"); err != nil {
		return err
	}
	if len(b.Targets) == 1 {
		return nil
	}
	for i, n := range b.Targets {
		host := b.hostDir(i)
		if err := b.user.mkdir(host); err != nil {
			return err
		}
		sock := filepath.Join(n.cluster.dir, ".s.PGSQL."+strconv.Itoa(n.Port))
		link := filepath.Join(host, ".s.PGSQL."+strconv.Itoa(bouncerLinkPort))
		if err := os.Symlink(sock, link); err != nil {
			return fmt.Errorf("testdb: pgbouncer: %w", err)
		}
		if b.user.cred != nil {
			if err := os.Lchown(link, b.user.uid, b.user.gid); err != nil {
				return fmt.Errorf("testdb: pgbouncer: %w", err)
			}
		}
	}
	return nil
}

func (b *Bouncer) hostDir(i int) string { return filepath.Join(b.dir, "host"+strconv.Itoa(i+1)) }

// writeConf writes pgbouncer.ini for the current Port.
func (b *Bouncer) writeConf() error {
	var db string
	if len(b.Targets) == 1 {
		db = fmt.Sprintf("host=127.0.0.1 port=%d", b.Targets[0].Port)
	} else {
		hosts := make([]string, len(b.Targets))
		for i := range b.Targets {
			hosts[i] = b.hostDir(i)
		}
		db = fmt.Sprintf("host=%s port=%d min_pool_size=%d", strings.Join(hosts, ","), bouncerLinkPort, len(b.Targets))
	}
	conf := fmt.Sprintf(`[databases]
postgres = %s dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir = %s
auth_type = trust
auth_file = %s
admin_users = postgres
pool_mode = transaction
server_round_robin = 1
default_pool_size = 20
max_client_conn = 500
ignore_startup_parameters = extra_float_digits
server_login_retry = 1
`, db, b.Port, b.dir, filepath.Join(b.dir, "userlist.txt"))
	return b.writeFile("pgbouncer.ini", conf)
}

func (b *Bouncer) writeFile(name, text string) error {
	path := filepath.Join(b.dir, name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return fmt.Errorf("testdb: pgbouncer: %w", err)
	}
	return b.user.chown(path)
}

// startLocked starts pgbouncer and waits until its admin console answers
// through its Unix socket. b.mu must be held.
func (b *Bouncer) startLocked(ctx context.Context) error {
	if b.closed {
		return errors.New("testdb: start pgbouncer: it is closed")
	}
	spec := procSpec{
		name: b.Name, path: b.bin, dir: b.dir, user: b.user, log: b.logFile, env: childEnv(b.dir),
		args: []string{filepath.Join(b.dir, "pgbouncer.ini")},
	}
	return b.launch(ctx, spec, b.Port, 10*time.Millisecond, func(ctx context.Context) error {
		var v string
		return b.admin(ctx, "SHOW VERSION", func(rows pgx.Rows) error { return rows.Scan(&v) })
	})
}

// admin runs a command on PgBouncer's admin console (database pgbouncer)
// through its Unix socket, in its own folder, and calls scan for each row.
func (b *Bouncer) admin(ctx context.Context, cmd string, scan func(pgx.Rows) error) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=postgres dbname=pgbouncer sslmode=disable", b.dir, b.Port))
	if err != nil {
		return err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol // the console has no other
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, cmd)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ServerConns returns the number of server connections PgBouncer holds
// (SHOW SERVERS), in any state.
func (b *Bouncer) ServerConns(ctx context.Context) (int, error) {
	n := 0
	err := b.admin(ctx, "SHOW SERVERS", func(pgx.Rows) error { n++; return nil })
	if err != nil {
		return 0, fmt.Errorf("testdb: %s: SHOW SERVERS: %w", b.Name, err)
	}
	return n, nil
}

// Addr returns the Bouncer's "127.0.0.1:port".
func (b *Bouncer) Addr() string { return addr(b.Port) }

// DSN returns the connection string of the database behind the Bouncer,
// for pgx and lib/pq, as user postgres on database postgres. It sets no
// query execution mode: pgx's default prepares named statements, which
// PgBouncer 1.18 in transaction mode does not support (see
// docs/topologies.md).
func (b *Bouncer) DSN() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", b.Port)
}

// Connector returns a pgx stdlib connector for the DSN with params
// appended ("default_query_exec_mode=simple_protocol"), recorded by r under
// the Bouncer's Name unless r is nil.
func (b *Bouncer) Connector(r *Recorder, params string) (driver.Connector, error) {
	cfg, err := pgx.ParseConfig(strings.TrimSpace(b.DSN() + " " + params))
	if err != nil {
		return nil, fmt.Errorf("testdb: %s: %w", b.Name, err)
	}
	var c driver.Connector = stdlib.GetConnector(*cfg)
	if r != nil {
		c = r.Connector(b.Name, c)
	}
	return c, nil
}

// OpenDB returns a *sql.DB through the Bouncer (see Connector). The caller
// closes it.
func (b *Bouncer) OpenDB(r *Recorder, params string) *sql.DB { return openDB(b.Connector(r, params)) }

// LogFile returns the file that receives PgBouncer's log.
func (b *Bouncer) LogFile() string { return b.logFile }

// Running reports whether pgbouncer is up.
func (b *Bouncer) Running() bool { return b.running() }

// Close stops pgbouncer (its clients' connections drop), removes its
// folder and frees its port. It is safe to call more than once.
func (b *Bouncer) Close() error {
	b.closeOnce.Do(func() {
		untrack(b)
		b.mu.Lock()
		b.closed = true
		b.shutdownLocked()
		b.mu.Unlock()
		if b.Port != 0 {
			releasePort(b.Port)
		}
		b.closeErr = removeDir(b.dir)
	})
	return b.closeErr
}
