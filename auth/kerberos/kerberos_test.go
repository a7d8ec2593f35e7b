package kerberos

import (
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/daskgate/daskgate/auth"
	"github.com/jcmturner/gokrb5/v8/keytab"
)

func TestUnreadableKeytabIsAStartupError(t *testing.T) {
	for name, content := range map[string][]byte{"missing": nil, "garbage": []byte("not a keytab")} {
		p := filepath.Join(t.TempDir(), "k.keytab")
		if content != nil {
			os.WriteFile(p, content, 0o600)
		}
		if _, err := New(Config{Keytab: p}); err == nil {
			t.Errorf("%s keytab accepted", name)
		}
	}
}

// Everything but a valid ticket for our service is a 401, never a 500.
func TestBadTokensAreUnauthorized(t *testing.T) {
	a := &Authenticator{kt: keytab.New(), cfg: Config{ServiceName: "HTTP"}}
	for name, header := range map[string]string{
		"none":        "",
		"basic":       "Basic YWxpY2U6eA==",
		"bad base64":  "Negotiate !!!",
		"empty":       "Negotiate ",
		"not gss":     "Negotiate " + base64.StdEncoding.EncodeToString([]byte("hello")),
		"oid only":    "Negotiate " + base64.StdEncoding.EncodeToString([]byte{0x60, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02}),
		"spnego init": "Negotiate " + base64.StdEncoding.EncodeToString([]byte{0x60, 0x08, 0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02}),
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		u, reply, err := a.AuthenticateMutual(r)
		if !errors.Is(err, auth.ErrUnauthorized) || u != nil || reply != nil {
			t.Errorf("%s: user %v, reply %v, err %v; want ErrUnauthorized", name, u, reply, err)
		}
	}
}

// FuzzParseToken: the client's token is untrusted bytes.
func FuzzParseToken(f *testing.F) {
	f.Add([]byte{0x60, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x01, 0x00})
	f.Add([]byte{0x60, 0x08, 0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02, 0xa0, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		parseToken(b) // must not panic
	})
}
