package testdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// osUser is the account a server runs as: the service account ("postgres",
// "mysql") when the test runs as root, because both servers refuse to run as
// root; otherwise the current user.
type osUser struct {
	name string
	uid  int
	gid  int
	// cred switches the child to uid/gid; nil runs it as the current user.
	cred *syscall.Credential
}

// currentUser is the account running the tests.
func currentUser() *osUser {
	u := &osUser{uid: os.Getuid(), gid: os.Getgid()}
	if cur, err := user.Current(); err == nil {
		u.name = cur.Username
	}
	return u
}

// serviceUser returns the account to run a server as. As root that is the
// named service account, which the server's Debian package creates.
func serviceUser(name string) (*osUser, error) {
	if os.Geteuid() != 0 {
		return currentUser(), nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("testdb: running as root needs the OS user %q to run the server as: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("testdb: uid of %q: %w", name, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("testdb: gid of %q: %w", name, err)
	}
	return &osUser{
		name: name, uid: uid, gid: gid,
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
	}, nil
}

// chown gives path to the user, when the user is not the current one.
func (u *osUser) chown(path string) error {
	if u.cred == nil {
		return nil
	}
	if err := os.Chown(path, u.uid, u.gid); err != nil {
		return fmt.Errorf("testdb: chown %s to %s: %w", path, u.name, err)
	}
	return nil
}

// mkdir creates dir (mode 700) owned by the user.
func (u *osUser) mkdir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("testdb: %w", err)
	}
	return u.chown(dir)
}

// procSpec describes a program to run.
type procSpec struct {
	name string // for messages: "postgres replica1"
	path string
	args []string
	dir  string  // working directory
	user *osUser // nil: current user
	log  string  // file that receives stdout and stderr (appended)
	env  []string
	// pids, if set, is a file that gets the server's pid appended, so that
	// a later run can clean up after a test process that died (sweepOrphans).
	pids string
}

// process is a running server. Its waiter goroutine reaps it and closes
// done; nothing else is started per process.
type process struct {
	name    string
	cmd     *exec.Cmd
	log     string
	logFrom int64 // size of the log when this process started
	done    chan struct{}
	waitErr error // valid after done is closed
}

// childEnv is the environment of every child: the caller's PATH, and a HOME
// that belongs to the test, so no ~/.pgpass or ~/.my.cnf of the machine leaks in.
func childEnv(home string, extra ...string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	env := []string{"PATH=" + path, "HOME=" + home, "LANG=C", "LC_ALL=C", "TZ=UTC"}
	return append(env, extra...)
}

// command builds the process: a tool run that ctx bounds, or, for a
// server, a process that lives until it is stopped.
func (s procSpec) command(ctx context.Context, server bool) (*exec.Cmd, *os.File, int64, error) {
	f, err := os.OpenFile(s.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("testdb: %s: open log: %w", s.name, err)
	}
	off, _ := f.Seek(0, io.SeekEnd)
	var cmd *exec.Cmd
	if server {
		cmd = exec.Command(s.path, s.args...)
	} else {
		cmd = exec.CommandContext(ctx, s.path, s.args...)
	}
	cmd.Dir = s.dir
	cmd.Env = s.env
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: a Ctrl-C on the terminal does not reach
		// it, and teardown can kill the server with all its children.
		Setpgid: true,
		// If the test binary dies without tearing down (a panic in a test,
		// go test -timeout), the kernel kills the server with it. See
		// spawner for why the fork happens on a dedicated thread.
		Pdeathsig: syscall.SIGKILL,
	}
	if s.user != nil && s.user.cred != nil {
		cmd.SysProcAttr.Credential = s.user.cred
	}
	return cmd, f, off, nil
}

// startProcess starts a long-running server and returns at once.
func startProcess(s procSpec) (*process, error) {
	cmd, f, off, err := s.command(context.Background(), true)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own copy of the descriptor
	if err := spawn(cmd); err != nil {
		return nil, fmt.Errorf("testdb: start %s: %w", s.name, err)
	}
	p := &process{name: s.name, cmd: cmd, log: s.log, logFrom: off, done: make(chan struct{})}
	trackProc(p)
	if s.pids != "" {
		appendPid(s.pids, cmd.Process.Pid)
	}
	go func() {
		p.waitErr = cmd.Wait()
		untrackProc(p)
		spawnRelease()
		close(p.done)
	}()
	return p, nil
}

// runProcess runs a tool (initdb, pg_basebackup, mariadb-install-db) to
// completion. Its error carries the tail of the tool's log.
func runProcess(ctx context.Context, s procSpec) error {
	cmd, f, off, err := s.command(ctx, false)
	if err != nil {
		return err
	}
	defer f.Close()
	// Cancel kills the whole process group, not just the direct child.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := spawn(cmd); err != nil {
		return fmt.Errorf("testdb: %s: %w", s.name, err)
	}
	err = cmd.Wait()
	spawnRelease()
	if err != nil {
		return fmt.Errorf("testdb: %s: %w%s", s.name, err, logTail(s.log, off))
	}
	return nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// signal sends sig to the server process alone.
func (p *process) signal(sig syscall.Signal) error {
	if p.exited() {
		return nil
	}
	if err := syscall.Kill(p.pid(), sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("testdb: signal %s: %w", p.name, err)
	}
	return nil
}

// killGroup sends SIGKILL (and SIGCONT) to the server's process group:
// every process it started dies, frozen or not. Call it only before the
// server is reaped, while its pid cannot have been reused.
func (p *process) killGroup() {
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	_ = syscall.Kill(-p.pid(), syscall.SIGCONT)
}

// stop sends sig, waits up to grace for the process to exit, and then kills
// its process group. It returns once the process is reaped.
func (p *process) stop(sig syscall.Signal, grace time.Duration) {
	if p.exited() {
		return
	}
	thawTree(p.pid())
	_ = p.signal(sig)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return
	case <-t.C:
	}
	p.killGroup()
	<-p.done
}

// wait waits for the process to exit, up to the context's end.
func (p *process) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("testdb: waiting for %s to exit: %w", p.name, ctx.Err())
	}
}

// newLog returns what the process has written to its log.
func (p *process) newLog() string {
	b, err := readFrom(p.log, p.logFrom, 1<<20)
	if err != nil {
		return ""
	}
	return string(b)
}

// exitError describes an exited process, with its log tail.
func (p *process) exitError() error {
	return fmt.Errorf("testdb: %s exited during start-up (%v)%s", p.name, p.waitErr, logTail(p.log, p.logFrom))
}

// addrInUse reports whether the process failed because its port was taken.
func (p *process) addrInUse() bool {
	return strings.Contains(p.newLog(), "Address already in use")
}

func readFrom(path string, off, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size()-off > max {
		off = st.Size() - max
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

// logTail returns the last lines of a log written since off, formatted to be
// appended to an error message.
func logTail(path string, off int64) string {
	b, err := readFrom(path, off, 4096)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return fmt.Sprintf("\n(log %s is empty)", path)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return fmt.Sprintf("\nlast lines of %s:\n\t%s", path, strings.Join(lines, "\n\t"))
}

// procs is every server process this package started and has not reaped:
// teardown's backstop.
var procs = struct {
	sync.Mutex
	m map[*process]struct{}
}{m: make(map[*process]struct{})}

func trackProc(p *process)   { procs.Lock(); procs.m[p] = struct{}{}; procs.Unlock() }
func untrackProc(p *process) { procs.Lock(); delete(procs.m, p); procs.Unlock() }

// killAll kills every process still running and waits until they are reaped.
func killAll() {
	procs.Lock()
	left := make([]*process, 0, len(procs.m))
	for p := range procs.m {
		left = append(left, p)
	}
	procs.Unlock()
	for _, p := range left {
		p.killGroup()
	}
	for _, p := range left {
		<-p.done
	}
}

// The spawner forks every child from one goroutine locked to its OS thread.
// PR_SET_PDEATHSIG fires when the THREAD that forked the child exits, not
// the process; Go may end an ordinary thread, and that would kill a server
// in the middle of a test. A locked goroutine's thread lives until the
// goroutine returns, which happens only when no child is left (it returns
// still locked, so the runtime ends the thread: a last safety net).
var spawner struct {
	sync.Mutex
	reqs chan spawnReq
	live int // children started or being started and not yet reaped
	wg   sync.WaitGroup
}

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

// spawn starts cmd on the spawner thread. Each successful spawn must be
// matched by one spawnRelease after the child is reaped.
func spawn(cmd *exec.Cmd) error {
	spawner.Lock()
	if spawner.reqs == nil {
		reqs := make(chan spawnReq)
		spawner.reqs = reqs
		spawner.wg.Add(1)
		go func() {
			defer spawner.wg.Done()
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			for r := range reqs {
				r.errc <- r.cmd.Start()
			}
		}()
	}
	spawner.live++
	reqs := spawner.reqs
	spawner.Unlock()
	errc := make(chan error, 1)
	reqs <- spawnReq{cmd: cmd, errc: errc}
	if err := <-errc; err != nil {
		spawnRelease()
		return err
	}
	return nil
}

// spawnRelease records that a child was reaped; the spawner stops with the
// last one.
func spawnRelease() {
	spawner.Lock()
	defer spawner.Unlock()
	spawner.live--
	if spawner.live == 0 && spawner.reqs != nil {
		close(spawner.reqs)
		spawner.reqs = nil
	}
}

// procStat is the part of /proc/PID/stat that freezing needs.
type procStat struct {
	pid, ppid int
	state     byte
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return procStat{}, fmt.Errorf("testdb: cannot parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("testdb: cannot parse /proc/%d/stat", pid)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("testdb: cannot parse /proc/%d/stat: %w", pid, err)
	}
	return procStat{pid: pid, ppid: ppid, state: f[0][0]}, nil
}

// descendants returns the pids of every process below root, found through
// the ppid field of /proc/*/stat.
func descendants(root int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := make(map[int][]int)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		children[st.ppid] = append(children[st.ppid], pid)
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// freezeTree stops root and every process below it with SIGSTOP. The root
// goes first, so it forks no new child meanwhile; a second sweep catches a
// child forked just before.
func freezeTree(root int) error {
	if err := syscall.Kill(root, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("testdb: SIGSTOP %d: %w", root, err)
	}
	seen := map[int]bool{}
	for sweep := 0; sweep < 3; sweep++ {
		fresh := 0
		for _, pid := range descendants(root) {
			if seen[pid] {
				continue
			}
			seen[pid] = true
			fresh++
			_ = syscall.Kill(pid, syscall.SIGSTOP) // ESRCH: it exited, fine
		}
		if fresh == 0 {
			break
		}
	}
	return nil
}

// thawTree resumes root and every process below it with SIGCONT.
func thawTree(root int) {
	for _, pid := range descendants(root) {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	_ = syscall.Kill(root, syscall.SIGCONT)
}

func appendPid(path string, pid int) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return // best effort: only orphan clean-up needs it
	}
	fmt.Fprintln(f, pid)
	f.Close()
}

// removeOrphanShm removes the System V shared memory segments that the
// (dead) processes listed in pidsFile created. A postmaster killed with
// SIGKILL (as Pdeathsig does when the test process dies) leaves its small
// interlock segment behind. A segment still attached by a backend that is
// exiting is destroyed when that backend detaches.
func removeOrphanShm(pidsFile string) {
	b, err := os.ReadFile(pidsFile)
	if err != nil {
		return
	}
	pids := map[string]bool{}
	for _, f := range strings.Fields(string(b)) {
		pids[f] = true
	}
	table, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		return
	}
	// key shmid perms size cpid lpid nattch ...
	for _, line := range strings.Split(string(table), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 7 || !pids[f[4]] {
			continue
		}
		if id, err := strconv.Atoi(f[1]); err == nil {
			_, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
		}
	}
}

// copyTree copies the directory src to dst (which must not exist), keeping
// file modes and giving everything to u.
func copyTree(src, dst string, u *osUser) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if err := copyFile(path, target, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return nil // sockets, pid files' links: not part of a datadir copy
		}
		return u.chown(target)
	})
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
