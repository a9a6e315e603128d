package stickiness_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"time"

	"github.com/rwsplit/rwsplit/lagcheck"
	"github.com/rwsplit/rwsplit/stickiness"
)

// Two application servers share the user's last write through a signed
// cookie: a write on one makes the next read on the other sticky.
func Example_cookieMiddleware() {
	secret := []byte("load me from your secret store, 32+ bytes") // the same on every server
	mw, err := stickiness.NewCookieMiddleware(stickiness.CookieOptions{Secret: secret})
	if err != nil {
		log.Fatal(err)
	}
	// app is one application server; tracker is its rwsplit.Plugin's.
	app := func(tracker *stickiness.Tracker) *httptest.Server {
		mux := http.NewServeMux()
		mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
			// db.WithContext(r.Context()).Create(&order): after the
			// commit, rwsplit marks the write with the primary's position.
			if write, ok := tracker.Pending(r.Context(), orders); ok {
				tracker.Mark(lagcheck.LSNPosition(0x16B374D848), write)
			}
			w.WriteHeader(http.StatusCreated)
		})
		mux.HandleFunc("GET /orders", func(w http.ResponseWriter, r *http.Request) {
			// rwsplit routes the request's reads with the lookup.
			pos, sticky := tracker.Lookup(r.Context(), orders)
			fmt.Fprintf(w, "sticky=%v position=%q", sticky, pos)
		})
		return httptest.NewServer(mw.Handler(mux))
	}
	trackerA, trackerB := newTracker(), newTracker()
	defer trackerA.Close()
	defer trackerB.Close()
	serverA, serverB := app(trackerA), app(trackerB)
	defer serverA.Close()
	defer serverB.Close()

	jar, err := cookiejar.New(nil)
	if err != nil {
		log.Fatal(err)
	}
	browser := &http.Client{Jar: jar}
	do := func(method, url string) {
		req, err := http.NewRequest(method, url+"/orders", nil)
		if err != nil {
			log.Fatal(err)
		}
		resp, err := browser.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %s %s", method, resp.Status, body)
		for _, c := range resp.Cookies() {
			fmt.Printf("Set-Cookie: %s (HttpOnly=%v, Max-Age=%d)", c.Name, c.HttpOnly, c.MaxAge)
		}
		fmt.Println()
	}
	do("GET", serverB.URL)
	do("POST", serverA.URL)
	do("GET", serverB.URL)
	fmt.Printf("%+v\n", mw.Stats())
	// Output:
	// GET: 200 OK sticky=false position=""
	// POST: 201 Created Set-Cookie: rwsplit_sticky (HttpOnly=true, Max-Age=30)
	// GET: 200 OK sticky=true position="16/B374D848"
	// {Accepted:1 Forged:0 Expired:0 Malformed:0 Issued:1 Late:0}
}

// A background job sees the writes of the request that enqueued it: the
// request passes its token along with the job.
func ExampleWithToken() {
	// In the HTTP handler (under the cookie middleware, or WithCarrier),
	// after the write that the job depends on:
	tracker := newTracker() // rwsplit's
	defer tracker.Close()
	reqCtx := stickiness.WithCarrier(context.Background())
	if write, ok := tracker.Pending(reqCtx, orders); ok { // done by rwsplit after the write
		tracker.Mark(lagcheck.LSNPosition(0x3000060), write)
	}
	job := struct {
		OrderID int
		Sticky  string
	}{OrderID: 42, Sticky: stickiness.Token(reqCtx)}

	// In the worker, maybe on another machine:
	ctx := stickiness.WithToken(context.Background(), job.Sticky)
	rec, ok := stickiness.FromContext(ctx) // rwsplit routes the job's reads with it
	fmt.Println(ok, rec.Position)
	// Output: true 0/3000060
}

func ExampleNewMemory() {
	store, err := stickiness.NewMemory(stickiness.MemoryOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	write := stickiness.Record{Until: time.Now().Add(30 * time.Second), Position: lagcheck.LSNPosition(0x3000060)}
	if err := store.Set(ctx, "user-42", write); err != nil {
		log.Fatal(err)
	}
	// A late Set of an older write does not roll stickiness back.
	older := stickiness.Record{Until: time.Now().Add(10 * time.Second), Position: lagcheck.LSNPosition(0x3000000)}
	if err := store.Set(ctx, "user-42", older); err != nil {
		log.Fatal(err)
	}
	rec, ok, err := store.Get(ctx, "user-42")
	fmt.Println(rec.Position, ok, err)
	// Output: 0/3000060 true <nil>
}

func newTracker() *stickiness.Tracker {
	t, err := stickiness.New(stickiness.Config{})
	if err != nil {
		log.Fatal(err)
	}
	return t
}

// orders is what rwsplit passes for a statement on the orders table.
var orders = stickiness.Tables{Names: []string{"orders"}}
