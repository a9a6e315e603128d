package stickiness

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// InUse turns true with the first context that carries a user or a
// carrier, whichever way it was made, and not before.
func TestInUse(t *testing.T) {
	mw, err := NewCookieMiddleware(CookieOptions{Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		give func()
		want bool
	}{
		{name: "nothing", give: func() {}},
		{name: "no user", give: func() { WithUser(context.Background(), "") }},
		{name: "user", give: func() { WithUser(context.Background(), "u") }, want: true},
		{name: "carrier", give: func() { WithCarrier(context.Background()) }, want: true},
		{name: "token", give: func() { WithToken(context.Background(), "") }, want: true},
		{name: "cookie", give: func() {
			mw.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).
				ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		}, want: true},
	}
	defer inUse.Store(inUse.Load())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inUse.Store(false)
			tt.give()
			if got := InUse(); got != tt.want {
				t.Errorf("InUse() = %v, want %v", got, tt.want)
			}
		})
	}
}
