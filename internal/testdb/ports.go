package testdb

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

// Ports come from [portLow, portHigh): below the kernel's ephemeral range
// (32768-60999), so an outgoing connection never takes a test server's port.
// After a server on an ephemeral port crashed, a client that kept dialling it
// once connected to itself and held the port for a minute (REPLICATION.md).
const (
	portLow  = 20000
	portHigh = 32000
)

// ports holds the ports handed out by this process. Each is also locked
// across processes by a listening abstract unix socket
// "@rwsplit-testdb-port-N": the kernel frees the name when the process
// dies, so no lock file is ever left behind, and two test binaries running
// at once (go test ./...) never pick the same port. A server started by
// someone else can still take a port between the check and the bind; the
// callers retry on "Address already in use".
var ports = struct {
	sync.Mutex
	held map[int]net.Listener
	// forced lists ports to hand out first without checking them: tests
	// use it to make a server meet a taken port.
	forced []int
}{held: make(map[int]net.Listener)}

// reservePort returns a free loopback port, held until releasePort.
func reservePort() (int, error) {
	ports.Lock()
	defer ports.Unlock()
	if len(ports.forced) > 0 {
		p := ports.forced[0]
		ports.forced = ports.forced[1:]
		return p, nil
	}
	for range 500 {
		p := portLow + rand.IntN(portHigh-portLow)
		if _, ok := ports.held[p]; ok {
			continue
		}
		lock, err := net.Listen("unix", "@rwsplit-testdb-port-"+strconv.Itoa(p))
		if err != nil {
			continue // another test binary holds it
		}
		probe, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			lock.Close()
			continue // something else listens there
		}
		probe.Close()
		ports.held[p] = lock
		return p, nil
	}
	return 0, fmt.Errorf("testdb: no free port in [%d, %d)", portLow, portHigh)
}

// releasePort gives a port back.
func releasePort(p int) {
	ports.Lock()
	defer ports.Unlock()
	if lock, ok := ports.held[p]; ok {
		lock.Close()
		delete(ports.held, p)
	}
}

// releaseAllPorts gives back every port (teardown).
func releaseAllPorts() {
	ports.Lock()
	defer ports.Unlock()
	for p, lock := range ports.held {
		lock.Close()
		delete(ports.held, p)
	}
}
