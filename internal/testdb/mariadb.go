package testdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// The account that MariaDB DSNs use. It has every privilege except READ_ONLY
// ADMIN, so read_only=ON on the replicas refuses its writes (error 1290),
// as it would an application's.
const (
	MariaUser     = "rwsplit"
	MariaPassword = "rwsplit"
	MariaDatabase = "test"
)

// MariaCluster is a MariaDB primary with GTID replicas, each a real mariadbd
// on its own loopback port. Replicas run with read_only=ON and replicate
// with MASTER_USE_GTID=slave_pos.
type MariaCluster struct {
	// Primary accepts writes.
	Primary *MariaNode
	// Replicas, named replica1, replica2, ..., replicate from Primary.
	Replicas []*MariaNode

	cluster
}

// MariaNode is one mariadbd of a MariaCluster. Its methods are safe for
// concurrent use; the fault helpers are meant for replicas.
type MariaNode struct {
	// Name is "primary" or "replicaN".
	Name string
	// Port is the TCP port on 127.0.0.1. It never changes, across Crash
	// and Start too.
	Port int
	// ServerID is the node's server_id: 1 for the primary, N+1 for replicaN.
	ServerID int

	node
	cluster *MariaCluster
	replica bool
	dir     string // holds my.cnf, the socket, data/ and tmp/
	logFile string
}

// StartMariaDB starts a MariaDB primary with the given number of GTID
// replicas. logf, if not nil, receives progress messages. Without the server
// binaries, the error wraps ErrMissingBinaries. The caller must Close the
// cluster; Teardown also does.
func StartMariaDB(ctx context.Context, replicas int, logf func(string, ...any)) (*MariaCluster, error) {
	return startCluster(ctx, "mariadb", replicas, logf, findMariaBins, startMaria)
}

// findMariaBins finds mariadbd and mariadb-install-db: in
// RWSPLIT_MARIADB_BINDIR, else in /usr/sbin, /usr/bin or on PATH.
func findMariaBins() (map[string]string, error) {
	return findBins("RWSPLIT_MARIADB_BINDIR", "mariadb-server", []string{"/usr/sbin", "/usr/bin"}, "mariadbd", "mariadb-install-db")
}

// mariaBootstrap runs once, in mariadb-install-db, before the data folder is
// copied to every node: the users and the database exist everywhere, and no
// node has a GTID of its own.
const mariaBootstrap = `FLUSH PRIVILEGES;
CREATE DATABASE IF NOT EXISTS ` + MariaDatabase + `;
CREATE USER '` + MariaUser + `'@'%' IDENTIFIED BY '` + MariaPassword + `';
GRANT ALL PRIVILEGES ON *.* TO '` + MariaUser + `'@'%';
REVOKE READ_ONLY ADMIN ON *.* FROM '` + MariaUser + `'@'%';
CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';
`

func startMaria(ctx context.Context, bins map[string]string, replicas int, logf func(string, ...any)) (*MariaCluster, error) {
	c := &MariaCluster{}
	if err := c.init("mariadb", "maria", "mysql", replicas, bins, logf); err != nil {
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
	nodes := c.nodes()
	for _, n := range nodes {
		if err := u.mkdir(n.dir); err != nil {
			return nil, err
		}
		if err := u.mkdir(filepath.Join(n.dir, "tmp")); err != nil {
			return nil, err
		}
	}

	p := c.Primary
	if err := p.writeCnf(); err != nil {
		return nil, err
	}
	boot := filepath.Join(dir, "bootstrap.sql")
	if err := os.WriteFile(boot, []byte(mariaBootstrap), 0o644); err != nil {
		return nil, fmt.Errorf("testdb: %w", err)
	}
	err := runProcess(ctx, procSpec{
		name: "mariadb-install-db", path: bins["mariadb-install-db"], dir: dir, user: u, log: p.logFile, env: childEnv(dir),
		args: []string{"--defaults-file=" + p.cnfPath(), "--auth-root-authentication-method=normal", "--skip-test-db", "--extra-file=" + boot},
	})
	if err != nil {
		return nil, err
	}
	logf("mariadb-install-db done (%s)", dir)
	for _, r := range c.Replicas {
		if err := copyTree(p.dataDir(), r.dataDir(), u); err != nil {
			return nil, fmt.Errorf("testdb: copy data folder to mariadb %s: %w", r.Name, err)
		}
	}
	if len(c.Replicas) > 0 {
		logf("data folder copied to the replicas")
	}

	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = n.startNew(ctx); errs[i] != nil {
				return
			}
			logf("%s accepting connections on %s", n.Name, n.Addr())
			if n.replica {
				if errs[i] = n.changeMaster(ctx); errs[i] == nil {
					logf("%s replicating", n.Name)
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

func (c *MariaCluster) newNode(name string, replica int) *MariaNode {
	return &MariaNode{
		Name:     name,
		ServerID: replica + 1,
		cluster:  c,
		replica:  replica > 0,
		dir:      filepath.Join(c.dir, name),
		logFile:  filepath.Join(c.dir, name+".log"),
		// Close and a failed start kill mariadbd: the data is thrown away.
		node: node{server{what: "mariadb " + name, quit: syscall.SIGKILL}},
	}
}

func (c *MariaCluster) nodes() []*MariaNode {
	return slices.DeleteFunc(append([]*MariaNode{c.Primary}, c.Replicas...), func(n *MariaNode) bool { return n == nil })
}

func (n *MariaNode) cnfPath() string  { return filepath.Join(n.dir, "my.cnf") }
func (n *MariaNode) dataDir() string  { return filepath.Join(n.dir, "data") }
func (n *MariaNode) sockPath() string { return filepath.Join(n.dir, "mysqld.sock") }

// writeCnf writes the node's defaults file. The settings trade durability
// for speed: the data is thrown away after the tests. A SIGKILL loses
// nothing that was committed (innodb_flush_log_at_trx_commit=2 writes the
// log to the OS at each commit).
func (n *MariaNode) writeCnf() error {
	var b strings.Builder
	fmt.Fprintf(&b, `[mariadbd]
datadir=%s
socket=%s
pid-file=%s
tmpdir=%s
port=%d
bind-address=127.0.0.1
skip-name-resolve
server-id=%d
log-basename=%s
log-bin
binlog-format=ROW
log-slave-updates
gtid-strict-mode=1
character-set-server=utf8mb4
max_connections=100
performance_schema=OFF
loose-feedback=OFF
innodb_buffer_pool_size=32M
innodb_log_file_size=16M
innodb_flush_log_at_trx_commit=2
innodb_doublewrite=0
innodb_use_native_aio=0
sync_binlog=0
key_buffer_size=1M
slave_net_timeout=10
`, n.dataDir(), n.sockPath(), filepath.Join(n.dir, "mariadbd.pid"), filepath.Join(n.dir, "tmp"), n.Port, n.ServerID, n.Name)
	if n.replica {
		b.WriteString("read-only=ON\n")
	}
	if err := os.WriteFile(n.cnfPath(), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("testdb: %w", err)
	}
	return nil
}

// startNew starts a node for the first time on a fresh port, retrying on
// another port if someone else took it meanwhile.
func (n *MariaNode) startNew(ctx context.Context) error {
	usePort := func(port int) error {
		n.Port = port
		return n.writeCnf()
	}
	err := n.startOnFreePort(ctx, usePort, n.startLocked, n.cluster.retrying(n.Name))
	if err != nil {
		// startOnFreePort released the port: Close must not release it
		// again, when another server may hold it.
		n.Port = 0
	}
	return err
}

// startLocked starts mariadbd and waits until it answers on its socket.
// n.mu must be held.
func (n *MariaNode) startLocked(ctx context.Context) error {
	c := n.cluster
	if err := c.errIfClosed(n.what); err != nil {
		return err
	}
	return n.launch(ctx, procSpec{
		name: n.what, path: c.bins["mariadbd"], dir: n.dir, user: c.user, log: n.logFile,
		env: childEnv(c.dir), args: []string{"--defaults-file=" + n.cnfPath()},
	}, n.Port, 10*time.Millisecond, n.ping)
}

// ping pings the server as root over its unix socket, within a second.
func (n *MariaNode) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return n.admin(ctx, "ping", func(ctx context.Context, conn *sql.Conn) error { return conn.PingContext(ctx) })
}

// changeMaster points a fresh replica at the primary and starts replication.
func (n *MariaNode) changeMaster(ctx context.Context) error {
	stmt := fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1", n.cluster.Primary.Port)
	err := n.admin(ctx, "start replication", func(ctx context.Context, conn *sql.Conn) error {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return err
		}
		_, err := conn.ExecContext(ctx, "START SLAVE")
		return err
	})
	if err != nil {
		return err
	}
	return n.waitReplicating(ctx, true)
}

// rootConnector connects as root over the node's unix socket (install-db's
// "normal" root: no password), for administration.
func (n *MariaNode) rootConnector() (driver.Connector, error) {
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "unix"
	cfg.Addr = n.sockPath()
	cfg.Timeout = 10 * time.Second
	return mysql.NewConnector(cfg)
}

// admin runs fn on a fresh root connection to the node.
func (n *MariaNode) admin(ctx context.Context, what string, fn func(context.Context, *sql.Conn) error) error {
	cn, err := n.rootConnector()
	if err != nil {
		return fmt.Errorf("testdb: %s on mariadb %s: %w", what, n.Name, err)
	}
	db := sql.OpenDB(cn)
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("testdb: %s on mariadb %s: %w", what, n.Name, err)
	}
	defer conn.Close()
	if err := fn(ctx, conn); err != nil {
		return fmt.Errorf("testdb: %s on mariadb %s: %w", what, n.Name, err)
	}
	return nil
}

// slaveStatus returns SHOW SLAVE STATUS as column name to value; empty
// when the node replicates from nobody.
func slaveStatus(ctx context.Context, conn *sql.Conn) (map[string]string, error) {
	rows, err := conn.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(cols))
	if rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, c := range cols {
			if vals[i].Valid {
				out[c] = vals[i].String
			} else {
				out[c] = "NULL"
			}
		}
	}
	return out, rows.Err()
}

// SlaveStatus returns the replica's SHOW SLAVE STATUS, column name to value
// (NULL as "NULL"), e.g. "Slave_SQL_Running", "Seconds_Behind_Master".
func (n *MariaNode) SlaveStatus(ctx context.Context) (map[string]string, error) {
	var st map[string]string
	err := n.admin(ctx, "show slave status", func(ctx context.Context, conn *sql.Conn) (err error) {
		st, err = slaveStatus(ctx, conn)
		return err
	})
	return st, err
}

// waitReplicating waits until the SQL thread runs and, if io, the IO thread
// is connected too.
func (n *MariaNode) waitReplicating(ctx context.Context, io bool) error {
	var last map[string]string
	err := poll(ctx, 10*time.Millisecond, "wait for mariadb "+n.Name+" to replicate", func(ctx context.Context) (bool, error) {
		st, err := n.SlaveStatus(ctx)
		if err != nil {
			return false, err
		}
		last = st
		if st["Last_IO_Errno"] == "1045" || st["Last_SQL_Errno"] != "0" && st["Last_SQL_Errno"] != "" {
			return false, stopPolling(fmt.Errorf("testdb: mariadb %s replication failed: %s", n.Name, summarize(st)))
		}
		return st["Slave_SQL_Running"] == "Yes" && (!io || st["Slave_IO_Running"] == "Yes"), nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("%w (%s)", err, summarize(last))
	}
	return err
}

// summarize picks the telling columns of SHOW SLAVE STATUS.
func summarize(st map[string]string) string {
	var parts []string
	for _, k := range []string{"Slave_IO_Running", "Slave_SQL_Running", "SQL_Delay", "Gtid_IO_Pos", "Last_IO_Error", "Last_SQL_Error"} {
		if v := st[k]; v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, " ")
}

// Config returns a fresh go-sql-driver configuration for the node, as
// MariaUser on database MariaDatabase over TCP, with parseTime=true.
func (n *MariaNode) Config() *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User = MariaUser
	cfg.Passwd = MariaPassword
	cfg.Net = "tcp"
	cfg.Addr = n.Addr()
	cfg.DBName = MariaDatabase
	cfg.ParseTime = true
	return cfg
}

// DSN returns the node's go-sql-driver DSN,
// "rwsplit:rwsplit@tcp(127.0.0.1:P)/test?parseTime=true".
func (n *MariaNode) DSN() string { return n.Config().FormatDSN() }

// Addr returns the node's "127.0.0.1:port".
func (n *MariaNode) Addr() string { return addr(n.Port) }

// DataDir returns the node's data folder.
func (n *MariaNode) DataDir() string { return n.dataDir() }

// LogFile returns the file that receives the node's server log.
func (n *MariaNode) LogFile() string { return n.logFile }

// Connector returns a go-sql-driver connector for the node (Config),
// recorded by r under the node's Name unless r is nil.
func (n *MariaNode) Connector(r *Recorder) (driver.Connector, error) {
	return n.connector(r, n.Config())
}

func (n *MariaNode) connector(r *Recorder, cfg *mysql.Config) (driver.Connector, error) {
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("testdb: mariadb %s: %w", n.Name, err)
	}
	if r != nil {
		c = r.Connector(n.Name, c)
	}
	return c, nil
}

// OpenDB returns a *sql.DB on the node through go-sql-driver, with every
// statement recorded by r under the node's Name (r may be nil). The caller
// closes it.
func (n *MariaNode) OpenDB(r *Recorder) *sql.DB { return openDB(n.Connector(r)) }

// ConfigAs is Config for another account, e.g. one the test created with
// Admin.
func (n *MariaNode) ConfigAs(user, password string) *mysql.Config {
	cfg := n.Config()
	cfg.User, cfg.Passwd = user, password
	return cfg
}

// OpenDBAs is OpenDB as another account (see ConfigAs).
func (n *MariaNode) OpenDBAs(r *Recorder, user, password string) *sql.DB {
	return openDB(n.connector(r, n.ConfigAs(user, password)))
}

// Admin runs the statements on the node, in order, as root: to create the
// accounts and grants a test needs. On the primary they are binlogged, so
// the replicas apply them too. On a replica they are not (sql_log_bin=0),
// and change that replica alone: a transaction of its own would take a
// GTID of its own server_id, out of order with the primary's under
// gtid_strict_mode, and stop its replication.
func (n *MariaNode) Admin(ctx context.Context, stmts ...string) error {
	return n.admin(ctx, "admin", func(ctx context.Context, conn *sql.Conn) error {
		if n.replica {
			if _, err := conn.ExecContext(ctx, "SET SESSION sql_log_bin=0"); err != nil {
				return err
			}
		}
		for _, stmt := range stmts {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("%s: %w", stmt, err)
			}
		}
		return nil
	})
}

// Promote makes a replica a primary of its own, as a failover script
// would: STOP SLAVE; RESET SLAVE ALL (its replication configuration is
// gone: SHOW SLAVE STATUS has no row) and read_only=OFF, so it accepts
// writes that no other node sees. A cluster with a promoted replica cannot
// be Reset or caught up: promote only replicas of a cluster of the test's
// own (dbtest.PrivateMariaDB).
func (n *MariaNode) Promote(ctx context.Context) error {
	return n.admin(ctx, "promote", func(ctx context.Context, conn *sql.Conn) error {
		for _, stmt := range []string{"STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only=OFF"} {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("%s: %w", stmt, err)
			}
		}
		return nil
	})
}

// StopSQLThread stops applying replicated events (STOP SLAVE SQL_THREAD):
// the replica keeps receiving them and serves ever staler reads.
func (n *MariaNode) StopSQLThread(ctx context.Context) error {
	return n.admin(ctx, "stop SQL thread", func(ctx context.Context, conn *sql.Conn) error {
		_, err := conn.ExecContext(ctx, "STOP SLAVE SQL_THREAD")
		return err
	})
}

// StartSQLThread resumes applying replicated events (START SLAVE SQL_THREAD).
func (n *MariaNode) StartSQLThread(ctx context.Context) error {
	err := n.admin(ctx, "start SQL thread", func(ctx context.Context, conn *sql.Conn) error {
		_, err := conn.ExecContext(ctx, "START SLAVE SQL_THREAD")
		return err
	})
	if err != nil {
		return err
	}
	return n.waitReplicating(ctx, false)
}

// SetDelay makes the replica apply each event d after it was written on the
// primary (STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=N; START SLAVE); N is
// d in whole seconds, rounded up. 0 removes the delay.
func (n *MariaNode) SetDelay(ctx context.Context, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("testdb: mariadb %s: negative delay %v", n.Name, d)
	}
	secs := int(math.Ceil(d.Seconds()))
	err := n.admin(ctx, "set delay", func(ctx context.Context, conn *sql.Conn) error {
		for _, stmt := range []string{"STOP SLAVE", fmt.Sprintf("CHANGE MASTER TO MASTER_DELAY=%d", secs), "START SLAVE"} {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("%s: %w", stmt, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return n.waitReplicating(ctx, true)
}

// SetUseGTID changes how the replica connects to its primary (STOP SLAVE;
// CHANGE MASTER TO MASTER_USE_GTID=mode; START SLAVE): "no" (binlog file
// and offset), "slave_pos" (the cluster's setting) or "current_pos".
func (n *MariaNode) SetUseGTID(ctx context.Context, mode string) error {
	switch mode {
	case "no", "slave_pos", "current_pos":
	default:
		return fmt.Errorf("testdb: mariadb %s: MASTER_USE_GTID=%q is not no, slave_pos or current_pos", n.Name, mode)
	}
	err := n.admin(ctx, "set use_gtid", func(ctx context.Context, conn *sql.Conn) error {
		for _, stmt := range []string{"STOP SLAVE", "CHANGE MASTER TO MASTER_USE_GTID=" + mode, "START SLAVE"} {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("%s: %w", stmt, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return n.waitReplicating(ctx, true)
}

// Crash kills mariadbd with SIGKILL and waits until it is gone. Start brings
// it back.
func (n *MariaNode) Crash(ctx context.Context) error { return n.kill(ctx, "crash") }

// Start restarts a crashed node on the same port and data folder, and waits
// until it answers and, for a replica, replicates again (both threads
// start, whatever their state before the crash). It does nothing if the
// node is running.
func (n *MariaNode) Start(ctx context.Context) error {
	var replicating func(context.Context) error
	if n.replica {
		replicating = func(ctx context.Context) error { return n.waitReplicating(ctx, true) }
	}
	return n.start(ctx, n.startLocked, replicating)
}

// GTIDBinlogPos returns the node's @@gtid_binlog_pos: on the primary, every
// transaction written so far ("" before the first).
func (n *MariaNode) GTIDBinlogPos(ctx context.Context) (string, error) {
	var pos string
	err := n.admin(ctx, "read gtid_binlog_pos", func(ctx context.Context, conn *sql.Conn) error {
		return conn.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&pos)
	})
	return pos, err
}

// WaitCaughtUp waits until the replica has applied every transaction the
// primary had written at the call (@@gtid_binlog_pos, with
// MASTER_GTID_WAIT), or until ctx ends (60s if ctx has no deadline).
func (n *MariaNode) WaitCaughtUp(ctx context.Context) error {
	return waitCaughtUp(ctx, n.cluster.Primary.GTIDBinlogPos, []*MariaNode{n}, (*MariaNode).waitGTID)
}

// waitGTID waits until the replica has applied pos.
func (n *MariaNode) waitGTID(ctx context.Context, pos string) error {
	what := fmt.Sprintf("wait for mariadb %s to apply %q", n.Name, pos)
	if err := n.serving(what); err != nil {
		return err
	}
	if pos == "" {
		return nil
	}
	timeout := 60.0
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl).Seconds(), 0)
	}
	var res sql.NullInt64
	var st map[string]string
	err := n.admin(ctx, "wait for GTID", func(ctx context.Context, conn *sql.Conn) error {
		if err := conn.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, ?)", pos, timeout).Scan(&res); err != nil {
			return err
		}
		if res.Int64 != 0 {
			st, _ = slaveStatus(context.Background(), conn)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("testdb: %s: %w", what, err)
	}
	if !res.Valid || res.Int64 != 0 {
		return fmt.Errorf("testdb: %s: timed out (%s)", what, summarize(st))
	}
	return nil
}

// WaitCaughtUp waits until every replica has applied every transaction the
// primary had written at the call, or until ctx ends (60s if ctx has no
// deadline).
func (c *MariaCluster) WaitCaughtUp(ctx context.Context) error {
	return waitCaughtUp(ctx, c.Primary.GTIDBinlogPos, c.Replicas, (*MariaNode).waitGTID)
}

// Reset restores the cluster to health: every node thawed and running, no
// replication delay, both replication threads running, every replica caught
// up. dbtest.MariaDB calls it before returning an existing cluster.
func (c *MariaCluster) Reset(ctx context.Context) error {
	if err := resetNodes(ctx, c.nodes()); err != nil {
		return err
	}
	for _, r := range c.Replicas {
		st, err := r.SlaveStatus(ctx)
		if err != nil {
			return fmt.Errorf("testdb: reset: %w", err)
		}
		switch {
		case st["SQL_Delay"] != "0":
			err = r.SetDelay(ctx, 0)
		case st["Slave_IO_Running"] != "Yes" || st["Slave_SQL_Running"] != "Yes":
			err = r.admin(ctx, "start slave", func(ctx context.Context, conn *sql.Conn) error {
				_, err := conn.ExecContext(ctx, "START SLAVE")
				return err
			})
			if err == nil {
				err = r.waitReplicating(ctx, true)
			}
		}
		if err != nil {
			return fmt.Errorf("testdb: reset: %w", err)
		}
	}
	if err := c.WaitCaughtUp(ctx); err != nil {
		return fmt.Errorf("testdb: reset: %w", err)
	}
	return nil
}

func (n *MariaNode) port() int { return n.Port }

// Close kills every server of the cluster, removes its folder and frees its
// ports. It is safe to call more than once.
func (c *MariaCluster) Close() error { return closeCluster(&c.cluster, c, c.nodes()) }
