package stickiness

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rwsplit/rwsplit/lagcheck"
)

func TestUser(t *testing.T) {
	tests := []struct {
		name   string
		give   context.Context
		want   string
		wantOK bool
	}{
		{name: "none", give: context.Background(), want: "", wantOK: false},
		{name: "set", give: WithUser(context.Background(), "user-1"), want: "user-1", wantOK: true},
		{name: "empty", give: WithUser(context.Background(), ""), want: "", wantOK: false},
		{name: "innermost", give: WithUser(WithUser(context.Background(), "a"), "b"), want: "b", wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := User(tt.give)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("User = %q, %v, want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestWithToken(t *testing.T) {
	live := Record{Until: time.Now().Add(time.Hour), Position: lagcheck.LSNPosition(42)}
	expired := Record{Until: time.Now().Add(-time.Second), Position: lagcheck.LSNPosition(42)}
	tests := []struct {
		name   string
		give   string
		wantOK bool
	}{
		{name: "valid", give: live.Token(), wantOK: true},
		{name: "empty", give: "", wantOK: false},
		{name: "malformed", give: "v1.x.y", wantOK: false},
		{name: "expired", give: expired.Token(), wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := WithToken(context.Background(), tt.give)
			rec, ok := FromContext(ctx)
			if ok != tt.wantOK || (ok && !rec.Equal(live)) {
				t.Errorf("FromContext = %v %q, %v; want ok=%v", rec.Until, rec.Position, ok, tt.wantOK)
			}
			// Every token installs a carrier that records writes.
			if !note(ctx, live) {
				t.Fatal("note found no carrier")
			}
			rec, ok = FromContext(ctx)
			wantRecord(t, rec, ok, live)
			if got := Token(ctx); got != live.Token() {
				t.Errorf("Token = %q, want %q", got, live.Token())
			}
		})
	}
}

func TestNoteWithoutCarrier(t *testing.T) {
	ctx := context.Background()
	if note(ctx, Record{Until: time.Now().Add(time.Hour)}) {
		t.Error("note without a carrier returned true")
	}
	if _, ok := FromContext(ctx); ok {
		t.Error("FromContext without a carrier returned ok")
	}
	if tok := Token(ctx); tok != "" {
		t.Errorf("Token without a carrier = %q", tok)
	}
}

func TestNoteMerges(t *testing.T) {
	base := time.Now().Truncate(time.Second)
	for _, tt := range mergeTests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := WithCarrier(context.Background())
			if tt.old.until != 0 {
				note(ctx, tt.old.at(t, base))
			}
			note(ctx, tt.give.at(t, base))
			rec, ok := FromContext(ctx)
			wantRecord(t, rec, ok, tt.want.at(t, base))
		})
	}
}

func TestNoteReplacesExpired(t *testing.T) {
	ctx := WithToken(context.Background(), Record{Until: time.Now().Add(-time.Second)}.Token())
	give := Record{Until: time.Now().Add(time.Hour), Position: lagcheck.LSNPosition(7)}
	note(ctx, give) // the expired record's unknown position must not count
	rec, ok := FromContext(ctx)
	wantRecord(t, rec, ok, give)
	note(ctx, Record{Until: time.Now().Add(-time.Second)}) // expired: ignored
	rec, ok = FromContext(ctx)
	wantRecord(t, rec, ok, give)
}

// TestNoteConcurrent has writers note increasing positions, out of order,
// while readers load the record: the carrier must end with the newest, and
// readers must never see a position go back.
func TestNoteConcurrent(t *testing.T) {
	const writers, writes = 8, 500
	ctx := WithCarrier(context.Background())
	base := time.Now().Add(time.Hour)
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			var last uint64
			for {
				select {
				case <-stop:
					return
				default:
				}
				rec, ok := FromContext(ctx)
				if !ok {
					continue
				}
				lsn, _ := rec.Position.LSN()
				if lsn < last {
					t.Errorf("position went back from %d to %d", last, lsn)
					return
				}
				last = lsn
			}
		})
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range writes {
				n := uint64(i*writers + w + 1)
				note(ctx, Record{Until: base.Add(time.Duration(n)), Position: lagcheck.LSNPosition(n)})
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	const last = writers * writes
	rec, ok := FromContext(ctx)
	wantRecord(t, rec, ok, Record{Until: base.Add(last), Position: lagcheck.LSNPosition(last)})
}
