package stickiness

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rwsplit/rwsplit/lagcheck"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func newTestCookie(t *testing.T, o CookieOptions) *CookieMiddleware {
	t.Helper()
	if o.Secret == nil {
		o.Secret = testSecret
	}
	m, err := NewCookieMiddleware(o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// positionHandler writes the position of the record the request carries,
// or "none".
var positionHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	rec, ok := FromContext(r.Context())
	if !ok {
		io.WriteString(w, "none")
		return
	}
	io.WriteString(w, rec.Position.String())
})

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// TestCookieRoundTrip writes in one request and reads in the next, through
// a real server and a client with a cookie jar.
func TestCookieRoundTrip(t *testing.T) {
	m := newTestCookie(t, CookieOptions{})
	rec := Record{Until: time.Now().Add(30 * time.Second), Position: lagcheck.LSNPosition(0x16B374D848)}
	mux := http.NewServeMux()
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		note(r.Context(), rec) // what rwsplit does after a write
		positionHandler(w, r)
	})
	mux.Handle("/read", positionHandler)
	srv := httptest.NewServer(m.Handler(mux))
	defer srv.Close()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar}

	if _, body := get(t, client, srv.URL+"/read"); body != "none" {
		t.Errorf("first read carries %q, want none", body)
	}
	resp, body := get(t, client, srv.URL+"/write")
	if body != "16/B374D848" {
		t.Errorf("write request carries %q after note, want 16/B374D848", body)
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("write response has %d cookies, want 1: %v", len(cookies), resp.Header["Set-Cookie"])
	}
	c := cookies[0]
	if c.Name != DefaultCookieName || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" ||
		c.Secure || c.MaxAge < 29 || c.MaxAge > 30 {
		t.Errorf("cookie %s, want %s, HttpOnly, SameSite=Lax, Path=/, not Secure, Max-Age 30", c, DefaultCookieName)
	}
	for range 2 {
		resp, body = get(t, client, srv.URL+"/read")
		if body != "16/B374D848" {
			t.Errorf("read after write carries %q, want 16/B374D848", body)
		}
		if h := resp.Header["Set-Cookie"]; len(h) != 0 {
			t.Errorf("read without a write sets %v", h)
		}
	}
	want := CookieStats{Accepted: 2, Issued: 1}
	if got := m.Stats(); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestCookieRejected(t *testing.T) {
	t0 := time.Now()
	rec := Record{Until: t0.Add(5 * time.Minute), Position: lagcheck.LSNPosition(7)}
	m := newTestCookie(t, CookieOptions{})
	valid := m.cookie(rec, t0).Value
	payload, mac, _ := strings.Cut(valid, ".")
	other := newTestCookie(t, CookieOptions{Secret: bytes.Repeat([]byte{'x'}, 32)})
	signed := func(payload string) string { // signed with the right secret
		return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." +
			base64.RawURLEncoding.EncodeToString(m.sign([]byte(payload)))
	}
	tests := []struct {
		name   string
		give   string        // the cookie value
		at     time.Duration // when the request comes, after t0
		want   CookieStats
		wantOK bool
	}{
		{name: "valid", give: valid, want: CookieStats{Accepted: 1}, wantOK: true},
		{name: "valid near max age", give: valid, at: DefaultCookieMaxAge, want: CookieStats{Accepted: 1}, wantOK: true},
		{name: "mac byte flipped", give: payload + "." + flipByte(t, mac), want: CookieStats{Forged: 1}},
		{name: "payload changed", give: base64.RawURLEncoding.EncodeToString(
			[]byte("s1.1."+Record{Until: t0.Add(time.Hour)}.Token())) + "." + mac, want: CookieStats{Forged: 1}},
		{name: "mac truncated", give: payload + "." + mac[:20], want: CookieStats{Forged: 1}},
		{name: "other secret", give: other.cookie(rec, t0).Value, want: CookieStats{Forged: 1}},
		{name: "older than max age", give: valid, at: DefaultCookieMaxAge + time.Second, want: CookieStats{Expired: 1}},
		{name: "record expired", give: m.cookie(Record{Until: t0.Add(10 * time.Second)}, t0).Value, at: 20 * time.Second, want: CookieStats{Expired: 1}},
		{name: "no dot", give: payload, want: CookieStats{Malformed: 1}},
		{name: "bad base64", give: "!!!." + mac, want: CookieStats{Malformed: 1}},
		{name: "too long", give: strings.Repeat("A", maxCookieLen) + "." + mac, want: CookieStats{Malformed: 1}},
		{name: "signed garbage", give: signed("garbage"), want: CookieStats{Malformed: 1}},
		{name: "signed bad token", give: signed("s1.1.v1.x.y"), want: CookieStats{Malformed: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestCookie(t, CookieOptions{Now: func() time.Time { return t0.Add(tt.at) }})
			var gotOK bool
			h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, gotOK = FromContext(r.Context())
				// A rejected cookie still leaves a carrier for writes.
				if !note(r.Context(), Record{Until: time.Now().Add(time.Minute)}) {
					t.Error("no carrier in the request context")
				}
			}))
			req := httptest.NewRequest("GET", "/", nil)
			req.AddCookie(&http.Cookie{Name: DefaultCookieName, Value: tt.give})
			h.ServeHTTP(httptest.NewRecorder(), req)
			if gotOK != tt.wantOK {
				t.Errorf("request carries a record: %v, want %v", gotOK, tt.wantOK)
			}
			got := m.Stats()
			got.Issued = 0 // from the note
			if got != tt.want {
				t.Errorf("Stats = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func flipByte(t *testing.T, b64 string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestCookieBeforeHeaders checks that the cookie of a write goes out with
// the response headers, however the handler starts its response.
func TestCookieBeforeHeaders(t *testing.T) {
	write := func(r *http.Request) {
		note(r.Context(), Record{Until: time.Now().Add(time.Minute), Position: lagcheck.LSNPosition(1)})
	}
	tests := []struct {
		name       string
		give       http.HandlerFunc
		wantCookie bool
		wantCode   int
		wantLate   uint64
	}{
		{name: "write", give: func(w http.ResponseWriter, r *http.Request) {
			write(r)
			io.WriteString(w, "ok")
		}, wantCookie: true, wantCode: 200},
		{name: "write header", give: func(w http.ResponseWriter, r *http.Request) {
			write(r)
			w.WriteHeader(http.StatusCreated)
		}, wantCookie: true, wantCode: 201},
		{name: "nothing written", give: func(w http.ResponseWriter, r *http.Request) {
			write(r)
		}, wantCookie: true, wantCode: 200},
		{name: "flush", give: func(w http.ResponseWriter, r *http.Request) {
			write(r)
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("Flush: %v", err)
			}
			io.WriteString(w, "ok")
		}, wantCookie: true, wantCode: 200},
		{name: "flusher", give: func(w http.ResponseWriter, r *http.Request) {
			write(r)
			w.(http.Flusher).Flush()
		}, wantCookie: true, wantCode: 200},
		{name: "read from", give: func(w http.ResponseWriter, r *http.Request) {
			write(r)
			io.Copy(w, strings.NewReader("ok"))
		}, wantCookie: true, wantCode: 200},
		{name: "early hints", give: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</style.css>; rel=preload; as=style")
			w.WriteHeader(http.StatusEarlyHints)
			write(r)
			w.WriteHeader(http.StatusAccepted)
		}, wantCookie: true, wantCode: 202},
		{name: "no write", give: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		}, wantCookie: false, wantCode: 200},
		{name: "write after the headers", give: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
			write(r)
		}, wantCookie: false, wantCode: 200, wantLate: 1},
		{name: "expired record", give: func(w http.ResponseWriter, r *http.Request) {
			note(r.Context(), Record{Until: time.Now().Add(-time.Second)})
		}, wantCookie: false, wantCode: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestCookie(t, CookieOptions{})
			srv := httptest.NewServer(m.Handler(tt.give))
			defer srv.Close()
			resp, _ := get(t, srv.Client(), srv.URL)
			gotCookie := len(resp.Cookies()) == 1 && resp.Cookies()[0].Name == DefaultCookieName
			if gotCookie != tt.wantCookie || resp.StatusCode != tt.wantCode {
				t.Errorf("status %d, cookie %v (%v); want %d, %v", resp.StatusCode, gotCookie,
					resp.Header["Set-Cookie"], tt.wantCode, tt.wantCookie)
			}
			st := m.Stats()
			if want := map[bool]uint64{true: 1}[tt.wantCookie]; st.Issued != want || st.Late != tt.wantLate {
				t.Errorf("Stats = %+v, want Issued %d, Late %d", st, want, tt.wantLate)
			}
		})
	}
}

// TestCookieWriterController checks that http.ResponseController reaches
// the server's writer through the middleware's.
func TestCookieWriterController(t *testing.T) {
	m := newTestCookie(t, CookieOptions{})
	srv := httptest.NewServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("SetWriteDeadline: %v", err)
		}
		if err := rc.EnableFullDuplex(); err != nil {
			t.Errorf("EnableFullDuplex: %v", err)
		}
		conn, _, err := rc.Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		io.WriteString(conn, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
		conn.Close()
	})))
	defer srv.Close()
	resp, _ := get(t, srv.Client(), srv.URL)
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("status %d, want 204 from the hijacked connection", resp.StatusCode)
	}
}

// TestCookieNoteFromGoroutines notes writes made by goroutines the handler
// starts and waits for.
func TestCookieNoteFromGoroutines(t *testing.T) {
	m := newTestCookie(t, CookieOptions{})
	until := time.Now().Add(time.Minute)
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		done := make(chan struct{})
		for i := range 4 {
			go func() {
				defer func() { done <- struct{}{} }()
				note(r.Context(), Record{Until: until, Position: lagcheck.LSNPosition(uint64(i))})
			}()
		}
		for range 4 {
			<-done
		}
	}))
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest("GET", "/", nil))
	cookies := rr.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("%d cookies, want 1", len(cookies))
	}
	got, ok := m.verify(cookies[0].Value, time.Now())
	wantRecord(t, got, ok, Record{Until: until, Position: lagcheck.LSNPosition(3)})
}

func TestNewCookieMiddlewareErrors(t *testing.T) {
	tests := []struct {
		name string
		give CookieOptions
	}{
		{name: "no secret", give: CookieOptions{}},
		{name: "short secret", give: CookieOptions{Secret: testSecret[:31]}},
		{name: "negative max age", give: CookieOptions{Secret: testSecret, MaxAge: -time.Second}},
		{name: "bad name", give: CookieOptions{Secret: testSecret, Name: "a b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewCookieMiddleware(tt.give)
			if !errors.Is(err, ErrConfig) || m != nil {
				t.Errorf("NewCookieMiddleware = %v, %v; want nil, ErrConfig", m, err)
			}
		})
	}
}

// TestCookieSecretCopied checks that changing the caller's slice after
// NewCookieMiddleware does not change the key.
func TestCookieSecretCopied(t *testing.T) {
	secret := bytes.Clone(testSecret)
	m := newTestCookie(t, CookieOptions{Secret: secret})
	rec := Record{Until: time.Now().Add(time.Minute)}
	v := m.cookie(rec, time.Now()).Value
	secret[0] ^= 1
	if _, ok := m.verify(v, time.Now()); !ok {
		t.Error("cookie rejected after the caller changed its secret slice")
	}
}
