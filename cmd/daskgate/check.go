package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// checkCmd asks a gateway's health route and fails unless it answers
// "pass": the Helm test hook and container health checks use it, since
// the image has no shell or curl.
func checkCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: daskgate check [-timeout 10s] http://host:port/<prefix>/api/health")
	}
	url := fs.Arg(0)
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get(url)
	if err != nil {
		return fmt.Errorf("check %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var health struct {
		Status string `json:"status"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &health) != nil || health.Status != "pass" {
		return fmt.Errorf("check %s: %s %s", url, resp.Status, body)
	}
	fmt.Fprintf(stdout, "%s: %s\n", url, body)
	return nil
}
