package telemetry

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// scrape serves GET /metrics from m and parses it as Prometheus would.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want the text format", ct)
	}
	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// value is the value of the family's series with exactly the given labels; ok is false when
// there is none.
func value(families map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := families[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		if len(m.Label) != len(labels) {
			continue
		}
		for _, l := range m.Label {
			if labels[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestOwnMetrics(t *testing.T) {
	m, err := New(Options{Checkins: []string{"ok", "unauthorized"}, Dependencies: []string{"mysql", "libvirt/h1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })

	m.Checkin("unauthorized")
	m.Checkin("unauthorized")
	m.Host("h1.example", Resources{CPUs: 16, MemoryBytes: 3 << 30}, Resources{CPUs: 2, MemoryBytes: 1 << 30})
	m.CollectorRound(30 * time.Millisecond)
	m.CollectorRound(2 * time.Second)
	m.DependencyError("libvirt/h1")

	f := scrape(t, m)
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{CheckinsName, map[string]string{"result": "unauthorized"}, 2},
		// Declared label values are there before anything happened, so rate() sees the first.
		{CheckinsName, map[string]string{"result": "ok"}, 0},
		{DependencyErrorsName, map[string]string{"dependency": "mysql"}, 0},
		{DependencyErrorsName, map[string]string{"dependency": "libvirt/h1"}, 1},
		// Label values stay as given: host names with dots and dashes match InfluxDB's tags.
		{HostCapacityName, map[string]string{"host": "h1.example", "resource": ResourceCPUs}, 16},
		{HostCapacityName, map[string]string{"host": "h1.example", "resource": ResourceMemoryBytes}, 3 << 30},
		{HostUsedName, map[string]string{"host": "h1.example", "resource": ResourceCPUs}, 2},
		{HostUsedName, map[string]string{"host": "h1.example", "resource": ResourceMemoryBytes}, 1 << 30},
		{CollectorSampleName, map[string]string{}, 2},
	}
	for _, tt := range tests {
		if got, ok := value(f, tt.name, tt.labels); !ok || got != tt.want {
			t.Errorf("%s%v = %v (present %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	if h := f[CollectorSampleName].GetMetric()[0].GetHistogram(); h.GetSampleSum() < 2.03 || h.GetSampleSum() > 2.031 {
		t.Errorf("%s sum %v, want 2.03", CollectorSampleName, h.GetSampleSum())
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if f[name] == nil {
			t.Errorf("%s missing: the runtime's and the process's metrics belong to the registry", name)
		}
	}
}

// TestTemporalHandler checks that metrics sent through the SDK's handler, as the SDK and the
// workflows send them, reach the registry with Prometheus names and their label values
// untouched; PremiScale's own without the SDK's labels.
func TestTemporalHandler(t *testing.T) {
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := m.TemporalHandler().WithTags(map[string]string{"namespace": "default", "workflow_type": "GroupWorkflow"})
	g := h.WithTags(map[string]string{"group": "web-1.a"})
	g.Counter("premiscale_evaluations_total").Inc(3)
	g.WithTags(map[string]string{"kind": "desired"}).Gauge("premiscale_group_size").Update(4)
	// SDK names get the suffixes Prometheus expects.
	h.Counter("temporal_request").Inc(1)
	h.Timer("temporal_request_latency").Record(20 * time.Millisecond)
	// Close reports what the scope holds without waiting for ReportInterval.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	f := scrape(t, m)
	base := map[string]string{"namespace": "default", "workflow_type": "GroupWorkflow"}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"premiscale_evaluations_total", map[string]string{"group": "web-1.a"}, 3},
		{"premiscale_group_size", map[string]string{"group": "web-1.a", "kind": "desired"}, 4},
		{"temporal_request_total", base, 1},
		{"temporal_request_latency_seconds", base, 1},
	}
	for _, tt := range tests {
		if got, ok := value(f, tt.name, tt.labels); !ok || got != tt.want {
			t.Errorf("%s%v = %v (present %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	if typ := f["premiscale_group_size"].GetType(); typ != dto.MetricType_GAUGE {
		t.Errorf("premiscale_group_size is a %v, want a gauge", typ)
	}
	if typ := f["temporal_request_latency_seconds"].GetType(); typ != dto.MetricType_HISTOGRAM {
		t.Errorf("temporal_request_latency_seconds is a %v, want a histogram", typ)
	}
}

// TestRegisterErrorIsLoggedOnce checks that a metric sent again with other labels, which
// Prometheus cannot register twice, costs a log line and not a panic.
func TestRegisterErrorIsLoggedOnce(t *testing.T) {
	var logs bytes.Buffer
	m, err := New(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h := m.TemporalHandler()
	h.WithTags(map[string]string{"a": "1"}).Counter("c").Inc(1)
	for _, v := range []string{"1", "2", "3"} {
		h.WithTags(map[string]string{"b": v}).Counter("c").Inc(1)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "could not be registered"); n != 1 {
		t.Errorf("%d log lines about the conflict, want 1:\n%s", n, logs.String())
	}
	if got, ok := value(scrape(t, m), "c_total", map[string]string{"a": "1"}); !ok || got != 1 {
		t.Errorf("c_total{a=1} = %v (present %v), want 1: the first registration stays", got, ok)
	}
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	m.Checkin("ok")
	m.Host("h", Resources{}, Resources{})
	m.CollectorRound(time.Second)
	m.DependencyError("mysql")
	if m.TemporalHandler() != nil {
		t.Error("TemporalHandler of nil is not nil")
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
}
