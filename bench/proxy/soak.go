package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/daskgate/daskgate/bench/internal/gateway"
)

// runSoak starts the gateway with a 5 s hello timeout, opens n idle
// connections, and samples the gateway's RSS until they are all closed.
func runSoak(bin string, n int) error {
	gw, err := gateway.Start(bin, "proxy: {hello_timeout: 5s}")
	if err != nil {
		return err
	}
	defer gw.Stop()
	addr := gw.Addr
	base := gw.RSSMiB()
	conns := make([]net.Conn, 0, n)
	opened := time.Now()
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("after %d connections: %w", len(conns), err)
		}
		conns = append(conns, c)
	}
	fmt.Printf("opened %d idle connections in %v\n", n, time.Since(opened).Round(time.Millisecond))
	closed := make(chan time.Duration, n)
	for _, c := range conns {
		go func() {
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, err := c.Read(make([]byte, 1))
			if err == io.EOF {
				closed <- time.Since(opened)
			} else {
				closed <- -1
			}
			c.Close()
		}()
	}
	ctx, cancel := context.WithCancel(context.Background())
	peak := make(chan float64)
	go func() {
		max := 0.0
		for ctx.Err() == nil {
			max = maxf(max, gw.RSSMiB())
			time.Sleep(50 * time.Millisecond)
		}
		peak <- max
	}()
	var times []time.Duration
	for range n {
		if d := <-closed; d >= 0 {
			times = append(times, d)
		}
	}
	cancel()
	slices.Sort(times)
	if len(times) != n {
		return fmt.Errorf("only %d of %d connections were closed by the gateway", len(times), n)
	}
	fmt.Printf("all %d closed by the gateway: first after %v, last after %v (hello_timeout 5s)\n", n,
		times[0].Round(time.Millisecond), times[n-1].Round(time.Millisecond))
	fmt.Printf("gateway RSS: %.1f MiB before, peak %.1f MiB with %d idle connections, %.1f MiB after\n",
		base, <-peak, n, gw.RSSMiB())
	return nil
}

func maxf(a, b float64) float64 {
	if a > b {
		return a
	}
	return b
}
