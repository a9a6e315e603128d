package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// loadMon samples, every second, the CPU time every process on the machine
// used (from /proc), and splits it into this run's (this process and its
// descendants: the servers and proxies it started) and everyone else's, so
// that each section can say what else was running while it measured.
type loadMon struct {
	mu      sync.Mutex
	samples []loadSample
	prev    map[int]procTicks
	cancel  context.CancelFunc
	done    chan struct{}
}

type loadSample struct {
	at     time.Time
	span   time.Duration
	ours   float64            // CPU seconds
	kernel float64            // CPU seconds of kernel threads (children of kthreadd)
	others map[string]float64 // CPU seconds by command name
}

type procTicks struct {
	comm  string
	ppid  int
	start int64 // start time since boot, in ticks: tells a reused pid apart
	ticks int64
}

const clockTicks = 100 // USER_HZ on Linux

func startLoadMon(ctx context.Context) *loadMon {
	ctx, cancel := context.WithCancel(ctx)
	m := &loadMon{cancel: cancel, done: make(chan struct{})}
	m.prev = readProcs()
	last := time.Now()
	go func() {
		defer close(m.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				cur := readProcs()
				m.add(now, now.Sub(last), cur)
				last = now
			}
		}
	}()
	return m
}

func (m *loadMon) stop() { m.cancel(); <-m.done }

func (m *loadMon) add(now time.Time, span time.Duration, cur map[int]procTicks) {
	self := os.Getpid()
	ours := func(pid int) bool {
		for i := 0; i < 64 && pid > 1; i++ {
			if pid == self {
				return true
			}
			p, ok := cur[pid]
			if !ok {
				return false
			}
			pid = p.ppid
		}
		return false
	}
	s := loadSample{at: now, span: span, others: map[string]float64{}}
	for pid, p := range cur {
		d := p.ticks
		// A kernel worker renames itself after the queue it serves: compare
		// start times, not names, to tell a new process from an old one.
		if old, ok := m.prev[pid]; ok && old.start == p.start {
			d -= old.ticks
		}
		if d <= 0 {
			continue
		}
		sec := float64(d) / clockTicks
		switch {
		case ours(pid):
			s.ours += sec
		case p.ppid == 2 || pid == 2:
			s.kernel += sec
		default:
			s.others[p.comm] += sec
		}
	}
	m.mu.Lock()
	m.prev = cur
	m.samples = append(m.samples, s)
	m.mu.Unlock()
}

// summary says how busy the machine was between from and to, and with what.
func (m *loadMon) summary(from, to time.Time) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var span time.Duration
	var ours, kernel float64
	others := map[string]float64{}
	for _, s := range m.samples {
		if s.at.Before(from) || s.at.After(to.Add(time.Second)) {
			continue
		}
		span += s.span
		ours += s.ours
		kernel += s.kernel
		for k, v := range s.others {
			others[k] += v
		}
	}
	if span <= 0 {
		return "Machine load not sampled."
	}
	capacity := span.Seconds() * float64(runtime.NumCPU())
	var total float64
	type kv struct {
		k string
		v float64
	}
	var list []kv
	for k, v := range others {
		total += v
		list = append(list, kv{k, v})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].v > list[j].v })
	var top []string
	for _, e := range list {
		if len(top) == 5 || e.v/capacity < 0.005 {
			break
		}
		top = append(top, fmt.Sprintf("%s %.0f%%", e.k, 100*e.v/capacity))
	}
	what := "nothing significant"
	if len(top) > 0 {
		what = strings.Join(top, ", ")
	}
	return fmt.Sprintf("CPU used meanwhile, as a share of all %d cores: this run (with the servers, proxies and pgpool it started) %.0f%%; kernel threads (network and memory work for every process, this run's included) %.0f%%; other processes %.0f%% (%s).",
		runtime.NumCPU(), 100*ours/capacity, 100*kernel/capacity, 100*total/capacity, what)
}

// readProcs reads every process's command name, parent and CPU ticks.
func readProcs() map[int]procTicks {
	out := map[int]procTicks{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		comm := s[open+1 : close]
		f := strings.Fields(s[close+1:])
		// f[0] state, f[1] ppid, ... f[11] utime, f[12] stime, f[19] starttime
		// (fields 3, 4, 14, 15 and 22 of stat)
		if len(f) < 20 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		start, _ := strconv.ParseInt(f[19], 10, 64)
		out[pid] = procTicks{comm: comm, ppid: ppid, start: start, ticks: ut + st}
	}
	return out
}
