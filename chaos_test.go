package rwsplit_test

import (
	"bufio"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/connerr"
	"github.com/rwsplit/rwsplit/internal/testdb"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/policy"
	"github.com/rwsplit/rwsplit/stickiness"
	"github.com/rwsplit/rwsplit/stickiness/redisstore"
)

// TestChaos runs 32 goroutines of mixed work through two app servers (two
// plugins sharing stickiness through Redis) over a private cluster with
// two replicas, while faults hit it on a seeded random schedule, and
// asserts the invariants of issue #13 with counts. PostgreSQL runs 60s,
// MariaDB 20s; RWSPLIT_CHAOS_SECONDS=N runs PostgreSQL N seconds and
// MariaDB N/3, and RWSPLIT_CHAOS_SEED=N replays a schedule (each run logs
// its seed). The primary never goes down here: TestPrimaryDown covers it.
// A read through one app server that misses a write made through the
// other, because the writer's mark had not reached Redis, is counted apart
// and does not fail the test: a known limit (docs/stickiness.md, "Fail
// safe"). Any other miss does.
func TestChaos(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("RWSPLIT_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("RWSPLIT_CHAOS_SEED=%q: %v", s, err)
		}
		seed = v
	}
	length := 60 * time.Second
	if s := os.Getenv("RWSPLIT_CHAOS_SECONDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 3 {
			t.Fatalf("RWSPLIT_CHAOS_SECONDS=%q: want a number of seconds, at least 3", s)
		}
		length = time.Duration(v) * time.Second
	}
	driverLogOnce.Do(func() {
		redis.SetLogger(driverLog)
		_ = mysqldriver.SetLogger(driverLog)
	})
	t.Logf("chaos seed %d (RWSPLIT_CHAOS_SEED=%d replays the schedule), PostgreSQL %v, MariaDB %v", seed, seed, length, length/3)
	t.Run("postgres", func(t *testing.T) { runChaos(t, chaosPostgres(t), seed, 0, length) })
	t.Run("mariadb", func(t *testing.T) { runChaos(t, chaosMariaDB(t), seed, 1, length/3) })
}

// driverLog is go-redis's and go-sql-driver's logger: quiet during a
// chaos run, where servers stop on purpose and every failed dial or
// broken connection would be logged, counted instead; as before
// otherwise.
var (
	driverLog     = &quietLog{}
	driverLogOnce sync.Once
)

type quietLog struct {
	quiet atomic.Int32
	lines atomic.Int64
}

// Printf is go-redis's Logging.
func (l *quietLog) Printf(_ context.Context, format string, v ...any) {
	if l.quiet.Load() > 0 {
		l.lines.Add(1)
		return
	}
	log.Printf("redis: "+format, v...)
}

// Print is go-sql-driver's Logger.
func (l *quietLog) Print(v ...any) {
	if l.quiet.Load() > 0 {
		l.lines.Add(1)
		return
	}
	log.Print(append([]any{"[mysql] "}, v...)...)
}

// chaosLag is the health tests' checker settings: MaxLag 500ms, probes
// every 100ms bounded by 250ms.
var chaosLag = healthLag

// chaosLossHold is the Redis store's LossHold. Shorter than the Window (the
// default), so that the sticky users' reads do not stay on the primary for
// the whole run while Redis restarts every few seconds; longer than MaxLag
// plus the writers' Set retries, after which a write made before the loss is
// on every eligible replica and its mark is back in Redis.
const chaosLossHold = 2 * time.Second

const (
	// A read's own deadline, and a write's. A read that outlives it has
	// met a fault that stalls (a frozen replica, the latency proxy, the
	// saturated primary pool) or the test fails it.
	chaosReadTimeout  = 3 * time.Second
	chaosWriteTimeout = 10 * time.Second
	// stallMargin extends a stalling fault past its heal when an error is
	// classified: the backlog it built (32 goroutines queued on 7
	// connections, a replica catching up) drains after it.
	stallMargin = time.Second
	// chaosPrimaryConns caps app server A's primary pool, so that the
	// saturation fault can take every connection of it.
	chaosPrimaryConns = 8
)

// chaosCluster is what the chaos run needs of a PostgreSQL or MariaDB
// cluster.
type chaosCluster struct {
	kind      string
	dialector func(*sql.DB) gorm.Dialector
	primary   func(*testdb.Recorder) *sql.DB
	replicas  []*chaosReplica
	proxy     *testdb.Proxy // in front of the last replica
	reset     func(context.Context) error
	// readOnlyErr reports the server's refusal of a write in a read-only
	// transaction (PostgreSQL 25006, MariaDB 1792).
	readOnlyErr func(error) bool
}

// chaosReplica is one replica and its faults.
type chaosReplica struct {
	name string
	// open returns a pool on the replica (through the proxy for the last
	// one), recorded by rec unless nil.
	open                                      func(rec *testdb.Recorder) *sql.DB
	crash, start, freeze, thaw, pause, resume func(context.Context) error
	pauseName                                 string
	// refusedLog is the server's own log of refused statements, and
	// refused counts the writes it shows refused after offset.
	refusedLog string
	refused    func(line string) bool
}

func chaosPostgres(t *testing.T) *chaosCluster {
	pg := dbtest.PrivatePostgres(t, 2)
	proxy := dbtest.Proxy(t, pg.Replicas[1].Addr())
	cc := &chaosCluster{
		kind:      "postgres",
		dialector: func(db *sql.DB) gorm.Dialector { return postgres.New(postgres.Config{Conn: db}) },
		primary:   pg.Primary.OpenDB,
		proxy:     proxy,
		reset:     pg.Reset,
		readOnlyErr: func(err error) bool {
			var pe *pgconn.PgError
			return errors.As(err, &pe) && pe.Code == "25006"
		},
	}
	for i, r := range pg.Replicas {
		open := r.OpenDB
		if i == len(pg.Replicas)-1 {
			open = func(rec *testdb.Recorder) *sql.DB {
				cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", proxy.Port()))
				noErr(t, err)
				var c driver.Connector = stdlib.GetConnector(*cfg)
				if rec != nil {
					c = rec.Connector(r.Name, c)
				}
				return sql.OpenDB(c)
			}
		}
		cc.replicas = append(cc.replicas, &chaosReplica{
			name: r.Name, open: open,
			crash: r.Crash, start: r.Start, freeze: r.Freeze, thaw: r.Thaw,
			pause: r.PauseReplay, resume: r.ResumeReplay, pauseName: "pause replay",
			// A hot standby refuses every write with SQLSTATE 25006 and
			// logs it: "ERROR:  cannot execute INSERT in a read-only
			// transaction" (log_min_error_statement is ERROR).
			refusedLog: r.LogFile(),
			refused: func(line string) bool {
				return strings.Contains(line, "ERROR:") && (strings.Contains(line, "read-only transaction") || strings.Contains(line, "during recovery"))
			},
		})
	}
	return cc
}

func chaosMariaDB(t *testing.T) *chaosCluster {
	my := dbtest.PrivateMariaDB(t, 2)
	proxy := dbtest.Proxy(t, my.Replicas[1].Addr())
	cc := &chaosCluster{
		kind:      "mariadb",
		dialector: func(db *sql.DB) gorm.Dialector { return mysql.New(mysql.Config{Conn: db}) },
		primary:   my.Primary.OpenDB,
		proxy:     proxy,
		reset:     my.Reset,
		readOnlyErr: func(err error) bool {
			var me *mysqldriver.MySQLError
			return errors.As(err, &me) && me.Number == 1792
		},
	}
	for i, r := range my.Replicas {
		// The replicas run read_only=ON and the account lacks READ_ONLY
		// ADMIN: a write fails with error 1290. MariaDB does not log
		// refused statements by default; the sql_errlog plugin logs every
		// error with its statement, and stays installed across restarts.
		dbtest.Must(t, r.Admin(t.Context(), "INSTALL SONAME 'sql_errlog'"))
		open := r.OpenDB
		if i == len(my.Replicas)-1 {
			open = func(rec *testdb.Recorder) *sql.DB {
				cfg := r.Config()
				cfg.Addr = proxy.Addr()
				c, err := mysqldriver.NewConnector(cfg)
				noErr(t, err)
				if rec != nil {
					c = rec.Connector(r.Name, c)
				}
				return sql.OpenDB(c)
			}
		}
		cc.replicas = append(cc.replicas, &chaosReplica{
			name: r.Name, open: open,
			crash: r.Crash, start: r.Start, freeze: r.Freeze, thaw: r.Thaw,
			pause: r.StopSQLThread, resume: r.StartSQLThread, pauseName: "stop SQL thread",
			refusedLog: filepath.Join(r.DataDir(), "sql_errors.log"),
			refused: func(line string) bool {
				if strings.Contains(line, "ERROR 1290") {
					return true
				}
				_, stmt, ok := strings.Cut(line, "] ERROR ")
				if _, s, ok2 := strings.Cut(stmt, " : "); ok && ok2 {
					return sqlKindOf(s) == kindWrite
				}
				return false
			},
		})
	}
	return cc
}

// Tables. Every write of the workload goes to chaos_rows; the counter row
// is written by a pool of its own, outside the plugins.
type chaosCounter struct {
	ID int
	V  int64
}

type chaosRow struct {
	ID    int64  `gorm:"primaryKey;autoIncrement:false"`
	Owner string `gorm:"size:32;index"`
	N     int64
}

// Statement kinds at the driver.
type sqlKind int

const (
	kindRead sqlKind = iota
	kindWrite
	kindTx // BEGIN, COMMIT, ROLLBACK, SET, SAVEPOINT...
	numKinds
)

func (k sqlKind) String() string { return [...]string{"read", "write", "tx"}[k] }

// sqlKindOf classifies a statement by its first word.
func sqlKindOf(sql string) sqlKind {
	s := strings.TrimLeft(sql, " \t\r\n(")
	word := s
	if i := strings.IndexAny(s, " \t\r\n("); i >= 0 {
		word = s[:i]
	}
	for _, w := range []string{"INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "CREATE", "DROP", "ALTER", "TRUNCATE", "COPY", "GRANT", "LOCK"} {
		if strings.EqualFold(word, w) {
			return kindWrite
		}
	}
	for _, w := range []string{"BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SET", "DEALLOCATE", "DISCARD", "RESET"} {
		if strings.EqualFold(word, w) {
			return kindTx
		}
	}
	return kindRead
}

var chaosNodes = []string{"primary", "replica1", "replica2", "other"}

func nodeIndex(name string) int {
	switch name {
	case "primary":
		return 0
	case "replica1":
		return 1
	case "replica2":
		return 2
	}
	return 3
}

// Operations of the workload.
type opKind int

const (
	opRead        opKind = iota // First on the counter
	opRawRead                   // Raw SELECT of the counter
	opStaleRead                 // MaxStaleness(300ms) First
	opStaleRead2s               // MaxStaleness(2s) First
	opReplicaTx                 // Clauses(Replica{}).Transaction reading the counter
	opReadOnlyTx                // Transaction(fn, TxOptions{ReadOnly}) reading the counter
	opCreate                    // Create
	opUpdate                    // Model().Update(n + 1)
	opExec                      // Exec UPDATE n = n + 1
	opTx                        // Transaction: Create + Update
	opWriteInROTx               // a write in a replica transaction: refused
	opStickyWrite               // a sticky user's Create or Update
	opStickyRead                // a sticky user's read of its row
	numOps
)

var opNames = [...]string{"read", "raw-read", "maxstale-300ms", "maxstale-2s", "replica-tx", "readonly-tx",
	"create", "update", "exec", "tx", "write-in-ro-tx", "sticky-write", "sticky-read"}

func (k opKind) String() string { return opNames[k] }

// op is one call into GORM by the workload; it rides in the call's
// context, so the recorder and OnRoute attribute statements to it.
type op struct {
	kind    opKind
	app     *chaosApp
	start   time.Time
	tx      bool         // it runs a transaction on a replica (set by its fn)
	retried atomic.Bool  // OnRoute reported a retry after a connection error
	writes  atomic.Int32 // write statements the driver ran for it
	node    atomic.Value // string: where OnRoute last sent it
	// answered is the node whose driver last ran one of its statements
	// without error ("" after one that failed): a read whose rows then
	// fail was answered, and its rows were the caller's.
	answered atomic.Value
}

type opKey struct{}

func opOf(ctx context.Context) *op {
	o, _ := ctx.Value(opKey{}).(*op)
	return o
}

func (o *op) nodeName() string {
	s, _ := o.node.Load().(string)
	return s
}

func (o *op) answeredBy() string {
	s, _ := o.answered.Load().(string)
	return s
}

// chaosApp is one app server: a *gorm.DB with its own plugin and pools.
type chaosApp struct {
	name    string
	db      *gorm.DB
	plugin  *rwsplit.Plugin
	primary *sql.DB
	pools   []*sql.DB
	redis   *redis.Client
}

// faultWindow is one fault, from its injection to the end of its heal.
type faultWindow struct {
	lane, kind, target string
	from, to           time.Time // to is zero while it lasts
	stalls             bool      // it may make a statement wait: freeze, latency, saturation
	crash              bool      // it breaks connections to target
}

// timelineEntry is a line of the fault timeline.
type timelineEntry struct {
	at   time.Duration
	what string
}

// chaosRun is one run: the cluster, the app servers, the workload's
// counts and the fault timeline.
type chaosRun struct {
	t     *testing.T
	cc    *chaosCluster
	seed  uint64
	start time.Time
	rec   *testdb.Recorder
	a, b  *chaosApp
	redis *testdb.RedisServer

	clockMu    sync.Mutex
	superseded []int64 // superseded[v]: when the counter's UPDATE to v+1 had committed, ns since start

	// gate is held (read) by every operation and every fault from its
	// injection to its heal; the heap is measured with it held (write),
	// when nothing is in flight.
	gate sync.RWMutex

	mu          sync.Mutex
	timeline    []timelineEntry
	windows     []*faultWindow
	errs        map[string]int      // errors by class
	examples    map[string][]string // the first few of each class
	failures    []string            // invariant violations, the first few
	storeMissed []string            // misses between app servers with the mark not in Redis, the first few
	nFail       map[string]int      // invariant violations by invariant

	stmts         [4][numKinds]atomic.Int64 // at the driver, by node and kind
	replicaWrites atomic.Int64              // write statements that reached a replica, at the driver
	ops           [numOps]atomic.Int64
	opErrs        [numOps]atomic.Int64
	faults        map[string]int

	stickyReads, stickyMisses atomic.Int64
	storeMisses               atomic.Int64 // misses between app servers whose mark Redis did not have
	marksMu                   sync.Mutex
	marks                     map[string]storedMark // the last mark Redis took for each user
	roRefused                 [2]atomic.Int64       // writes in a replica transaction refused: by rwsplit, by the primary's read-only transaction
	worst                     [numOps]atomic.Int64  // the worst staleness per read kind, ns
	staleReads                atomic.Int64

	logs sync.Map // message -> *atomic.Int64: the plugins' log records
}

func (r *chaosRun) since() time.Duration { return time.Since(r.start).Round(time.Millisecond) }

func (r *chaosRun) note(format string, args ...any) {
	r.mu.Lock()
	r.timeline = append(r.timeline, timelineEntry{r.since(), fmt.Sprintf(format, args...)})
	r.mu.Unlock()
}

// fail records an invariant violation; the test fails at the end, with
// the seed and the timeline.
func (r *chaosRun) fail(invariant, format string, args ...any) {
	msg := fmt.Sprintf("%v %s: ", r.since(), invariant) + fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.nFail[invariant]++
	if len(r.failures) < 30 {
		r.failures = append(r.failures, msg)
	}
	r.mu.Unlock()
}

func (r *chaosRun) countErr(class string, err error) {
	r.mu.Lock()
	r.errs[class]++
	if len(r.examples[class]) < 3 {
		r.examples[class] = append(r.examples[class], fmt.Sprintf("%v: %v", r.since(), err))
	}
	r.mu.Unlock()
}

// observe sees every statement at the driver (testdb.Recorder.Observe).
func (r *chaosRun) observe(ctx context.Context, e testdb.Exec, err error) {
	ni, kind := nodeIndex(e.Node), sqlKindOf(e.SQL)
	r.stmts[ni][kind].Add(1)
	if o := opOf(ctx); o != nil {
		node := e.Node
		if err != nil {
			node = ""
		}
		o.answered.Store(node)
	}
	if kind != kindWrite {
		return
	}
	if ni != 0 {
		r.replicaWrites.Add(1)
		r.fail("1 write on a replica", "%s ran %q (driver)", e.Node, e.SQL)
	}
	if o := opOf(ctx); o != nil {
		o.writes.Add(1)
	}
}

// overlaps reports whether a fault of the given sort (stalls or crash on
// node) lasted during [from, to], stallMargin included.
func (r *chaosRun) overlaps(from, to time.Time, match func(*faultWindow) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.windows {
		end := w.to
		if !end.IsZero() {
			end = end.Add(stallMargin)
		}
		if match(w) && w.from.Before(to) && (end.IsZero() || end.After(from)) {
			return true
		}
	}
	return false
}

// staleness is how long before at the counter's value v had been
// superseded (0 if it was current).
func (r *chaosRun) staleness(v int64, at time.Time) time.Duration {
	r.clockMu.Lock()
	defer r.clockMu.Unlock()
	if v < 0 || v >= int64(len(r.superseded)) {
		return 0
	}
	return max(0, at.Sub(r.start)-time.Duration(r.superseded[v]))
}

// runChaos runs the chaos test on cc for length; stream tells the
// schedules of the PostgreSQL and MariaDB runs of one seed apart.
func runChaos(t *testing.T, cc *chaosCluster, seed, stream uint64, length time.Duration) {
	leaks := goleak.IgnoreCurrent()
	driverLog.quiet.Add(1)
	defer driverLog.quiet.Add(-1)
	driverLines := driverLog.lines.Load()
	defer func() {
		t.Logf("go-redis and go-sql-driver logged %d lines (not shown)", driverLog.lines.Load()-driverLines)
	}()
	srv := dbtest.Redis(t)
	r := &chaosRun{t: t, cc: cc, seed: seed, redis: srv, start: time.Now(), errs: map[string]int{}, examples: map[string][]string{},
		nFail: map[string]int{}, faults: map[string]int{}, marks: map[string]storedMark{}}
	r.rec = &testdb.Recorder{Discard: true, Observe: r.observe}
	defer func() {
		if t.Failed() {
			t.Logf("seed %d (RWSPLIT_CHAOS_SEED=%d reproduces the schedule); timeline:\n%s", seed, seed, r.timelineText())
		}
	}()

	closed := false
	defer func() {
		if !closed {
			r.closeApps()
		}
	}()
	r.a = r.openApp("A", rwsplit.FallbackPrimary, policy.Default(), chaosPrimaryConns)
	r.b = r.openApp("B", rwsplit.FallbackFail, policy.RoundRobin(), 0)

	// Schema, and the proof that the servers' own logs see a write on a
	// replica: one direct write on each (outside the plugins and the
	// recorder) must appear there once.
	noErr(t, r.a.db.Migrator().DropTable(&chaosRow{}, &chaosCounter{}))
	noErr(t, r.a.db.AutoMigrate(&chaosRow{}, &chaosCounter{}))
	noErr(t, r.a.db.Create(&chaosCounter{ID: 1}).Error)
	dbtest.Within(t, 30*time.Second, cc.reset)
	offsets := r.selfTestServerLogs()
	r.waitEligible(30 * time.Second)

	// The counter: its own pool on the primary, recorded (its writes are
	// counted at the driver too), updated every 10ms.
	counterDB := cc.primary(r.rec)
	defer counterDB.Close()
	// Room for every value, so that the slice does not grow while the heap
	// is measured.
	r.superseded = make([]int64, 0, 2*int(length/(10*time.Millisecond))+1000)
	// The live heap after GC, at the start, at a third of the run and at
	// its end (invariant 8).
	pools := append(slices.Concat(r.a.pools, r.b.pools), counterDB)
	heap := func() (live uint64, maxInUse int) {
		// With no operation in flight and no fault in force, and idle
		// connections closed, the pools hold only the checkers'
		// connections: the heap compared is the plugins' own.
		r.gate.Lock()
		defer r.gate.Unlock()
		for _, p := range pools {
			p.SetMaxIdleConns(0)
		}
		defer func() {
			for _, p := range pools {
				p.SetMaxIdleConns(2) // database/sql's default
			}
		}()
		var perPool []string
		for _, p := range pools {
			st := p.Stats()
			maxInUse = max(maxInUse, st.InUse)
			perPool = append(perPool, fmt.Sprintf("%d/%d", st.InUse, st.OpenConnections))
		}
		r.note("connections in use/open, by pool: %v", perPool)
		// Twice: the first GC moves sync.Pool contents (pgx's buffers) to
		// the victim cache, the second frees them.
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc, maxInUse
	}
	heapStart, inUseStart := heap()
	r.note("set up; the workload and the faults start")
	begin := time.Now()
	stop := make(chan struct{})
	var work sync.WaitGroup
	work.Go(func() { r.runCounter(counterDB, stop) })

	// The workload: 32 goroutines.
	var tallies []*writerTally
	var users []*stickyUser
	for i := range 8 {
		work.Go(func() { r.guard("reader", func() { r.reader(i, stop) }) })
	}
	for i := range 8 {
		w := &writerTally{owner: fmt.Sprintf("w%d", i)}
		tallies = append(tallies, w)
		work.Go(func() { r.guard("writer", func() { r.writer(i, w, stop) }) })
	}
	for i := range 16 {
		u := &stickyUser{key: fmt.Sprintf("u%d", i), shared: i >= 8}
		users = append(users, u)
		work.Go(func() { r.guard("sticky user", func() { r.stickyUser(i, u, stop) }) })
	}

	// The faults, one lane per target, each on its own seeded schedule.
	lanes := r.lanes()
	var faults sync.WaitGroup
	for i, l := range lanes {
		plan := l.plan(seed, stream<<8|uint64(i), length)
		faults.Go(func() { r.guard("fault lane "+l.name, func() { r.runLane(l, plan, stop) }) })
	}

	time.Sleep(length / 3) // the length of the run, not a wait for an event
	heapThird, inUseThird := heap()
	r.note("heap %.1f MiB", mib(heapThird))
	time.Sleep(length - length/3)
	heapEnd, inUseEnd := heap()
	r.note("heap %.1f MiB; stopping", mib(heapEnd))
	close(stop)
	faults.Wait()
	work.Wait()
	elapsed := time.Since(begin)

	// Restore everything: every node up, replaying and caught up; the
	// proxy, Redis and the switches are back already (each lane heals
	// its last fault).
	dbtest.Within(t, time.Minute, cc.reset)
	r.note("restored")

	// Invariant 2 on the server: each owner's rows and increments on the
	// primary match what the callers were told, exactly when nothing
	// failed; a retried write would add rows or increments.
	r.checkPrimaryRows(tallies, users)
	// Invariant 1 on the server.
	refused := r.serverRefusals(offsets)

	statsA, statsB := r.a.plugin.Stats(), r.b.plugin.Stats()
	r.closeApps()
	closed = true
	counterDB.Close()
	cc.proxy.Close()
	// Invariant 7: nothing the plugins, pools, clients or proxy started is
	// left. Waited for up to 10s: go-redis's background dialer sleeps a
	// second between attempts before it sees its pool closed.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err := goleak.Find(append(dbtest.LeakIgnores(), leaks)...)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			r.fail("7 goroutines after Close", "%v", err)
			break
		}
	}

	// Invariant 8: the live heap at the end is at most 1.5 times the one
	// at a third of the run. By then the pools, statement caches and
	// stickiness records have their working size, and the measurement
	// leaves out idle connections (closed), what is in flight (nothing)
	// and sync.Pool contents (two GCs): 1.4–2.5 MiB here, the end
	// 0.95–1.25 times the third over 15 runs under -race (what remains
	// varies: connections the proxy and go-redis still hold, the
	// checkers' connections). The test's own records do not grow in the
	// heap (the counter's times are allocated up front). About 16 000
	// statements run in the last two thirds (PostgreSQL, -race): a leak
	// of 70 bytes each would add half.
	const heapRatio = 1.5
	if float64(heapEnd) > heapRatio*float64(heapThird) {
		r.fail("8 heap flat", "live heap %.1f MiB at the end, %.1f MiB at a third of the run: more than %.1fx", mib(heapEnd), mib(heapThird), heapRatio)
	}
	// Nor do connections leak: with nothing in flight, a pool has at most
	// one in use, its checker's (none right after a probe failed on it),
	// or the counter's update (it is not paused).
	if n := max(inUseStart, inUseThird, inUseEnd); n > 1 {
		r.fail("8 heap flat", "a pool had %d connections in use with nothing in flight (see the timeline)", n)
	}

	r.report(elapsed, statsA, statsB, refused, heapStart, heapThird, heapEnd)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.failures {
		t.Error(f)
	}
	if n := len(r.nFail); n > 0 {
		t.Errorf("invariants violated: %v", r.nFail)
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// guard runs fn and turns a panic into a failure of invariant 6.
func (r *chaosRun) guard(who string, fn func()) {
	defer func() {
		if p := recover(); p != nil {
			r.fail("6 no panic", "%s panicked: %v\n%s", who, p, debug.Stack())
		}
	}()
	fn()
}

// openApp opens an app server over the cluster: every pool recorded, the
// last replica through the proxy, stickiness in the shared Redis.
func (r *chaosRun) openApp(name string, fb rwsplit.Fallback, pol policy.Policy, primaryConns int) *chaosApp {
	t := r.t
	app := &chaosApp{name: name}
	app.primary = r.cc.primary(r.rec)
	app.primary.SetMaxOpenConns(primaryConns)
	app.pools = append(app.pools, app.primary)
	var replicas []rwsplit.Replica
	for _, rep := range r.cc.replicas {
		pool := rep.open(r.rec)
		app.pools = append(app.pools, pool)
		replicas = append(replicas, rwsplit.Replica{Name: rep.name, Dialector: r.cc.dialector(pool)})
	}
	db, err := gorm.Open(r.cc.dialector(app.primary), &gorm.Config{Logger: logger.Discard})
	noErr(t, err)
	// Small buffers (the records are tiny): go-redis keeps 64 KiB per
	// connection by default, and up to 20 connections, which would swamp
	// the heap measurement.
	app.redis = redis.NewClient(&redis.Options{Addr: r.redis.Addr(), MaxRetries: -1, ReadBufferSize: 4096, WriteBufferSize: 4096})
	lag := chaosLag
	lag.OnStateChange = func(ch lagcheck.Change) {
		what := fmt.Sprintf("%s: %s %v -> %v", name, ch.Replica, ch.From, ch.To)
		if ch.Reading.Err != nil {
			what += fmt.Sprintf(" (%v)", ch.Reading.Err)
		}
		r.note("%s", what)
	}
	app.plugin = rwsplit.New(rwsplit.Config{
		Replicas: replicas,
		Policy:   pol,
		Fallback: fb,
		Lag:      lag,
		OnRoute: func(ctx context.Context, rt rwsplit.Route) {
			if o := opOf(ctx); o != nil {
				o.node.Store(rt.Node)
				if rt.Reason == rwsplit.ReasonRetry {
					o.retried.Store(true)
				}
			}
		},
		Stickiness: stickiness.Config{Store: &markedStore{Store: redisstore.New(app.redis, redisstore.Options{LossHold: chaosLossHold}), r: r}},
		Logger:     slog.New(&countingHandler{m: &r.logs, app: name}),
	})
	app.db = db
	noErr(t, db.Use(app.plugin))
	return app
}

func (r *chaosRun) closeApps() {
	for _, app := range []*chaosApp{r.a, r.b} {
		if app == nil {
			continue
		}
		if app.plugin != nil {
			if err := app.plugin.Close(); err != nil {
				r.t.Errorf("%s: Plugin.Close: %v", app.name, err)
			}
		}
		if app.db != nil {
			rwsplit.StopUserStore(app.db)
		}
		for _, p := range app.pools {
			p.Close()
		}
		if app.redis != nil {
			app.redis.Close()
		}
	}
}

// markedStore is the app servers' Redis store; it notes the last mark
// Redis took for each user.
type markedStore struct {
	stickiness.Store
	r *chaosRun
}

// storedMark is a mark Redis took: its record's Until, and when Set
// returned.
type storedMark struct{ until, at time.Time }

func (s *markedStore) Set(ctx context.Context, key string, rec stickiness.Record) error {
	err := s.Store.Set(ctx, key, rec)
	if err == nil {
		s.r.marksMu.Lock()
		if m := s.r.marks[key]; !rec.Until.Before(m.until) {
			s.r.marks[key] = storedMark{rec.Until, time.Now()}
		}
		s.r.marksMu.Unlock()
	}
	return err
}

// markMissing says why Redis lacked the mark of key's write begun at
// wrote when a read began at read: the Set had not succeeded yet (it
// failed or timed out, and its retry had not come), or Redis was stopped
// after it (losing every key). It returns "" if Redis had it, or if Redis
// restarted since the write and the read began within chaosLossHold of
// it: the store's LossHold must have sent the read to the primary, so the
// miss is no excuse. A write's mark lasts until at least its start plus
// the Window.
func (r *chaosRun) markMissing(key string, wrote, read time.Time) string {
	r.marksMu.Lock()
	m := r.marks[key]
	r.marksMu.Unlock()
	switch {
	case r.restartedBefore(wrote, read):
		return ""
	case m.until.Before(wrote.Add(stickiness.DefaultWindow)) || m.at.After(read):
		return "its Set had not succeeded yet"
	case r.overlaps(m.at, read, func(w *faultWindow) bool { return w.lane == "redis" && w.from.After(m.at) }):
		return "Redis was stopped after it took the mark"
	}
	return ""
}

// markState describes, for a failure message, the last mark Redis took for
// key, relative to the write and the read.
func (r *chaosRun) markState(key string, wrote, read time.Time) string {
	r.marksMu.Lock()
	m := r.marks[key]
	r.marksMu.Unlock()
	if m.at.IsZero() {
		return "Redis never took a mark of the user"
	}
	return fmt.Sprintf("Redis took the user's last mark %v after the write began, %v before the read; it lasts %v past the write's start; Redis restarted in between within the LossHold: %v",
		m.at.Sub(wrote).Round(time.Millisecond), read.Sub(m.at).Round(time.Millisecond), m.until.Sub(wrote).Round(time.Millisecond), r.restartedBefore(wrote, read))
}

// restartedBefore reports whether Redis came back from a stop (losing its
// keys) after wrote and at most chaosLossHold before read: a read then is
// within the Redis store's LossHold. A stop still in progress at read
// says nothing: Redis may not have gone down yet, and a writer whose own
// Store calls were failing or skipped may still owe its mark.
func (r *chaosRun) restartedBefore(wrote, read time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.windows {
		if w.lane == "redis" && !w.to.IsZero() && w.to.After(wrote) && !w.to.After(read) && read.Before(w.to.Add(chaosLossHold)) {
			return true
		}
	}
	return false
}

// countingHandler counts the plugins' log records by level and message.
type countingHandler struct {
	m   *sync.Map
	app string
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, rec slog.Record) error {
	v, _ := h.m.LoadOrStore(rec.Level.String()+" "+rec.Message, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// waitEligible waits until every replica is eligible in both plugins.
func (r *chaosRun) waitEligible(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for _, app := range []*chaosApp{r.a, r.b} {
			for _, s := range app.plugin.Stats().Replicas {
				ok = ok && s.Eligible
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("replicas not eligible within %v: A %+v B %+v", timeout, r.a.plugin.Stats().Replicas, r.b.plugin.Stats().Replicas)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// selfTestServerLogs writes once on each replica directly, and waits until
// the replica's own log shows the refusal: the server-side count of
// invariant 1 can see a write. It returns each log's offset after it.
func (r *chaosRun) selfTestServerLogs() []int64 {
	t := r.t
	offsets := make([]int64, len(r.cc.replicas))
	for i, rep := range r.cc.replicas {
		before := fileSize(rep.refusedLog)
		db := rep.open(nil) // neither the plugins nor the recorder see it
		_, err := db.ExecContext(t.Context(), "INSERT INTO chaos_rows (id, owner, n) VALUES (-1, 'selftest', 0)")
		db.Close()
		if err == nil {
			t.Fatalf("%s accepted a write", rep.name)
		}
		deadline := time.Now().Add(10 * time.Second) // a log line is written before the error is sent
		for countLines(rep.refusedLog, before, rep.refused) != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("%s refused a write (%v), but its log %s does not show it once", rep.name, err, rep.refusedLog)
			}
			time.Sleep(10 * time.Millisecond)
		}
		offsets[i] = fileSize(rep.refusedLog)
	}
	return offsets
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// countLines counts the lines of path after offset that match.
func countLines(path string, offset int64, match func(string) bool) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0
	}
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if match(sc.Text()) {
			n++
		}
	}
	return n
}

// serverRefusals returns, per replica, the writes its own log shows
// refused during the run; each must be 0.
func (r *chaosRun) serverRefusals(offsets []int64) []int {
	out := make([]int, len(r.cc.replicas))
	for i, rep := range r.cc.replicas {
		out[i] = countLines(rep.refusedLog, offsets[i], rep.refused)
		if out[i] > 0 {
			r.fail("1 write on a replica", "%s's own log shows %d refused writes during the run (%s)", rep.name, out[i], rep.refusedLog)
		}
	}
	return out
}

// runCounter updates the counter every 10ms and records when each value
// was superseded.
func (r *chaosRun) runCounter(db *sql.DB, stop <-chan struct{}) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for v := int64(1); ; v++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), chaosWriteTimeout)
		_, err := db.ExecContext(ctx, "UPDATE chaos_counters SET v = "+strconv.FormatInt(v, 10)+" WHERE id = 1")
		cancel()
		if err != nil {
			r.fail("5 no error", "the counter's update on the primary failed: %v", err)
			return
		}
		now := int64(time.Since(r.start))
		r.clockMu.Lock()
		r.superseded = append(r.superseded, now)
		r.clockMu.Unlock()
	}
}

// do runs one operation with its own deadline and records it: counts,
// writes at the driver against expected (invariant 2), and the error's
// class (invariant 5). It returns the error.
func (r *chaosRun) do(ctx context.Context, app *chaosApp, kind opKind, wantWrites int32, fn func(ctx context.Context, db *gorm.DB) error) (*op, error) {
	timeout := chaosReadTimeout
	if wantWrites > 0 {
		timeout = chaosWriteTimeout
	}
	r.gate.RLock()
	defer r.gate.RUnlock()
	o := &op{kind: kind, app: app, start: time.Now()}
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, opKey{}, o), timeout)
	defer cancel()
	err := fn(ctx, app.db.WithContext(ctx))
	r.ops[kind].Add(1)
	if got := o.writes.Load(); got > wantWrites || err == nil && got != wantWrites && kind != opWriteInROTx {
		r.fail("2 no write retried", "%s via %s: the driver ran %d write statements, want %d (error: %v)", kind, app.name, got, wantWrites, err)
	}
	if err == nil {
		return o, nil
	}
	r.opErrs[kind].Add(1)
	r.classify(ctx, o, err)
	return o, err
}

// classify counts err in its class; an error of no documented class fails
// invariant 5.
func (r *chaosRun) classify(ctx context.Context, o *op, err error) {
	end := time.Now()
	node := o.nodeName()
	inTx := o.tx && isReplica(node)
	switch {
	case o.kind == opWriteInROTx && (errors.Is(err, rwsplit.ErrReadOnly) || r.cc.readOnlyErr(err)):
		// Expected: counted apart from the errors (see writer).
		return
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		if r.overlaps(o.start, end, func(w *faultWindow) bool { return w.stalls }) {
			r.countErr("the caller's deadline, while a fault stalled statements (freeze, latency, saturation)", err)
			return
		}
		r.countErr("UNDOCUMENTED: the caller's deadline, with no stalling fault", err)
		r.fail("5 no error", "%s via %s on %q: deadline with no stalling fault: %v", o.kind, o.app.name, node, err)
		return
	case errors.Is(err, rwsplit.ErrNoReplica) && o.app == r.b:
		r.countErr("ErrNoReplica (app B has FallbackFail)", err)
		return
	case inTx && connerr.Is(err) && r.overlaps(o.start, end, func(w *faultWindow) bool { return w.crash && w.target == node }):
		r.countErr("a statement in a transaction on a replica that crashed (transactions are never retried)", err)
		return
	case !o.tx && o.retried.Load() && connerr.Is(err) && r.overlaps(o.start, end, func(w *faultWindow) bool { return w.crash && w.target == node }):
		r.countErr("a read served again after a connection error, on a replica that crashed too (never twice: docs/routing.md)", err)
		return
	case !o.tx && connerr.Is(err) && isReplica(node) && o.answeredBy() == node && r.overlaps(o.start, end, func(w *faultWindow) bool { return w.crash && w.target == node }):
		// The driver's query returned without error on that replica, so
		// the error came from reading the rows the caller already had
		// (GORM's Scan reads them after Rows returns), as the replica
		// crashed. A read is served again only before any row reached
		// the caller (docs/guide.md, "Health and lag").
		r.countErr("a replica that crashed after it answered, while the caller read the rows (never retried: the rows were the caller's)", err)
		return
	}
	r.countErr(fmt.Sprintf("UNDOCUMENTED: %s", o.kind), err)
	r.fail("5 no error", "%s via %s on %q after %v: %v", o.kind, o.app.name, node, end.Sub(o.start).Round(time.Millisecond), err)
}

// readKinds are the counter reads, by how often they are picked.
var readKinds = []opKind{opRead, opRead, opRead, opRawRead, opRawRead, opStaleRead, opStaleRead2s, opReplicaTx, opReadOnlyTx}

// reader reads the counter until stop; each read's staleness is checked
// against its bound (invariant 4).
func (r *chaosRun) reader(i int, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(r.seed, 1000+uint64(i)))
	for !stopped(stop) {
		kind := readKinds[rng.IntN(len(readKinds))]
		app := r.a
		if rng.IntN(10) < 3 {
			app = r.b
		}
		bound := chaosLag.MaxLag
		var v int64
		o, err := r.do(context.Background(), app, kind, 0, func(ctx context.Context, db *gorm.DB) error {
			var c chaosCounter
			var err error
			switch kind {
			case opRead:
				err = db.First(&c, 1).Error
			case opRawRead:
				err = db.Raw("SELECT v FROM chaos_counters WHERE id = ?", 1).Scan(&c.V).Error
			case opStaleRead:
				bound = 300 * time.Millisecond
				err = db.Clauses(rwsplit.MaxStaleness(bound)).First(&c, 1).Error
			case opStaleRead2s:
				bound = 2 * time.Second
				err = db.Clauses(rwsplit.MaxStaleness(bound)).First(&c, 1).Error
			case opReplicaTx:
				opOf(ctx).tx = true
				err = db.Clauses(rwsplit.Replica{}).Transaction(func(tx *gorm.DB) error { return tx.First(&c, 1).Error })
			case opReadOnlyTx:
				opOf(ctx).tx = true
				err = db.Transaction(func(tx *gorm.DB) error { return tx.First(&c, 1).Error }, &sql.TxOptions{ReadOnly: true})
			}
			v = c.V
			return err
		})
		if err == nil {
			stale := r.staleness(v, o.start)
			if stale > time.Duration(r.worst[kind].Load()) {
				r.worst[kind].Store(int64(stale))
			}
			if stale > bound {
				r.staleReads.Add(1)
				r.fail("4 staleness", "%s via %s on %s returned a value superseded %v before the read began (bound %v)", kind, app.name, o.nodeName(), stale, bound)
			}
		}
		pause(rng, 2*time.Millisecond, 4*time.Millisecond, stop)
	}
}

// writerTally is what a writer was told: rows created and increments
// made, each succeeded or failed (a failed one may have committed).
type writerTally struct {
	owner                  string
	created, createFailed  int64
	incremented, incFailed int64
}

// writer writes without a user until stop: Create, Update, Exec, and
// transactions of both, on rows it owns; now and then a write inside a
// replica transaction, which must be refused.
func (r *chaosRun) writer(i int, w *writerTally, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(r.seed, 2000+uint64(i)))
	nextID := int64(i+1) * 1_000_000_000
	var mine []int64 // the latest rows created, to increment
	for !stopped(stop) {
		app := r.a
		if rng.IntN(10) < 3 {
			app = r.b
		}
		kind := opCreate
		if len(mine) > 0 {
			kind = []opKind{opCreate, opUpdate, opUpdate, opExec, opExec, opTx, opTx, opWriteInROTx}[rng.IntN(8)]
		}
		switch kind {
		case opCreate:
			nextID++
			id := nextID
			if _, err := r.do(context.Background(), app, kind, 1, func(ctx context.Context, db *gorm.DB) error {
				return db.Create(&chaosRow{ID: id, Owner: w.owner}).Error
			}); err != nil {
				w.createFailed++
			} else {
				w.created++
				mine = append(mine, id)
			}
		case opUpdate, opExec:
			id := mine[rng.IntN(len(mine))]
			if _, err := r.do(context.Background(), app, kind, 1, func(ctx context.Context, db *gorm.DB) error {
				if kind == opUpdate {
					return db.Model(&chaosRow{ID: id}).Update("n", gorm.Expr("n + 1")).Error
				}
				return db.Exec("UPDATE chaos_rows SET n = n + 1 WHERE id = ?", id).Error
			}); err != nil {
				w.incFailed++
			} else {
				w.incremented++
			}
		case opTx:
			nextID++
			id, old := nextID, mine[rng.IntN(len(mine))]
			if _, err := r.do(context.Background(), app, kind, 2, func(ctx context.Context, db *gorm.DB) error {
				return db.Transaction(func(tx *gorm.DB) error {
					if err := tx.Create(&chaosRow{ID: id, Owner: w.owner}).Error; err != nil {
						return err
					}
					return tx.Model(&chaosRow{ID: old}).Update("n", gorm.Expr("n + 1")).Error
				})
			}); err != nil {
				w.createFailed++
				w.incFailed++
			} else {
				w.created++
				w.incremented++
				mine = append(mine, id)
			}
		case opWriteInROTx:
			// Refused by rwsplit before any server (ErrReadOnly), or, in a
			// read-only transaction that fell back to the primary, by the
			// primary: at most one write statement, never on a replica.
			nextID++
			id := nextID
			_, err := r.do(context.Background(), app, kind, 1, func(ctx context.Context, db *gorm.DB) error {
				return db.Clauses(rwsplit.Replica{}).Transaction(func(tx *gorm.DB) error {
					return tx.Create(&chaosRow{ID: id, Owner: w.owner}).Error
				})
			})
			switch {
			case errors.Is(err, rwsplit.ErrReadOnly):
				r.roRefused[0].Add(1)
			case err != nil && r.cc.readOnlyErr(err):
				r.roRefused[1].Add(1)
			case err == nil:
				r.fail("1 write on a replica", "a write in a replica transaction via %s succeeded", app.name)
				w.created++ // it is on the primary's rows now
			}
		}
		if len(mine) > 16 {
			mine = mine[1:]
		}
		pause(rng, 3*time.Millisecond, 8*time.Millisecond, stop)
	}
}

// stickyUser is a user who writes and reads its own rows back. Shared
// users write through one app server and read through the other, so
// their stickiness goes through Redis.
type stickyUser struct {
	key             string
	shared          bool
	created, failed int64 // rows created, creations failed
	lastID, lastN   int64 // the row last written and its n
	lastOK          bool  // the last write to lastID succeeded
}

// stickyUser writes and reads back its own rows until stop (invariant
// 3): every read after a write must see it.
func (r *chaosRun) stickyUser(i int, u *stickyUser, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(r.seed, 3000+uint64(i)))
	nextID := int64(100+i) * 1_000_000_000
	ctx := rwsplit.WithUser(context.Background(), u.key)
	var n int64
	for !stopped(stop) {
		writeApp, readApp := r.a, r.a
		if u.shared {
			if rng.IntN(2) == 0 {
				writeApp, readApp = r.a, r.b
			} else {
				writeApp, readApp = r.b, r.a
			}
		}
		// Write: a new row, or a new n on the last one.
		n++
		create := u.lastID == 0 || rng.IntN(3) == 0
		id := u.lastID
		if create {
			nextID++
			id = nextID
		}
		wn := n
		wo, err := r.do(ctx, writeApp, opStickyWrite, 1, func(ctx context.Context, db *gorm.DB) error {
			if create {
				return db.Create(&chaosRow{ID: id, Owner: u.key, N: wn}).Error
			}
			return db.Model(&chaosRow{ID: id}).Update("n", wn).Error
		})
		if create {
			if err != nil {
				u.failed++
			} else {
				u.created++
			}
		}
		u.lastID, u.lastN, u.lastOK = id, wn, err == nil
		written := time.Now()
		if err != nil {
			pause(rng, 10*time.Millisecond, 30*time.Millisecond, stop)
			continue
		}
		// Read it back, 1 to 3 times, within about 300ms.
		for range 1 + rng.IntN(3) {
			var got chaosRow
			// Not Clauses(rwsplit.Replica{}): it overrides stickiness
			// (README, "Read your own writes").
			how := rng.IntN(3)
			o, err := r.do(ctx, readApp, opStickyRead, 0, func(ctx context.Context, db *gorm.DB) error {
				switch how {
				case 0:
					return db.Where("id = ?", id).Limit(1).Find(&got).Error
				case 1:
					return db.Raw("SELECT id, owner, n FROM chaos_rows WHERE id = ?", id).Scan(&got).Error
				default:
					opOf(ctx).tx = true
					return db.Transaction(func(tx *gorm.DB) error {
						return tx.Where("id = ?", id).Limit(1).Find(&got).Error
					}, &sql.TxOptions{ReadOnly: true})
				}
			})
			if err != nil {
				continue
			}
			r.stickyReads.Add(1)
			if got.ID != id || got.N < wn {
				r.stickyMisses.Add(1)
				miss := fmt.Sprintf("%s wrote row %d n=%d via %s, read it via %s on %s %v later and saw id=%d n=%d (read %d)",
					u.key, id, wn, writeApp.name, readApp.name, o.nodeName(), o.start.Sub(written).Round(time.Millisecond), got.ID, got.N, how)
				// Between app servers the mark travels through Redis:
				// did it get there before the read?
				if why := r.markMissing(u.key, wo.start, o.start); u.shared && writeApp != readApp && why != "" {
					r.storeMisses.Add(1)
					r.mu.Lock()
					if len(r.storeMissed) < 3 {
						r.storeMissed = append(r.storeMissed, fmt.Sprintf("%v: %s: %s", r.since(), miss, why))
					}
					r.mu.Unlock()
				} else {
					r.fail("3 read your writes", "%s (%s)", miss, r.markState(u.key, wo.start, o.start))
				}
			}
			pause(rng, 0, 150*time.Millisecond, stop)
		}
		pause(rng, 10*time.Millisecond, 30*time.Millisecond, stop)
	}
}

func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// pause waits a random time in [lo, hi), or until stop: the pace of an
// application, and room for the checker on 2 cores.
func pause(rng *rand.Rand, lo, hi time.Duration, stop <-chan struct{}) {
	d := lo
	if hi > lo {
		d += time.Duration(rng.Int64N(int64(hi - lo)))
	}
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-stop:
	case <-tm.C:
	}
}

// checkPrimaryRows checks invariant 2 on the primary's rows.
func (r *chaosRun) checkPrimaryRows(tallies []*writerTally, users []*stickyUser) {
	t := r.t
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := r.a.db.WithContext(ctx).Clauses(rwsplit.Primary)
	for _, w := range tallies {
		var rows, sum int64
		noErr(t, db.Raw("SELECT COUNT(*), COALESCE(SUM(n), 0) FROM chaos_rows WHERE owner = ?", w.owner).Row().Scan(&rows, &sum))
		if rows < w.created || rows > w.created+w.createFailed || sum < w.incremented || sum > w.incremented+w.incFailed {
			r.fail("2 no write retried", "%s on the primary: %d rows and %d increments; callers were told %d created (+%d failed), %d increments (+%d failed)",
				w.owner, rows, sum, w.created, w.createFailed, w.incremented, w.incFailed)
		}
	}
	for _, u := range users {
		var rows int64
		noErr(t, db.Raw("SELECT COUNT(*) FROM chaos_rows WHERE owner = ?", u.key).Row().Scan(&rows))
		if rows < u.created || rows > u.created+u.failed {
			r.fail("2 no write retried", "%s on the primary: %d rows; callers were told %d created (+%d failed)", u.key, rows, u.created, u.failed)
		}
		if u.lastOK {
			var n int64
			noErr(t, db.Raw("SELECT n FROM chaos_rows WHERE id = ?", u.lastID).Row().Scan(&n))
			if n != u.lastN {
				r.fail("2 no write retried", "%s's last row %d has n=%d on the primary, want %d", u.key, u.lastID, n, u.lastN)
			}
		}
	}
}

// A lane is a sequence of faults on one target, one at a time.
type lane struct {
	name   string
	faults []laneFault
}

// laneFault is one sort of fault a lane injects.
type laneFault struct {
	kind      string
	weight    int
	hold      [2]time.Duration
	param     int // inject gets a value in [0, param) drawn by the plan
	stalls    bool
	crash     bool
	target    func(param int) string
	inject    func(ctx context.Context, param int) error
	heal      func(ctx context.Context) error
	paramName func(param int) string
}

// plannedFault is one step of a lane's schedule, drawn from the seed.
type plannedFault struct {
	gap, hold time.Duration
	fault     int
	param     int
}

// plan draws the lane's schedule for a run of the given length: a pure
// function of (seed, lane index), so a seed replays it.
func (l *lane) plan(seed, idx uint64, length time.Duration) []plannedFault {
	rng := rand.New(rand.NewPCG(seed, idx))
	uniform := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo)+1)) }
	total := 0
	for _, f := range l.faults {
		total += f.weight
	}
	var out []plannedFault
	for at := time.Duration(0); at < length; {
		p := plannedFault{gap: uniform(300*time.Millisecond, 2500*time.Millisecond)}
		pick := rng.IntN(total)
		for i, f := range l.faults {
			if pick < f.weight {
				p.fault = i
				break
			}
			pick -= f.weight
		}
		f := l.faults[p.fault]
		p.hold = uniform(f.hold[0], f.hold[1])
		if f.param > 0 {
			p.param = rng.IntN(f.param)
		}
		out = append(out, p)
		at += p.gap + p.hold
	}
	return out
}

// runLane injects the lane's faults on schedule until stop, healing each
// before the next; the last one is healed when stop comes.
func (r *chaosRun) runLane(l *lane, plan []plannedFault, stop <-chan struct{}) {
	sleep := func(d time.Duration) bool {
		tm := time.NewTimer(d)
		defer tm.Stop()
		select {
		case <-stop:
			return false
		case <-tm.C:
			return true
		}
	}
	for _, p := range plan {
		if !sleep(p.gap) || stopped(stop) {
			return
		}
		f := l.faults[p.fault]
		target := f.target(p.param)
		label := f.kind
		if f.paramName != nil {
			label += " " + f.paramName(p.param)
		}
		w := &faultWindow{lane: l.name, kind: f.kind, target: target, from: time.Now(), stalls: f.stalls, crash: f.crash}
		r.mu.Lock()
		r.windows = append(r.windows, w)
		r.faults[l.name+": "+f.kind]++
		r.mu.Unlock()
		r.note("%-9s %s %s (hold %v)", l.name, label, target, p.hold.Round(time.Millisecond))
		r.gate.RLock() // until healed
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := f.inject(ctx, p.param)
		cancel()
		if took := time.Since(w.from); took > 100*time.Millisecond {
			r.note("%-9s %s %s: in force after %v", l.name, f.kind, target, took.Round(time.Millisecond))
		}
		if err != nil {
			r.fail("fault injection", "%s %s: %v", l.name, f.kind, err)
		}
		sleep(p.hold) // the fault's planned length; stop cuts it short
		ctx, cancel = context.WithTimeout(context.Background(), 2*time.Minute)
		err = f.heal(ctx)
		cancel()
		r.gate.RUnlock()
		r.mu.Lock()
		w.to = time.Now()
		r.mu.Unlock()
		r.note("%-9s healed %s %s", l.name, f.kind, target)
		if err != nil {
			r.fail("fault injection", "%s heal %s: %v", l.name, f.kind, err)
			return
		}
	}
}

// lanes are the fault lanes: each replica, Redis, app server A's primary
// pool, and the operator's switches.
func (r *chaosRun) lanes() []*lane {
	var out []*lane
	for i, rep := range r.cc.replicas {
		name := func(int) string { return rep.name }
		l := &lane{name: rep.name, faults: []laneFault{
			{kind: rep.pauseName, weight: 3, hold: [2]time.Duration{300 * time.Millisecond, 2500 * time.Millisecond}, target: name,
				inject: func(ctx context.Context, _ int) error { return rep.pause(ctx) }, heal: rep.resume},
			{kind: "crash", weight: 2, hold: [2]time.Duration{200 * time.Millisecond, 1500 * time.Millisecond}, crash: true, target: name,
				inject: func(ctx context.Context, _ int) error { return rep.crash(ctx) }, heal: rep.start},
			{kind: "freeze", weight: 2, hold: [2]time.Duration{300 * time.Millisecond, 3 * time.Second}, stalls: true, target: name,
				inject: func(ctx context.Context, _ int) error { return rep.freeze(ctx) }, heal: rep.thaw},
		}}
		if i == len(r.cc.replicas)-1 {
			proxy := r.cc.proxy
			l.faults = append(l.faults, laneFault{kind: "latency", weight: 3, hold: [2]time.Duration{300 * time.Millisecond, 2500 * time.Millisecond},
				stalls: true, param: 12, paramName: func(p int) string { return fmt.Sprintf("%dms", 50*(p+1)) }, target: name,
				inject: func(ctx context.Context, p int) error {
					proxy.SetLatency(time.Duration(50*(p+1)) * time.Millisecond)
					return nil
				},
				heal: func(context.Context) error { proxy.SetLatency(0); return nil }})
		}
		out = append(out, l)
	}
	out = append(out, &lane{name: "redis", faults: []laneFault{{kind: "stop", weight: 1, hold: [2]time.Duration{300 * time.Millisecond, 2 * time.Second},
		target: func(int) string { return "redis" },
		inject: func(ctx context.Context, _ int) error { return r.redis.Stop(ctx) },
		heal:   r.redis.Start,
	}}})

	// Saturation: take every connection of A's capped primary pool that
	// the checker does not hold (it holds one of a pool of 4 or more).
	var held []*sql.Conn
	out = append(out, &lane{name: "pool", faults: []laneFault{{kind: "saturate", weight: 1, hold: [2]time.Duration{200 * time.Millisecond, 1500 * time.Millisecond}, stalls: true,
		target: func(int) string {
			return fmt.Sprintf("A's primary pool (%d of %d connections)", chaosPrimaryConns-1, chaosPrimaryConns)
		},
		inject: func(ctx context.Context, _ int) error {
			for range chaosPrimaryConns - 1 {
				c, err := r.a.primary.Conn(ctx)
				if err != nil {
					return err
				}
				held = append(held, c)
			}
			return nil
		},
		heal: func(context.Context) error {
			for _, c := range held {
				c.Close()
			}
			held = nil
			return nil
		},
	}}})

	// The operator: drain a replica, or send reads to the primary, on one
	// app server.
	apps := []*chaosApp{r.a, r.b}
	var undo func() error
	out = append(out, &lane{name: "operator", faults: []laneFault{
		{kind: "drain", weight: 2, hold: [2]time.Duration{300 * time.Millisecond, 2 * time.Second}, param: 2 * len(r.cc.replicas),
			target: func(p int) string { return apps[p%2].name + "/" + r.cc.replicas[p/2].name },
			inject: func(ctx context.Context, p int) error {
				app, name := apps[p%2], r.cc.replicas[p/2].name
				undo = func() error { return app.plugin.Undrain(name) }
				return app.plugin.Drain(name)
			},
			heal: func(context.Context) error { return undo() }},
		{kind: "reads-to-primary", weight: 1, hold: [2]time.Duration{300 * time.Millisecond, 2 * time.Second}, param: 2,
			target: func(p int) string { return apps[p].name },
			inject: func(ctx context.Context, p int) error {
				app := apps[p]
				app.plugin.SetReadsToPrimary(true)
				undo = func() error { app.plugin.SetReadsToPrimary(false); return nil }
				return nil
			},
			heal: func(context.Context) error { return undo() }},
	}})
	return out
}

func (r *chaosRun) timelineText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, e := range r.timeline {
		fmt.Fprintf(&b, "\t%8v  %s\n", e.at, e.what)
	}
	return b.String()
}

// report logs the timeline and the counts.
func (r *chaosRun) report(elapsed time.Duration, statsA, statsB rwsplit.Stats, refused []int, heapStart, heapThird, heapEnd uint64) {
	t := r.t
	var b strings.Builder
	fmt.Fprintf(&b, "%s chaos run: %v, seed %d\n", r.cc.kind, elapsed.Round(time.Millisecond), r.seed)
	b.WriteString("statements at the driver:")
	for ni, name := range chaosNodes {
		var parts []string
		for k := range numKinds {
			if n := r.stmts[ni][k].Load(); n > 0 {
				parts = append(parts, fmt.Sprintf("%v %d", k, n))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(&b, " %s [%s]", name, strings.Join(parts, ", "))
		}
	}
	b.WriteString("\noperations (errors):")
	for k := range numOps {
		fmt.Fprintf(&b, " %v %d (%d);", opKind(k), r.ops[k].Load(), r.opErrs[k].Load())
	}
	fmt.Fprintf(&b, "\nworst staleness: read %v, raw-read %v, replica-tx %v, readonly-tx %v (bound %v); maxstale-300ms %v; maxstale-2s %v; stale reads %d",
		dur(&r.worst[opRead]), dur(&r.worst[opRawRead]), dur(&r.worst[opReplicaTx]), dur(&r.worst[opReadOnlyTx]), chaosLag.MaxLag,
		dur(&r.worst[opStaleRead]), dur(&r.worst[opStaleRead2s]), r.staleReads.Load())
	fmt.Fprintf(&b, "\nsticky reads %d, misses %d (%d between app servers with the mark not in Redis); writes in a replica transaction refused: by rwsplit (ErrReadOnly) %d, by the primary's read-only transaction %d",
		r.stickyReads.Load(), r.stickyMisses.Load(), r.storeMisses.Load(), r.roRefused[0].Load(), r.roRefused[1].Load())
	r.mu.Lock()
	for _, m := range r.storeMissed {
		fmt.Fprintf(&b, "\n\t%s", m)
	}
	r.mu.Unlock()
	fmt.Fprintf(&b, "\nwrites on replicas: at the driver %d; in the replicas' own logs %v (self-test: 1 direct write each seen)", r.replicaWrites.Load(), refused)
	r.mu.Lock()
	fmt.Fprintf(&b, "\nfaults: %v", r.faults)
	b.WriteString("\nerrors by class:")
	if len(r.errs) == 0 {
		b.WriteString(" none")
	}
	for _, class := range sortedKeys(r.errs) {
		fmt.Fprintf(&b, "\n\t%d  %s; e.g. %s", r.errs[class], class, strings.Join(r.examples[class], " | "))
	}
	r.mu.Unlock()
	for _, s := range []struct {
		name string
		st   rwsplit.Stats
	}{{"A", statsA}, {"B", statsB}} {
		fmt.Fprintf(&b, "\n%s routes %v; sticky %+v", s.name, s.st.Routes, s.st.Sticky)
		for _, rs := range s.st.Replicas {
			fmt.Fprintf(&b, "\n\t%s: evictions %d, readmissions %d", rs.Name, rs.Health.Evictions, rs.Health.Readmissions)
		}
	}
	b.WriteString("\nplugin log records:")
	r.logs.Range(func(k, v any) bool {
		fmt.Fprintf(&b, " %q %d;", k, v.(*atomic.Int64).Load())
		return true
	})
	fmt.Fprintf(&b, "\nlive heap (nothing in flight, idle connections closed): %.1f MiB at the start, %.1f MiB at a third, %.1f MiB at the end",
		mib(heapStart), mib(heapThird), mib(heapEnd))
	t.Logf("%s\ntimeline:\n%s", b.String(), r.timelineText())
}

func sortedKeys(m map[string]int) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func dur(v *atomic.Int64) time.Duration { return time.Duration(v.Load()).Round(time.Millisecond) }
