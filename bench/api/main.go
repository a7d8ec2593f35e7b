// Command api benchmarks a running daskgate the way the issue asks: API
// list throughput and p99 at 64 concurrent connections, time from POST to
// RUNNING for 1 and 10 concurrent clusters (real dask schedulers), and the
// gateway's RSS idle and with 100 cluster records. It starts bin/daskgate
// itself on a free loopback port; dask must be on PATH (make bench does).
//
//	go run ./bench/api -bin bin/daskgate
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/daskgate/daskgate/bench/internal/gateway"
)

func main() {
	bin := flag.String("bin", "bin/daskgate", "daskgate binary")
	conns := flag.Int("c", 64, "concurrent connections for the list benchmark")
	dur := flag.Duration("d", 5*time.Second, "duration of the list benchmark")
	flag.Parse()
	if err := run(*bin, *conns, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(bin string, conns int, dur time.Duration) error {
	gw, err := gateway.Start(bin, "")
	if err != nil {
		return err
	}
	defer gw.Stop()
	time.Sleep(time.Second)
	fmt.Printf("gateway RSS idle: %.1f MiB\n", gw.RSSMiB())

	for _, n := range []int{1, 10} {
		lat, err := startClusters(gw.URL, n)
		if err != nil {
			return err
		}
		fmt.Printf("POST -> RUNNING, %2d concurrent: mean %v, max %v\n", n, mean(lat).Round(time.Millisecond), slices.Max(lat).Round(time.Millisecond))
	}
	rps, p50, p99, err := loadList(gw.URL, conns, dur)
	if err != nil {
		return err
	}
	fmt.Printf("GET /api/v1/clusters/ (11 running clusters listed), %d conns: %.0f req/s, p50 %v, p99 %v\n", conns, rps, p50, p99)
	gw.Stop()

	// 100 records: clusters whose "scheduler" is a stub process, so the
	// records exist without 100 Python schedulers on a 2-core machine.
	stub, err := gateway.Start(bin, `{"cluster": {"scheduler_cmd": ["sleep", "600"]}, "backend": {"cluster_start_timeout": "10m"}}`)
	if err != nil {
		return err
	}
	defer stub.Stop()
	for range 100 {
		if _, err := create(stub.URL); err != nil {
			return err
		}
	}
	time.Sleep(2 * time.Second)
	fmt.Printf("gateway RSS with 100 cluster records: %.1f MiB\n", stub.RSSMiB())
	return nil
}

var authHeader = "Basic " + base64.StdEncoding.EncodeToString([]byte("bench:"))

func request(method, url string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", authHeader)
	return http.DefaultClient.Do(req)
}

func create(base string) (string, error) {
	resp, err := request("POST", base+"/api/v1/clusters/", strings.NewReader(`{"cluster_options": {}}`))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct{ Name string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 201 {
		return "", fmt.Errorf("create: %d %v", resp.StatusCode, err)
	}
	return out.Name, nil
}

// startClusters creates n clusters at once and returns, for each, the time
// from POST to the long poll reporting RUNNING.
func startClusters(base string, n int) ([]time.Duration, error) {
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			start := time.Now()
			name, err := create(base)
			for err == nil {
				var resp *http.Response
				if resp, err = request("GET", base+"/api/v1/clusters/"+name+"?wait", nil); err != nil {
					break
				}
				var c struct{ Status, Error string }
				err = json.NewDecoder(resp.Body).Decode(&c)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("cluster %s: %d %s", name, resp.StatusCode, c.Error)
					break
				}
				if c.Status == "RUNNING" {
					lat[i] = time.Since(start)
					return
				}
				if c.Status != "PENDING" {
					err = fmt.Errorf("cluster %s is %s", name, c.Status)
				}
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return lat, nil
}

// loadList runs conns workers doing GET /api/v1/clusters/ for d, with the
// session cookie once the first authenticated answer sets it, as the
// Python client does.
func loadList(base string, conns int, d time.Duration) (rps float64, p50, p99 time.Duration, err error) {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Transport: tr, Jar: jar}
	if resp, err := client.Get(base + "/api/v1/clusters/"); err == nil { // 401, like the real client
		resp.Body.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var lats []time.Duration
	var failed error
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Go(func() {
			var mine []time.Duration
			for ctx.Err() == nil {
				t := time.Now()
				req, _ := http.NewRequest("GET", base+"/api/v1/clusters/", nil)
				if len(jar.Cookies(req.URL)) == 0 {
					req.Header.Set("Authorization", authHeader)
				}
				resp, err := client.Do(req)
				if err != nil {
					break
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					mu.Lock()
					failed = fmt.Errorf("list answered %d", resp.StatusCode)
					mu.Unlock()
					break
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failed != nil || len(lats) == 0 {
		return 0, 0, 0, fmt.Errorf("load failed: %v", failed)
	}
	slices.Sort(lats)
	return float64(len(lats)) / elapsed.Seconds(), lats[len(lats)/2], lats[len(lats)*99/100], nil
}

func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}
