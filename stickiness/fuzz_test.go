package stickiness

import (
	"bytes"
	"testing"
	"time"

	"github.com/rwsplit/rwsplit/lagcheck"
)

// FuzzParseToken: ParseToken never panics, and a token it accepts is the
// one its Record makes (parsing is the inverse of Token).
func FuzzParseToken(f *testing.F) {
	for _, rec := range []Record{
		{Until: time.Unix(1_700_000_000, 5), Position: lagcheck.LSNPosition(0x3000060)},
		{Until: time.Unix(1_700_000_000, 0), Position: lagcheck.MariaDBPosition(0, 1, 42)},
		{Until: time.Unix(1, 0)},
	} {
		f.Add(rec.Token())
	}
	f.Add("")
	f.Add("1700000000000000000.")
	f.Add("x.0/0")
	f.Fuzz(func(t *testing.T, tok string) {
		rec, err := ParseToken(tok)
		if err != nil {
			return
		}
		again, err := ParseToken(rec.Token())
		if err != nil || !again.Equal(rec) {
			t.Fatalf("ParseToken(%q) = %v, whose Token %q parses to %v, %v", tok, rec, rec.Token(), again, err)
		}
	})
}

// FuzzCookieVerify: verify never panics, accepts nothing but what was
// signed with the secret, and accepts every value it signed itself. (The
// base64 decoder also takes other spellings of the same bytes, such as
// non-canonical trailing bits: they carry the signed record, so they count
// as signed.)
func FuzzCookieVerify(f *testing.F) {
	m, err := NewCookieMiddleware(CookieOptions{Secret: bytes.Repeat([]byte{7}, MinSecretLen)})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	goodRec := Record{Until: now.Add(time.Minute), Position: lagcheck.LSNPosition(9)}
	good := m.cookie(goodRec, now).Value
	f.Add(good, false)
	f.Add(good+"x", false)
	f.Add("", false)
	f.Add("a.b", true)
	f.Fuzz(func(t *testing.T, v string, sign bool) {
		if sign {
			// A value of our own: must verify while it is fresh.
			if rec, err := ParseToken(v); err == nil && rec.Until.After(now) {
				c := m.cookie(rec, now).Value
				if _, ok := m.verify(c, now); !ok {
					t.Fatalf("our own cookie %q for %q did not verify", c, v)
				}
			}
			return
		}
		if rec, ok := m.verify(v, now); ok && !rec.Equal(goodRec) {
			// The only record signed here is goodRec; the fuzzer cannot
			// forge HMAC-SHA256, so any other record is a bug.
			t.Fatalf("verify accepted %q as %v", v, rec)
		}
	})
}
