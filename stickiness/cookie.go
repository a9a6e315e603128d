package stickiness

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults of CookieOptions' zero values, and the shortest Secret.
const (
	DefaultCookieName   = "rwsplit_sticky"
	DefaultCookieMaxAge = time.Minute
	MinSecretLen        = 32
)

// maxCookieLen bounds the cookie values the middleware looks at.
const maxCookieLen = 4096

// CookieOptions configures a CookieMiddleware. Every zero value but
// Secret's means the default its comment names.
type CookieOptions struct {
	// Secret is the HMAC-SHA256 key that signs the cookies, the same on
	// every application server. Required: at least MinSecretLen (32)
	// random bytes.
	Secret []byte

	// Name is the cookie's name. Zero means DefaultCookieName
	// ("rwsplit_sticky").
	Name string

	// MaxAge is how long a cookie is accepted after it was issued. Keep
	// it at least the stickiness Window. Zero means DefaultCookieMaxAge
	// (1 minute). Negative is an error.
	MaxAge time.Duration

	// Path and Domain are the cookie's attributes. Zero Path means "/";
	// zero Domain means the request's host only.
	Path, Domain string

	// Secure restricts the cookie to HTTPS. Off by default.
	Secure bool

	// SameSite is the cookie's SameSite attribute. Zero means
	// http.SameSiteLaxMode. The cookie is always HttpOnly.
	SameSite http.SameSite

	// Now returns the current time. Nil means time.Now. For tests.
	Now func() time.Time
}

// CookieStats counts what a CookieMiddleware did. Rejected cookies
// (Forged, Expired, Malformed) are ignored.
type CookieStats struct {
	Accepted  uint64 // valid cookies received
	Forged    uint64 // cookies with a wrong signature
	Expired   uint64 // validly signed cookies older than MaxAge, or whose record expired
	Malformed uint64 // cookies that could not be decoded
	Issued    uint64 // Set-Cookie headers sent
	Late      uint64 // requests that wrote after the response headers were sent: not carried
}

// CookieMiddleware carries each user's last write from one HTTP request to
// the next in a signed cookie, so that any application server can route
// the user's reads without a shared Store. Its Handler installs a carrier
// in each request's context, filled from a valid cookie, and sends the
// carrier's new record back when the handler starts its response. Writes
// made after the response headers were sent are not carried
// (CookieStats.Late).
type CookieMiddleware struct {
	o CookieOptions

	accepted, forged, expired, malformed, issued, late atomic.Uint64
}

// NewCookieMiddleware returns a CookieMiddleware. Configuration errors wrap
// ErrConfig.
func NewCookieMiddleware(o CookieOptions) (*CookieMiddleware, error) {
	if len(o.Secret) < MinSecretLen {
		return nil, fmt.Errorf("%w: cookie Secret has %d bytes, want at least %d", ErrConfig, len(o.Secret), MinSecretLen)
	}
	if o.MaxAge < 0 {
		return nil, fmt.Errorf("%w: negative cookie MaxAge %v", ErrConfig, o.MaxAge)
	}
	o.Secret = append([]byte(nil), o.Secret...)
	if o.Name == "" {
		o.Name = DefaultCookieName
	}
	if err := (&http.Cookie{Name: o.Name}).Valid(); err != nil {
		return nil, fmt.Errorf("%w: cookie Name: %w", ErrConfig, err)
	}
	if o.MaxAge == 0 {
		o.MaxAge = DefaultCookieMaxAge
	}
	if o.Path == "" {
		o.Path = "/"
	}
	if o.SameSite == 0 {
		o.SameSite = http.SameSiteLaxMode
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &CookieMiddleware{o: o}, nil
}

// Stats returns the middleware's counters.
func (m *CookieMiddleware) Stats() CookieStats {
	return CookieStats{
		Accepted:  m.accepted.Load(),
		Forged:    m.forged.Load(),
		Expired:   m.expired.Load(),
		Malformed: m.malformed.Load(),
		Issued:    m.issued.Load(),
		Late:      m.late.Load(),
	}
}

// Handler returns next wrapped by the middleware.
func (m *CookieMiddleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := m.read(r)
		ctx, c := withCarrier(r.Context(), rec)
		cw := &cookieWriter{ResponseWriter: w, m: m, c: c, sent: rec}
		next.ServeHTTP(cw, r.WithContext(ctx))
		cw.finish()
	})
}

// read returns the record of the request's valid cookies, or nil.
func (m *CookieMiddleware) read(r *http.Request) *Record {
	var (
		rec   Record
		found bool
		now   = m.o.Now()
	)
	for _, ck := range r.CookiesNamed(m.o.Name) {
		got, ok := m.verify(ck.Value, now)
		if ok {
			rec, found = rec.Merge(got), true
		}
	}
	if !found {
		return nil
	}
	return &rec
}

// verify decodes and checks a cookie value, and counts the verdict.
func (m *CookieMiddleware) verify(v string, now time.Time) (Record, bool) {
	b64Payload, b64MAC, ok := strings.Cut(v, ".")
	if !ok || len(v) > maxCookieLen {
		m.malformed.Add(1)
		return Record{}, false
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(b64Payload)
	mac, err2 := base64.RawURLEncoding.DecodeString(b64MAC)
	if err1 != nil || err2 != nil {
		m.malformed.Add(1)
		return Record{}, false
	}
	if !hmac.Equal(mac, m.sign(payload)) {
		m.forged.Add(1)
		return Record{}, false
	}
	rest, ok := strings.CutPrefix(string(payload), "s1.")
	issued, tok, ok2 := strings.Cut(rest, ".")
	n, err := strconv.ParseInt(issued, 10, 64)
	rec, err2 := ParseToken(tok)
	if !ok || !ok2 || err != nil || err2 != nil {
		m.malformed.Add(1)
		return Record{}, false
	}
	if now.Sub(time.Unix(0, n)) > m.o.MaxAge || !rec.Active(now) {
		m.expired.Add(1)
		return Record{}, false
	}
	m.accepted.Add(1)
	return rec, true
}

func (m *CookieMiddleware) sign(payload []byte) []byte {
	h := hmac.New(sha256.New, m.o.Secret)
	h.Write(payload)
	return h.Sum(nil)
}

// cookie returns the cookie that carries rec, issued at now.
func (m *CookieMiddleware) cookie(rec Record, now time.Time) *http.Cookie {
	payload := []byte("s1." + strconv.FormatInt(now.UnixNano(), 10) + "." + rec.Token())
	v := base64.RawURLEncoding.EncodeToString(payload) + "." +
		base64.RawURLEncoding.EncodeToString(m.sign(payload))
	// The browser keeps the cookie as long as the server accepts it.
	life := min(rec.Until.Sub(now), m.o.MaxAge)
	return &http.Cookie{
		Name:     m.o.Name,
		Value:    v,
		Path:     m.o.Path,
		Domain:   m.o.Domain,
		MaxAge:   max(1, int((life+time.Second-1)/time.Second)),
		Secure:   m.o.Secure,
		HttpOnly: true,
		SameSite: m.o.SameSite,
	}
}

// cookieWriter adds the Set-Cookie header, if the carrier changed, just
// before the response headers are sent.
type cookieWriter struct {
	http.ResponseWriter
	m           *CookieMiddleware
	c           *carrier
	sent        *Record // the record the client has: received or sent
	wroteHeader bool
}

// start sends the cookie, if needed, before the first byte of the
// response.
func (w *cookieWriter) start() {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	p := w.c.rec.Load()
	if p == nil || p == w.sent {
		return
	}
	now := w.m.o.Now()
	if !p.Active(now) {
		return
	}
	w.sent = p
	http.SetCookie(w.ResponseWriter, w.m.cookie(*p, now))
	w.m.issued.Add(1)
}

// finish runs when the handler has returned.
func (w *cookieWriter) finish() {
	if !w.wroteHeader {
		w.start() // before the server's implicit 200
		return
	}
	if w.c.rec.Load() != w.sent {
		w.m.late.Add(1)
	}
}

func (w *cookieWriter) WriteHeader(code int) {
	// Informational responses (103 Early Hints) precede the real one.
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.start()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *cookieWriter) Write(b []byte) (int, error) {
	w.start()
	return w.ResponseWriter.Write(b)
}

// ReadFrom keeps the underlying writer's io.ReaderFrom (sendfile) working.
func (w *cookieWriter) ReadFrom(src io.Reader) (int64, error) {
	w.start()
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{w.ResponseWriter}, src)
}

// FlushError sends the response headers and buffered data; it is what
// http.ResponseController.Flush calls.
func (w *cookieWriter) FlushError() error {
	w.start()
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Flush implements http.Flusher.
func (w *cookieWriter) Flush() { _ = w.FlushError() }

// Hijack implements http.Hijacker when the underlying writer can hijack.
// A hijacked connection gets no cookie.
func (w *cookieWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.wroteHeader = true
	}
	return conn, rw, err
}

// Unwrap returns the underlying writer, for http.ResponseController.
func (w *cookieWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
