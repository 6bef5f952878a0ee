package influxdb_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/influxdb"
)

// domainSamples makes instances × perInstance samples for group, spread over the last span.
func domainSamples(group string, instances, perInstance int, span time.Duration) []influxdb.DomainSample {
	now := time.Now()
	step := span / time.Duration(perInstance)
	out := make([]influxdb.DomainSample, 0, instances*perInstance)
	for i := range instances {
		for j := range perInstance {
			mem := float64(j % 100)
			out = append(out, influxdb.DomainSample{
				Group: group, Instance: fmt.Sprintf("%s-%d", group, i+1), Host: fmt.Sprintf("h%d", i%3),
				At: now.Add(-time.Duration(j) * step), CPUPercent: float64((i*7 + j) % 100), MemoryPercent: &mem,
			})
		}
	}
	return out
}

// BenchmarkGroupMean queries a group of 20 instances sampled every 10 s for 5 minutes.
func BenchmarkGroupMean(b *testing.B) {
	c, _ := newClient(b)
	if err := c.WriteDomainSamples(ctx(b), domainSamples("bench", 20, 30, 5*time.Minute)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		m, err := c.GroupMean(context.Background(), "bench", influxdb.FieldCPUPercent, 10*time.Minute, []string{"bench-1"})
		if err != nil {
			b.Fatal(err)
		}
		if m.Instances != 19 {
			b.Fatalf("GroupMean saw %d instances, want 19", m.Instances)
		}
	}
}

// BenchmarkWriteDomainSamples writes one collection round: 100 instances, one sample each.
func BenchmarkWriteDomainSamples(b *testing.B) {
	c, _ := newClient(b)
	batch := domainSamples("bench", 100, 1, time.Second)
	for b.Loop() {
		now := time.Now()
		for i := range batch {
			batch[i].At = now
		}
		if err := c.WriteDomainSamples(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(batch)), "samples/op")
}
