// Package telemetry exports a worker's metrics in the Prometheus text format, from one registry
// of the worker's own: the Temporal SDK's metrics and those the group workflows emit (both
// through the SDK's tally handler, see TemporalHandler), and the worker's own measurements —
// check-ins, hosts' capacity and use, collector rounds and dependency errors — through typed
// methods. deploy/grafana/README.md lists every PremiScale metric; the dashboard uses those.
//
// Scraping reads only what is in memory: it never waits on Temporal, a database or a host.
package telemetry

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// Names of the metrics this package records itself. The group workflows name theirs
// (workflows/metrics.go); deploy/grafana/README.md lists them all.
const (
	CheckinsName         = "premiscale_checkins_total"
	HostCapacityName     = "premiscale_host_capacity"
	HostUsedName         = "premiscale_host_used"
	CollectorSampleName  = "premiscale_collector_sample_seconds"
	DependencyErrorsName = "premiscale_dependency_errors_total"
)

// Values of the resource label of the host gauges.
const (
	ResourceCPUs        = "cpus"
	ResourceMemoryBytes = "memory_bytes"
)

// ReportInterval is how often the SDK's tally scope hands what it counted to the registry, so
// the SDK's and the workflows' metrics reach a scrape this much later at most.
const ReportInterval = time.Second

// Options tune New.
type Options struct {
	// Logger gets the errors of registering or serving a metric; nil discards them.
	Logger *slog.Logger
	// Checkins are the result label values of premiscale_checkins_total, and Dependencies the
	// dependency label values of premiscale_dependency_errors_total, that start at 0, so that
	// rate() and increase() see the first one.
	Checkins     []string
	Dependencies []string
}

// Metrics is a worker's registry and the metrics it records. A nil *Metrics records nothing,
// so code that may run without one (tests) need not check. Close it when the worker stops.
type Metrics struct {
	registry *prometheus.Registry
	scope    tally.Scope
	closer   io.Closer
	handler  client.MetricsHandler
	log      *slog.Logger

	checkins         *prometheus.CounterVec
	hostCapacity     *prometheus.GaugeVec
	hostUsed         *prometheus.GaugeVec
	collectorSample  prometheus.Histogram
	dependencyErrors *prometheus.CounterVec

	mu sync.Mutex
	// reported are the registration errors logged once already.
	reported map[string]bool
}

// New makes a registry with the Go runtime's and the process's metrics, PremiScale's own, and a
// tally scope reporting into it every ReportInterval for the Temporal SDK.
func New(o Options) (*Metrics, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{registry: prometheus.NewRegistry(), log: o.Logger, reported: map[string]bool{}}
	m.checkins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: CheckinsName,
		Help: "Check-ins the worker's check-in endpoint answered, by result (ok: a first check-in passed to the instance's workflow; heartbeat: a later one).",
	}, []string{"result"})
	m.hostCapacity = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: HostCapacityName,
		Help: "A served host's CPUs and memory in bytes, as its libvirt reported them at the last probe.",
	}, []string{"host", "resource"})
	m.hostUsed = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: HostUsedName,
		Help: "The vCPUs and memory in bytes PremiScale's domains on a served host are defined with, at the last probe (what placement counts as used).",
	}, []string{"host", "resource"})
	m.collectorSample = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: CollectorSampleName,
		Help: "How long one collector round took: reading a host's domain statistics and writing them to InfluxDB.",
		// A few milliseconds on an idle host, up to the call timeout on one that hangs.
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	m.dependencyErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: DependencyErrorsName,
		Help: "Failed calls the worker made to a dependency (temporal, mysql, influxdb, libvirt/<host>): connection attempts, readiness checks, host probes and collector rounds.",
	}, []string{"dependency"})
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.checkins, m.hostCapacity, m.hostUsed, m.collectorSample, m.dependencyErrors,
	} {
		if err := m.registry.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	for _, r := range o.Checkins {
		m.checkins.WithLabelValues(r)
	}
	for _, d := range o.Dependencies {
		m.dependencyErrors.WithLabelValues(d)
	}

	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:       m.registry,
		DefaultTimerType: tallyprom.HistogramTimerType,
		// tally's defaults (1 ms to 10 s) and, since long polls last up to a minute, 30 s and 60 s.
		DefaultHistogramBuckets: []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10, 30, 60},
		// The default panics. A metric the SDK emits with another set of labels than the
		// first time cannot be registered again; it is lost, and said so once.
		OnRegisterError: m.registerError,
	})
	m.scope, m.closer = tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: sanitizeOptions(),
		// tally's own cardinality gauges say nothing an operator needs.
		OmitCardinalityMetrics: true,
	}, ReportInterval)
	root := sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(m.scope))
	m.handler = handler{all: root, root: root}
	return m, nil
}

// handler is the SDK's tally handler, except that PremiScale's own metrics (premiscale_*,
// which the group workflows emit through the SDK) keep only the tags the workflow code gave
// them. The SDK tags everything a workflow emits with the client, namespace, task queue,
// worker, workflow and activity type; on PremiScale's metrics these six labels would say
// nothing the dashboard uses, and deploy/grafana/README.md promises the labels it lists.
type handler struct {
	// all has every tag given so far; tags are those of them not the SDK's own; root has none.
	all, root client.MetricsHandler
	tags      map[string]string
}

// sdkTag says whether a tag name is one of those the Temporal SDK (v1.51, internal/common/metrics) sets.
func sdkTag(name string) bool {
	switch name {
	case "namespace", "client_name", "poller_type", "worker_type", "workflow_type", "activity_type",
		"nexus_service", "nexus_operation", "failure_reason", "task_queue", "operation", "cause":
		return true
	}
	return false
}

func (h handler) WithTags(tags map[string]string) client.MetricsHandler {
	own := maps.Clone(h.tags)
	for k, v := range tags {
		if !sdkTag(k) {
			if own == nil {
				own = map[string]string{}
			}
			own[k] = v
		}
	}
	return handler{all: h.all.WithTags(tags), root: h.root, tags: own}
}

// pick is the handler a metric of this name goes to.
func (h handler) pick(name string) client.MetricsHandler {
	if !strings.HasPrefix(name, "premiscale_") {
		return h.all
	}
	return h.root.WithTags(h.tags)
}

func (h handler) Counter(name string) client.MetricsCounter { return h.pick(name).Counter(name) }
func (h handler) Gauge(name string) client.MetricsGauge     { return h.pick(name).Gauge(name) }
func (h handler) Timer(name string) client.MetricsTimer     { return h.pick(name).Timer(name) }

// sanitizeOptions make names and label names valid for Prometheus, as the SDK's
// PrometheusSanitizeOptions do, but keep label values as they are: a group or host name
// must read the same here as in InfluxDB's tags and the dashboard's variables, and
// Prometheus allows any label value.
func sanitizeOptions() *tally.SanitizeOptions {
	prom := sdktally.PrometheusSanitizeOptions
	return &tally.SanitizeOptions{
		NameCharacters:       prom.NameCharacters,
		KeyCharacters:        prom.KeyCharacters,
		ValueCharacters:      tally.ValidCharacters{Ranges: []tally.SanitizeRange{{0, unicode.MaxRune}}},
		ReplacementCharacter: prom.ReplacementCharacter,
	}
}

func (m *Metrics) registerError(err error) {
	m.mu.Lock()
	seen := m.reported[err.Error()]
	m.reported[err.Error()] = true
	m.mu.Unlock()
	if !seen {
		m.log.Warn("a Temporal SDK metric could not be registered and is not exported", "error", err)
	}
}

// Close reports what the tally scope still holds and stops its reporting.
func (m *Metrics) Close() error {
	if m == nil {
		return nil
	}
	return m.closer.Close()
}

// Handler serves the registry in the Prometheus text format (GET /metrics).
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorLog:      slogPrinter{m.log},
		ErrorHandling: promhttp.ContinueOnError,
		// A scrape reads memory only; this bounds a slow client, not a dependency.
		Timeout:             10 * time.Second,
		MaxRequestsInFlight: 4,
	})
}

// TemporalHandler is the handler to give the Temporal client (client.Options.MetricsHandler):
// the SDK's own metrics, and those workflows emit through workflow.GetMetricsHandler, reach
// the registry through it. A nil *Metrics gives nil, which the SDK takes as none.
func (m *Metrics) TemporalHandler() client.MetricsHandler {
	if m == nil {
		return nil
	}
	return m.handler
}

// Checkin counts a check-in by its result (internal/checkin's Result* values).
func (m *Metrics) Checkin(result string) {
	if m == nil {
		return
	}
	m.checkins.WithLabelValues(result).Inc()
}

// Resources are a host's CPUs and memory: its capacity, or what is used of it.
type Resources struct {
	CPUs        int
	MemoryBytes int64
}

// Host sets a served host's capacity and what PremiScale's domains use of it.
func (m *Metrics) Host(host string, capacity, used Resources) {
	if m == nil {
		return
	}
	m.hostCapacity.WithLabelValues(host, ResourceCPUs).Set(float64(capacity.CPUs))
	m.hostCapacity.WithLabelValues(host, ResourceMemoryBytes).Set(float64(capacity.MemoryBytes))
	m.hostUsed.WithLabelValues(host, ResourceCPUs).Set(float64(used.CPUs))
	m.hostUsed.WithLabelValues(host, ResourceMemoryBytes).Set(float64(used.MemoryBytes))
}

// CollectorRound records how long one collector round took.
func (m *Metrics) CollectorRound(took time.Duration) {
	if m == nil {
		return
	}
	m.collectorSample.Observe(took.Seconds())
}

// DependencyError counts a failed call to a dependency, named as /readyz names it: temporal,
// mysql, influxdb, libvirt/<host>.
func (m *Metrics) DependencyError(dependency string) {
	if m == nil {
		return
	}
	m.dependencyErrors.WithLabelValues(dependency).Inc()
}

// slogPrinter is promhttp's error log.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("serving metrics", "error", fmt.Sprint(v...)) }
