// Command proxy benchmarks daskgate's SNI passthrough against a direct
// loopback connection: throughput of 1 GiB, and new-connection latency
// (dial, ClientHello, first reply byte), printed side by side. With -soak
// it instead starts bin/daskgate, opens N connections that never send a
// byte, and reports when they were closed and the gateway's peak RSS.
// -split and -pin run the roles as processes (-pin gives the proxy a vCPU
// of its own); -haproxy adds HAProxy doing the same routing as a reference.
//
//	go run ./bench/proxy
//	go run ./bench/proxy -pin -haproxy
//	go run ./bench/proxy -soak -bin bin/daskgate -n 5000
package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daskgate/daskgate/bench/internal/gateway"
)

func main() {
	size := flag.Int64("bytes", 1<<30, "bytes to send for the throughput test")
	conns := flag.Int("conns", 2000, "connections for the latency test")
	soak := flag.Bool("soak", false, "run the idle-connection soak instead")
	split := flag.Bool("split", false, "run backend and proxy as separate processes")
	withHAProxy := flag.Bool("haproxy", false, "also measure HAProxy (from PATH) doing the same SNI routing with splice, as a reference")
	pin := flag.Bool("pin", false, "give the proxy a vCPU of its own (implies -split): client and backend on CPU 0, proxy on CPU 1, via taskset")
	child := flag.String("child", "", "internal: run as the backend or proxy process")
	target := flag.String("target", "", "internal: the proxy child's backend address")
	bin := flag.String("bin", "bin/daskgate", "daskgate binary (soak)")
	n := flag.Int("n", 5000, "idle connections (soak)")
	flag.StringVar(&proxyProtocol, "proxy-protocol", "", "v1 or v2: the proxy trusts loopback and each of its connections starts with a PROXY header of that version")
	flag.Parse()
	var err error
	if *child != "" {
		err = runChild(*child, *target)
	} else if *soak {
		err = runSoak(*bin, *n)
	} else if *pin && os.Getenv(pinnedEnv) == "" {
		err = rerunPinned()
	} else {
		err = run(*size, *conns, *split || *pin, *pin, *withHAProxy)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// pinnedEnv marks the bench process that -pin re-executed on CPU 0.
const pinnedEnv = "DASKGATE_BENCH_PINNED"

// rerunPinned runs this command again under taskset on CPU 0; its
// children inherit that CPU, except the proxy, which gets CPU 1. This is
// the production layout, where the proxy's CPU is not the endpoints'.
func rerunPinned() error {
	cmd := exec.Command("taskset", append([]string{"-c", "0", os.Args[0]}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), pinnedEnv+"=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

func run(size int64, conns int, split, pin, withHAProxy bool) error {
	hello, err := clientHello("daskgateway-bench")
	if err != nil {
		return err
	}
	// -split runs backend and proxy as child processes; by default all
	// three roles share this process (less noise on two cores).
	if pin {
		fmt.Println("pinned: client and backend on CPU 0, proxy on CPU 1")
	}
	backend, stopBackend, err := startRole("backend", "", split, false)
	if err != nil {
		return err
	}
	defer stopBackend()
	proxyAddr, stopProxy, err := startRole("proxy", backend, split, pin)
	if err != nil {
		return err
	}
	defer func() {
		if stopProxy != nil {
			stopProxy()
		}
	}()
	headed, err := withProxyHeader(hello)
	if err != nil {
		return err
	}
	targets := []struct {
		name, addr string
		hello      []byte
	}{{"direct", backend, hello}, {"proxy", proxyAddr, headed}}
	if withHAProxy {
		addr, stop, err := startHAProxy(backend, pin)
		if err != nil {
			return err
		}
		defer stop()
		targets = append(targets, struct {
			name, addr string
			hello      []byte
		}{"haproxy", addr, hello})
	}
	// Alternate the two paths so both see the same machine noise.
	best := map[string]float64{}
	cpu := map[string]float64{} // CPU seconds by path and process (split only)
	for round := range 4 {
		for _, t := range targets {
			before := cpuByRole()
			rate, err := throughput(t.addr, t.hello, size/4)
			if err != nil {
				return err
			}
			if round > 0 { // the first round warms up
				best[t.name] = max(best[t.name], rate)
				for role, v := range cpuByRole() {
					cpu[t.name+" "+role] += v - before[role]
				}
			}
		}
	}
	for _, t := range targets {
		fmt.Printf("throughput %-7s %8.0f MiB/s (best of 3 x %d MiB)\n", t.name, best[t.name], size>>22)
	}
	fmt.Printf("throughput proxy/direct: %.2fx\n", best["proxy"]/best["direct"])
	if withHAProxy {
		fmt.Printf("throughput haproxy/direct: %.2fx\n", best["haproxy"]/best["direct"])
	}
	if split {
		gib := float64(3*(size/4)) / (1 << 30)
		fmt.Printf("CPU seconds per GiB: direct: client %.2f + backend %.2f; through the proxy: client %.2f + backend %.2f + proxy %.2f\n",
			cpu["direct client"]/gib, cpu["direct backend"]/gib, cpu["proxy client"]/gib, cpu["proxy backend"]/gib, cpu["proxy proxy"]/gib)
		if withHAProxy {
			fmt.Printf("CPU seconds per GiB through haproxy: client %.2f + backend %.2f + haproxy %.2f\n",
				cpu["haproxy client"]/gib, cpu["haproxy backend"]/gib, cpu["haproxy haproxy"]/gib)
		}
	}
	lats := map[string][]time.Duration{}
	for range conns {
		for _, t := range targets {
			d, err := connectOnce(t.addr, t.hello)
			if err != nil {
				return err
			}
			lats[t.name] = append(lats[t.name], d)
		}
	}
	var p50s, p99s []time.Duration
	for _, t := range targets {
		lat := lats[t.name]
		slices.Sort(lat)
		p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
		p50s, p99s = append(p50s, p50), append(p99s, p99)
		fmt.Printf("new connection %-7s p50 %8v  p99 %8v (%d conns, interleaved)\n", t.name, p50.Round(time.Microsecond), p99.Round(time.Microsecond), conns)
	}
	for i := 1; i < len(targets); i++ {
		fmt.Printf("added per new connection by %s: p50 %v, p99 %v\n", targets[i].name, (p50s[i] - p50s[0]).Round(time.Microsecond), (p99s[i] - p99s[0]).Round(time.Microsecond))
	}
	stopProxy() // prints the proxy's own share
	stopProxy = nil
	return nil
}

// setupTimes records, inside the proxy, the time from Accept returning to
// the scheduler's connection being dialed: the proxy's own work for a new
// connection (wake-up, ClientHello read and parse, route lookup, dial).
// Valid for the one-at-a-time connections this bench makes.
type setupTimes struct {
	accepted atomic.Int64
	mu       sync.Mutex
	samples  []time.Duration
}

func (t *setupTimes) listener(ln net.Listener) net.Listener { return timedListener{ln, t} }

type timedListener struct {
	net.Listener
	t *setupTimes
}

func (l timedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	l.t.accepted.Store(time.Now().UnixNano())
	return c, err
}

func (t *setupTimes) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext(ctx, network, addr)
	if err == nil {
		d := time.Duration(time.Now().UnixNano() - t.accepted.Load())
		t.mu.Lock()
		t.samples = append(t.samples, d)
		t.mu.Unlock()
	}
	return c, err
}

func (t *setupTimes) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lat := slices.Clone(t.samples)
	if len(lat) == 0 {
		return "proxy's own time per new connection: no samples"
	}
	slices.Sort(lat)
	return fmt.Sprintf("proxy's own time per new connection (accept to scheduler dialed): p50 %v, p99 %v (%d conns)",
		lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond), len(lat))
}

// clientHello captures a real ClientHello record from crypto/tls.
func clientHello(sni string) ([]byte, error) {
	c, s := net.Pipe()
	go func() { _ = tls.Client(c, &tls.Config{ServerName: sni, InsecureSkipVerify: true}).Handshake() }()
	defer c.Close()
	defer s.Close()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(s, hdr); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(s, body); err != nil {
		return nil, err
	}
	return append(hdr, body...), nil
}

// startHAProxy runs HAProxy as a reference: the same SNI routing in TCP
// mode, with kernel splicing, one thread (on CPU 1 when pinned).
func startHAProxy(backend string, pin bool) (string, func(), error) {
	addr, err := gateway.FreeAddr()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "bench-haproxy")
	if err != nil {
		return "", nil, err
	}
	conf := fmt.Sprintf(`global
  nbthread 1
defaults
  mode tcp
  option splice-auto
  timeout connect 10s
  timeout client 1m
  timeout server 1m
frontend sni
  bind %s
  tcp-request inspect-delay 10s
  tcp-request content accept if { req_ssl_hello_type 1 }
  use_backend scheduler if { req_ssl_sni -i daskgateway-bench }
backend scheduler
  server s1 %s
`, addr, backend)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return "", nil, err
	}
	args := []string{"haproxy", "-db", "-f", path}
	if pin {
		args = append([]string{"taskset", "-c", "1"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("haproxy: %w", err)
	}
	childPids["haproxy"] = cmd.Process.Pid
	stop := func() { cmd.Process.Kill(); cmd.Wait(); os.RemoveAll(dir) }
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, stop, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("haproxy did not listen on %s", addr)
}

// proxyProtocol is the -proxy-protocol flag.
var proxyProtocol string

// withProxyHeader prepends the PROXY header -proxy-protocol asks for: a
// load balancer's, naming a client at 203.0.113.7:40000.
func withProxyHeader(hello []byte) ([]byte, error) {
	switch proxyProtocol {
	case "":
		return hello, nil
	case "v1":
		return append([]byte("PROXY TCP4 203.0.113.7 127.0.0.1 40000 8000\r\n"), hello...), nil
	case "v2":
		h := append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x21, 0x11, 0, 12, 203, 0, 113, 7, 127, 0, 0, 1, 0x9c, 0x40, 0x1f, 0x40)
		return append(h, hello...), nil
	}
	return nil, fmt.Errorf("-proxy-protocol %q: want v1 or v2", proxyProtocol)
}

// handshake dials, sends the ClientHello and waits for the backend's byte.
func handshake(addr string, hello []byte) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err = c.Write(hello); err == nil {
		_, err = io.ReadFull(c, make([]byte, 1))
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func throughput(addr string, hello []byte, size int64) (float64, error) {
	c, err := handshake(addr, hello)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	start := time.Now()
	for sent := int64(0); sent < size; sent += int64(len(buf)) {
		if _, err := c.Write(buf); err != nil {
			return 0, err
		}
	}
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c) // until the backend has read everything and closed
	return float64(size) / (1 << 20) / time.Since(start).Seconds(), nil
}

// connectOnce times one handshake.
func connectOnce(addr string, hello []byte) (time.Duration, error) {
	start := time.Now()
	c, err := handshake(addr, hello)
	if err != nil {
		return 0, err
	}
	c.Close()
	return time.Since(start), nil
}
