//go:build daskgate_testdial

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
)

// Built with -tags daskgate_testdial for tests only (charts/): where no
// container runtime runs pods, the test runs each Dask pod as a local
// process and writes the Service addresses it stands in for to the JSON
// file $DASKGATE_TESTDIAL_MAP ("dask-<hex>.<ns>:8786" -> "127.0.0.1:port").
// The released binary has no such hook.
func init() {
	testDial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		b, err := os.ReadFile(os.Getenv("DASKGATE_TESTDIAL_MAP"))
		if err != nil {
			return nil, err
		}
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		local, ok := m[addr]
		if !ok {
			return nil, fmt.Errorf("testdial: no local process serves %s", addr)
		}
		return (&net.Dialer{}).DialContext(ctx, network, local)
	}
}
