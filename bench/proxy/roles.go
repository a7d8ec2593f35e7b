package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"

	"github.com/daskgate/daskgate/bench/internal/gateway"
	"github.com/daskgate/daskgate/proxy"
)

// The bench's roles: the backend (a scheduler stand-in) and the proxy,
// in this process or as child processes.

// childPids are the split roles' processes.
var childPids = map[string]int{}

// cpuByRole reads the CPU time of this process (the client) and of the
// child processes.
func cpuByRole() map[string]float64 {
	out := gateway.CPUSecondsOf(childPids)
	out["client"] = gateway.CPUSeconds(os.Getpid())
	return out
}

// startRole runs the backend or the proxy in a child process (split) or
// in this one; a pinned child runs on CPU 1.
func startRole(role, target string, split, pin bool) (string, func(), error) {
	if split {
		return spawnChild(role, target, pin)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	times := &setupTimes{}
	go serveRole(ln, role, target, times)
	return ln.Addr().String(), func() {
		ln.Close()
		if role == "proxy" {
			fmt.Println(times)
		}
	}, nil
}

// spawnChild re-executes this binary as the backend or the proxy and
// returns the address it prints.
func spawnChild(role, target string, pin bool) (string, func(), error) {
	args := []string{os.Args[0], "-child", role, "-target", target, "-proxy-protocol", proxyProtocol}
	if pin {
		args = append([]string{"taskset", "-c", "1"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	childPids[role] = cmd.Process.Pid // taskset execs the child in place
	br := bufio.NewReader(out)
	line, err := br.ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		return "", nil, fmt.Errorf("%s child: %w", role, err)
	}
	// Closing stdin asks the child for its report line, then it exits.
	return strings.TrimSpace(line), func() {
		in.Close()
		if report, _ := br.ReadString('\n'); report != "" {
			fmt.Print(report)
		}
		cmd.Process.Kill()
		cmd.Wait()
	}, nil
}

func runChild(role, target string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	times := &setupTimes{}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		if role == "proxy" {
			fmt.Println(times)
		}
		os.Exit(0)
	}()
	return serveRole(ln, role, target, times)
}

func serveRole(ln net.Listener, role, target string, times *setupTimes) error {
	if role == "proxy" {
		table := proxy.NewTable()
		table.SetCluster("bench", "tls://"+target, "")
		cfg := proxy.Config{API: http.NotFoundHandler(), Routes: table, DialContext: times.dial}
		if proxyProtocol != "" {
			cfg.TrustedProxies = []string{"127.0.0.1"}
		}
		p, err := proxy.New(cfg)
		if err != nil {
			return err
		}
		return p.Serve(times.listener(ln))
	}
	hello, err := clientHello("daskgateway-bench")
	if err != nil {
		return err
	}
	serveBackend(ln, len(hello))
	return nil
}

// serveBackend plays a scheduler: it reads the hello, answers one byte,
// then reads raw bytes until the client half-closes.
func serveBackend(ln net.Listener, helloLen int) {
	func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, helloLen)
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				c.Write([]byte{1})
				big := make([]byte, 1<<20)
				for {
					if _, err := c.Read(big); err != nil {
						return
					}
				}
			}()
		}
	}()
}
