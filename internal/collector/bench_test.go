package collector

import (
	"fmt"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/libvirt"
)

// BenchmarkSample measures one round over 100 PremiScale domains (and a few foreign ones),
// with the source and sink in memory: the collector's own cost per round.
func BenchmarkSample(b *testing.B) {
	const n = 100
	managed := make([]libvirt.Domain, n)
	stats := make([]libvirt.DomainStats, 0, n+5)
	for i := range n {
		name := fmt.Sprintf("g%d-%d", i%4, i)
		managed[i] = libvirt.Domain{Name: name, Group: fmt.Sprintf("g%d", i%4), State: libvirt.StateRunning, VCPUs: 2}
		stats = append(stats, withBalloon(running(name, 2, 1e9), 1<<20, 1<<20, 1<<19, 1<<18))
	}
	for i := range 5 {
		stats = append(stats, running(fmt.Sprintf("foreign-%d", i), 1, 1e9))
	}
	src := &fakeSource{managed: managed, stats: stats, host: libvirt.HostInfo{CPUs: 8, MemoryKiB: 16 << 20}, free: 1 << 30}
	sink := &discardSink{}
	c := New("h1", src, sink, time.Second, nil)
	now := epoch
	c.Now = func() time.Time { return now }
	ctx := b.Context()

	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		for i := range stats {
			stats[i].CPUTimeNs += 5e8
		}
		if err := c.Sample(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if sink.points == 0 {
		b.Fatal("no domain samples written")
	}
}
