// Package collector turns libvirt domain statistics into the utilisation samples scaling
// policies read: per PremiScale instance, CPU and memory percentages, and per host, its
// capacity. It runs inside each worker, next to the libvirt host it samples.
package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/influxdb"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/outage"
)

// Source is where samples come from: a libvirt host (*libvirt.Conn).
type Source interface {
	ListManagedDomains(ctx context.Context) ([]libvirt.Domain, error)
	AllDomainStats(ctx context.Context) ([]libvirt.DomainStats, error)
	HostInfo(ctx context.Context) (libvirt.HostInfo, error)
	FreeMemoryBytes(ctx context.Context) (uint64, error)
}

// Sink is where samples go: a time-series database (*influxdb.Client).
type Sink interface {
	WriteDomainSamples(ctx context.Context, s []influxdb.DomainSample) error
	WriteHostSamples(ctx context.Context, s []influxdb.HostSample) error
}

// Collector samples one host's PremiScale domains into a Sink. CPU utilisation is a rate, so
// each domain's first sample only sets a baseline and points start from the second round.
type Collector struct {
	// Host names the hypervisor in the samples' host tag.
	Host     string
	Source   Source
	Sink     Sink
	Interval time.Duration
	Logger   *slog.Logger
	// Now is the clock; nil means time.Now. Tests set it to control elapsed time.
	Now func() time.Time
	// OnRound, when set, hears how long each round took; OnError, the dependency each failed
	// call went to, named as /readyz names it: "libvirt/<host>" or "influxdb". Both are for
	// the worker's metrics and must be quick.
	OnRound func(took time.Duration)
	OnError func(dependency string)

	mu   sync.Mutex // serialises rounds: each reads and replaces prev
	prev map[string]cpuSample
}

// cpuSample is the baseline a domain's next CPU percentage is measured from.
type cpuSample struct {
	cpuTimeNs uint64
	at        time.Time
}

// New returns a collector for host. An interval that is not positive gets the configuration's
// default, and a nil logger discards.
func New(host string, src Source, sink Sink, interval time.Duration, logger *slog.Logger) *Collector {
	if interval <= 0 {
		interval = config.DefaultCollectionInterval
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Collector{
		Host:     host,
		Source:   src,
		Sink:     sink,
		Interval: interval,
		Logger:   logger.With("component", "collector", "host", host),
	}
}

// Run samples now and then every Interval until ctx ends. A failed round is logged and the
// next one runs as usual: losing metrics must never stop the worker, and so never scaling.
// Failures are logged once, not once per round (see roundLog).
func (c *Collector) Run(ctx context.Context) {
	interval := c.Interval
	if interval <= 0 {
		interval = config.DefaultCollectionInterval
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var rounds roundLog
	for {
		if err := c.Sample(ctx); ctx.Err() == nil {
			rounds.log(c.logger(), err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// roundLog keeps a collector's log to a line per change: a round that fails as the one before
// it did is debug, and the first good round after a logged failure says so. A round that failed
// because InfluxDB or the host could not be reached is debug from the start: the worker's watch
// of that dependency logs its outage, once.
type roundLog struct {
	failed  int    // rounds failed in a row
	lastErr string // the last failure logged as a warning
}

func (r *roundLog) log(log *slog.Logger, err error) {
	switch {
	case err == nil:
		if r.lastErr != "" {
			log.Info("metrics collection recovered", "failed_rounds", r.failed)
		}
		*r = roundLog{}
		return
	case outage.IsUnreachable(err) || err.Error() == r.lastErr:
		log.Debug("metrics collection round failed", "err", err, "failed_rounds", r.failed+1)
	default:
		log.Warn("metrics collection round failed; the same failure again will not be logged until a round succeeds",
			"err", err, "failed_rounds", r.failed+1)
		r.lastErr = err.Error()
	}
	r.failed++
}

// Sample runs one round: it writes one batch of domain samples (for the PremiScale domains
// that have a baseline from an earlier round) and one host sample. It goes on with the host
// sample when the domains fail, and reports every failure. It is safe for concurrent use,
// though rounds are serialised.
func (c *Collector) Sample(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The wall clock, not Now: this is how long the round really took.
	start := time.Now()
	err := errors.Join(c.sampleDomains(ctx), c.sampleHost(ctx))
	if c.OnRound != nil {
		c.OnRound(time.Since(start))
	}
	return err
}

// failed tells OnError of a failed call, unless the round failed because it was stopped, and
// returns err.
func (c *Collector) failed(ctx context.Context, dependency string, err error) error {
	if c.OnError != nil && ctx.Err() == nil {
		c.OnError(dependency)
	}
	return err
}

func (c *Collector) sampleDomains(ctx context.Context) error {
	managed, err := c.Source.ListManagedDomains(ctx)
	if err != nil {
		return c.failed(ctx, "libvirt/"+c.Host, fmt.Errorf("collect domain metrics on host %s: %w", c.Host, err))
	}
	stats, err := c.Source.AllDomainStats(ctx)
	if err != nil {
		return c.failed(ctx, "libvirt/"+c.Host, fmt.Errorf("collect domain metrics on host %s: %w", c.Host, err))
	}
	// Read the clock after the stats arrive: it is the closest we get to when libvirt read them.
	now := c.now()

	byName := make(map[string]libvirt.Domain, len(managed))
	for _, d := range managed {
		byName[d.Name] = d
	}
	next := make(map[string]cpuSample, len(stats))
	samples := make([]influxdb.DomainSample, 0, len(stats))
	for _, s := range stats {
		d, ok := byName[s.Name]
		if !ok || !s.State.Active() || d.Pool {
			// Not ours to report on; a warm-pool member (a running one, or one being parked)
			// is no part of its group's metrics until a scale-out takes it.
			continue
		}
		if s.CPUTimeNs == 0 {
			// The driver reports no CPU time (the test driver): a 0% point would read as
			// an idle instance and invite a scale-in.
			continue
		}
		cur := cpuSample{cpuTimeNs: s.CPUTimeNs, at: now}
		next[s.Name] = cur
		prev, seen := c.prev[s.Name]
		if !seen || s.CPUTimeNs < prev.cpuTimeNs || !now.After(prev.at) {
			// First sight, or the counter restarted with the domain: only a baseline.
			continue
		}
		vcpus := s.VCPUs
		if vcpus <= 0 {
			vcpus = d.VCPUs
		}
		if vcpus <= 0 {
			c.logger().Debug("domain reports no vCPU count; no CPU sample", "domain", s.Name)
			continue
		}
		samples = append(samples, influxdb.DomainSample{
			Group:         d.Group,
			Instance:      s.Name,
			Host:          c.Host,
			At:            now,
			CPUPercent:    cpuPercent(prev, cur, vcpus),
			MemoryPercent: memoryPercent(s),
		})
	}
	// Domains that are gone (or stopped, or no longer ours) lose their baseline: if one comes
	// back, its counter will have restarted.
	c.prev = next

	if len(samples) == 0 {
		return nil
	}
	if err := c.Sink.WriteDomainSamples(ctx, samples); err != nil {
		return c.failed(ctx, "influxdb", fmt.Errorf("collect domain metrics on host %s: %w", c.Host, err))
	}
	return nil
}

func (c *Collector) sampleHost(ctx context.Context) error {
	info, err := c.Source.HostInfo(ctx)
	if err != nil {
		return c.failed(ctx, "libvirt/"+c.Host, fmt.Errorf("collect host metrics on host %s: %w", c.Host, err))
	}
	free, err := c.Source.FreeMemoryBytes(ctx)
	if err != nil {
		return c.failed(ctx, "libvirt/"+c.Host, fmt.Errorf("collect host metrics on host %s: %w", c.Host, err))
	}
	sample := influxdb.HostSample{
		Host:            c.Host,
		At:              c.now(),
		CPUs:            info.CPUs,
		MemoryBytes:     info.MemoryKiB * 1024,
		FreeMemoryBytes: free,
	}
	if err := c.Sink.WriteHostSamples(ctx, []influxdb.HostSample{sample}); err != nil {
		return c.failed(ctx, "influxdb", fmt.Errorf("collect host metrics on host %s: %w", c.Host, err))
	}
	return nil
}

// cpuPercent is the share of the domain's vCPUs it kept busy between two samples.
func cpuPercent(prev, cur cpuSample, vcpus int) float64 {
	wall := cur.at.Sub(prev.at).Nanoseconds()
	busy := float64(cur.cpuTimeNs - prev.cpuTimeNs)
	return clampPercent(busy / (float64(wall) * float64(vcpus)) * 100)
}

// memoryPercent is the share of the guest's memory in use, or nil when the guest does not
// report its own figures (no balloon driver, or no stats period yet). Usable memory, like
// Linux's MemAvailable, counts reclaimable page cache as free, which the raw unused figure
// does not: with it every busy guest would look full.
func memoryPercent(s libvirt.DomainStats) *float64 {
	free := s.BalloonUsableKiB
	if free == 0 {
		free = s.BalloonUnusedKiB
	}
	total := s.BalloonAvailableKiB
	if total == 0 {
		total = s.BalloonCurrentKiB
	}
	if free == 0 || total == 0 {
		return nil
	}
	p := clampPercent((float64(total) - float64(free)) / float64(total) * 100)
	return &p
}

func clampPercent(p float64) float64 {
	return min(max(p, 0), 100)
}

func (c *Collector) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Collector) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}
