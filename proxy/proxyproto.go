package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/armon/go-proxyproto"
)

// PROXY protocol (HAProxy's spec, versions 1 and 2). A load balancer in
// front of daskgate prepends one header to each connection naming the real
// client. We do not wrap the listener or the connection: it must stay a
// bare *net.TCPConn so passthrough keeps the kernel's splice path (see
// docs/RATIONALE.md). The header is read here, under the peek's deadline
// and a size limit; version 1 lines are then parsed by armon/go-proxyproto
// (which speaks only version 1), version 2 in place.

var (
	v2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")
	v1Prefix    = []byte("PROXY ")
	// errProxyHeader means a malformed PROXY header; the connection is closed.
	errProxyHeader = errors.New("malformed PROXY protocol header")
)

const maxV1Header = 107

// readProxyHeader reads a PROXY v1 or v2 header from br if one is there.
// It returns the client's address, or nil when the connection has no
// header or the header says LOCAL/UNKNOWN (health checks).
func readProxyHeader(br *bufio.Reader) (net.Addr, error) {
	first, err := br.Peek(1)
	if err != nil {
		return nil, err
	}
	switch first[0] {
	case 'P':
		if b, err := br.Peek(len(v1Prefix)); err == nil && bytes.Equal(b, v1Prefix) {
			return readV1(br)
		}
	case '\r':
		if b, err := br.Peek(len(v2Signature)); err == nil && bytes.Equal(b, v2Signature) {
			return readV2(br)
		}
	}
	return nil, nil
}

func readV1(br *bufio.Reader) (net.Addr, error) {
	var line []byte
	for len(line) < maxV1Header {
		b, err := br.ReadByte()
		if err != nil {
			return nil, err
		}
		line = append(line, b)
		if bytes.HasSuffix(line, []byte("\r\n")) {
			return parseV1(line)
		}
	}
	return nil, fmt.Errorf("%w: v1 line longer than %d bytes", errProxyHeader, maxV1Header)
}

// parseV1 parses one v1 header line, CRLF included, with
// github.com/armon/go-proxyproto through a connection that replays exactly
// those bytes: the library reads the header and nothing else, and the
// client's connection stays a bare *net.TCPConn for splice. Around it we
// keep what the library leaves out: UNKNOWN (health checks) without a
// listener, and checks of the address family and port range.
func parseV1(line []byte) (net.Addr, error) {
	f := strings.Split(string(line[:len(line)-2]), " ")
	if len(f) >= 2 && f[1] == "UNKNOWN" {
		return nil, nil
	}
	pc := proxyproto.NewConn(&headerConn{r: bytes.NewReader(line)}, 0)
	if _, err := pc.Read(make([]byte, 1)); err != io.EOF {
		return nil, fmt.Errorf("%w: %v", errProxyHeader, err)
	}
	src, _ := pc.RemoteAddr().(*net.TCPAddr)
	dst, _ := pc.LocalAddr().(*net.TCPAddr)
	if src == nil || dst == nil || len(f) != 6 {
		return nil, fmt.Errorf("%w: %q", errProxyHeader, line)
	}
	if strings.Contains(f[2], ":") != (f[1] == "TCP6") || strings.Contains(f[3], ":") != (f[1] == "TCP6") {
		return nil, fmt.Errorf("%w: %s with address %s", errProxyHeader, f[1], f[2])
	}
	for _, a := range []*net.TCPAddr{src, dst} {
		if a.Port < 0 || a.Port > 65535 {
			return nil, fmt.Errorf("%w: port %d out of range", errProxyHeader, a.Port)
		}
	}
	return src, nil
}

// headerConn is the connection parseV1 hands the library: reads replay
// one header line, then EOF; nothing else does anything.
type headerConn struct{ r *bytes.Reader }

func (c *headerConn) Read(b []byte) (int, error)         { return c.r.Read(b) }
func (c *headerConn) Write(b []byte) (int, error)        { return 0, errors.New("header replay is read-only") }
func (c *headerConn) Close() error                       { return nil }
func (c *headerConn) LocalAddr() net.Addr                { return nil }
func (c *headerConn) RemoteAddr() net.Addr               { return nil }
func (c *headerConn) SetDeadline(time.Time) error        { return nil }
func (c *headerConn) SetReadDeadline(time.Time) error    { return nil }
func (c *headerConn) SetWriteDeadline(t time.Time) error { return nil }

func readV2(br *bufio.Reader) (net.Addr, error) {
	hdr := make([]byte, 16)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return nil, err
	}
	verCmd, fam, n := hdr[12], hdr[13], int(binary.BigEndian.Uint16(hdr[14:]))
	if verCmd>>4 != 2 {
		return nil, fmt.Errorf("%w: version %d", errProxyHeader, verCmd>>4)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, err
	}
	switch verCmd & 0xf {
	case 0: // LOCAL: the balancer's own connection (health check)
		return nil, nil
	case 1: // PROXY
	default:
		return nil, fmt.Errorf("%w: command %d", errProxyHeader, verCmd&0xf)
	}
	switch fam {
	case 0x11: // TCP over IPv4
		if n < 12 {
			return nil, fmt.Errorf("%w: short IPv4 block", errProxyHeader)
		}
		ip := netip.AddrFrom4([4]byte(body[0:4]))
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, binary.BigEndian.Uint16(body[8:]))), nil
	case 0x21: // TCP over IPv6
		if n < 36 {
			return nil, fmt.Errorf("%w: short IPv6 block", errProxyHeader)
		}
		ip := netip.AddrFrom16([16]byte(body[0:16]))
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, binary.BigEndian.Uint16(body[32:]))), nil
	}
	return nil, nil // UNSPEC or a non-TCP family: keep the peer address
}

// trustedNets is a set of CIDRs allowed to send PROXY headers.
type trustedNets []netip.Prefix

func parseTrusted(cidrs []string) (trustedNets, error) {
	out := make(trustedNets, 0, len(cidrs))
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			if a, aerr := netip.ParseAddr(c); aerr == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			} else {
				return nil, fmt.Errorf("trusted CIDR %q: %w", c, err)
			}
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func (t trustedNets) contains(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok || len(t) == 0 {
		return false
	}
	ip := ta.AddrPort().Addr().Unmap()
	for _, p := range t {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
