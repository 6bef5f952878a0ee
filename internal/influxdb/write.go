package influxdb

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/influxdata/influxdb-client-go/v2/api/write"
)

// DomainSample is one measurement of one instance's utilisation.
type DomainSample struct {
	Group    string
	Instance string
	Host     string
	// At zero means now.
	At         time.Time
	CPUPercent float64
	// MemoryPercent is nil when the guest does not report memory use (no balloon driver).
	MemoryPercent *float64
}

// HostSample is one measurement of a hypervisor's capacity.
type HostSample struct {
	Host string
	// At zero means now.
	At              time.Time
	CPUs            int
	MemoryBytes     uint64
	FreeMemoryBytes uint64
}

// WriteDomainSamples writes the samples in one request. Samples without a group or instance, or
// with a CPU value that is not a number, are left out: they could never be queried correctly.
func (c *Client) WriteDomainSamples(ctx context.Context, samples []DomainSample) error {
	points := make([]*write.Point, 0, len(samples))
	for _, s := range samples {
		if s.Group == "" || s.Instance == "" || !finite(s.CPUPercent) {
			c.logger.Warn("dropping unusable domain sample", "group", s.Group, "instance", s.Instance, "host", s.Host, "cpu_percent", s.CPUPercent)
			continue
		}
		p := write.NewPointWithMeasurement(MeasurementDomain).
			AddTag(TagGroup, s.Group).
			AddTag(TagInstance, s.Instance).
			AddField(FieldCPUPercent, s.CPUPercent).
			SetTime(orNow(s.At))
		// Line protocol has no empty tag values.
		if s.Host != "" {
			p.AddTag(TagHost, s.Host)
		}
		if s.MemoryPercent != nil && finite(*s.MemoryPercent) {
			p.AddField(FieldMemoryPercent, *s.MemoryPercent)
		}
		points = append(points, p)
	}
	if len(points) == 0 {
		return nil
	}
	if err := c.writer.WritePoint(ctx, points...); err != nil {
		return fmt.Errorf("write %d domain samples to InfluxDB %s bucket %s: %w", len(points), c.baseURL, c.bucket, err)
	}
	return nil
}

// WriteHostSamples writes the samples in one request.
func (c *Client) WriteHostSamples(ctx context.Context, samples []HostSample) error {
	points := make([]*write.Point, 0, len(samples))
	for _, s := range samples {
		if s.Host == "" {
			c.logger.Warn("dropping host sample without a host")
			continue
		}
		// Integers, not unsigned: InfluxDB 1.x does not accept unsigned fields.
		points = append(points, write.NewPointWithMeasurement(MeasurementHost).
			AddTag(TagHost, s.Host).
			AddField(FieldCPUs, int64(s.CPUs)).
			AddField(FieldMemoryBytes, clampInt64(s.MemoryBytes)).
			AddField(FieldFreeMemoryBytes, clampInt64(s.FreeMemoryBytes)).
			SetTime(orNow(s.At)))
	}
	if len(points) == 0 {
		return nil
	}
	if err := c.writer.WritePoint(ctx, points...); err != nil {
		return fmt.Errorf("write %d host samples to InfluxDB %s bucket %s: %w", len(points), c.baseURL, c.bucket, err)
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func clampInt64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}
