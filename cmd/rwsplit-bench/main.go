// Command rwsplit-bench regenerates BENCHMARKS.md and its plots: it starts
// its own PostgreSQL and MariaDB replication clusters (internal/testdb, from
// the machine's server binaries, on free loopback ports), runs plain GORM,
// GORM with gorm.io/plugin/dbresolver and GORM with rwsplit side by side on
// the same clusters in the same run, and writes every table and plot from
// what it measured.
//
//	go run ./cmd/rwsplit-bench -out BENCHMARKS.md            # the full run (~15 min)
//	go run ./cmd/rwsplit-bench -quick -out BENCHMARKS.md     # shorter runs, fewer repeats (~3 min)
//	go run ./cmd/rwsplit-bench -sections scaling,probes      # only these sections
//
// Sections (-sections, comma-separated; default all): overhead, writes,
// faults, pgpool, scaling, probes. A run of some sections keeps the other
// sections of the existing report as they were (each section carries its
// own command, date and machine load). Plots go to -plots (default
// docs/bench). The per-read overhead section also counts instructions
// under valgrind's callgrind when valgrind is installed; the pgpool
// section runs when Debian's pgpool2 is installed and says so otherwise.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rwsplit/rwsplit/internal/testdb"
)

type options struct {
	out      string
	plots    string
	sections []string
	quick    bool

	// Scale: durations and counts (the -quick values are set in main).
	rounds      int             // repeats of the measurements where noise matters
	measure     time.Duration   // one throughput measurement
	fault       time.Duration   // how long each fault lasts
	rywRounds   int             // read-your-writes rounds
	writePairs  int             // paired keyed/unkeyed inserts
	backSamples int             // time-back-to-replicas samples
	readers     int             // concurrent readers in the fault workloads
	scaleLats   []time.Duration // latencies added to each replica in the scaling runs, one table each
	scaleConns  int             // each replica pool's cap in the scaling runs
	scaleReadrs int             // concurrent readers in the scaling runs
	callgrind   bool

	cpuprofile string

	child  string // internal: the callgrind child's configuration
	childN int
}

var allSections = []string{"overhead", "writes", "faults", "pgpool", "scaling", "probes"}

func main() {
	var o options
	var sections string
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "the report to write")
	flag.StringVar(&o.plots, "plots", "docs/bench", "the folder for the PNG plots (relative to the report's folder when relative)")
	flag.StringVar(&sections, "sections", strings.Join(allSections, ","), "comma-separated sections to run: "+strings.Join(allSections, ", "))
	flag.BoolVar(&o.quick, "quick", false, "shorter measurements and fewer repeats (about 3 minutes in all)")
	flag.IntVar(&o.rounds, "rounds", 0, "repeats where noise matters (0: 5, -quick 2)")
	flag.DurationVar(&o.measure, "measure", 0, "length of one throughput measurement (0: 4s, -quick 1s; the scaling runs use at most 3s)")
	flag.DurationVar(&o.fault, "fault", 0, "how long each fault lasts (0: 4s, -quick 1.5s)")
	flag.IntVar(&o.rywRounds, "ryw", 0, "read-your-writes rounds per case (0: 2000, -quick 300)")
	flag.IntVar(&o.writePairs, "writes", 0, "paired inserts per configuration in the write-cost table (0: 1000, -quick 200)")
	flag.IntVar(&o.backSamples, "back", 0, "samples of the time back to replicas (0: 300, -quick 60)")
	flag.IntVar(&o.readers, "readers", 8, "concurrent readers in the fault and pgpool workloads")
	var scaleLats string
	flag.StringVar(&scaleLats, "scale-latency", "", "comma-separated latencies the proxy adds to each query of a server in the scaling runs, one table each (default 2ms,20ms; -quick 2ms)")
	flag.IntVar(&o.scaleConns, "scale-conns", 8, "each replica pool's cap in the scaling runs")
	flag.IntVar(&o.scaleReadrs, "scale-readers", 64, "concurrent readers in the scaling runs")
	callgrind := flag.String("callgrind", "auto", "count instructions per read under valgrind's callgrind when valgrind is installed: on, off, or auto (on except with -quick)")
	flag.StringVar(&o.child, "callgrind-child", "", "internal: run one configuration's reads for the callgrind count")
	flag.IntVar(&o.childN, "n", 0, "internal: reads of the callgrind child")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write this process's CPU profile to `file`")
	flag.Parse()
	log.SetFlags(log.Ltime)
	log.SetPrefix("rwsplit-bench: ")

	if o.child != "" {
		if err := callgrindChild(o.child, o.childN); err != nil {
			log.Fatal(err)
		}
		return
	}
	o.defaults()
	switch *callgrind {
	case "on":
		o.callgrind = true
	case "off":
	case "auto":
		o.callgrind = !o.quick
	default:
		log.Fatalf("-callgrind: want on, off or auto, not %q", *callgrind)
	}
	if scaleLats == "" {
		scaleLats = "2ms,20ms"
		if o.quick {
			scaleLats = "2ms"
		}
	}
	for _, v := range strings.Split(scaleLats, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d <= 0 {
			log.Fatalf("-scale-latency: bad duration %q", v)
		}
		o.scaleLats = append(o.scaleLats, d)
	}
	for _, s := range strings.Split(sections, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(allSections, s) {
			log.Fatalf("unknown section %q (known: %s)", s, strings.Join(allSections, ", "))
		}
		o.sections = append(o.sections, s)
	}
	if !filepath.IsAbs(o.plots) {
		o.plots = filepath.Join(filepath.Dir(o.out), o.plots)
	}
	if err := os.MkdirAll(o.plots, 0o755); err != nil {
		log.Fatal(err)
	}

	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := 0
	if err := run(ctx, &o); err != nil {
		log.Print(err)
		code = 1
	}
	if err := testdb.Teardown(); err != nil {
		log.Print(err)
		code = 1
	}
	if o.cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	os.Exit(code)
}

func (o *options) defaults() {
	pick := func(full, quick int) int {
		if o.quick {
			return quick
		}
		return full
	}
	pickD := func(full, quick time.Duration) time.Duration {
		if o.quick {
			return quick
		}
		return full
	}
	if o.rounds <= 0 {
		o.rounds = pick(5, 2)
	}
	if o.measure <= 0 {
		o.measure = pickD(4*time.Second, time.Second)
	}
	if o.fault <= 0 {
		o.fault = pickD(4*time.Second, 1500*time.Millisecond)
	}
	if o.rywRounds <= 0 {
		o.rywRounds = pick(2000, 300)
	}
	if o.writePairs <= 0 {
		o.writePairs = pick(1000, 200)
	}
	if o.backSamples <= 0 {
		o.backSamples = pick(300, 60)
	}
}

// section is one part of the report.
type section struct {
	id    string
	title string
	run   func(ctx context.Context, b *bench, w *sectionWriter) error
}

func sectionList() []section {
	return []section{
		{"overhead", "Per-read overhead (no I/O)", runOverhead},
		{"writes", "Keyed writes, read-your-writes and the way back to replicas", runWrites},
		{"faults", "Faults: a paused, crashed, frozen or slow replica", runFaults},
		{"pgpool", "A proxy hop: pgpool-II load balancing against rwsplit", runPgpool},
		{"scaling", "Scaling: read throughput against the number of replicas", runScaling},
		{"probes", "Probe cost: the checker's queries per second", runProbes},
	}
}

// bench is what every section shares.
type bench struct {
	o    *options
	load *loadMon
	cmd  string
}

func run(ctx context.Context, o *options) error {
	b := &bench{o: o, load: startLoadMon(ctx), cmd: commandLine()}
	defer b.load.stop()
	rep, err := readReport(o.out)
	if err != nil {
		return err
	}
	start := time.Now()
	for _, s := range sectionList() {
		if !slices.Contains(o.sections, s.id) {
			continue
		}
		log.Printf("section %s: %s", s.id, s.title)
		w := newSectionWriter(b, s)
		secStart := time.Now()
		err := s.run(ctx, b, w)
		if err != nil && !errors.Is(err, errSkip) {
			return fmt.Errorf("section %s: %w", s.id, err)
		}
		rep.set(s.id, w.finish(secStart, err))
		// Write after every section, so that a long run keeps what it has.
		if err := rep.write(o.out, sectionList()); err != nil {
			return err
		}
		log.Printf("section %s done in %v", s.id, time.Since(secStart).Round(time.Second))
	}
	log.Printf("wrote %s in %v", o.out, time.Since(start).Round(time.Second))
	return nil
}

// errSkip ends a section that cannot run here; the writer records why.
var errSkip = errors.New("skipped")

func commandLine() string {
	args := []string{"go run ./cmd/rwsplit-bench"}
	for _, a := range os.Args[1:] {
		if strings.ContainsAny(a, " '\"") {
			a = "'" + a + "'"
		}
		args = append(args, a)
	}
	return strings.Join(args, " ")
}
