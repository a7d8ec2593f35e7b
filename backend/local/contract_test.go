package local

import (
	"context"
	"strconv"
	"syscall"
	"testing"

	"github.com/daskgate/daskgate/backend/backendtest"
	"github.com/daskgate/daskgate/server"
)

// TestContract runs the backend contract (backend/backendtest) against
// the local backend: the scheduler is this test binary re-executed, which
// heartbeats like the preload; workers are more of it, waiting.
func TestContract(t *testing.T) {
	dir := t.TempDir()
	db := testStore(t, dir)
	b, _ := newBackend(t, db, dir)
	backendtest.Run(t, backendtest.Harness{
		Backend: b,
		Restart: func(t *testing.T) server.Backend {
			b.Shutdown(context.Background()) // StopOnShutdown is false: processes stay
			b, _ = newBackend(t, db, dir)
			return b
		},
		Config: helperConfig(),
		Workers: func(t *testing.T, name string) []string {
			b.mu.RLock()
			defer b.mu.RUnlock()
			var out []string
			if r := b.clusters[name]; r != nil {
				for _, w := range r.Workers {
					if b.procs.alive(w.PID, name) {
						out = append(out, strconv.Itoa(w.PID))
					}
				}
			}
			return out
		},
		KillWorker: func(t *testing.T, name string) string {
			b.mu.RLock()
			pid := 0
			for _, w := range b.clusters[name].Workers {
				if b.procs.alive(w.PID, name) {
					pid = w.PID
				}
			}
			b.mu.RUnlock()
			if err := syscall.Kill(pid, syscall.SIGKILL); pid == 0 || err != nil {
				t.Fatalf("kill worker %d: %v", pid, err)
			}
			return strconv.Itoa(pid)
		},
		KillScheduler: func(t *testing.T, name string) {
			b.mu.RLock()
			pid := b.clusters[name].PID
			b.mu.RUnlock()
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		},
	})
}
