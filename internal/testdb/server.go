package testdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// server is one server process under testdb's control: the lifecycle state
// and logic that PGNode, MariaNode and RedisServer share. What differs
// between them is given by the embedding type: how to start the process and
// see that it answers, how to end it, what to wait for after a restart.
type server struct {
	// what names the server in messages: "postgres replica1",
	// "mariadb primary", "redis".
	what string
	// quit and grace stop the server when its data is thrown away (a failed
	// start, Close): quit, then SIGKILL to its process group after grace.
	quit  syscall.Signal
	grace time.Duration

	mu     sync.Mutex // serializes lifecycle changes; guards proc and frozen
	proc   *process
	frozen bool
}

// node is a database node, a server that Freeze can stop. PGNode and
// MariaNode embed it, so its exported methods are theirs.
type node struct{ server }

func (s *server) process() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// runningLocked reports whether the process is up (it may be frozen). s.mu
// must be held.
func (s *server) runningLocked() bool { return s.proc != nil && !s.proc.exited() }

func (s *server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runningLocked()
}

// errNotRunningLocked returns the error of verb ("crash", "freeze") on a
// server that does not run, or nil if it runs. s.mu must be held.
func (s *server) errNotRunningLocked(verb string) error {
	if s.runningLocked() {
		return nil
	}
	return fmt.Errorf("testdb: %s %s: not running", verb, s.what)
}

// serving returns an error prefixed with what unless the process runs and is
// not frozen.
func (s *server) serving(what string) error {
	s.mu.Lock()
	running, frozen := s.runningLocked(), s.frozen
	s.mu.Unlock()
	switch {
	case !running:
		return fmt.Errorf("testdb: %s: it is not running", what)
	case frozen:
		return fmt.Errorf("testdb: %s: it is frozen", what)
	}
	return nil
}

// startOnFreePort starts the server for the first time on a fresh port,
// retrying on another port if someone else took it meanwhile. usePort makes
// port the server's; startLocked starts the process (under s.mu); retrying
// reports a retry. The port is released if the start fails.
func (s *server) startOnFreePort(ctx context.Context, usePort func(port int) error, startLocked func(context.Context) error, retrying func(port int)) error {
	for attempt := 1; ; attempt++ {
		port, err := reservePort()
		if err != nil {
			return err
		}
		if err := usePort(port); err != nil {
			releasePort(port)
			return err
		}
		s.mu.Lock()
		err = startLocked(ctx)
		s.mu.Unlock()
		if err == nil {
			return nil
		}
		releasePort(port)
		if !errors.Is(err, errAddrInUse) || attempt == 5 {
			return err
		}
		retrying(port)
	}
}

// launch starts the process from spec and waits, polling every interval,
// until ping answers. If the process could not bind port, the error wraps
// errAddrInUse, for the caller to retry on another port; any other error
// carries the tail of the server's log. s.mu must be held.
func (s *server) launch(ctx context.Context, spec procSpec, port int, interval time.Duration, ping func(context.Context) error) error {
	p, err := startProcess(spec)
	if err != nil {
		return err
	}
	s.proc = p
	s.frozen = false
	err = poll(ctx, interval, "start "+s.what, func(ctx context.Context) (bool, error) {
		if p.exited() {
			if p.addrInUse() {
				return false, stopPolling(fmt.Errorf("testdb: start %s on port %d: %w", s.what, port, errAddrInUse))
			}
			return false, stopPolling(p.exitError())
		}
		err := ping(ctx)
		return err == nil, err
	})
	if err != nil {
		p.stop(s.quit, s.grace)
		if errors.Is(err, errAddrInUse) {
			return err
		}
		return fmt.Errorf("%w%s", err, logTail(p.log, p.logFrom))
	}
	return nil
}

// start starts the process again with startLocked (under s.mu) unless it
// runs, and then calls restarted, if not nil, without s.mu: a replica waits
// there until it replicates again.
func (s *server) start(ctx context.Context, startLocked, restarted func(context.Context) error) error {
	s.mu.Lock()
	if s.runningLocked() {
		s.mu.Unlock()
		return nil
	}
	err := startLocked(ctx)
	s.mu.Unlock()
	if err != nil || restarted == nil {
		return err
	}
	return restarted(ctx)
}

// halt sends sig to the running process, thawing it first (a stopped
// process cannot act on a signal), and waits until it is gone: up to grace
// if grace > 0, else up to the context's end. A process still there then is
// killed with its process group. verb names the action in the error when
// the process does not run.
func (s *server) halt(ctx context.Context, verb string, sig syscall.Signal, grace time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.errNotRunningLocked(verb); err != nil {
		return err
	}
	if s.frozen {
		thawTree(s.proc.pid())
		s.frozen = false
	}
	if err := s.proc.signal(sig); err != nil {
		return err
	}
	if grace > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, grace)
		defer cancel()
	}
	if err := s.proc.wait(ctx); err != nil {
		s.proc.killGroup()
		<-s.proc.done
	}
	return nil
}

// kill kills the running process with its process group at once, frozen or
// not, and waits until it is gone, up to the context's end. verb names the
// action in the error when the process does not run.
func (s *server) kill(ctx context.Context, verb string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.errNotRunningLocked(verb); err != nil {
		return err
	}
	s.proc.killGroup()
	s.frozen = false
	return s.proc.wait(ctx)
}

// shutdownLocked stops the process, if any, the way that throws its data
// away (quit, then SIGKILL after grace), and returns once it is reaped. s.mu
// must be held.
func (s *server) shutdownLocked() {
	if s.proc != nil {
		s.proc.stop(s.quit, s.grace)
	}
	s.frozen = false
}

func (s *server) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutdownLocked()
}

// Running reports whether the server process is up (it may be frozen).
func (n *node) Running() bool { return n.running() }

// Frozen reports whether the server is stopped by Freeze.
func (n *node) Frozen() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.frozen
}

// Freeze stops the server and all its processes with SIGSTOP: it hangs
// instead of failing. Connections are still accepted by the kernel, but
// nothing answers. Thaw resumes it.
func (n *node) Freeze(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.errNotRunningLocked("freeze"); err != nil {
		return err
	}
	if n.frozen {
		return nil
	}
	if err := freezeTree(n.proc.pid()); err != nil {
		return fmt.Errorf("testdb: freeze %s: %w", n.what, err)
	}
	n.frozen = true
	return nil
}

// Thaw resumes a frozen server with SIGCONT. It does nothing if the server
// is not frozen.
func (n *node) Thaw(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.frozen && n.proc != nil {
		thawTree(n.proc.pid())
	}
	n.frozen = false
	return nil
}

// addr returns "127.0.0.1:port".
func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// openDB is OpenDB on the connector that a node's Connector returned: as
// sql.OpenDB cannot fail, a configuration error fails every connection.
func openDB(c driver.Connector, err error) *sql.DB {
	if err != nil {
		return sql.OpenDB(errConnector{err})
	}
	return sql.OpenDB(c)
}

// errConnector fails every connection with err: OpenDB's answer to a
// configuration error, since sql.OpenDB cannot return one.
type errConnector struct{ err error }

func (c errConnector) Connect(context.Context) (driver.Conn, error) { return nil, c.err }
func (c errConnector) Driver() driver.Driver                        { return errDriver(c) }

type errDriver errConnector

func (d errDriver) Open(string) (driver.Conn, error) { return nil, d.err }

// cluster is what PGCluster and MariaCluster share: the folder, binaries and
// OS user of a primary with its replicas, the progress log, and Close's
// state.
type cluster struct {
	dir  string
	bins map[string]string
	user *osUser
	logf func(string, ...any)

	closeOnce sync.Once
	closed    chan struct{}
	closeErr  error
}

// init checks the number of replicas and makes the folder of a cluster of
// kind ("postgres", "mariadb"), named rwsplit-DIRKIND-*, whose servers run
// as the service account (see serviceUser).
func (c *cluster) init(kind, dirKind, account string, replicas int, bins map[string]string, logf func(string, ...any)) error {
	if replicas < 0 {
		return fmt.Errorf("testdb: %s: %d replicas", kind, replicas)
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	u, err := serviceUser(account)
	if err != nil {
		return err
	}
	dir, err := makeClusterDir(dirKind, u)
	if err != nil {
		return err
	}
	c.dir, c.bins, c.user, c.logf, c.closed = dir, bins, u, logf, make(chan struct{})
	return nil
}

// errIfClosed returns the error of starting what once the cluster is
// closed, or nil.
func (c *cluster) errIfClosed(what string) error {
	select {
	case <-c.closed:
		return fmt.Errorf("testdb: start %s: cluster is closed", what)
	default:
		return nil
	}
}

// retrying returns the report of a retry on another port while node name
// starts, for server.startOnFreePort.
func (c *cluster) retrying(name string) func(port int) {
	return func(port int) { c.logf("%s: port %d taken, retrying on another", name, port) }
}

// Dir returns the cluster's temporary folder: data folders and server logs.
func (c *cluster) Dir() string { return c.dir }

// member is a node of a cluster as closeCluster sees it.
type member interface {
	base() *server
	port() int
}

func (s *server) base() *server { return s }

// closeCluster stops every server of the cluster, each its own way
// (server.quit), removes the cluster's folder and frees its ports, once.
// self is the PGCluster or MariaCluster that track registered.
func closeCluster[N member](c *cluster, self closer, nodes []N) error {
	c.closeOnce.Do(func() {
		close(c.closed)
		untrack(self)
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(n.base().shutdown)
		}
		wg.Wait()
		for _, n := range nodes {
			if p := n.port(); p != 0 {
				releasePort(p)
			}
		}
		c.closeErr = removeDir(c.dir)
	})
	return c.closeErr
}

// restarter is what resetNodes needs of a *PGNode or *MariaNode.
type restarter interface {
	Thaw(context.Context) error
	Start(context.Context) error
}

// resetNodes thaws and starts every node, the start of a cluster's Reset.
func resetNodes[N restarter](ctx context.Context, nodes []N) error {
	for _, n := range nodes {
		if err := n.Thaw(ctx); err != nil {
			return err
		}
		if err := n.Start(ctx); err != nil {
			return fmt.Errorf("testdb: reset: %w", err)
		}
	}
	return nil
}

// waitCaughtUp reads the primary's position with current and waits until
// each replica has reached it.
func waitCaughtUp[P any, N any](ctx context.Context, current func(context.Context) (P, error), replicas []N, reach func(N, context.Context, P) error) error {
	pos, err := current(ctx)
	if err != nil {
		return err
	}
	for _, r := range replicas {
		if err := reach(r, ctx, pos); err != nil {
			return err
		}
	}
	return nil
}

// clusterStart starts a cluster: startPG, startMaria.
type clusterStart[C any] func(ctx context.Context, bins map[string]string, replicas int, logf func(string, ...any)) (C, error)

// startCluster is StartPostgres and StartMariaDB: it starts a cluster of
// kind from the binaries that findBins finds, with logf's messages
// prefixed by "testdb: KIND: ".
func startCluster[C any](ctx context.Context, kind string, replicas int, logf func(string, ...any),
	findBins func() (map[string]string, error), start clusterStart[C]) (C, error) {
	bins, err := findBins()
	if err != nil {
		var none C
		return none, err
	}
	if logf != nil {
		inner := logf
		logf = func(format string, args ...any) { inner("testdb: "+kind+": "+format, args...) }
	}
	return start(ctx, bins, replicas, logf)
}
