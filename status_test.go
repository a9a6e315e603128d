package rwsplit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/rwsplit/rwsplit"
	"github.com/rwsplit/rwsplit/internal/testdb/dbtest"
	"github.com/rwsplit/rwsplit/lagcheck"
)

// ExampleStatusHandler serves the status page: HTML for a browser, and
// the same rwsplit.StatusReport as JSON for Accept: application/json.
func ExampleStatusHandler() {
	primaryDSN, replicaDSN := exampleDSNs()
	waitReplicas()

	db, err := gorm.Open(postgres.Open(primaryDSN), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		log.Fatal(err)
	}
	sqlDB, _ := db.DB()
	defer sqlDB.Close()
	p := rwsplit.New(rwsplit.Config{Replicas: []rwsplit.Replica{
		{Name: "replica-a", Dialector: postgres.Open(replicaDSN[0])},
		{Name: "replica-b", Dialector: postgres.Open(replicaDSN[1])},
	}})
	if err := db.Use(p); err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	mux := http.NewServeMux()
	mux.Handle("/debug/rwsplit", rwsplit.StatusHandler(p))
	// In a service: go http.ListenAndServe("127.0.0.1:6060", mux), on an
	// address only operators reach.
	srv := httptest.NewServer(mux)
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/debug/rwsplit", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var status rwsplit.StatusReport
	if err := json.NewDecoder(resp.Body).Decode(&status); err != nil {
		log.Fatal(err)
	}
	for _, r := range status.Replicas {
		fmt.Println(r.Name, r.State, "eligible:", r.Eligible)
	}
	fmt.Println("reads to primary:", status.ReadsToPrimary)
	// Output:
	// replica-a healthy eligible: true
	// replica-b healthy eligible: true
	// reads to primary: false
}

// statusItem is the table the status tests read and write.
type statusItem struct {
	ID   int64
	Note string
}

// seedStatusItems creates the table with one row, replayed everywhere.
func seedStatusItems(t *testing.T, c *cluster, waitCaughtUp func(context.Context) error) {
	t.Helper()
	noErr(t, c.DB.Migrator().DropTable(&statusItem{}))
	noErr(t, c.DB.AutoMigrate(&statusItem{}))
	noErr(t, c.DB.Create(&statusItem{Note: "seed"}).Error) // id 1
	dbtest.Within(t, 10*time.Second, waitCaughtUp)
}

// getStatus fetches the handler's JSON.
func getStatus(t *testing.T, url string) rwsplit.StatusReport {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	noErr(t, err)
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "application/json" {
		t.Fatalf("GET %s: %s, Content-Type %q", url, resp.Status, ct)
	}
	var rep rwsplit.StatusReport
	noErr(t, json.NewDecoder(resp.Body).Decode(&rep))
	return rep
}

// TestStatusJSON: the JSON's figures are Plugin.Stats', and its window
// figures are what reached each node at the driver since the handler
// started: reads by the policy, sticky reads and reads sent to the primary
// by the operator switch, with a replica drained.
func TestStatusJSON(t *testing.T) {
	c, pg := pgCluster(t, clusterOpts{config: rwsplit.Config{Lag: healthLag}})
	seedStatusItems(t, c, pg.WaitCaughtUp)
	waitEligible(t, c.Plugin, "replica1", "replica2")

	before := c.Plugin.Stats()
	mark := c.rec.Mark()
	srv := httptest.NewServer(rwsplit.StatusHandler(c.Plugin))
	defer srv.Close()

	var slowest time.Duration // of the reads, seen by the caller
	read := func(ctx context.Context) {
		start := time.Now()
		var it statusItem
		noErr(t, c.DB.WithContext(ctx).First(&it, 1).Error)
		slowest = max(slowest, time.Since(start))
	}
	for range 300 {
		read(t.Context())
	}
	for i := range 20 { // a user writes, then reads at once
		ctx := rwsplit.WithUser(t.Context(), "user-"+strconv.Itoa(i%4))
		noErr(t, c.DB.WithContext(ctx).Create(&statusItem{Note: "w"}).Error)
		read(ctx)
	}
	c.Plugin.SetReadsToPrimary(true)
	for range 30 {
		read(t.Context())
	}
	c.Plugin.SetReadsToPrimary(false)
	noErr(t, c.Plugin.Drain("replica2"))
	defer c.Plugin.Undrain("replica2")
	for range 50 {
		read(t.Context())
	}

	s := c.Plugin.Stats()
	rep := getStatus(t, srv.URL)

	// What reached each node at the driver: SELECTs on statusItem's
	// table (the checker's probes and the writes are not reads).
	atDriver := map[string]uint64{}
	for _, e := range c.rec.Since(mark) {
		if strings.Contains(e.SQL, "status_items") && strings.HasPrefix(e.SQL, "SELECT") {
			atDriver[e.Node]++
		}
	}
	var total uint64
	for _, n := range atDriver {
		total += n
	}
	t.Logf("reads at the driver %v; window %.2fs; primary %+v", atDriver, rep.WindowSeconds, rep.Primary)
	for _, r := range rep.Replicas {
		t.Logf("%s: %s lag %.4fs, %d reads (%.1f%%), p99 %.3fms (slowest read seen by the caller %v), served %d",
			r.Name, r.State, r.LagSeconds, r.WindowReads, 100*r.ReadShare, 1000*r.P99Seconds, slowest, r.Served)
	}

	if total != 400 {
		t.Fatalf("%d reads at the driver, want 400", total)
	}
	if rep.Policy != s.Policy || rep.ReadsToPrimary || !slices.Equal(rep.Drained, []string{"replica2"}) {
		t.Errorf("policy %q, reads_to_primary %v, drained %v; want %q, false, [replica2]", rep.Policy, rep.ReadsToPrimary, rep.Drained, s.Policy)
	}
	if rep.MaxLagSeconds != s.MaxLag.Seconds() || rep.ReadmitLagSeconds != s.ReadmitLag.Seconds() || rep.MaxLagSeconds <= 0 {
		t.Errorf("max_lag_seconds %v, readmit_lag_seconds %v; want Stats' %v, %v", rep.MaxLagSeconds, rep.ReadmitLagSeconds, s.MaxLag, s.ReadmitLag)
	}
	if rep.WindowSeconds <= 0 || rep.WindowSeconds > 60 {
		t.Errorf("window %vs, want the time since the handler started", rep.WindowSeconds)
	}
	if rep.Primary.Name != "primary" || rep.Primary.Reads != s.PrimaryReads ||
		rep.Primary.WindowReads != atDriver["primary"] || rep.Primary.WindowReads != s.PrimaryReads-before.PrimaryReads {
		t.Errorf("primary %+v, want %d reads in the window (%d at the driver), %d in all", rep.Primary,
			s.PrimaryReads-before.PrimaryReads, atDriver["primary"], s.PrimaryReads)
	}
	if atDriver["primary"] < 30 {
		t.Errorf("%d reads on the primary, want at least the 30 sent by the switch", atDriver["primary"])
	}
	if got, want := rep.Primary.ReadShare, float64(atDriver["primary"])/float64(total); math.Abs(got-want) > 1e-9 {
		t.Errorf("primary read share %v, want %v", got, want)
	}
	if len(rep.Replicas) != len(s.Replicas) {
		t.Fatalf("%d replicas, want %d", len(rep.Replicas), len(s.Replicas))
	}
	for i, r := range rep.Replicas {
		want := s.Replicas[i]
		h := want.Health
		if r.Name != want.Name || r.State != h.State.String() || r.Eligible != want.Eligible || r.Drained != want.Drained ||
			r.Served != want.Served || r.Failed != want.Failed || r.InFlight != want.InFlight ||
			r.Evictions != h.Evictions || r.Readmissions != h.Readmissions || !r.LagKnown {
			t.Errorf("replica %d = %+v, want Stats' %+v", i, r, want)
		}
		// The checker keeps probing: the lag moves, within MaxLag for a
		// healthy replica.
		if r.LagSeconds < 0 || r.LagSeconds > healthLag.MaxLag.Seconds() {
			t.Errorf("%s: lag %vs, want within MaxLag %v", r.Name, r.LagSeconds, healthLag.MaxLag)
		}
		if r.WindowReads != atDriver[r.Name] || r.WindowReads != want.Served-before.Replicas[i].Served {
			t.Errorf("%s: %d reads in the window, want %d at the driver and %d by Stats", r.Name, r.WindowReads,
				atDriver[r.Name], want.Served-before.Replicas[i].Served)
		}
		if got, want := r.ReadShare, float64(atDriver[r.Name])/float64(total); math.Abs(got-want) > 1e-9 {
			t.Errorf("%s: read share %v, want %v", r.Name, got, want)
		}
		win := want.Latencies.Sub(&before.Replicas[i].Latencies)
		p99 := win.Quantile(0.99)
		if r.P99Seconds != p99.Seconds() || p99 <= 0 || p99 > slowest*9/8 {
			t.Errorf("%s: p99 %vs; want Stats' %v, above 0 and at most 1/8 above the slowest read, %v", r.Name, r.P99Seconds, p99, slowest)
		}
	}
	// Every read outside the switch went to a replica, but the sticky
	// ones that no replica had caught up for.
	if got, want := rep.Replicas[0].WindowReads+rep.Replicas[1].WindowReads, 350+rep.Sticky.CausalReads; got != want {
		t.Errorf("replicas served %d reads, want 350 + %d causal", got, rep.Sticky.CausalReads)
	}
	if got, want := rep.Primary.WindowReads, 30+rep.Sticky.StickyReads; got != want {
		t.Errorf("the primary served %d reads, want 30 by the switch + %d sticky", got, rep.Sticky.StickyReads)
	}
	routes := map[string]rwsplit.StatusRoute{}
	for _, r := range rep.Routes {
		routes[r.Reason] = r
	}
	for reason, n := range s.Routes {
		got := routes[reason.String()]
		if got.Total != n || got.Window != n-before.Routes[reason] {
			t.Errorf("route %v: %+v, want total %d, window %d", reason, got, n, n-before.Routes[reason])
		}
	}
	if len(routes) != len(s.Routes) {
		t.Errorf("routes %v, want Stats' %v", rep.Routes, s.Routes)
	}
	if routes["reads-to-primary"].Window != 30 {
		t.Errorf("reads-to-primary %+v, want 30 in the window", routes["reads-to-primary"])
	}
	st := rep.Sticky
	if st.Marks != s.Sticky.Marks || st.Marks < 20 || st.StickyReads != s.Routes[rwsplit.ReasonSticky] ||
		st.CausalReads != s.Routes[rwsplit.ReasonCausal] || st.StickyReads+st.CausalReads != 20 || st.Mode != s.Sticky.Mode.String() {
		t.Errorf("sticky %+v, want Stats' %+v with 20 sticky or causal reads", st, s.Sticky)
	}
}

// TestStatusHTTP: content negotiation, methods, the refresh parameter, and
// that everything shown is escaped: a replica named like markup, whose
// probe fails with markup in its error.
func TestStatusHTTP(t *testing.T) {
	const evil = `<img src=x onerror="alert(1)">`
	db, _ := openFake(t)
	r1, _ := fakeDialector(t)
	r2, _ := fakeDialector(t)
	p := rwsplit.New(rwsplit.Config{
		Replicas: []rwsplit.Replica{{Name: evil, Dialector: r1}, {Name: "r2", Dialector: r2}},
		Lag:      lagcheck.Config{Probe: failingProbe{}, Interval: 10 * time.Millisecond},
	})
	noErr(t, db.Use(p))
	defer p.Close()
	noErr(t, p.Drain(evil))
	srv := httptest.NewServer(rwsplit.StatusHandler(p))
	defer srv.Close()

	get := func(path, accept string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		noErr(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		noErr(t, err)
		return resp, string(b)
	}
	tests := []struct {
		name, path, accept string
		wantStatus         int
		wantType           string
	}{
		{name: "browser", path: "/", accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", wantStatus: 200, wantType: "text/html; charset=utf-8"},
		{name: "no accept", path: "/", wantStatus: 200, wantType: "text/html; charset=utf-8"},
		{name: "json", path: "/", accept: "application/json", wantStatus: 200, wantType: "application/json"},
		{name: "json among others", path: "/", accept: "text/plain;q=0.5, application/json;q=0.9", wantStatus: 200, wantType: "application/json"},
		{name: "refresh", path: "/?refresh=5s", wantStatus: 200, wantType: "text/html; charset=utf-8"},
		{name: "bad refresh", path: "/?refresh=soon", wantStatus: 400, wantType: "text/plain; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := get(tt.path, tt.accept)
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("Content-Type") != tt.wantType {
				t.Errorf("%s, %q; want %d, %q", resp.Status, resp.Header.Get("Content-Type"), tt.wantStatus, tt.wantType)
			}
		})
	}
	resp, err := http.Post(srv.URL, "text/plain", nil)
	noErr(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %s, want 405", resp.Status)
	}

	// The probe's error is in: the replica is out of service.
	dbtest.Within(t, 5*time.Second, func(ctx context.Context) error {
		for ctx.Err() == nil {
			if s := p.Stats(); s.Replicas[0].Health.LastErr != nil {
				return nil
			}
			time.Sleep(10 * time.Millisecond)
		}
		return ctx.Err()
	})
	_, page := get("/?refresh=0", "")
	for _, bad := range []string{"<img", "<script>alert", `onerror="alert`} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %q unescaped", bad)
		}
	}
	for _, want := range []string{
		`data-replica="&lt;img src=x onerror=&#34;alert(1)&#34;&gt;"`,
		`&lt;script&gt;alert(2)&lt;/script&gt;`,
		`data-refresh-ms="0"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if t.Failed() {
		t.Log(page)
	}
	_, js := get("/", "application/json")
	var rep rwsplit.StatusReport
	noErr(t, json.Unmarshal([]byte(js), &rep))
	if rep.Replicas[0].Name != evil || !strings.Contains(rep.Replicas[0].LastError, "<script>alert(2)</script>") || !slices.Equal(rep.Drained, []string{evil}) {
		t.Errorf("JSON: %+v", rep.Replicas[0])
	}
}

// failingProbe fails every replica with markup in its error.
type failingProbe struct{}

func (failingProbe) Primary(context.Context, lagcheck.DB) (lagcheck.Position, error) {
	return lagcheck.Position{}, nil
}

func (failingProbe) Replica(context.Context, lagcheck.DB, lagcheck.Position) (lagcheck.Replay, error) {
	return lagcheck.Replay{}, errors.New("probe: <script>alert(2)</script>")
}

// waitEligible waits until the named replicas are all eligible.
func waitEligible(t *testing.T, p *rwsplit.Plugin, names ...string) {
	t.Helper()
	waitStats(t, p, 10*time.Second, fmt.Sprintf("%v eligible", names), func(s rwsplit.Stats) bool {
		n := 0
		for _, r := range s.Replicas {
			if r.Eligible && slices.Contains(names, r.Name) {
				n++
			}
		}
		return n == len(names)
	})
}

// waitStats polls p.Stats until ok holds, failing the test after timeout.
func waitStats(t *testing.T, p *rwsplit.Plugin, timeout time.Duration, what string, ok func(rwsplit.Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok(p.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %v: %+v", what, timeout, p.Stats().Replicas)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// chromium returns Debian's chromium, or skips the test without it (fails
// it under RWSPLIT_REQUIRE_DB=1).
func chromium(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if dbtest.Required() {
			t.Fatalf("chromium: %v (RWSPLIT_REQUIRE_DB=1; bash .ci/install installs it)", err)
		}
		t.Skip("chromium not installed: apt-get install -y chromium (or bash .ci/install)")
	}
	return path
}

// runChromium runs headless chromium with a new profile and args, and
// returns its standard output. Its whole process group is killed if it
// outlives the timeout.
func runChromium(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--hide-scrollbars"}
	cmd := exec.CommandContext(ctx, bin, append(flags, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	t.Logf("chromium %s: %v", args[0], time.Since(start).Round(time.Millisecond))
	return stdout.String()
}

// pageRecorder serves the status handler and keeps the HTML pages it
// sent. A function passed to afterNext runs once the next page is sent.
type pageRecorder struct {
	h     http.Handler
	mu    sync.Mutex
	pages []string
	after func()
}

func (pr *pageRecorder) afterNext(f func()) {
	pr.mu.Lock()
	pr.after = f
	pr.mu.Unlock()
}

func (pr *pageRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	pr.h.ServeHTTP(rec, r)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
	if !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		return
	}
	pr.mu.Lock()
	pr.pages = append(pr.pages, rec.Body.String())
	after := pr.after
	pr.after = nil
	pr.mu.Unlock()
	if after != nil {
		after()
	}
}

func (pr *pageRecorder) served() []string {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return slices.Clone(pr.pages)
}

// rowOf returns the state and drained attributes of a replica's row in a
// page or DOM.
func rowOf(t *testing.T, dom, replica string) (state, drained string) {
	t.Helper()
	m := regexp.MustCompile(`<tr data-replica="` + regexp.QuoteMeta(replica) + `" data-state="([a-z]+)" data-drained="(true|false)"`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no row for %s in:\n%s", replica, dom)
	}
	return m[1], m[2]
}

// routeTotal returns the total the page shows for a route reason (-1: none).
func routeTotal(dom, reason string) int {
	m := regexp.MustCompile(`<tr data-reason="` + regexp.QuoteMeta(reason) + `">.*?data-total="">(\d+)<`).FindStringSubmatch(dom)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestStatusPageBrowser loads the status page in headless Chromium during
// a fault (replica1's replay paused until it is evicted) and checks the
// DOM the browser built: both replica rows with their states, the route
// counts, and, in a second load, that the page refreshes itself (a drain
// and the reads-to-primary switch, made after the page was served, show
// in the DOM). With RWSPLIT_SCREENSHOT=path it also saves a PNG of the
// page during the fault there (docs/status-page.png is made so).
func TestStatusPageBrowser(t *testing.T) {
	bin := chromium(t)
	c, pg := pgCluster(t, clusterOpts{config: rwsplit.Config{Lag: healthLag}})
	seedStatusItems(t, c, pg.WaitCaughtUp)
	waitEligible(t, c.Plugin, "replica1", "replica2")

	// Traffic: reads, and writes by users (sticky), until the test ends.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx := t.Context()
				if w == 0 && i%5 == 0 {
					ctx = rwsplit.WithUser(ctx, "user-"+strconv.Itoa(i%7))
					c.DB.WithContext(ctx).Create(&statusItem{Note: "w"})
				}
				var it statusItem
				c.DB.WithContext(ctx).First(&it, 1)
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()

	pr := &pageRecorder{h: rwsplit.StatusHandler(c.Plugin)}
	mux := http.NewServeMux()
	mux.Handle("/status", pr)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	time.Sleep(time.Second)

	// The fault: replica1 stops replaying and is evicted.
	dbtest.Must(t, pg.Replicas[0].PauseReplay(t.Context()))
	defer func() { dbtest.Must(t, pg.Replicas[0].ResumeReplay(context.Background())) }()
	waitStats(t, c.Plugin, 10*time.Second, "replica1 evicted", func(s rwsplit.Stats) bool {
		return s.Replicas[0].Health.State == lagcheck.Evicted
	})
	time.Sleep(1500 * time.Millisecond) // the lag grows; replica2 takes the reads

	dom := runChromium(t, bin, "--dump-dom", srv.URL+"/status?refresh=0")
	s := c.Plugin.Stats()
	if st, dr := rowOf(t, dom, "replica1"); st != "evicted" || dr != "false" {
		t.Errorf("replica1 shown %s, drained %s; want evicted, not drained", st, dr)
	}
	if st, dr := rowOf(t, dom, "replica2"); st != "healthy" || dr != "false" {
		t.Errorf("replica2 shown %s, drained %s; want healthy, not drained", st, dr)
	}
	if n := routeTotal(dom, "read"); n <= 0 || uint64(n) > s.Routes[rwsplit.ReasonRead] {
		t.Errorf("the page shows %d reads routed by the policy; Stats has %d since", n, s.Routes[rwsplit.ReasonRead])
	}
	if !strings.Contains(dom, `id="reads-to-primary" data-active="false"`) || !strings.Contains(dom, `id="drained" data-drained=""`) {
		t.Errorf("the page shows an operator switch on:\n%s", dom)
	}

	shot := t.TempDir() + "/status.png"
	runChromium(t, bin, "--screenshot="+shot, "--window-size=1280,700", srv.URL+"/status")
	img, err := os.ReadFile(shot)
	noErr(t, err)
	if !bytes.HasPrefix(img, []byte("\x89PNG\r\n\x1a\n")) || len(img) < 10_000 {
		t.Errorf("screenshot: %d bytes, not a PNG of a page", len(img))
	}
	if dst := os.Getenv("RWSPLIT_SCREENSHOT"); dst != "" {
		noErr(t, os.WriteFile(dst, img, 0o644))
		t.Logf("screenshot saved to %s", dst)
	}

	// Refresh: the page is served, then replica2 is drained and reads go
	// to the primary; the browser's DOM a few (virtual) seconds later must
	// show both, though the page it was served did not.
	pr.afterNext(func() {
		if err := c.Plugin.Drain("replica2"); err != nil {
			t.Error(err)
		}
		c.Plugin.SetReadsToPrimary(true)
	})
	defer func() { c.Plugin.SetReadsToPrimary(false); noErr(t, c.Plugin.Undrain("replica2")) }()
	served := len(pr.served())
	dom = runChromium(t, bin, "--dump-dom", "--virtual-time-budget=3000", srv.URL+"/status?refresh=500ms")
	pages := pr.served()[served:]
	t.Logf("%d pages served to the refreshing browser", len(pages))
	if len(pages) < 2 {
		t.Fatalf("the page was served %d times: it did not refresh itself", len(pages))
	}
	if st, dr := rowOf(t, pages[0], "replica2"); st != "healthy" || dr != "false" {
		t.Errorf("first page: replica2 %s, drained %s; want healthy, not drained", st, dr)
	}
	if _, dr := rowOf(t, dom, "replica2"); dr != "true" {
		t.Errorf("refreshed DOM: replica2 drained %s, want true", dr)
	}
	if !strings.Contains(dom, `id="reads-to-primary" data-active="true"`) || !strings.Contains(dom, `id="drained" data-drained="replica2"`) {
		t.Errorf("refreshed DOM does not show the switches on")
	}
	if st, _ := rowOf(t, dom, "replica1"); st != "evicted" {
		t.Errorf("refreshed DOM: replica1 %s, want evicted", st)
	}
}
