// Package counter keeps a counter row moving on the primary, for the demo
// and the benchmark: a read of the row on a replica then tells how stale
// that replica was, from the value it returned.
package counter

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// Writer increments column v of the row with id 1 of a table every 10ms on
// the primary, and remembers when each value was superseded.
type Writer struct {
	mu         sync.Mutex
	superseded []time.Time // superseded[v]: when value v was replaced (zero: before Start)
	cancel     context.CancelFunc
	done       chan struct{}
}

// Start starts a Writer on table (which must have columns id and v, and a
// row with id 1), until ctx ends or Stop.
func Start(ctx context.Context, primary *sql.DB, table string) *Writer {
	ctx, cancel := context.WithCancel(ctx)
	w := &Writer{cancel: cancel, done: make(chan struct{})}
	var v int64
	_ = primary.QueryRowContext(ctx, "SELECT v FROM "+table+" WHERE id = 1").Scan(&v)
	w.superseded = make([]time.Time, v) // earlier values: superseded before Start
	update := "UPDATE " + table + " SET v = v + 1 WHERE id = 1"
	go func() {
		defer close(w.done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if _, err := primary.ExecContext(ctx, update); err != nil {
				continue
			}
			w.mu.Lock()
			w.superseded = append(w.superseded, time.Now())
			w.mu.Unlock()
		}
	}()
	return w
}

// Stop stops the Writer and waits for its goroutine.
func (w *Writer) Stop() { w.cancel(); <-w.done }

// Staleness is how long before at the value v had been superseded by a
// committed update: 0 if it was the latest at that time, an hour if it was
// superseded before Start (count it as very stale).
func (w *Writer) Staleness(v int64, at time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case v >= int64(len(w.superseded)):
		return 0
	case w.superseded[v].IsZero():
		return time.Hour
	case w.superseded[v].After(at):
		return 0
	}
	return at.Sub(w.superseded[v])
}
