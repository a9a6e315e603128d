package testdb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// RedisServer is a real redis-server on a loopback port, with persistence
// off (--save "" --appendonly no): a Stop loses every key.
type RedisServer struct {
	// Port is the TCP port on 127.0.0.1. It never changes, across Stop and
	// Start too.
	Port int

	server  // its mu serializes Start and Stop
	bin     string
	dir     string
	logFile string

	closeOnce sync.Once
	closed    bool // guarded by mu
	closeErr  error
}

// StartRedis starts a fresh redis-server. logf, if not nil, receives
// progress messages. Without the binary, the error wraps
// ErrMissingBinaries. The caller must Close it; Teardown also does.
func StartRedis(ctx context.Context, logf func(string, ...any)) (*RedisServer, error) {
	bin, err := findRedisBin()
	if err != nil {
		return nil, err
	}
	return startRedis(ctx, bin, logf)
}

// findRedisBin finds redis-server: in RWSPLIT_REDIS_BINDIR, else in
// /usr/bin or on PATH.
func findRedisBin() (string, error) {
	bins, err := findBins("RWSPLIT_REDIS_BINDIR", "redis-server", []string{"/usr/bin"}, "redis-server")
	if err != nil {
		return "", err
	}
	return bins["redis-server"], nil
}

func startRedis(ctx context.Context, bin string, logf func(string, ...any)) (*RedisServer, error) {
	// redis-server runs as whoever runs the tests, root included.
	dir, err := makeClusterDir("redis", currentUser())
	if err != nil {
		return nil, err
	}
	s := &RedisServer{
		// Close and a failed start kill redis-server: every key is lost anyway.
		server:  server{what: "redis", quit: syscall.SIGKILL},
		bin:     bin,
		dir:     dir,
		logFile: filepath.Join(dir, "redis.log"),
	}
	track(s)
	usePort := func(port int) error {
		s.Port = port
		return nil
	}
	retrying := func(port int) {
		if logf != nil {
			logf("testdb: redis: port %d taken, retrying on another", port)
		}
	}
	if err := s.startOnFreePort(ctx, usePort, s.startLocked, retrying); err != nil {
		s.Port = 0 // released
		s.Close()
		return nil, err
	}
	if logf != nil {
		logf("redis accepting connections on %s (%s)", s.Addr(), dir)
	}
	return s, nil
}

// startLocked starts redis-server and waits until it answers PING. s.mu
// must be held.
func (s *RedisServer) startLocked(ctx context.Context) error {
	if s.closed {
		return errors.New("testdb: start redis: server is closed")
	}
	spec := procSpec{
		name: s.what, path: s.bin, dir: s.dir, log: s.logFile, env: childEnv(s.dir),
		args: []string{"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", s.dir, "--daemonize", "no", "--logfile", "", "--protected-mode", "no",
			"--unixsocket", s.sockPath(), "--unixsocketperm", "700"},
	}
	return s.launch(ctx, spec, s.Port, 5*time.Millisecond, func(ctx context.Context) error {
		// Through the unix socket in our own folder: a server that took
		// our TCP port meanwhile cannot answer for ours.
		return redisPing(ctx, "unix", s.sockPath())
	})
}

// redisPing sends PING in RESP and expects +PONG.
func redisPing(ctx context.Context, network, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("testdb: redis answered PING with %q", line)
	}
	return nil
}

func (s *RedisServer) sockPath() string { return filepath.Join(s.dir, "redis.sock") }

// Addr returns the server's "127.0.0.1:port".
func (s *RedisServer) Addr() string { return addr(s.Port) }

// LogFile returns the file that receives the server's log.
func (s *RedisServer) LogFile() string { return s.logFile }

// Running reports whether redis-server is up.
func (s *RedisServer) Running() bool { return s.running() }

// Stop shuts redis-server down (SIGTERM) and waits until it is gone:
// connections are then refused, and every key is lost. Start brings it back
// on the same port.
func (s *RedisServer) Stop(ctx context.Context) error {
	return s.halt(ctx, "stop", syscall.SIGTERM, 0)
}

// Start restarts a stopped redis-server on the same port and waits until it
// answers PING. It does nothing if the server is running.
func (s *RedisServer) Start(ctx context.Context) error {
	return s.start(ctx, s.startLocked, nil)
}

// Close stops the server, removes its folder and frees its port. It is safe
// to call more than once.
func (s *RedisServer) Close() error {
	s.closeOnce.Do(func() {
		untrack(s)
		s.mu.Lock()
		s.closed = true
		s.shutdownLocked()
		s.mu.Unlock()
		if s.Port != 0 {
			releasePort(s.Port)
		}
		s.closeErr = removeDir(s.dir)
	})
	return s.closeErr
}
