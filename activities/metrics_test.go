package activities

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/influxdb"
	"github.com/premiscale/premiscale/internal/policy"
	"github.com/premiscale/premiscale/internal/testservices"
)

// TestReadChecksOnInflux reads built-in and query checks from a real InfluxDB: means over the
// running instances, partial data, a user query templated with the group, and a broken query
// reported on its check only.
func TestReadChecksOnInflux(t *testing.T) {
	ctx := context.Background()
	cfg := testservices.Influx(t)
	m, err := influxdb.New(cfg.InfluxOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	now := time.Now()
	samples := []influxdb.DomainSample{
		{Group: "web", Instance: "web-1", Host: "h", At: now, CPUPercent: 80},
		{Group: "web", Instance: "web-2", Host: "h", At: now, CPUPercent: 40},
		{Group: "web", Instance: "web-3", Host: "h", At: now, CPUPercent: 99}, // booting: excluded
		{Group: "db", Instance: "db-1", Host: "h", At: now, CPUPercent: 5},
	}
	if err := m.WriteDomainSamples(ctx, samples); err != nil {
		t.Fatal(err)
	}
	a := &Activities{Metrics: influxdb.Sources(m), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	bucket := cfg.Connection.Database + "/autogen"
	query := `from(bucket: "` + bucket + `") |> range(start: -{{.Window}}) |> filter(fn: (r) => r._measurement == "premiscale_domain" and r.group == "{{.Group}}" and r._field == "cpu_percent") |> group() |> max()`
	mean := strings.Replace(query, "max()", "mean()", 1)
	p := ReadChecksParams{
		Group: "web",
		Checks: []policy.Check{
			{Name: "cpu", Metric: policy.MetricCPU, Window: time.Minute},
			{Name: "peak", Metric: policy.MetricQuery, Query: query, Window: time.Minute, Staleness: time.Minute},
			{Name: "broken", Metric: policy.MetricQuery, Query: `from(bucket: "nope") |> this is not flux`, Window: time.Minute},
			{Name: "memory", Metric: policy.MetricMemory, Window: time.Minute},
			{Name: "mean", Metric: policy.MetricQuery, Query: mean, Window: time.Minute},
			{Name: "mean-stale", Metric: policy.MetricQuery, Query: mean, Window: time.Minute, Staleness: time.Minute},
			{Name: "nosource", Metric: "prometheus", Window: time.Minute},
		},
		Exclude: []string{"web-3"},
		Running: 3,
	}
	got, err := a.ReadChecks(ctx, p)
	if err != nil {
		t.Fatalf("ReadChecks: %v", err)
	}
	if r := got["cpu"]; !r.HasData || r.Value != 60 || !r.Partial || r.Newest.IsZero() {
		t.Errorf("cpu = %+v; want the mean 60 of web-1 and web-2, partial (2 of 3 running reported)", r)
	}
	// max() keeps the time of the point it selects: staleness is judged by the data's own time.
	if r := got["peak"]; !r.HasData || r.Value != 99 || !r.Newest.Equal(now.Truncate(time.Nanosecond)) {
		t.Errorf("peak (a user query) = %+v; want the group's max, 99, stamped %s", r, now)
	}
	// mean() drops _time: without staleness that is fine, with it the age cannot be judged.
	if r := got["mean"]; !r.HasData || r.Err != "" || !r.Newest.IsZero() {
		t.Errorf("mean query = %+v; want data without a time", r)
	}
	if r := got["mean-stale"]; r.HasData || !strings.Contains(r.Err, "has no _time") || !strings.Contains(r.Err, "mean-stale") {
		t.Errorf("mean query with staleness = %+v; want an error saying the result has no _time", r)
	}
	if r := got["nosource"]; !strings.Contains(r.Err, `no source for metric "prometheus"`) {
		t.Errorf("unknown metric = %+v; want an error naming it", r)
	}
	if r := got["broken"]; r.HasData || !strings.Contains(r.Err, "broken") {
		t.Errorf("broken query = %+v; want an error naming the check", r)
	}
	if r := got["memory"]; r.HasData || r.Err != "" {
		t.Errorf("memory without samples = %+v; want no data and no error", r)
	}
}
