package local

import (
	"syscall"
	"testing"

	"github.com/daskgate/daskgate/backend/backendtest"
)

// TestContract runs the backend contract (backend/backendtest) against
// the local backend: the scheduler is this test binary re-executed, which
// heartbeats like the preload; workers are more of it, waiting.
func TestContract(t *testing.T) {
	b, _ := newBackend(t, nil, t.TempDir())
	backendtest.Run(t, backendtest.Harness{
		Backend: b,
		Config:  helperConfig(),
		Workers: func(t *testing.T, name string) int {
			b.mu.RLock()
			defer b.mu.RUnlock()
			n := 0
			if r := b.clusters[name]; r != nil {
				for _, w := range r.Workers {
					if b.procs.alive(w.PID, name) {
						n++
					}
				}
			}
			return n
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
