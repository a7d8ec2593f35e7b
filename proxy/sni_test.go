package proxy

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"testing"
)

// clientHello captures a real ClientHello for sni from crypto/tls, adds a
// padding extension of pad bytes, and splits it into records of at most
// frag bytes of handshake data.
func clientHello(t testing.TB, sni string, pad, frag int) []byte {
	t.Helper()
	c, s := net.Pipe()
	go func() {
		_ = tls.Client(c, &tls.Config{ServerName: sni, InsecureSkipVerify: true}).Handshake()
	}()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(s, hdr); err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(s, msg); err != nil {
		t.Fatal(err)
	}
	c.Close()
	s.Close()
	if pad > 0 {
		msg = addPadding(msg, pad)
	}
	var out bytes.Buffer
	for len(msg) > 0 {
		n := min(frag, len(msg))
		out.Write([]byte{0x16, 0x03, 0x01, byte(n >> 8), byte(n)})
		out.Write(msg[:n])
		msg = msg[n:]
	}
	return out.Bytes()
}

// addPadding appends a padding extension (type 21) to a ClientHello
// handshake message and fixes the lengths.
func addPadding(msg []byte, pad int) []byte {
	body := msg[4:]
	p := 2 + 32
	p += 1 + int(body[p])                           // session id
	p += 2 + int(binary.BigEndian.Uint16(body[p:])) // cipher suites
	p += 1 + int(body[p])                           // compression
	extLen := int(binary.BigEndian.Uint16(body[p:]))
	ext := append([]byte{0, 21, byte(pad >> 8), byte(pad)}, make([]byte, pad)...)
	newBody := append(append([]byte{}, body...), ext...)
	binary.BigEndian.PutUint16(newBody[p:], uint16(extLen+len(ext)))
	n := len(newBody)
	return append([]byte{msg[0], byte(n >> 16), byte(n >> 8), byte(n)}, newBody...)
}

func TestPeekHello(t *testing.T) {
	tests := []struct {
		name       string
		in         []byte
		wantSNI    string
		wantTLS    bool
		wantErr    bool
		wantPeeked int
	}{
		{"one record", clientHello(t, "daskgateway-abc", 0, 16384), "daskgateway-abc", true, false, -1},
		{"over 4 KiB in 1000-byte records", clientHello(t, "daskgateway-big", 6000, 1000), "daskgateway-big", true, false, -1},
		{"tiny records", clientHello(t, "daskgateway-x", 0, 7), "daskgateway-x", true, false, -1},
		{"http", []byte("GET / HTTP/1.1\r\n\r\n"), "", false, false, 1},
		{"garbage tls", []byte{0x16, 3, 1, 0, 2, 9, 9}, "", true, true, 7},
		{"empty", nil, "", false, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sni, peeked, isTLS, err := peekHello(bytes.NewReader(tt.in))
			if sni != tt.wantSNI || isTLS != tt.wantTLS || (err != nil) != tt.wantErr {
				t.Fatalf("got %q tls=%v err=%v", sni, isTLS, err)
			}
			want := tt.wantPeeked
			if want < 0 {
				want = len(tt.in)
			}
			if len(peeked) != want || !bytes.Equal(peeked, tt.in[:want]) {
				t.Fatalf("peeked %d bytes, want the first %d of the input", len(peeked), want)
			}
		})
	}
}

func FuzzPeekHello(f *testing.F) {
	f.Add(clientHello(f, "daskgateway-abc", 0, 16384))
	f.Add(clientHello(f, "daskgateway-abc", 300, 50))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Add([]byte{0x16, 3, 1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		sni, peeked, isTLS, err := peekHello(bytes.NewReader(in))
		if !bytes.HasPrefix(in, peeked) {
			t.Fatal("peeked bytes are not a prefix of the input")
		}
		if len(peeked) > maxHelloBytes+1 {
			t.Fatalf("peeked %d bytes", len(peeked))
		}
		if err != nil && sni != "" {
			t.Fatal("sni with error")
		}
		if !isTLS && sni != "" {
			t.Fatal("sni without tls")
		}
	})
}

func BenchmarkPeekHello(b *testing.B) {
	hello := clientHello(b, "daskgateway-abc", 0, 16384)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := peekHello(bytes.NewReader(hello)); err != nil {
			b.Fatal(err)
		}
	}
}
