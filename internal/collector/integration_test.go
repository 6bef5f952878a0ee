package collector_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/collector"
	"github.com/premiscale/premiscale/internal/influxdb"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/testservices"

	"github.com/premiscale/premiscale/internal/spec"
)

const qemuURI = "qemu:///system"

// TestCollectorOnQEMUIntoInflux samples a real, running (if diskless) QEMU domain into the real
// InfluxDB and reads the group's CPU utilisation back the way a scaling policy does.
func TestCollectorOnQEMUIntoInflux(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	cfg := testservices.Influx(t)
	sink, err := influxdb.New(cfg.InfluxOptions(), logger)
	if err != nil {
		t.Fatalf("influxdb.New: %v", err)
	}
	t.Cleanup(sink.Close)
	if err := sink.EnsureDatabase(ctx); err != nil {
		t.Fatalf("EnsureDatabase: %v", err)
	}

	conn, err := libvirt.Dial(ctx, qemuURI, libvirt.Options{CallTimeout: 30 * time.Second, Logger: logger})
	if err != nil {
		t.Fatalf("libvirtd is not reachable at %s: %v\n(start the test services with testenv/up, or by hand: virtlogd -d; libvirtd -d)", qemuURI, err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	group := testservices.UniqueName(t, "col")
	name := group + "-1"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := conn.RemoveDomain(ctx, name, 0); err != nil {
			t.Errorf("remove domain %s: %v", name, err)
		}
	})
	// No disks: the firmware looks for something to boot, which under TCG is enough to burn CPU.
	ds := libvirt.DomainSpec{Name: name, Group: group, Domain: spec.Domain{Type: "qemu", VCPUs: 1, Memory: 64}}
	if _, err := conn.EnsureDomainRunning(ctx, ds); err != nil {
		t.Fatalf("EnsureDomainRunning %s on %s: %v", name, qemuURI, err)
	}

	host := testservices.UniqueName(t, "host")
	c := collector.New(host, conn, sink, time.Second, logger)
	for i := range 3 {
		if i > 0 {
			time.Sleep(time.Second)
		}
		if err := c.Sample(ctx); err != nil {
			t.Fatalf("Sample #%d: %v", i+1, err)
		}
	}

	cpu, err := sink.GroupMean(ctx, group, influxdb.FieldCPUPercent, time.Minute, nil)
	if err != nil {
		t.Fatalf("GroupMean cpu_percent: %v", err)
	}
	t.Logf("group %s: cpu_percent mean %.2f over %d points", group, cpu.Value, cpu.Points)
	// Three rounds: one baseline, then two points.
	if cpu.Instances != 1 || cpu.Points != 2 || cpu.Value <= 0 || cpu.Value > 100 {
		t.Errorf("GroupMean cpu_percent of %s = %+v; want 1 instance, 2 points, 0 < value <= 100", group, cpu)
	}
	// A guest that never boots reports no memory use of its own: no memory points, rather
	// than a made-up figure.
	mem, err := sink.GroupMean(ctx, group, influxdb.FieldMemoryPercent, time.Minute, nil)
	if err != nil {
		t.Fatalf("GroupMean memory_percent: %v", err)
	}
	if mem.Instances != 0 {
		t.Errorf("GroupMean memory_percent of %s = %+v; want no data from a guest without a balloon driver", group, mem)
	}

	info, err := conn.HostInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	flux := fmt.Sprintf(`from(bucket: %q) |> range(start: -5m) |> filter(fn: (r) => r._measurement == %q and r._field == %q and r.host == %q) |> count()`,
		cfg.Connection.Database+"/autogen", influxdb.MeasurementHost, influxdb.FieldCPUs, host)
	n, err := sink.Query(ctx, flux)
	if err != nil || !n.HasData || n.Value != 3 {
		t.Errorf("premiscale_host points for %s = %+v (err %v); want 3, one per round", host, n, err)
	}
	flux = fmt.Sprintf(`from(bucket: %q) |> range(start: -5m) |> filter(fn: (r) => r._measurement == %q and r._field == %q and r.host == %q) |> last()`,
		cfg.Connection.Database+"/autogen", influxdb.MeasurementHost, influxdb.FieldCPUs, host)
	if cpus, err := sink.Query(ctx, flux); err != nil || !cpus.HasData || cpus.Value != float64(info.CPUs) {
		t.Errorf("premiscale_host cpus for %s = %+v (err %v); want %d", host, cpus, err, info.CPUs)
	}
}
