package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"
)

// maxHelloBytes bounds how much a client may send before its ClientHello
// is complete (a hello with post-quantum key shares is ~2 KiB and may span
// several records).
const maxHelloBytes = 64 << 10

var errHelloParsed = errors.New("client hello parsed")

// peekHello reads from r until a whole TLS ClientHello has arrived and
// returns its server name and every byte read, which the caller replays.
// isTLS is false when the first byte is not a TLS handshake record; then
// peeked holds that byte only.
func peekHello(r io.Reader) (serverName string, peeked []byte, isTLS bool, err error) {
	var first [1]byte
	if _, err := io.ReadFull(r, first[:]); err != nil {
		return "", nil, false, err
	}
	if first[0] != 0x16 {
		return "", first[:], false, nil
	}
	buf := bytes.NewBuffer([]byte{first[0]})
	tee := io.TeeReader(io.LimitReader(r, maxHelloBytes), buf)
	src := io.MultiReader(bytes.NewReader(first[:]), tee)
	var hello *tls.ClientHelloInfo
	cfg := &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		hello = h
		return nil, errHelloParsed
	}}
	err = tls.Server(readOnlyConn{src}, cfg).Handshake()
	if hello == nil {
		if err == nil {
			err = errors.New("no client hello")
		}
		return "", buf.Bytes(), true, err
	}
	return hello.ServerName, buf.Bytes(), true, nil
}

// readOnlyConn lets crypto/tls read a ClientHello from a reader; writes
// (the alert it sends when we abort) are dropped.
type readOnlyConn struct{ r io.Reader }

func (c readOnlyConn) Read(p []byte) (int, error)     { return c.r.Read(p) }
func (readOnlyConn) Write(p []byte) (int, error)      { return len(p), nil }
func (readOnlyConn) Close() error                     { return nil }
func (readOnlyConn) LocalAddr() net.Addr              { return nil }
func (readOnlyConn) RemoteAddr() net.Addr             { return nil }
func (readOnlyConn) SetDeadline(time.Time) error      { return nil }
func (readOnlyConn) SetReadDeadline(time.Time) error  { return nil }
func (readOnlyConn) SetWriteDeadline(time.Time) error { return nil }
