// Package gateway starts bin/daskgate for the bench programs and reads its
// memory, so each benchmark measures the real binary.
//
//	gw, err := gateway.Start("bin/daskgate", "proxy: {hello_timeout: 5s}")
//	defer gw.Stop()
//	fmt.Println(gw.URL, gw.RSSMiB())
package gateway

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Gateway is a running daskgate on a free loopback port with its own data dir.
type Gateway struct {
	URL  string // http://127.0.0.1:port
	Addr string // 127.0.0.1:port
	cmd  *exec.Cmd
	dir  string
}

// Start runs bin serve with config (YAML, may be "") and waits for health.
func Start(bin, config string) (*Gateway, error) {
	dir, err := os.MkdirTemp("", "daskgate-bench")
	if err != nil {
		return nil, err
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(config+"\n"), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--config", path, "--address", addr, "--data-dir", filepath.Join(dir, "data"), "--log-level", "error")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	g := &Gateway{URL: "http://" + addr, Addr: addr, cmd: cmd, dir: dir}
	for range 400 {
		if resp, err := http.Get(g.URL + "/api/health"); err == nil {
			resp.Body.Close()
			return g, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	g.Stop()
	return nil, fmt.Errorf("gateway did not start")
}

// Stop sends SIGTERM, waits, and removes the data dir.
func (g *Gateway) Stop() {
	if g.cmd.ProcessState == nil {
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		_ = g.cmd.Wait()
	}
	os.RemoveAll(g.dir)
}

// RSSMiB is the gateway's resident memory.
func (g *Gateway) RSSMiB() float64 { return RSSMiB(g.cmd.Process.Pid) }

// RSSMiB is a process's resident memory (VmRSS), 0 if it is gone.
func RSSMiB(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			var kb float64
			fmt.Sscan(f[1], &kb)
			return kb / 1024
		}
	}
	return 0
}

// Pid is the gateway process id.
func (g *Gateway) Pid() int { return g.cmd.Process.Pid }

// CPUSeconds is the user+system CPU time a process has used (clock ticks
// of 1/100 s, as Linux reports them), 0 if it is gone.
func CPUSeconds(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	_, rest, ok := strings.Cut(string(b), ") ") // the command name may hold spaces
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0
	}
	var user, sys float64
	fmt.Sscan(f[11], &user)
	fmt.Sscan(f[12], &sys)
	return (user + sys) / 100
}

// CPUSecondsOf reads CPUSeconds for each named process.
func CPUSecondsOf(pids map[string]int) map[string]float64 {
	out := make(map[string]float64, len(pids))
	for name, pid := range pids {
		out[name] = CPUSeconds(pid)
	}
	return out
}

// FreeAddr is a loopback address with a port that was free a moment ago,
// for a server process the bench starts.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
