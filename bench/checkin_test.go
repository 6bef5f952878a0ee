//go:build benchscale

package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/checkin"
	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/testservices"
)

// TestCheckins measures the worker's check-in endpoint: a group of N instances on the test
// driver waits for its guests' check-ins; the benchmark checks each in once (each a MySQL
// write and a signal to its workflow), then posts heartbeats (a MySQL write each) from C
// clients for a while, and prints requests per second and latency percentiles of both.
//
//	PREMISCALE_BENCH_CHECKIN_INSTANCES (100), PREMISCALE_BENCH_CHECKIN_CLIENTS (16),
//	PREMISCALE_BENCH_CHECKIN_DURATION (20s)
func TestCheckins(t *testing.T) {
	n := envInt(t, "PREMISCALE_BENCH_CHECKIN_INSTANCES", 100)
	clients := envInt(t, "PREMISCALE_BENCH_CHECKIN_CLIENTS", 16)
	duration := envDuration(t, "PREMISCALE_BENCH_CHECKIN_DURATION", 20*time.Second)
	s := newStack(t)
	host := testservices.UniqueName(t, "h")
	group := testservices.UniqueName(t, "ci")
	wc := workerConfig{Host: host, TaskQueue: testservices.UniqueName(t, "tq"), Interval: 10 * time.Second}
	path, cfg := s.config(wc)
	w := s.startWorker(path, cfg)
	c := s.clients(cfg)
	scaling := fmt.Sprintf("{minNodes: %d, maxNodes: %d, increment: %d, maxConcurrentLaunches: 0, resourceTarget: {cpu: 50}}", n, n, n)
	gs := s.groupSpec(wc, group, s.testDriverGroup(group, host, scaling, true))
	if _, err := c.groups.Apply(context.Background(), gs); err != nil {
		t.Fatal(err)
	}
	st := c.waitStatus(t, group, 200*time.Millisecond, 10*time.Minute, fmt.Sprintf("%d booting", n), func(st groupctl.Status) bool {
		booting := 0
		for _, in := range st.Instances {
			if in.State == spec.StateBooting {
				booting++
			}
		}
		return booting == n
	})
	urls := make([]string, len(st.Instances))
	for i, in := range st.Instances {
		urls[i] = checkin.URL(w.checkin, []byte(checkinSecret), in.Name)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: 30 * time.Second}
	report(t, "checkin", "%d instances, %d clients, worker pid %d", n, clients, w.pid())

	// First check-ins: each signals its instance's workflow.
	smp := startSampler(map[string]int{"worker": w.pid()})
	var next atomic.Int64
	first := hammer(t, hc, clients, func() (string, bool) {
		i := next.Add(1) - 1
		if int(i) >= len(urls) {
			return "", false
		}
		return urls[i], true
	}, "")
	use := smp.stop()
	report(t, "checkin", "first check-ins: %s; worker %s", first, use["worker"])
	c.waitStatus(t, group, 200*time.Millisecond, 5*time.Minute, fmt.Sprintf("%d running", n), allRunning(n))

	// Heartbeats, round robin over the instances, for the duration.
	smp = startSampler(map[string]int{"worker": w.pid()})
	deadline := time.Now().Add(duration)
	next.Store(0)
	beats := hammer(t, hc, clients, func() (string, bool) {
		if time.Now().After(deadline) {
			return "", false
		}
		return urls[int(next.Add(1)-1)%len(urls)], true
	}, "heartbeat=true")
	use = smp.stop()
	report(t, "checkin", "heartbeats: %s; worker %s", beats, use["worker"])
}

// load is the result of a hammer run.
type load struct {
	requests, failures int
	elapsed            time.Duration
	latencies          []time.Duration
	firstFailure       string
}

func (l load) String() string {
	lat := sortedCopy(l.latencies)
	s := fmt.Sprintf("%d requests in %.1f s, %.0f/s, latency p50 %.1f ms, p95 %.1f ms, p99 %.1f ms",
		l.requests, l.elapsed.Seconds(), float64(l.requests)/l.elapsed.Seconds(),
		ms(percentile(lat, 50)), ms(percentile(lat, 95)), ms(percentile(lat, 99)))
	if l.failures > 0 {
		s += fmt.Sprintf(", %d failed (first: %s)", l.failures, l.firstFailure)
	}
	return s
}

// hammer posts form bodies from width clients to the URLs next gives until it says stop.
func hammer(t *testing.T, hc *http.Client, width int, next func() (string, bool), form string) load {
	t.Helper()
	var mu sync.Mutex
	var out load
	var wg sync.WaitGroup
	start := time.Now()
	for range width {
		wg.Go(func() {
			for {
				u, ok := next()
				if !ok {
					return
				}
				t0 := time.Now()
				err := post(hc, u, form)
				d := time.Since(t0)
				mu.Lock()
				out.requests++
				out.latencies = append(out.latencies, d)
				if err != nil {
					out.failures++
					if out.firstFailure == "" {
						out.firstFailure = err.Error()
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	out.elapsed = time.Since(start)
	return out
}

func post(hc *http.Client, u, form string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", redact(u), resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// redact drops the token from a check-in URL.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "?"
	}
	p.Path = p.Path[:strings.LastIndexByte(p.Path, '/')+1] + "…"
	return p.String()
}
