package local

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daskgate/daskgate/cluster"
)

// TestChurnReturnsMemoryToBaseline: hostile churn (clusters of many
// distinct users, each created, run and stopped) leaves no per-name
// state behind once the finished clusters are purged: the records, the
// queue's maps and the process table are empty again, and the heap is
// back near where it started.
func TestChurnReturnsMemoryToBaseline(t *testing.T) {
	var b *Backend
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var hb cluster.Heartbeat
		_ = json.NewDecoder(r.Body).Decode(&hb)
		_ = b.Heartbeat(r.Context(), strings.Split(r.URL.Path, "/")[4], hb)
	}))
	defer api.Close()
	var err error
	b, err = New(Config{Logger: slog.New(slog.DiscardHandler), Dir: t.TempDir(), APIURL: api.URL + "/api", Routes: &routes{},
		StopTimeouts: [3]time.Duration{2 * time.Second, time.Second, time.Second}, StatusPeriod: 100 * time.Millisecond,
		ClusterMaxAge: time.Millisecond, CleanupPeriod: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b.Start()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.Shutdown(ctx)
	}()
	churn := func(from, n int) {
		var wg sync.WaitGroup
		for i := from; i < from+n; i++ {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				c, err := b.Create(ctx, cluster.CreateRequest{Username: fmt.Sprintf("user-%d", i), Config: helperConfig()})
				if err != nil {
					t.Error(err)
					return
				}
				if c, err = b.Wait(ctx, c.Name); err != nil || c.Status != cluster.Running {
					t.Errorf("wait %v %v", c, err)
				}
				if err := b.Stop(ctx, c.Name, false, "churn"); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	state := func() (records, queued, procs int) {
		b.mu.RLock()
		records = len(b.clusters)
		b.mu.RUnlock()
		b.queue.mu.Lock()
		queued = len(b.queue.items) + len(b.queue.queued) + len(b.queue.processing) + len(b.queue.dirty) + len(b.queue.failures)
		b.queue.mu.Unlock()
		b.procs.mu.Lock()
		procs = len(b.procs.children)
		b.procs.mu.Unlock()
		return records, queued, procs
	}
	settle := func() {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			r, q, p := state()
			if r == 0 && q == 0 && p == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("left behind: %d records, %d queue entries, %d processes", r, q, p)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	churn(0, 5) // warm caches and pools
	settle()
	base := heap()
	const rounds, per = 6, 10
	for r := 0; r < rounds; r++ {
		churn(5+r*per, per)
	}
	settle()
	after := heap()
	t.Logf("heap after warm-up %d KiB, after %d clusters of %d users %d KiB", base>>10, rounds*per, rounds*per, after>>10)
	if after > base+1<<20 {
		t.Errorf("heap grew from %d KiB to %d KiB", base>>10, after>>10)
	}
}
