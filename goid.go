package rwsplit

import (
	"bytes"
	"runtime"
	"strconv"
)

// goid returns the id of the calling goroutine, or 0 if it cannot be read.
// Close uses it for one thing only: to tell whether it runs inside
// Lag.OnStateChange, on the goroutine the checker's Close waits for. Its
// cost (about a microsecond) is paid once per state change and per Close.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		id, _ := strconv.ParseUint(string(b[:i]), 10, 64)
		return id
	}
	return 0
}
