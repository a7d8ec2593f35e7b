package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxCounts bounds the reply read from a scheduler (tenant-controlled
// bytes); distributed's counts are a few hundred bytes.
const maxCounts = 64 << 10

// counts is the part of distributed's dashboard json/counts.json the
// watcher reads. The scheduler always holds one client of its own,
// "fire-and-forget", which the count includes.
type counts struct {
	Clients    int `json:"clients"`
	Processing int `json:"processing"`
	Waiting    int `json:"waiting"`
}

func (c counts) clients() int { return max(c.Clients-1, 0) }

func (c counts) busy() bool { return c.Processing > 0 || c.Waiting > 0 }

// fetchCounts asks a scheduler's dashboard at addr (http://host:port) for
// its counts, within the client's timeout and ctx.
func fetchCounts(ctx context.Context, client *http.Client, addr string) (counts, error) {
	if !strings.HasPrefix(addr, "http://") && !strings.HasPrefix(addr, "https://") {
		addr = "http://" + addr
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(addr, "/")+"/json/counts.json", nil)
	if err != nil {
		return counts{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return counts{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return counts{}, fmt.Errorf("dashboard answered %s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxCounts+1))
	if err != nil {
		return counts{}, err
	}
	return parseCounts(b)
}

// parseCounts decodes a counts reply; anything but one JSON object of at
// most maxCounts bytes with non-negative counts is an error.
func parseCounts(b []byte) (counts, error) {
	if len(b) > maxCounts {
		return counts{}, fmt.Errorf("counts reply larger than %d bytes", maxCounts)
	}
	var c counts
	if err := json.Unmarshal(b, &c); err != nil {
		return counts{}, fmt.Errorf("counts reply: %w", err)
	}
	if c.Clients < 0 || c.Processing < 0 || c.Waiting < 0 {
		return counts{}, fmt.Errorf("counts reply has negative counts")
	}
	return c, nil
}
