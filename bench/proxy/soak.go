package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

func startGateway(bin string) (*os.Process, string, error) {
	dir, err := os.MkdirTemp("", "daskgate-soak")
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("proxy: {hello_timeout: 5s}\nlog: {level: warn}\n"), 0o600); err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "serve", "--config", cfg, "--address", addr, "--data-dir", filepath.Join(dir, "data"))
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	for range 200 {
		if resp, err := http.Get("http://" + addr + "/api/health"); err == nil {
			resp.Body.Close()
			time.Sleep(500 * time.Millisecond)
			return cmd.Process, addr, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	cmd.Process.Kill()
	return nil, "", fmt.Errorf("gateway did not start")
}

func rss(pid int) float64 {
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
