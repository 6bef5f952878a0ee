package influxdb_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/influxdb"
	"github.com/premiscale/premiscale/internal/testservices"
)

func newClient(t testing.TB) (*influxdb.Client, config.Timeseries) {
	t.Helper()
	cfg := testservices.Influx(t)
	c, err := influxdb.New(cfg.InfluxOptions(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	if err := c.EnsureDatabase(ctx(t)); err != nil {
		t.Fatalf("EnsureDatabase: %v", err)
	}
	return c, cfg
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func f(v float64) *float64 { return &v }

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestGroupMean(t *testing.T) {
	c, _ := newClient(t)
	now := time.Now()
	samples := []influxdb.DomainSample{
		{Group: "web", Instance: "web-1", Host: "h1", At: now.Add(-30 * time.Second), CPUPercent: 10, MemoryPercent: f(50)},
		{Group: "web", Instance: "web-1", Host: "h1", At: now.Add(-20 * time.Second), CPUPercent: 20},
		{Group: "web", Instance: "web-2", Host: "h2", At: now.Add(-10 * time.Second), CPUPercent: 60, MemoryPercent: f(70)},
		{Group: "api", Instance: "api-1", Host: "h1", At: now.Add(-5 * time.Second), CPUPercent: 99, MemoryPercent: f(99)},
	}
	if err := c.WriteDomainSamples(ctx(t), samples); err != nil {
		t.Fatalf("WriteDomainSamples: %v", err)
	}

	tests := []struct {
		name    string
		group   string
		field   string
		window  time.Duration
		exclude []string
		want    influxdb.GroupMetric
	}{
		{"cpu, mean of instance means", "web", influxdb.FieldCPUPercent, 5 * time.Minute, nil,
			influxdb.GroupMetric{Value: (15.0 + 60.0) / 2, Instances: 2, Points: 3, Newest: now.Add(-10 * time.Second)}},
		{"excluded instance left out", "web", influxdb.FieldCPUPercent, 5 * time.Minute, []string{"web-2", "web-9"},
			influxdb.GroupMetric{Value: 15, Instances: 1, Points: 2, Newest: now.Add(-20 * time.Second)}},
		{"memory absent is not zero", "web", influxdb.FieldMemoryPercent, 5 * time.Minute, nil,
			influxdb.GroupMetric{Value: (50.0 + 70.0) / 2, Instances: 2, Points: 2, Newest: now.Add(-10 * time.Second)}},
		{"other group", "api", influxdb.FieldCPUPercent, 5 * time.Minute, nil,
			influxdb.GroupMetric{Value: 99, Instances: 1, Points: 1, Newest: now.Add(-5 * time.Second)}},
		{"empty window", "web", influxdb.FieldCPUPercent, 2 * time.Second, nil, influxdb.GroupMetric{}},
		{"unknown group", "nope", influxdb.FieldCPUPercent, 5 * time.Minute, nil, influxdb.GroupMetric{}},
		{"all excluded", "api", influxdb.FieldCPUPercent, 5 * time.Minute, []string{"api-1"}, influxdb.GroupMetric{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.GroupMean(ctx(t), tt.group, tt.field, tt.window, tt.exclude)
			if err != nil {
				t.Fatalf("GroupMean: %v", err)
			}
			if !near(got.Value, tt.want.Value) || got.Instances != tt.want.Instances || got.Points != tt.want.Points || !got.Newest.Equal(tt.want.Newest) {
				t.Errorf("GroupMean(%q, %q, %s, %q) = %+v, want %+v", tt.group, tt.field, tt.window, tt.exclude, got, tt.want)
			}
		})
	}

	if _, err := c.GroupMean(ctx(t), "web", influxdb.FieldCPUPercent, 0, nil); err == nil {
		t.Error("GroupMean with a zero window succeeded")
	}
}

func TestGroupMeanHostileNames(t *testing.T) {
	c, _ := newClient(t)
	now := time.Now()
	// Each group gets one sample whose value identifies it; a query for one must see only it.
	// A trailing backslash is left out: line protocol itself cannot carry one in a tag value.
	names := []string{
		`plain`,
		`quo"te`,
		`back\slash`,
		`dollar${x}brace`,
		`web" or r.group != "`,
		`it's`,
		`sp ace,comma=eq`,
	}
	var samples []influxdb.DomainSample
	for i, g := range names {
		samples = append(samples, influxdb.DomainSample{Group: g, Instance: `in"st\` + fmt.Sprint(i) + `-1`, At: now.Add(-time.Second), CPUPercent: float64(i + 1)})
	}
	if err := c.WriteDomainSamples(ctx(t), samples); err != nil {
		t.Fatalf("WriteDomainSamples: %v", err)
	}
	for i, g := range names {
		got, err := c.GroupMean(ctx(t), g, influxdb.FieldCPUPercent, time.Minute, nil)
		if err != nil {
			t.Errorf("GroupMean(%q): %v", g, err)
			continue
		}
		if got.Instances != 1 || got.Value != float64(i+1) {
			t.Errorf("GroupMean(%q) = %+v, want one instance with value %d", g, got, i+1)
		}
		// Excluding the instance by its hostile name must work too.
		got, err = c.GroupMean(ctx(t), g, influxdb.FieldCPUPercent, time.Minute, []string{samples[i].Instance})
		if err != nil || got.Instances != 0 {
			t.Errorf("GroupMean(%q) excluding %q = %+v, %v; want no instances", g, samples[i].Instance, got, err)
		}
	}
}

func TestWriteHostSamplesAndQuery(t *testing.T) {
	c, cfg := newClient(t)
	now := time.Now()
	err := c.WriteHostSamples(ctx(t), []influxdb.HostSample{
		{Host: "h1", At: now.Add(-20 * time.Second), CPUs: 8, MemoryBytes: 32 << 30, FreeMemoryBytes: 10 << 30},
		{Host: "h1", At: now.Add(-10 * time.Second), CPUs: 8, MemoryBytes: 32 << 30, FreeMemoryBytes: 12 << 30},
		{Host: "h2", At: now.Add(-10 * time.Second), CPUs: 4, MemoryBytes: 16 << 30, FreeMemoryBytes: math.MaxUint64},
	})
	if err != nil {
		t.Fatalf("WriteHostSamples: %v", err)
	}
	bucket := cfg.Connection.Database + "/autogen"
	from := fmt.Sprintf(`from(bucket: %q) |> range(start: -5m) |> filter(fn: (r) => r._measurement == "premiscale_host"`, bucket)

	tests := []struct {
		name    string
		flux    string
		want    float64
		wantOK  bool
		wantErr string
	}{
		{"last free memory of h1", from + ` and r._field == "free_memory_bytes" and r.host == "h1") |> last()`, 12 << 30, true, ""},
		{"total cpus", from + ` and r._field == "cpus") |> last() |> group() |> sum()`, 12, true, ""},
		{"unsigned clamped", from + ` and r._field == "free_memory_bytes" and r.host == "h2") |> last()`, math.MaxInt64, true, ""},
		{"no rows", from + ` and r._field == "nope")`, 0, false, ""},
		{"several rows", from + ` and r._field == "cpus")`, 0, false, "returned 3 rows"},
		{"bad flux", `from(bucket: `, 0, false, "flux query"},
		{"not a number", from + ` and r._field == "cpus" and r.host == "h1") |> last() |> map(fn: (r) => ({r with _value: "x"}))`, 0, false, "not a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Query(ctx(t), tt.flux)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Query = %+v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.HasData != tt.wantOK || got.Value != tt.want {
				t.Errorf("Query = %+v, %v; want %v, %v, nil", got, err, tt.want, tt.wantOK)
			}
		})
	}
}

// influxQL runs one statement against the test server and returns the JSON answer.
func influxQL(t *testing.T, base, q string) string {
	t.Helper()
	resp, err := http.PostForm(base+"/query", url.Values{"q": {q}})
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer resp.Body.Close()
	var out json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return string(out)
}

func TestEnsureDatabaseCreatesWithRetention(t *testing.T) {
	cfg := testservices.Influx(t)
	base := cfg.Connection.URL
	// The database testservices made is dropped so EnsureDatabase has to make it again; the
	// test's cleanup drops it at the end.
	influxQL(t, base, `DROP DATABASE "`+cfg.Connection.Database+`"`)
	cfg.Retention = config.Duration{Duration: 72 * time.Hour}
	c, err := influxdb.New(cfg.InfluxOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 2 {
		if err := c.EnsureDatabase(ctx(t)); err != nil {
			t.Fatalf("EnsureDatabase: %v", err)
		}
	}
	if got := influxQL(t, base, "SHOW DATABASES"); !strings.Contains(got, `"`+cfg.Connection.Database+`"`) {
		t.Errorf("database %s not created: %s", cfg.Connection.Database, got)
	}
	if got := influxQL(t, base, `SHOW RETENTION POLICIES ON "`+cfg.Connection.Database+`"`); !strings.Contains(got, `"autogen","72h0m0s","24h0m0s"`) {
		t.Errorf("autogen retention not 72h with 24h shards: %s", got)
	}
	if err := c.WriteDomainSamples(ctx(t), []influxdb.DomainSample{{Group: "g", Instance: "g-1", CPUPercent: 1}}); err != nil {
		t.Errorf("write after EnsureDatabase: %v", err)
	}
}

// EnsureDatabase's answer to servers that are not InfluxDB 1.x is our own logic: a fake server
// is enough to show it.
func TestEnsureDatabaseServerAnswers(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		wantErr string
	}{
		{"2.x has no /query", http.StatusNotFound, "404 page not found", ""},
		{"ok", http.StatusOK, `{"results":[{"statement_id":0}]}`, ""},
		{"statement error", http.StatusOK, `{"results":[{"statement_id":0,"error":"boom"}]}`, "boom"},
		{"unauthorized", http.StatusUnauthorized, `{"error":"authorization failed"}`, `user "u"`},
		{"server error", http.StatusInternalServerError, "oops", "500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotQ, gotUser string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotQ = r.FormValue("q")
				gotUser, _, _ = r.BasicAuth()
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			defer srv.Close()
			c, err := influxdb.New(influxdb.Options{URL: srv.URL, Database: `my"db`, Username: "u", Password: "secret"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.EnsureDatabase(ctx(t))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("EnsureDatabase: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("EnsureDatabase = %v, want an error containing %q", err, tt.wantErr)
			case err != nil && strings.Contains(err.Error(), "secret"):
				t.Errorf("error %q reveals the password", err)
			}
			if gotQ != `CREATE DATABASE "my\"db"` || gotUser != "u" {
				t.Errorf("server got q=%q user=%q", gotQ, gotUser)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		opts influxdb.Options
		want string
	}{
		{"no scheme", influxdb.Options{URL: "x:8086", Database: "d"}, "http(s)://"},
		{"empty url", influxdb.Options{Database: "d"}, "http(s)://"},
		{"no database", influxdb.Options{URL: "http://x:1"}, "database is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := influxdb.New(tt.opts, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestWriteDomainSamplesDropsUnusable(t *testing.T) {
	c, _ := newClient(t)
	err := c.WriteDomainSamples(ctx(t), []influxdb.DomainSample{
		{Group: "g", Instance: "g-1", CPUPercent: math.NaN()},
		{Group: "", Instance: "g-2", CPUPercent: 1},
		{Group: "g", Instance: "g-3", CPUPercent: 30, MemoryPercent: f(math.Inf(1))},
	})
	if err != nil {
		t.Fatalf("WriteDomainSamples: %v", err)
	}
	cpu, err := c.GroupMean(ctx(t), "g", influxdb.FieldCPUPercent, time.Minute, nil)
	if err != nil || cpu.Instances != 1 || cpu.Value != 30 {
		t.Errorf("cpu = %+v, %v; want only g-3's 30", cpu, err)
	}
	mem, err := c.GroupMean(ctx(t), "g", influxdb.FieldMemoryPercent, time.Minute, nil)
	if err != nil || mem.Instances != 0 {
		t.Errorf("memory = %+v, %v; want no data", mem, err)
	}
	if err := c.WriteDomainSamples(ctx(t), nil); err != nil {
		t.Errorf("writing no samples: %v", err)
	}
}
