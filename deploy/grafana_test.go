package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/premiscale/premiscale/internal/collector"
	"github.com/premiscale/premiscale/internal/influxdb"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/testservices"
)

const dashboardFile = "grafana/premiscale.json"

// promMetrics are the Prometheus metrics the worker exports, with their labels; the dashboard
// and grafana/README.md use these names and nothing else.
var promMetrics = map[string][]string{
	"premiscale_evaluations_total":        {"group"},
	"premiscale_decisions_total":          {"group", "action", "outcome"},
	"premiscale_launches_total":           {"group", "host"},
	"premiscale_launch_failures_total":    {"group", "host", "reason"},
	"premiscale_retirements_total":        {"group", "host"},
	"premiscale_checkins_total":           {"result"},
	"premiscale_group_size":               {"group", "kind"},
	"premiscale_host_capacity":            {"host", "resource"},
	"premiscale_host_used":                {"host", "resource"},
	"premiscale_collector_sample_seconds": {},
	"premiscale_dependency_errors_total":  {"dependency"},
}

// promHistograms are exported as <name>_bucket (with le), _sum and _count.
var promHistograms = map[string]bool{"premiscale_collector_sample_seconds": true}

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaTarget struct {
	RefID      string             `json:"refId"`
	Expr       string             `json:"expr"`
	Query      string             `json:"query"`
	Datasource *grafanaDatasource `json:"datasource"`
}

type grafanaPanel struct {
	Type       string             `json:"type"`
	Title      string             `json:"title"`
	Datasource *grafanaDatasource `json:"datasource"`
	Targets    []grafanaTarget    `json:"targets"`
	Panels     []grafanaPanel     `json:"panels"`
}

type grafanaVariable struct {
	Type       string             `json:"type"`
	Name       string             `json:"name"`
	Query      string             `json:"query"`
	Datasource *grafanaDatasource `json:"datasource"`
	AllValue   string             `json:"allValue"`
	IncludeAll bool               `json:"includeAll"`
}

type grafanaDashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
	Panels []grafanaPanel `json:"panels"`
}

func readDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// dashboardTargets lists every query of every panel (rows' nested panels included), with
// the data source type that runs it.
func dashboardTargets(t *testing.T, d grafanaDashboard) (prom, flux []namedQuery) {
	t.Helper()
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			walk(p.Panels)
			for _, tg := range p.Targets {
				ds := tg.Datasource
				if ds == nil {
					ds = p.Datasource
				}
				name := p.Title + "/" + tg.RefID
				switch {
				case ds == nil:
					t.Errorf("panel %s: no data source", name)
				case ds.Type == "prometheus" && ds.UID == "${DS_PROMETHEUS}" && tg.Expr != "":
					prom = append(prom, namedQuery{name, tg.Expr})
				case ds.Type == "influxdb" && ds.UID == "${DS_INFLUXDB}" && tg.Query != "":
					flux = append(flux, namedQuery{name, tg.Query})
				default:
					t.Errorf("panel %s: data source %+v with expr %q, query %q; want Prometheus expr or InfluxDB (Flux) query through the dashboard's data source variables", name, *ds, tg.Expr, tg.Query)
				}
			}
		}
	}
	walk(d.Panels)
	return prom, flux
}

type namedQuery struct{ name, query string }

// TestDashboardPrometheusQueries checks every PromQL expression names only the metrics the
// worker exports, with their labels, so a renamed metric breaks this test and not a dashboard.
func TestDashboardPrometheusQueries(t *testing.T) {
	prom, _ := dashboardTargets(t, readDashboard(t))
	if len(prom) == 0 {
		t.Fatal("no Prometheus queries")
	}
	seen := map[string]bool{}
	metricRe := regexp.MustCompile(`\bpremiscale_[a-z_]+`)
	selectorRe := regexp.MustCompile(`(premiscale_[a-z_]+)\{([^}]*)\}`)
	labelRe := regexp.MustCompile(`([a-z_]+)\s*(=~|!~|!=|=)`)
	byRe := regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	for _, q := range prom {
		labels := map[string]bool{}
		for _, m := range metricRe.FindAllString(q.query, -1) {
			base := m
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(m, suffix); ok && promHistograms[b] {
					base = b
					if suffix == "_bucket" {
						labels["le"] = true
					}
				}
			}
			ls, ok := promMetrics[base]
			if !ok {
				t.Errorf("%s: unknown metric %s in %s", q.name, m, q.query)
				continue
			}
			seen[base] = true
			for _, l := range ls {
				labels[l] = true
			}
		}
		for _, sel := range selectorRe.FindAllStringSubmatch(q.query, -1) {
			for _, l := range labelRe.FindAllStringSubmatch(sel[2], -1) {
				if !slices.Contains(promMetrics[sel[1]], l[1]) {
					t.Errorf("%s: %s has no label %s", q.name, sel[1], l[1])
				}
			}
		}
		for _, by := range byRe.FindAllStringSubmatch(q.query, -1) {
			for _, l := range strings.Split(by[1], ",") {
				if l = strings.TrimSpace(l); l != "" && !labels[l] {
					t.Errorf("%s: aggregates by %s, which none of its metrics has: %s", q.name, l, q.query)
				}
			}
		}
	}
	for m := range promMetrics {
		if !seen[m] {
			t.Errorf("metric %s is on no panel", m)
		}
	}
	readme, err := os.ReadFile("grafana/README.md")
	if err != nil {
		t.Fatal(err)
	}
	for m := range promMetrics {
		if !strings.Contains(string(readme), "`"+m) {
			t.Errorf("grafana/README.md does not list %s", m)
		}
	}
}

// fluxMacros replaces Grafana's Flux macros the way Grafana's InfluxDB data source does
// (pkg/tsdb/influxdb/flux/macros.go): any <word>.timeRangeStart/Stop becomes the range's
// bound in RFC 3339 (UTC), <word>.windowPeriod the interval as a Go duration ("1m0s"),
// <word>.defaultBucket and .organization quoted strings; then $__interval_ms and $__interval.
func fluxMacros(q string, from, to time.Time, interval time.Duration, bucket string) string {
	for _, m := range regexp.MustCompile(`([a-zA-Z]+)\.([a-zA-Z]+)`).FindAllStringSubmatch(q, -1) {
		switch m[2] {
		case "timeRangeStart":
			q = strings.ReplaceAll(q, m[0], from.UTC().Format(time.RFC3339Nano))
		case "timeRangeStop":
			q = strings.ReplaceAll(q, m[0], to.UTC().Format(time.RFC3339Nano))
		case "windowPeriod":
			q = strings.ReplaceAll(q, m[0], interval.String())
		case "defaultBucket":
			q = strings.ReplaceAll(q, m[0], `"`+bucket+`"`)
		case "organization":
			q = strings.ReplaceAll(q, m[0], `""`)
		}
	}
	q = strings.ReplaceAll(q, "$__interval_ms", fmt.Sprint(interval.Milliseconds()))
	return strings.ReplaceAll(q, "$__interval", interval.String())
}

// templateVars replaces dashboard variables the way Grafana's front end does before a query
// is sent: $name, ${name} and ${name:regex} (the value regex-escaped, or the variable's
// allValue as it is for "All"). A reference to an unknown variable fails the test.
func templateVars(t *testing.T, q string, values map[string]string, all map[string]bool) string {
	t.Helper()
	re := regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::([a-z]+))?\}|\$([A-Za-z0-9_]+)`)
	return re.ReplaceAllStringFunc(q, func(ref string) string {
		m := re.FindStringSubmatch(ref)
		name, format := m[1], m[2]
		if name == "" {
			name = m[3]
		}
		if strings.HasPrefix(name, "__") {
			return ref // a Grafana macro, replaced by fluxMacros
		}
		v, ok := values[name]
		if !ok {
			t.Errorf("query uses unknown variable %s: %s", ref, q)
			return ref
		}
		switch {
		case all[name]:
			return ".*"
		case format == "regex":
			return regexp.QuoteMeta(v)
		case format == "":
			return v
		default:
			t.Errorf("variable format %s is not handled by this test: %s", ref, q)
			return ref
		}
	})
}

// balloonStats reports the guest memory figures a guest with a balloon driver gives: the
// test's domain boots no OS, so without them the collector (rightly) writes no memory points
// and the memory panels would have nothing to show.
type balloonStats struct{ collector.Source }

func (b balloonStats) AllDomainStats(ctx context.Context) ([]libvirt.DomainStats, error) {
	stats, err := b.Source.AllDomainStats(ctx)
	for i := range stats {
		if stats[i].BalloonUsableKiB == 0 && stats[i].BalloonUnusedKiB == 0 {
			stats[i].BalloonAvailableKiB = 60 * 1024
			stats[i].BalloonUsableKiB = 24 * 1024
		}
	}
	return stats, err
}

// TestDashboardFluxQueriesReturnRows samples a real QEMU (TCG) domain with the real collector
// into a fresh InfluxDB database, then runs every InfluxDB query of the dashboard, panels and
// template variables, after substituting the variables and Grafana's macros, once with the
// test's group, instance and host selected and once with "All", and checks each returns rows
// of the selected series.
func TestDashboardFluxQueriesReturnRows(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	start := time.Now()

	cfg := testservices.Influx(t)
	sink, err := influxdb.New(cfg.InfluxOptions(), logger)
	if err != nil {
		t.Fatalf("influxdb.New: %v", err)
	}
	t.Cleanup(sink.Close)
	if err := sink.EnsureDatabase(ctx); err != nil {
		t.Fatalf("EnsureDatabase: %v", err)
	}
	const uri = "qemu:///system"
	conn, err := libvirt.Dial(ctx, uri, libvirt.Options{CallTimeout: 30 * time.Second, Logger: logger})
	if err != nil {
		t.Fatalf("libvirtd is not reachable at %s: %v (run testenv/up)", uri, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	group := testservices.UniqueName(t, "dash")
	instance := group + "-1"
	host := testservices.UniqueName(t, "host")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := conn.RemoveDomain(ctx, instance, 0); err != nil {
			t.Errorf("remove domain %s: %v", instance, err)
		}
	})
	// No disks: the firmware's search for something to boot keeps a vCPU busy under TCG.
	ds := libvirt.DomainSpec{Name: instance, Group: group, Domain: spec.Domain{Type: "qemu", VCPUs: 1, Memory: 64}}
	if _, err := conn.EnsureDomainRunning(ctx, ds); err != nil {
		t.Fatalf("EnsureDomainRunning %s on %s: %v", instance, uri, err)
	}
	c := collector.New(host, balloonStats{conn}, sink, time.Second, logger)
	for i := range 3 {
		if i > 0 {
			time.Sleep(time.Second)
		}
		if err := c.Sample(ctx); err != nil {
			t.Fatalf("collector round %d: %v", i+1, err)
		}
	}

	d := readDashboard(t)
	_, panelQueries := dashboardTargets(t, d)
	if len(panelQueries) == 0 {
		t.Fatal("the dashboard has no InfluxDB queries")
	}
	bucket := cfg.Connection.Database + "/autogen"
	values := map[string]string{}
	var varQueries []namedQuery
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			values[v.Name] = v.Query
		case "textbox", "constant", "custom":
			values[v.Name] = v.Query
		case "query":
			if v.Datasource == nil || v.Datasource.Type != "influxdb" {
				t.Errorf("variable %s: not an InfluxDB query", v.Name)
				continue
			}
			if !v.IncludeAll || v.AllValue != ".*" {
				t.Errorf("variable %s: want includeAll with allValue .* (the queries match it as a regex)", v.Name)
			}
			varQueries = append(varQueries, namedQuery{"variable " + v.Name, v.Query})
		}
	}
	if values["bucket"] != "premiscale/autogen" {
		t.Errorf("variable bucket defaults to %q, want premiscale/autogen", values["bucket"])
	}
	values["bucket"] = bucket
	values["group"], values["instance"], values["host"] = group, instance, host

	client := influxdb2.NewClient(cfg.Connection.URL, "")
	defer client.Close()
	query := client.QueryAPI("")
	run := func(t *testing.T, q namedQuery, all map[string]bool, interval time.Duration) []map[string]any {
		t.Helper()
		flux := fluxMacros(templateVars(t, q.query, values, all), start.Add(-5*time.Minute), time.Now().Add(time.Minute), interval, bucket)
		if regexp.MustCompile(`\$[{A-Za-z_]|\bv\.[a-zA-Z]`).MatchString(flux) {
			t.Errorf("%s: unresolved variable or macro left in:\n%s", q.name, flux)
		}
		res, err := query.Query(ctx, flux)
		if err != nil {
			t.Errorf("%s: %v\n%s", q.name, err, flux)
			return nil
		}
		defer res.Close()
		var rows []map[string]any
		for res.Next() {
			rows = append(rows, res.Record().Values())
		}
		if err := res.Err(); err != nil {
			t.Errorf("%s: %v\n%s", q.name, err, flux)
		}
		if len(rows) == 0 {
			t.Errorf("%s returned no rows:\n%s", q.name, flux)
		}
		return rows
	}

	for _, sel := range []struct {
		name string
		all  map[string]bool
		// interval is Grafana's: the range over the panel's width, never below the
		// data source's minimum.
		interval time.Duration
	}{
		{"selected", nil, 10 * time.Second},
		{"all", map[string]bool{"group": true, "instance": true, "host": true}, time.Minute},
	} {
		t.Run(sel.name, func(t *testing.T) {
			for _, q := range varQueries {
				rows := run(t, q, sel.all, sel.interval)
				want := values[strings.TrimPrefix(q.name, "variable ")]
				if !slices.ContainsFunc(rows, func(r map[string]any) bool { return r["_value"] == want }) {
					t.Errorf("%s: %s is not among its values %v", q.name, want, rows)
				}
			}
			for _, q := range panelQueries {
				rows := run(t, q, sel.all, sel.interval)
				for _, r := range rows {
					for tag, want := range map[string]string{"group": group, "instance": instance, "host": host} {
						if got, ok := r[tag]; ok && sel.all == nil && got != want {
							t.Errorf("%s: row with %s=%v, want only %s", q.name, tag, got, want)
						}
					}
					if v, ok := r["_value"].(float64); ok && (v < 0 || (strings.Contains(q.name, "CPU per") && v > 100)) {
						t.Errorf("%s: value %v out of range", q.name, v)
					}
				}
			}
		})
	}
}
