package testdb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Proxy is a TCP proxy on a loopback port that forwards every connection to
// a target address, bytes both ways, unchanged: PostgreSQL, MySQL or any
// other protocol. SetLatency delays the client-to-server direction, to make
// one node slower than another.
type Proxy struct {
	target string
	ln     net.Listener
	port   int

	latency atomic.Int64 // nanoseconds added to each client-to-server chunk

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // both ends of every live connection
	closed bool

	done      chan struct{} // closed by Close
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// StartProxy starts a proxy to targetAddr ("127.0.0.1:5432"). The caller
// must Close it; Teardown also does.
func StartProxy(targetAddr string) (*Proxy, error) {
	for attempt := 1; ; attempt++ {
		port, err := reservePort()
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			releasePort(port)
			if errors.Is(err, syscall.EADDRINUSE) && attempt < 5 {
				continue
			}
			return nil, fmt.Errorf("testdb: start proxy to %s: %w", targetAddr, err)
		}
		p := &Proxy{target: targetAddr, ln: ln, port: port, conns: make(map[net.Conn]struct{}), done: make(chan struct{})}
		track(p)
		p.wg.Add(1)
		go p.accept()
		return p, nil
	}
}

// Addr returns the proxy's "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port returns the proxy's port.
func (p *Proxy) Port() int { return p.port }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// SetLatency delays every chunk of bytes sent from a client to the server
// by d, keeping their order, on live connections too (a chunk already
// waiting keeps the delay it had). 0 forwards at once.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(max(d, 0))) }

// Latency returns the delay set by SetLatency.
func (p *Proxy) Latency() time.Duration { return time.Duration(p.latency.Load()) }

// Close stops accepting, closes every connection, and returns once every
// goroutine of the proxy has exited.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		untrack(p)
		p.mu.Lock()
		p.closed = true
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		close(p.done)
		p.ln.Close()
		p.wg.Wait()
		releasePort(p.port)
	})
	return nil
}

// addConn tracks c; it reports false (and closes c) if the proxy is closed.
func (p *Proxy) addConn(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) removeConn(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			select {
			case <-p.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// Accept failing otherwise (EMFILE...): back off a little.
			t := time.NewTimer(10 * time.Millisecond)
			select {
			case <-p.done:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		if !p.addConn(c) {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// chunk is bytes read from the client, with the time they arrived.
type chunk struct {
	b  []byte
	at time.Time
}

// serve forwards one client connection. It owns three goroutines: itself
// (server to client), the client reader and the delayed writer; any end
// closes both connections, which ends the others.
func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	defer p.removeConn(client)
	d := net.Dialer{Timeout: 5 * time.Second}
	server, err := d.Dial("tcp", p.target)
	if err != nil {
		return // the client sees its connection closed, like a dead server
	}
	if !p.addConn(server) {
		return
	}
	defer p.removeConn(server)

	stop := make(chan struct{})
	var once sync.Once
	end := func() {
		once.Do(func() {
			close(stop)
			client.Close()
			server.Close()
		})
	}
	chunks := make(chan chunk, 256)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // client reader
		defer wg.Done()
		defer end()
		buf := make([]byte, 32<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				// Queue a copy of just what was read: a 32 KiB buffer per
				// chunk showed up as ~16 KiB/op in the benchmarks that
				// run through the proxy.
				select {
				case chunks <- chunk{b: bytes.Clone(buf[:n]), at: time.Now()}:
				case <-stop:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() { // delayed writer: one timer, chunks in arrival order
		defer wg.Done()
		defer end()
		t := time.NewTimer(0)
		defer t.Stop()
		<-t.C
		for {
			var c chunk
			select {
			case c = <-chunks:
			case <-stop:
				return
			}
			if wait := time.Until(c.at.Add(p.Latency())); wait > 0 {
				t.Reset(wait)
				select {
				case <-t.C:
				case <-stop:
					return
				}
			}
			if _, err := server.Write(c.b); err != nil {
				return
			}
		}
	}()
	_, _ = io.Copy(client, server) // server to client, undelayed
	end()
	wg.Wait()
}
