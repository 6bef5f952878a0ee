package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/premiscale/premiscale/internal/checkin"
	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/telemetry"
)

// documentedMetric is a row of the Prometheus table in deploy/grafana/README.md.
type documentedMetric struct {
	typ    dto.MetricType
	labels []string
	// values are the values listed for the last label, if any.
	values []string
}

// documentedMetrics reads the table of the worker's Prometheus metrics the dashboard is built
// on, so that the test checks what the worker exports against what the dashboard expects.
func documentedMetrics(t *testing.T) map[string]documentedMetric {
	t.Helper()
	data, err := os.ReadFile("../deploy/grafana/README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(premiscale_[a-z_]+)` \\| (counter|gauge|histogram) \\|(.*)\\|$")
	token := regexp.MustCompile("`([a-z_]+)`(:?)")
	types := map[string]dto.MetricType{"counter": dto.MetricType_COUNTER, "gauge": dto.MetricType_GAUGE, "histogram": dto.MetricType_HISTOGRAM}
	out := map[string]documentedMetric{}
	for _, m := range row.FindAllStringSubmatch(string(data), -1) {
		d := documentedMetric{typ: types[m[2]]}
		// "`group`, `kind`: `min`, `max`": labels up to the one with a colon, then its values.
		inValues := false
		for _, tok := range token.FindAllStringSubmatch(m[3], -1) {
			switch {
			case inValues:
				d.values = append(d.values, tok[1])
			default:
				d.labels = append(d.labels, tok[1])
				inValues = tok[2] == ":"
			}
		}
		out[m[1]] = d
	}
	if len(out) < 10 {
		t.Fatalf("read %d metrics from deploy/grafana/README.md's table, want them all: %v", len(out), out)
	}
	return out
}

// scrapeMetrics GETs the worker's /metrics and parses it with Prometheus's text parser.
func scrapeMetrics(t *testing.T, w *runningWorker) map[string]*dto.MetricFamily {
	t.Helper()
	start := time.Now()
	resp, err := http.Get("http://" + w.HealthAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("a scrape took %s; it reads memory only", took)
	}
	return families
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.Label {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// sample is the value of the family's series whose labels include want (summed over the
// series that match), and whether there was one.
func sample(families map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := families[name]
	if f == nil {
		return 0, false
	}
	total, found := 0.0, false
	for _, m := range f.Metric {
		labels := labelsOf(m)
		ok := true
		for k, v := range want {
			ok = ok && labels[k] == v
		}
		if !ok {
			continue
		}
		found = true
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total, found
}

// TestMetricsEndpoint runs a real worker with a group on the test driver, scales it out and in,
// sends it a check-in, and checks what /metrics says, parsed as Prometheus parses it: the
// Temporal SDK's metrics, the group's, the host's, the check-in, and that every PremiScale
// metric has the name, type and labels the dashboard's table gives.
func TestMetricsEndpoint(t *testing.T) {
	f := newFixture(t, "{minNodes: 1, maxNodes: 3, cooldown: 0, scaleIn: {stabilizationWindow: 0}, resourceTarget: {cpu: 50}}")
	a := f.startWorker()
	defer a.stop(t)
	ctl := a.Groups()
	f.waitFor(ctl, "the minimum of 1 running instance", time.Minute, running(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	two, one := 2, 1
	if _, err := ctl.Scale(ctx, f.group, spec.ScaleRequest{Desired: &two}); err != nil {
		t.Fatal(err)
	}
	f.waitFor(ctl, "2 running instances", time.Minute, running(2))
	if _, err := ctl.Scale(ctx, f.group, spec.ScaleRequest{Desired: &one}); err != nil {
		t.Fatal(err)
	}
	f.waitFor(ctl, "1 running instance after a scale-in", time.Minute, func(s groupctl.Status) bool {
		return running(1)(s) && s.LastDecision != nil && s.LastDecision.To == 1 && s.Desired == 1
	})

	// A check-in with a bad token: rejected before anything is looked up.
	resp, err := http.Post("http://"+a.CheckinAddr()+"/checkin/"+f.group+"-1/not-a-token", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("check-in with a bad token: %s, want 401", resp.Status)
	}

	group := map[string]string{"group": f.group}
	host := map[string]string{"host": f.host}
	with := func(base map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	info, err := f.conn.HostInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// What the SDK and the workflows record reaches the registry within a report interval.
	var families map[string]*dto.MetricFamily
	var problems []string
	for deadline := time.Now().Add(30 * time.Second); ; {
		families = scrapeMetrics(t, a)
		problems = nil
		expect := func(what, name string, labels map[string]string, ok func(float64) bool) {
			switch v, found := sample(families, name, labels); {
			case !found:
				problems = append(problems, fmt.Sprintf("%s: %s%v absent", what, name, labels))
			case !ok(v):
				problems = append(problems, fmt.Sprintf("%s: %s%v = %v", what, name, labels, v))
			}
		}
		positive := func(v float64) bool { return v > 0 }
		is := func(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
		expect("the SDK's calls", "temporal_request_total", nil, positive)
		expect("the SDK's polls", "temporal_long_request_total", nil, positive)
		expect("evaluations", "premiscale_evaluations_total", group, positive)
		expect("decisions", "premiscale_decisions_total", with(group, "outcome", "acted"), positive)
		for kind, want := range map[string]float64{"min": 1, "max": 3, "desired": 1, "current": 1} {
			expect("group size", "premiscale_group_size", with(group, "kind", kind), is(want))
		}
		expect("launches", "premiscale_launches_total", with(group, "host", f.host), is(2))
		expect("retirements", "premiscale_retirements_total", with(group, "host", f.host), is(1))
		expect("host capacity", "premiscale_host_capacity", with(host, "resource", "cpus"), is(float64(info.CPUs)))
		expect("host capacity", "premiscale_host_capacity", with(host, "resource", "memory_bytes"), positive)
		expect("host use", "premiscale_host_used", with(host, "resource", "cpus"), func(v float64) bool { return v >= 1 })
		expect("host use", "premiscale_host_used", with(host, "resource", "memory_bytes"), func(v float64) bool { return v >= 128<<20 })
		expect("check-ins", "premiscale_checkins_total", map[string]string{"result": checkin.ResultUnauthorized}, is(1))
		expect("check-ins not seen yet", "premiscale_checkins_total", map[string]string{"result": checkin.ResultOK}, is(0))
		expect("collector rounds", "premiscale_collector_sample_seconds", nil, positive)
		for _, d := range []string{"temporal", "mysql", "influxdb", "libvirt/" + f.host} {
			expect("dependency errors", "premiscale_dependency_errors_total", map[string]string{"dependency": d}, func(float64) bool { return true })
		}
		expect("the process", "process_resident_memory_bytes", nil, positive)
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, p := range problems {
		t.Error(p)
	}

	// With the sticky cache off (TestMain), every workflow task replays the whole history: an
	// evaluation counted again at each replay would outrun the group's own count.
	s, err := ctl.Status(ctx, f.group)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := sample(families, "premiscale_evaluations_total", group)
	if v > float64(s.Evaluations) {
		t.Errorf("premiscale_evaluations_total = %v but the group made %d evaluations: replays were counted", v, s.Evaluations)
	}
	t.Logf("premiscale_evaluations_total = %v; the group's own count: %d", v, s.Evaluations)
	if os.Getenv("PREMISCALE_TEST_DUMP_METRICS") != "" {
		var out strings.Builder
		for _, name := range slices.Sorted(maps.Keys(families)) {
			if _, err := expfmt.MetricFamilyToText(&out, families[name]); err != nil {
				t.Fatal(err)
			}
		}
		t.Log(out.String())
	}

	// Every PremiScale metric is in the dashboard's table, with its type and labels.
	table := documentedMetrics(t)
	for name, fam := range families {
		if !strings.HasPrefix(name, "premiscale_") {
			continue
		}
		doc, ok := table[name]
		if !ok {
			t.Errorf("%s is exported but not in deploy/grafana/README.md", name)
			continue
		}
		if fam.GetType() != doc.typ {
			t.Errorf("%s is a %v, the table says %v", name, fam.GetType(), doc.typ)
		}
		for _, m := range fam.Metric {
			labels := labelsOf(m)
			names := slices.Sorted(maps.Keys(labels))
			want := slices.Sorted(slices.Values(doc.labels))
			if !slices.Equal(names, want) {
				t.Errorf("%s has labels %v, the table says %v", name, names, want)
			}
			if len(doc.values) > 0 {
				last := doc.labels[len(doc.labels)-1]
				if !slices.Contains(doc.values, labels[last]) {
					t.Errorf("%s{%s=%q}: the table lists only %v", name, last, labels[last], doc.values)
				}
			}
		}
	}
	for name := range table {
		// A launch failure's counter exists from the first failure on (workflows/metrics_test.go
		// covers it); every other metric is there by now.
		if families[name] == nil && name != "premiscale_launch_failures_total" {
			t.Errorf("%s is in the table but not exported", name)
		}
	}
	if got, want := table["premiscale_checkins_total"].values, checkin.Results(); !slices.Equal(got, want) {
		t.Errorf("the table lists check-in results %v, the check-in server has %v", got, want)
	}
	f.deleteGroup(ctl)
}

// TestMetricsDoNotWaitForDependencies scrapes /metrics while a readiness check hangs, and
// checks that failed readiness checks are counted as dependency errors.
func TestMetricsDoNotWaitForDependencies(t *testing.T) {
	tm, err := telemetry.New(telemetry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close()
	release := make(chan struct{})
	hung := connectedDep("influxdb", func(context.Context) error { <-release; return nil })
	failing := connectedDep("mysql", func(context.Context) error { return errors.New("connection refused") })
	for _, d := range []*dependency{hung, failing} {
		d.checkedAt = time.Now().Add(-time.Minute)
	}
	w := &Worker{cfg: &config.Config{}, phase: phaseRunning, deps: []*dependency{hung, failing}, telemetry: tm}
	h := w.healthHandler()

	ready := make(chan struct{})
	go func() {
		defer close(ready)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/readyz", nil))
	}()
	defer func() { close(release); <-ready }()
	// The failing check is done once the hung one is the only one left.
	deadline := time.Now().Add(5 * time.Second)
	for failing.status().OK && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}

	scraped := make(chan *httptest.ResponseRecorder)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		scraped <- rec
	}()
	select {
	case rec := <-scraped:
		var p expfmt.TextParser
		families, err := p.TextToMetricFamilies(rec.Body)
		if rec.Code != http.StatusOK || err != nil {
			t.Fatalf("GET /metrics: %d, %v", rec.Code, err)
		}
		if v, ok := sample(families, "premiscale_dependency_errors_total", map[string]string{"dependency": "mysql"}); v != 1 {
			t.Errorf("dependency errors of mysql = %v (present %v), want its failed check counted", v, ok)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("GET /metrics waited for a readiness check")
	}
}
