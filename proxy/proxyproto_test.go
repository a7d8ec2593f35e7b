package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"testing"
)

func v2Header(cmd, fam byte, body []byte) []byte {
	h := append(append([]byte{}, v2Signature...), 0x20|cmd, fam, 0, 0)
	binary.BigEndian.PutUint16(h[14:], uint16(len(body)))
	return append(h, body...)
}

func TestReadProxyHeader(t *testing.T) {
	v4 := []byte{203, 0, 113, 7, 10, 0, 0, 1, 0x30, 0x39, 0x1f, 0x40}
	v6 := append(append(make([]byte, 15), 1), make([]byte, 16)...)
	v6 = append(v6, 0x00, 0x50, 0x1f, 0x40)
	tests := []struct {
		name, in, addr, rest string
		err                  bool
	}{
		{"v1 tcp4", "PROXY TCP4 203.0.113.7 10.0.0.1 12345 8000\r\nGET /", "203.0.113.7:12345", "GET /", false},
		{"v1 tcp6", "PROXY TCP6 2001:db8::1 ::1 443 8000\r\nx", "[2001:db8::1]:443", "x", false},
		{"v1 unknown", "PROXY UNKNOWN\r\nx", "", "x", false},
		{"v1 bad port", "PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n", "", "", true},
		{"v1 family mismatch", "PROXY TCP4 ::1 ::1 1 1\r\n", "", "", true},
		{"v1 negative port", "PROXY TCP4 1.2.3.4 5.6.7.8 -1 1\r\n", "", "", true},
		{"v1 bad address", "PROXY TCP4 1.2.3 5.6.7.8 1 1\r\n", "", "", true},
		{"v1 unknown family", "PROXY UDP4 1.2.3.4 5.6.7.8 1 1\r\n", "", "", true},
		{"v1 missing field", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "", "", true},
		{"v1 unknown with addresses", "PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 1\r\nx", "", "x", false},
		{"v1 too long", "PROXY " + strings.Repeat("x", 200), "", "", true},
		{"v2 tcp4", string(v2Header(1, 0x11, v4)) + "\x16rest", "203.0.113.7:12345", "\x16rest", false},
		{"v2 tcp6", string(v2Header(1, 0x21, v6)) + "z", "[::1]:80", "z", false},
		{"v2 local", string(v2Header(0, 0x11, v4)) + "z", "", "z", false},
		{"v2 tlvs skipped", string(v2Header(1, 0x11, append(v4, 3, 0, 1, 9))) + "z", "203.0.113.7:12345", "z", false},
		{"v2 short", string(v2Header(1, 0x11, v4[:4])), "", "", true},
		{"no header", "GET / HTTP/1.1\r\n", "", "GET / HTTP/1.1\r\n", false},
		{"tls", "\x16\x03\x01", "", "\x16\x03\x01", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tt.in), 256)
			addr, err := readProxyHeader(br)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v", err)
			}
			if tt.err {
				return
			}
			got := ""
			if addr != nil {
				got = addr.String()
			}
			rest := new(bytes.Buffer)
			rest.ReadFrom(br)
			if got != tt.addr || rest.String() != tt.rest {
				t.Fatalf("addr %q rest %q, want %q %q", got, rest, tt.addr, tt.rest)
			}
		})
	}
}

func TestTrusted(t *testing.T) {
	tn, err := parseTrusted([]string{"10.0.0.0/8", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseTrusted([]string{"nope"}); err == nil {
		t.Fatal("bad CIDR accepted")
	}
	for addr, want := range map[string]bool{"10.1.2.3:5": true, "127.0.0.1:1": true, "127.0.0.2:1": false, "[::ffff:10.0.0.1]:1": true} {
		a, _ := resolveTCP(addr)
		if tn.contains(a) != want {
			t.Errorf("contains(%s) != %v", addr, want)
		}
	}
}

func FuzzReadProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET"))
	f.Add(v2Header(1, 0x11, make([]byte, 12)))
	f.Add(v2Header(1, 0x21, make([]byte, 36)))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(in), 256)
		addr, err := readProxyHeader(br)
		if err != nil && addr != nil {
			t.Fatal("address with error")
		}
		if err != nil && !errors.Is(err, errProxyHeader) && !strings.Contains(err.Error(), "EOF") {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

func resolveTCP(s string) (*net.TCPAddr, error) { return net.ResolveTCPAddr("tcp", s) }

// BenchmarkReadProxyHeader: the cost of one header, per version (v1 goes
// through armon/go-proxyproto, v2 is parsed in place).
func BenchmarkReadProxyHeader(b *testing.B) {
	v4 := []byte{203, 0, 113, 7, 10, 0, 0, 1, 0x30, 0x39, 0x1f, 0x40}
	for name, hdr := range map[string]string{
		"v1": "PROXY TCP4 203.0.113.7 10.0.0.1 12345 8000\r\n\x16",
		"v2": string(v2Header(1, 0x11, v4)) + "\x16",
	} {
		b.Run(name, func(b *testing.B) {
			r := strings.NewReader(hdr)
			br := bufio.NewReaderSize(r, 256)
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(hdr)
				br.Reset(r)
				if _, err := readProxyHeader(br); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
