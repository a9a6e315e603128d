package rwsplit

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rwsplit/rwsplit/policy"
)

// StatusReport is the snapshot the status page shows, and the JSON that
// StatusHandler serves for Accept: application/json. Its JSON names are
// stable: fields may be added, none renamed or removed. Durations are in
// seconds. "Window" figures cover the last WindowSeconds; the others are
// totals since Initialize.
type StatusReport struct {
	Time time.Time `json:"time"`
	// WindowSeconds is the span of the window figures: a minute once the
	// handler has served for one (see StatusHandler), less before.
	WindowSeconds float64 `json:"window_seconds"`
	// RefreshSeconds is how often the HTML page reloads its figures (0: never).
	RefreshSeconds float64 `json:"refresh_seconds"`
	Policy         string  `json:"policy"`
	// ReadsToPrimary and Drained are the operator switches in force:
	// Plugin.SetReadsToPrimary, and the replicas Plugin.Drain took out.
	ReadsToPrimary bool     `json:"reads_to_primary"`
	Drained        []string `json:"drained"`
	// MaxLagSeconds and ReadmitLagSeconds are Stats.MaxLag and
	// Stats.ReadmitLag: Lag.MaxLag, or what Plugin.SetMaxLag set last.
	MaxLagSeconds     float64         `json:"max_lag_seconds"`
	ReadmitLagSeconds float64         `json:"readmit_lag_seconds"`
	Primary           StatusPrimary   `json:"primary"`
	Replicas          []StatusReplica `json:"replicas"`
	// Routes counts routing decisions by reason, in the order routing
	// checks them (Reason), for the reasons seen at least once.
	Routes []StatusRoute `json:"routes"`
	Sticky StatusSticky  `json:"sticky"`
}

// StatusPrimary is the primary's part of the read load.
type StatusPrimary struct {
	Name string `json:"name"`
	// Reads is Stats.PrimaryReads; WindowReads, those of the window, and
	// ReadShare their share of every read in the window (0 to 1).
	Reads       uint64  `json:"reads"`
	WindowReads uint64  `json:"window_reads"`
	ReadShare   float64 `json:"read_share"`
}

// StatusReplica is one replica's line on the status page.
type StatusReplica struct {
	Name string `json:"name"`
	// State is the lag checker's: healthy, evicted or probation; since
	// StateSince (absent before the first change).
	State      string    `json:"state"`
	StateSince time.Time `json:"state_since,omitzero"`
	// Eligible: reads may go there now (healthy and not drained).
	Eligible bool `json:"eligible"`
	Drained  bool `json:"drained"`
	// LagSeconds is the last measured lag, valid when LagKnown; Behind is
	// in bytes (PostgreSQL) or transactions (GTIDs), -1 when unknown.
	LagKnown   bool    `json:"lag_known"`
	LagSeconds float64 `json:"lag_seconds"`
	Behind     int64   `json:"behind"`
	// WindowReads counts the statements the replica served in the window,
	// ReadShare their share of every read in the window (0 to 1), and
	// P99Seconds the upper bound of the histogram bucket holding their
	// 99th percentile latency (at most 12.5% above it; 0 without any).
	WindowReads uint64  `json:"window_reads"`
	ReadShare   float64 `json:"read_share"`
	P99Seconds  float64 `json:"p99_seconds"`
	// InFlight, LatencySeconds (the policy's EWMA), Served and Failed
	// are the policy statistics (policy.Snapshot).
	InFlight       int64   `json:"in_flight"`
	LatencySeconds float64 `json:"latency_seconds"`
	Served         uint64  `json:"served"`
	Failed         uint64  `json:"failed"`
	Evictions      uint64  `json:"evictions"`
	Readmissions   uint64  `json:"readmissions"`
	// LastError is the last probe's error; PrimaryError, the primary
	// sample's, when it failed for the last reading.
	LastError    string    `json:"last_error,omitempty"`
	PrimaryError string    `json:"primary_error,omitempty"`
	LastProbe    time.Time `json:"last_probe,omitzero"`
}

// StatusRoute counts the routing decisions of one Reason.
type StatusRoute struct {
	Reason string `json:"reason"`
	Total  uint64 `json:"total"`
	Window uint64 `json:"window"`
}

// StatusSticky is read-your-own-writes activity: stickiness.Stats, and
// the reads it routed (ReasonSticky to the primary, ReasonCausal to a
// caught-up replica).
type StatusSticky struct {
	Mode         string `json:"mode"`
	Marks        uint64 `json:"marks"`
	Notes        uint64 `json:"notes"`
	StickyReads  uint64 `json:"sticky_reads"`
	CausalReads  uint64 `json:"causal_reads"`
	StoreErrors  uint64 `json:"store_errors"`
	StoreSkipped uint64 `json:"store_skipped"`
	StoreRetries uint64 `json:"store_retries"`
	// Resolved counts free marks this process resolved in the Store.
	Resolved uint64 `json:"resolved"`
}

// Status page timing: the window of the window figures, how far apart the
// handler keeps its samples, and the page's default refresh interval.
const (
	statusWindow  = time.Minute
	sampleSpacing = 5 * time.Second
	statusRefresh = 2 * time.Second
	minRefresh    = 250 * time.Millisecond
)

// StatusHandler returns an http.Handler that serves p's status page: an
// HTML page that refreshes itself every 2s (?refresh=5s changes it,
// ?refresh=0 stops it), or, for a request with Accept: application/json,
// the same StatusReport as JSON. Mount it where operators can reach it
// and no one else can: it shows replica names and errors.
//
// The window figures (share of reads, p99 latency) come from samples of
// Plugin.Stats the handler keeps, one per 5s at most, taken when it serves
// a request: while the page is open, they cover the last minute; after a
// pause, the span since the last sample (WindowSeconds says which). The
// handler starts no goroutine: its requests pay for it. The p99 comes from
// ReplicaStats.Latencies, which costs a timed statement one atomic add.
func StatusHandler(p *Plugin) http.Handler {
	h := &statusHandler{p: p}
	h.sample(p.Stats(), time.Now())
	return h
}

type statusHandler struct {
	p *Plugin

	mu      sync.Mutex
	samples [int(statusWindow/sampleSpacing) + 2]statusSample // a ring, oldest at next when full
	n, next int
}

// statusSample is one reading of the counters the window figures need.
type statusSample struct {
	at           time.Time
	primaryReads uint64
	routes       [numReasons]uint64
	replicas     []replicaSample
}

type replicaSample struct {
	name      string
	served    uint64
	latencies policy.Histogram
}

// sample records s, read at now, unless the newest sample is recent.
func (h *statusHandler) sample(s Stats, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n > 0 && now.Sub(h.newest().at) < sampleSpacing {
		return
	}
	sm := statusSample{at: now, primaryReads: s.PrimaryReads}
	for r, v := range s.Routes {
		sm.routes[r] = v
	}
	for _, r := range s.Replicas {
		sm.replicas = append(sm.replicas, replicaSample{name: r.Name, served: r.Served, latencies: r.Latencies})
	}
	h.samples[h.next] = sm
	h.next = (h.next + 1) % len(h.samples)
	h.n = min(h.n+1, len(h.samples))
}

func (h *statusHandler) newest() *statusSample {
	return &h.samples[(h.next-1+len(h.samples))%len(h.samples)]
}

// base returns the sample the window starts at for now: the newest one at
// least statusWindow old, or else the oldest. Call with mu held.
func (h *statusHandler) base(now time.Time) statusSample {
	oldest := (h.next - h.n + len(h.samples)) % len(h.samples)
	b := h.samples[oldest]
	for i := 1; i < h.n; i++ {
		sm := h.samples[(oldest+i)%len(h.samples)]
		if now.Sub(sm.at) < statusWindow {
			break
		}
		b = sm
	}
	return b
}

// report builds the StatusReport of s, read at now.
func (h *statusHandler) report(s Stats, now time.Time) StatusReport {
	h.mu.Lock()
	b := h.base(now)
	h.mu.Unlock()

	rep := StatusReport{
		Time:           now,
		WindowSeconds:  now.Sub(b.at).Seconds(),
		Policy:         s.Policy,
		ReadsToPrimary: s.ReadsToPrimary,
		Drained:        []string{},
		MaxLagSeconds:  s.MaxLag.Seconds(), ReadmitLagSeconds: s.ReadmitLag.Seconds(),
		Primary:  StatusPrimary{Name: h.p.cfg.PrimaryName, Reads: s.PrimaryReads, WindowReads: since(s.PrimaryReads, b.primaryReads)},
		Replicas: make([]StatusReplica, 0, len(s.Replicas)),
		Routes:   []StatusRoute{},
		Sticky: StatusSticky{
			Mode: s.Sticky.Mode.String(), Marks: s.Sticky.Marks, Notes: s.Sticky.Notes,
			StickyReads: s.Routes[ReasonSticky], CausalReads: s.Routes[ReasonCausal],
			StoreErrors: s.Sticky.StoreErrors, StoreSkipped: s.Sticky.StoreSkipped, StoreRetries: s.Sticky.StoreRetries,
			Resolved: s.Sticky.Resolved,
		},
	}
	if rep.Primary.Name == "" {
		rep.Primary.Name = "primary"
	}
	for r := Reason(1); r < numReasons; r++ {
		if v := s.Routes[r]; v > 0 {
			rep.Routes = append(rep.Routes, StatusRoute{Reason: r.String(), Total: v, Window: since(v, b.routes[r])})
		}
	}
	reads := rep.Primary.WindowReads
	for _, r := range s.Replicas {
		var old replicaSample // a replica added since b counts from its start
		for _, o := range b.replicas {
			if o.name == r.Name {
				old = o
			}
		}
		window := r.Latencies.Sub(&old.latencies)
		sr := StatusReplica{
			Name: r.Name, State: r.Health.State.String(), StateSince: r.Health.Since,
			Eligible: r.Eligible, Drained: r.Drained,
			LagKnown: r.Health.LagKnown, Behind: r.Health.Behind,
			WindowReads: since(r.Served, old.served),
			P99Seconds:  window.Quantile(0.99).Seconds(),
			InFlight:    r.InFlight, LatencySeconds: r.Latency.Seconds(),
			Served: r.Served, Failed: r.Failed,
			Evictions: r.Health.Evictions, Readmissions: r.Health.Readmissions,
			LastProbe: r.Health.LastProbe,
		}
		if sr.LagKnown {
			sr.LagSeconds = r.Health.Lag.Seconds()
		}
		if r.Health.LastErr != nil {
			sr.LastError = r.Health.LastErr.Error()
		}
		if r.Health.PrimaryErr != nil {
			sr.PrimaryError = r.Health.PrimaryErr.Error()
		}
		if r.Drained {
			rep.Drained = append(rep.Drained, r.Name)
		}
		reads += sr.WindowReads
		rep.Replicas = append(rep.Replicas, sr)
	}
	if reads > 0 {
		rep.Primary.ReadShare = float64(rep.Primary.WindowReads) / float64(reads)
		for i := range rep.Replicas {
			rep.Replicas[i].ReadShare = float64(rep.Replicas[i].WindowReads) / float64(reads)
		}
	}
	return rep
}

// since is the increase of a counter from old to now; a counter that went
// back (a replica removed and added again) counts from zero.
func since(now, old uint64) uint64 {
	if now < old {
		return now
	}
	return now - old
}

func (h *statusHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	refresh := statusRefresh
	if v := r.URL.Query().Get("refresh"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			http.Error(w, "refresh: want a duration such as 5s, or 0", http.StatusBadRequest)
			return
		}
		refresh = d
		if d > 0 {
			refresh = max(d, minRefresh)
		}
	}
	now := time.Now()
	s := h.p.Stats()
	rep := h.report(s, now)
	rep.RefreshSeconds = refresh.Seconds()
	h.sample(s, now)

	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := statusPage.Execute(w, rep); err != nil {
		// The header is out; all that can be done is to end the page.
		fmt.Fprintf(w, "\n<!-- rwsplit: %s -->", template.HTMLEscapeString(err.Error()))
	}
}

// wantsJSON reports whether r's Accept header names application/json.
func wantsJSON(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "application/json" {
			return true
		}
	}
	return false
}

//go:embed status.html
var statusHTML string

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"seconds": fmtSeconds,
	"pct":     func(f float64) string { return fmt.Sprintf("%.1f", 100*f) },
	"span":    fmtSpan,
	"ago": func(t, now time.Time) string {
		if t.IsZero() {
			return ""
		}
		return fmtSpan(now.Sub(t).Seconds())
	},
	"clock":    func(t time.Time) string { return t.Format("15:04:05") },
	"millis":   func(s float64) int64 { return int64(s * 1000) },
	"truncate": truncate,
}).Parse(statusHTML))

// fmtSeconds formats a duration in seconds for the page: 850µs, 12.3ms,
// 1.25s, 3m20s.
func fmtSeconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d <= 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Minute:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// fmtSpan formats a span of time in seconds for the page, to a tenth of
// a second under 10s, to the second under 2m, to the minute after.
func fmtSpan(s float64) string {
	switch {
	case s < 10:
		return fmt.Sprintf("%.1fs", s)
	case s < 120:
		return fmt.Sprintf("%.0fs", s)
	}
	return fmt.Sprintf("%.0fm", s/60)
}

// truncate shortens s to at most n runes, marking the cut.
func truncate(n int, s string) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
