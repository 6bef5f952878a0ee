package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/influxdb"
	"github.com/premiscale/premiscale/internal/libvirt"
)

// fakeSource serves whatever the test sets; it is safe for concurrent use so Run can read it.
type fakeSource struct {
	mu       sync.Mutex
	managed  []libvirt.Domain
	stats    []libvirt.DomainStats
	host     libvirt.HostInfo
	free     uint64
	listErr  error
	statsErr error
	hostErr  error
}

func (f *fakeSource) set(managed []libvirt.Domain, stats []libvirt.DomainStats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.managed, f.stats = managed, stats
}

func (f *fakeSource) ListManagedDomains(context.Context) ([]libvirt.Domain, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.managed, f.listErr
}

func (f *fakeSource) AllDomainStats(context.Context) ([]libvirt.DomainStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats, f.statsErr
}

func (f *fakeSource) HostInfo(context.Context) (libvirt.HostInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.host, f.hostErr
}

func (f *fakeSource) FreeMemoryBytes(context.Context) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.free, nil
}

// fakeSink records every batch it is given, and fails with err when set.
type fakeSink struct {
	mu           sync.Mutex
	domain       [][]influxdb.DomainSample
	host         [][]influxdb.HostSample
	err          error
	domainWrites int
}

func (f *fakeSink) WriteDomainSamples(_ context.Context, s []influxdb.DomainSample) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.domainWrites++
	if f.err != nil {
		return f.err
	}
	f.domain = append(f.domain, s)
	return nil
}

func (f *fakeSink) WriteHostSamples(_ context.Context, s []influxdb.HostSample) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.host = append(f.host, s)
	return nil
}

func (f *fakeSink) writes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.domainWrites
}

// clock is a manual clock for Collector.Now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newTestCollector(t *testing.T, src Source, sink Sink) (*Collector, *clock) {
	clk := &clock{t: epoch}
	c := New("h1", src, sink, time.Second, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})))
	c.Now = clk.now
	return c, clk
}

func dom(name, group string, vcpus int) libvirt.Domain {
	return libvirt.Domain{Name: name, Group: group, State: libvirt.StateRunning, VCPUs: vcpus}
}

// pooled is a running warm-pool member of group web with 2 vCPUs.
func pooled(name string) libvirt.Domain {
	d := dom(name, "web", 2)
	d.Pool = true
	return d
}

func running(name string, vcpus int, cpuNs uint64) libvirt.DomainStats {
	return libvirt.DomainStats{Name: name, State: libvirt.StateRunning, VCPUs: vcpus, CPUTimeNs: cpuNs}
}

func withBalloon(s libvirt.DomainStats, current, available, usable, unused uint64) libvirt.DomainStats {
	s.BalloonCurrentKiB, s.BalloonAvailableKiB, s.BalloonUsableKiB, s.BalloonUnusedKiB = current, available, usable, unused
	return s
}

func pct(v float64) *float64 { return &v }

// want is an expected domain sample: instance, group, CPU and memory percentages.
type want struct {
	instance, group string
	cpu             float64
	mem             *float64
}

type round struct {
	advance time.Duration // clock step before the round
	managed []libvirt.Domain
	stats   []libvirt.DomainStats
	want    []want // nil: no domain batch written
}

const sec = time.Second

func TestSample(t *testing.T) {
	web1 := dom("web-1", "web", 2)
	tests := []struct {
		name   string
		rounds []round
	}{
		{"first sight only records a baseline", []round{
			{managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("web-1", 2, 5e9)}},
		}},
		{"second round: 50% on 2 vCPUs", []round{
			{managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("web-1", 2, 5e9)}},
			{advance: sec, managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("web-1", 2, 6e9)},
				want: []want{{"web-1", "web", 50, nil}}},
			{advance: 2 * sec, managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("web-1", 2, 7e9)},
				want: []want{{"web-1", "web", 25, nil}}},
		}},
		{"more CPU than wall time is clamped to 100", []round{
			{managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("web-1", 2, 1e9)}},
			{advance: sec, managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("web-1", 2, 4e9)},
				want: []want{{"web-1", "web", 100, nil}}},
		}},
		{"vCPU count falls back to the domain's when stats lack it", []round{
			{managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("web-1", 0, 1e9)}},
			{advance: sec, managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("web-1", 0, 1.5e9)},
				want: []want{{"web-1", "web", 25, nil}}},
		}},
		{"restarted domain (cpu.time went back) re-baselines", []round{
			{managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("web-1", 2, 50e9)}},
			{advance: sec, managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("web-1", 2, 1e9)}},
			{advance: sec, managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("web-1", 2, 1.5e9)},
				want: []want{{"web-1", "web", 25, nil}}},
		}},
		{"foreign domain ignored", []round{
			{managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("mine", 1, 1e9), running("web-1", 2, 1e9)}},
			{advance: sec, managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("mine", 1, 2e9), running("web-1", 2, 2e9)},
				want: []want{{"web-1", "web", 50, nil}}},
		}},
		{"two groups in one batch", []round{
			{managed: []libvirt.Domain{dom("api-1", "api", 1), web1},
				stats: []libvirt.DomainStats{running("api-1", 1, 1e9), running("web-1", 2, 1e9)}},
			{advance: sec, managed: []libvirt.Domain{dom("api-1", "api", 1), web1},
				stats: []libvirt.DomainStats{running("api-1", 1, 1.1e9), running("web-1", 2, 1.2e9)},
				want:  []want{{"api-1", "api", 10, nil}, {"web-1", "web", 10, nil}}},
		}},
		{"vanished domain forgotten: it comes back with a fresh baseline", []round{
			{managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("web-1", 2, 1e9)}},
			{advance: sec},
			{advance: sec, managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("web-1", 2, 9e9)}},
			{advance: sec, managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("web-1", 2, 10e9)},
				want: []want{{"web-1", "web", 50, nil}}},
		}},
		{"a warm-pool member is left out until a scale-out takes it", []round{
			{managed: []libvirt.Domain{web1, pooled("web-2")}, stats: []libvirt.DomainStats{running("web-1", 2, 1e9), running("web-2", 2, 1e9)}},
			{advance: sec, managed: []libvirt.Domain{web1, pooled("web-2")}, stats: []libvirt.DomainStats{running("web-1", 2, 2e9), running("web-2", 2, 1.1e9)},
				want: []want{{"web-1", "web", 50, nil}}},
			// Taken: its first round is a baseline, so its idle time in the pool never counts.
			{advance: sec, managed: []libvirt.Domain{web1, dom("web-2", "web", 2)}, stats: []libvirt.DomainStats{running("web-1", 2, 3e9), running("web-2", 2, 1.2e9)},
				want: []want{{"web-1", "web", 50, nil}}},
			{advance: sec, managed: []libvirt.Domain{web1, dom("web-2", "web", 2)}, stats: []libvirt.DomainStats{running("web-1", 2, 4e9), running("web-2", 2, 2.2e9)},
				want: []want{{"web-1", "web", 50, nil}, {"web-2", "web", 50, nil}}},
		}},
		{"stopped domain forgotten", []round{
			{managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("web-1", 2, 1e9)}},
			{advance: sec, managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{{Name: "web-1", State: libvirt.StateShutoff}}},
			{advance: sec, managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("web-1", 2, 9e9)}},
		}},
		{"no CPU time reported (test driver): no point, no baseline", []round{
			{managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("web-1", 2, 0)}},
			{advance: sec, managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("web-1", 2, 0)}},
		}},
		{"memory from the guest's usable memory", []round{
			{managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{withBalloon(running("web-1", 2, 1e9), 1024, 1000, 250, 100)}},
			{advance: sec, managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{withBalloon(running("web-1", 2, 1e9), 1024, 1000, 250, 100)},
				want: []want{{"web-1", "web", 0, pct(75)}}},
		}},
		{"memory from unused memory and current when usable and available are absent", []round{
			{managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("web-1", 2, 1e9)}},
			{advance: sec, managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{withBalloon(running("web-1", 2, 1e9), 1000, 0, 0, 400)},
				want: []want{{"web-1", "web", 0, pct(60)}}},
		}},
		{"memory without guest stats is left out", []round{
			{managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{running("web-1", 2, 1e9)}},
			{advance: sec, managed: []libvirt.Domain{web1}, stats: []libvirt.DomainStats{withBalloon(running("web-1", 2, 1e9), 1024, 0, 0, 0)},
				want: []want{{"web-1", "web", 0, nil}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &fakeSource{host: libvirt.HostInfo{CPUs: 8, MemoryKiB: 16 << 20}, free: 3 << 30}
			sink := &fakeSink{}
			c, clk := newTestCollector(t, src, sink)
			for i, r := range tt.rounds {
				clk.t = clk.t.Add(r.advance)
				src.set(r.managed, r.stats)
				before := len(sink.domain)
				if err := c.Sample(t.Context()); err != nil {
					t.Fatalf("round %d: Sample: %v", i+1, err)
				}
				var got []influxdb.DomainSample
				switch n := len(sink.domain) - before; n {
				case 0:
				case 1:
					got = sink.domain[before]
					if len(r.want) == 0 {
						t.Errorf("round %d: wrote an empty domain batch, want none", i+1)
					}
				default:
					t.Fatalf("round %d: %d domain batches written, want at most one", i+1, n)
				}
				checkSamples(t, i+1, got, r.want, clk.t)

				wantHost := influxdb.HostSample{Host: "h1", At: clk.t, CPUs: 8, MemoryBytes: 16 << 30, FreeMemoryBytes: 3 << 30}
				if len(sink.host) != i+1 || len(sink.host[i]) != 1 || sink.host[i][0] != wantHost {
					t.Errorf("round %d: host batches = %+v, want one more with %+v", i+1, sink.host, wantHost)
				}
			}
		})
	}
}

func checkSamples(t *testing.T, round int, got []influxdb.DomainSample, want []want, at time.Time) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("round %d: samples = %s, want %d", round, fmtSamples(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		memOK := (g.MemoryPercent == nil) == (w.mem == nil) && (w.mem == nil || math.Abs(*g.MemoryPercent-*w.mem) < 1e-9)
		if g.Instance != w.instance || g.Group != w.group || g.Host != "h1" || !g.At.Equal(at) ||
			math.Abs(g.CPUPercent-w.cpu) > 1e-9 || !memOK {
			t.Errorf("round %d: sample %d = %s, want %s/%s on h1 at %s cpu %v mem %v",
				round, i, fmtSamples(got[i:i+1]), w.group, w.instance, at, w.cpu, fmtPtr(w.mem))
		}
	}
}

func fmtSamples(ss []influxdb.DomainSample) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = fmt.Sprintf("{%s/%s on %s at %s cpu %v mem %s}", s.Group, s.Instance, s.Host, s.At, s.CPUPercent, fmtPtr(s.MemoryPercent))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func fmtPtr(p *float64) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

// A vanished domain's baseline is dropped, not kept forever.
func TestSampleForgetsVanishedDomains(t *testing.T) {
	src := &fakeSource{}
	c, clk := newTestCollector(t, src, &fakeSink{})
	src.set([]libvirt.Domain{dom("a-1", "a", 1), dom("a-2", "a", 1)},
		[]libvirt.DomainStats{running("a-1", 1, 1e9), running("a-2", 1, 1e9)})
	if err := c.Sample(t.Context()); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(sec)
	src.set([]libvirt.Domain{dom("a-1", "a", 1)}, []libvirt.DomainStats{running("a-1", 1, 2e9)})
	if err := c.Sample(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.prev["a-2"]; ok || len(c.prev) != 1 {
		t.Errorf("baselines after a-2 vanished = %v, want only a-1", c.prev)
	}
}

func TestSampleErrors(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name      string
		setup     func(*fakeSource, *fakeSink)
		wantErr   string
		wantHosts int // host batches written in the failing round
		// wantDeps are the dependencies OnError hears of in the failing round.
		wantDeps string
	}{
		{"sink failure", func(_ *fakeSource, k *fakeSink) { k.err = boom }, "collect domain metrics on host h1: boom", 0, "influxdb,influxdb"},
		{"listing failure still writes the host sample", func(src *fakeSource, _ *fakeSink) { src.listErr = boom }, "collect domain metrics on host h1: boom", 1, "libvirt/h1"},
		{"stats failure still writes the host sample", func(src *fakeSource, _ *fakeSink) { src.statsErr = boom }, "collect domain metrics on host h1: boom", 1, "libvirt/h1"},
		{"host info failure", func(src *fakeSource, _ *fakeSink) { src.hostErr = boom }, "collect host metrics on host h1: boom", 0, "libvirt/h1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &fakeSource{}
			sink := &fakeSink{}
			c, clk := newTestCollector(t, src, sink)
			var deps []string
			rounds := 0
			c.OnError = func(d string) { deps = append(deps, d) }
			c.OnRound = func(took time.Duration) {
				if took <= 0 {
					t.Errorf("round took %v", took)
				}
				rounds++
			}
			src.set([]libvirt.Domain{dom("a-1", "a", 1)}, []libvirt.DomainStats{running("a-1", 1, 1e9)})
			if err := c.Sample(t.Context()); err != nil {
				t.Fatal(err)
			}
			if len(deps) != 0 {
				t.Errorf("a good round reported errors of %q", deps)
			}
			clk.t = clk.t.Add(sec)
			src.set([]libvirt.Domain{dom("a-1", "a", 1)}, []libvirt.DomainStats{running("a-1", 1, 2e9)})
			hostsBefore := len(sink.host)
			tt.setup(src, sink)
			err := c.Sample(t.Context())
			if err == nil || !errors.Is(err, boom) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Sample = %v, want an error containing %q wrapping boom", err, tt.wantErr)
			}
			if got := len(sink.host) - hostsBefore; got != tt.wantHosts {
				t.Errorf("host batches written = %d, want %d", got, tt.wantHosts)
			}
			if got := strings.Join(deps, ","); got != tt.wantDeps || rounds != 2 {
				t.Errorf("OnError heard %q in %d rounds, want %q in 2", got, rounds, tt.wantDeps)
			}
		})
	}
}

// Run keeps sampling through failures: metrics are never worth stopping a worker for.
func TestRunKeepsGoingAfterFailures(t *testing.T) {
	src := &fakeSource{}
	src.set([]libvirt.Domain{dom("a-1", "a", 1)}, []libvirt.DomainStats{running("a-1", 1, 1e9)})
	sink := &fakeSink{err: errors.New("influx down")}
	c := New("h1", src, sink, time.Millisecond, slog.New(slog.NewTextHandler(t.Output(), nil)))
	// A clock and counter that move every round, so every round after the first has a point
	// to write (and fails writing it).
	var mu sync.Mutex
	tick := epoch
	cpu := uint64(1e9)
	c.Now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		tick = tick.Add(sec)
		cpu += 1e8
		src.set([]libvirt.Domain{dom("a-1", "a", 1)}, []libvirt.DomainStats{running("a-1", 1, cpu)})
		return tick
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		c.Run(ctx)
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for sink.writes() < 3 {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("Run stopped writing after %d failed writes; want it to keep going", sink.writes())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestNewDefaults(t *testing.T) {
	c := New("h1", &fakeSource{}, &fakeSink{}, 0, nil)
	if c.Interval <= 0 || c.Logger == nil || c.Host != "h1" {
		t.Errorf("New with zero interval and nil logger = interval %s, logger %v; want defaults", c.Interval, c.Logger)
	}
}

// discardSink counts what it is given, for the benchmark.
type discardSink struct{ points int }

func (d *discardSink) WriteDomainSamples(_ context.Context, s []influxdb.DomainSample) error {
	d.points += len(s)
	return nil
}

func (d *discardSink) WriteHostSamples(context.Context, []influxdb.HostSample) error { return nil }
