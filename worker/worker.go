// Package worker runs a PremiScale worker: its connections to Temporal, MySQL, InfluxDB and
// every served host's libvirt, a Temporal worker on the shared task queue (workflows and
// database activities) and one per served host (that host's libvirt activities), the check-in
// and health endpoints, the collectors, and the groups from the config.
//
// Each of these is a component, and all of them run in one errgroup with one way to stop (see
// components). Start-up waits for dependencies that are not there yet, if asked to, and the
// health endpoint, which starts first, says what it waits for.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/checkin"
	"github.com/premiscale/premiscale/internal/collector"
	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/drift"
	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/hostwatch"
	"github.com/premiscale/premiscale/internal/images"
	"github.com/premiscale/premiscale/internal/influxdb"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/outage"
	"github.com/premiscale/premiscale/internal/platform"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/telemetry"
	"github.com/premiscale/premiscale/internal/temporalclient"
	"github.com/premiscale/premiscale/workflows"
)

// Options tune a worker beyond its config file.
type Options struct {
	Logger *slog.Logger
	// StartGroups starts (or updates) every group in the config once the workers run.
	StartGroups bool
	// Hosts limits the hosts this worker serves (the --serve flag); empty serves those of
	// controller.autoscale.serve, or every host in the config.
	Hosts []string
	// WaitForDependencies makes start-up retry a dependency that does not answer (with
	// back-off, logging each attempt) instead of failing at once.
	WaitForDependencies bool
	// WaitTimeout bounds that wait; 0 waits until the context ends.
	WaitTimeout time.Duration
	// Started, if set, is called once the health endpoint listens; the worker may still be
	// waiting for its dependencies.
	Started func() error
	// Ready, if set, is called once the Temporal workers run and the config's groups are started.
	Ready func() error
	// Notify, if set, is sent systemd notify states: STATUS=… while waiting, READY=1 once
	// ready, STOPPING=1 when stopping.
	Notify func(state string) error
	// Version is the worker's version, sent to the platform; ConfigDir the config file's
	// folder, where group files from the platform find their relative files; Platform
	// tunes the platform link.
	Version   string
	ConfigDir string
	Platform  platform.Options
}

// Phases of a worker's life, as /readyz reports them.
const (
	phaseNew      = "not started"
	phaseWaiting  = "waiting for dependencies"
	phaseStarting = "starting"
	phaseRunning  = "running"
	phaseStopping = "stopping"
)

// Worker is a PremiScale worker. Build it with New and run it with Run, once.
type Worker struct {
	cfg  *config.Config
	opts Options
	log  *slog.Logger
	// quiet is log for the components that talk to the dependencies (the Temporal SDK, the
	// activities, the collectors, the check-in endpoint, the libvirt connections): their
	// lines about a single call that failed because a dependency is unreachable are debug,
	// as the dependency's watch logs its outage once (see outage.Quiet).
	quiet   *slog.Logger
	backoff backoff
	started time.Time

	hosts []*servedHost
	deps  []*dependency

	// Made by the dependencies' connect; used only after they are up.
	temporal client.Client
	store    *state.Store
	metrics  *influxdb.Client
	secret   []byte
	conns    map[string]*libvirt.Conn
	// telemetry is the registry /metrics serves; made by Run.
	telemetry *telemetry.Metrics

	mu                      sync.Mutex
	phase                   string
	healthAddr, checkinAddr string
}

// servedHost is a host this worker serves, with where the config names it.
type servedHost struct {
	config.Host
	uri, key string
	conn     *libvirt.Conn
}

// New checks what the config says about the worker's dependencies and prepares them; it does
// not connect to anything. Its errors are configuration errors.
func New(cfg *config.Config, opts Options) (*Worker, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	w := &Worker{
		cfg: cfg, opts: opts, log: opts.Logger, quiet: slog.New(outage.Quiet(opts.Logger.Handler())), phase: phaseNew,
		backoff: backoff{initial: time.Second, max: 30 * time.Second},
		conns:   map[string]*libvirt.Conn{},
	}
	c := cfg.Controller
	m, err := influxdb.New(c.Databases.Timeseries.InfluxOptions(), w.quiet)
	if err != nil {
		return nil, fmt.Errorf("controller.databases.timeseries: %w", err)
	}
	w.metrics = m
	served := w.servedHosts()
	for i, h := range c.Autoscale.Hosts {
		if !slices.ContainsFunc(served, func(s config.Host) bool { return s.Name == h.Name }) {
			continue
		}
		uri, err := h.LibvirtURI()
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("controller.autoscale.hosts[%d]: %w", i, err)
		}
		key := fmt.Sprintf("controller.autoscale.hosts[%d].uri", i)
		if h.URI == "" {
			key = fmt.Sprintf("controller.autoscale.hosts[%d].address", i)
		}
		w.hosts = append(w.hosts, &servedHost{Host: h, uri: uri, key: key})
	}
	for _, want := range opts.Hosts {
		if !slices.ContainsFunc(w.hosts, func(h *servedHost) bool { return h.Name == want }) {
			m.Close()
			return nil, fmt.Errorf("host %s is not in controller.autoscale.hosts", want)
		}
	}
	w.deps = append(w.deps, w.temporalDependency(), w.stateDependency(), w.timeseriesDependency())
	for _, h := range w.hosts {
		w.deps = append(w.deps, w.hostDependency(h))
	}
	for _, d := range w.deps {
		if d.watch == nil {
			d.watch = w.newWatch(d.name, d.target, d.key)
		}
	}
	return w, nil
}

// newWatch makes the watch that logs a dependency's outages, on the worker's own log.
func (w *Worker) newWatch(name, target, key string) *outage.Watch {
	return outage.NewWatch(w.log, target, "dependency", name, "config_key", key)
}

func (w *Worker) temporalDependency() *dependency {
	t := w.cfg.Controller.Temporal
	const key = "controller.temporal.address"
	return &dependency{
		name:   "temporal",
		target: fmt.Sprintf("Temporal at %s (namespace %s)", t.Address, t.Namespace),
		key:    key,
		// temporalclient's errors name the address, the namespace and the setting to look at.
		connect: func(ctx context.Context) error {
			tc, err := temporalclient.Dial(ctx, t, w.quiet.With("component", "temporal"), temporalclient.WithMetrics(w.telemetry.TemporalHandler()))
			if err != nil {
				return err
			}
			w.temporal = tc
			return nil
		},
		check: func(ctx context.Context) error {
			_, err := w.temporal.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		},
		close: func() { w.temporal.Close() },
	}
}

func (w *Worker) stateDependency() *dependency {
	db := w.cfg.Controller.Databases.State
	const key = "controller.databases.state.connection.url"
	return &dependency{
		name:    "mysql",
		target:  fmt.Sprintf("MySQL at %s (database %s)", db.Connection.URL, db.Connection.Database),
		key:     key,
		failure: fmt.Sprintf("open the state database (%s)", key),
		connect: func(ctx context.Context) error {
			store, err := state.Open(ctx, db)
			if err != nil {
				return err
			}
			w.store = store
			if w.secret, err = w.checkinSecret(ctx); err != nil {
				store.Close()
				w.store = nil
				return err
			}
			return nil
		},
		check: func(ctx context.Context) error { return w.store.Ping(ctx) },
		close: func() { _ = w.store.Close() },
	}
}

func (w *Worker) timeseriesDependency() *dependency {
	ts := w.cfg.Controller.Databases.Timeseries
	const key = "controller.databases.timeseries.connection.url"
	return &dependency{
		name:    "influxdb",
		target:  fmt.Sprintf("InfluxDB at %s (database %s)", ts.Connection.URL, ts.Connection.Database),
		key:     key,
		failure: fmt.Sprintf("prepare the time-series database (%s)", key),
		connect: w.metrics.EnsureDatabase,
		check:   w.metrics.Ping,
		close:   w.metrics.Close,
	}
}

func (w *Worker) hostDependency(h *servedHost) *dependency {
	timeout := w.cfg.Controller.Databases.HostConnectionTimeout.Duration
	name, target := "libvirt/"+h.Name, fmt.Sprintf("libvirt at %s (host %s)", h.uri, h.Name)
	// The connection reports its failed reconnections and timed-out calls to the same watch as
	// the monitor's checks: one outage, one line.
	watch := w.newWatch(name, target, h.key)
	return &dependency{
		name:    name,
		target:  target,
		key:     h.key,
		watch:   watch,
		failure: fmt.Sprintf("connect to host %s (%s)", h.Name, h.key),
		connect: func(ctx context.Context) error {
			conn, err := libvirt.Dial(ctx, h.uri, libvirt.Options{CallTimeout: timeout, Logger: w.quiet.With("host", h.Name), Outage: watch})
			if err != nil {
				return err
			}
			h.conn = conn
			return nil
		},
		check: func(ctx context.Context) error {
			_, err := h.conn.HostInfo(ctx)
			return err
		},
		close: func() {
			if err := h.conn.Close(); err != nil {
				w.log.Warn("close libvirt connection", "host", h.Name, "error", err)
			}
		},
	}
}

func (a *Worker) servedHosts() []config.Host {
	hosts := a.cfg.Controller.Autoscale.Hosts
	serve := a.opts.Hosts
	if len(serve) == 0 {
		serve = a.cfg.Controller.Autoscale.Serve
	}
	if len(serve) == 0 {
		return hosts
	}
	var out []config.Host
	for _, h := range hosts {
		if slices.Contains(serve, h.Name) {
			out = append(out, h)
		}
	}
	return out
}

// Run runs the worker until ctx ends (SIGTERM/SIGINT) or a component fails, then stops every
// component, the last started first, and closes the connections. It returns nil when ctx
// ended, else what failed.
func (w *Worker) Run(ctx context.Context) error {
	w.started = time.Now()
	names := make([]string, len(w.deps))
	for i, d := range w.deps {
		names[i] = d.name
	}
	tm, err := telemetry.New(telemetry.Options{Logger: w.log.With("component", "telemetry"), Checkins: checkin.Results(), Dependencies: names})
	if err != nil {
		return err
	}
	w.telemetry = tm
	defer tm.Close()
	comps := newComponents(ctx, w.log, w.stopping)
	comps.goStartup(func(ctx context.Context) error { return w.startup(ctx, comps) })
	return comps.wait()
}

// Run builds a worker from cfg and runs it; see Worker.Run.
func Run(ctx context.Context, cfg *config.Config, opts Options) error {
	w, err := New(cfg, opts)
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// startup starts the components in order: the health endpoint first, so probes answer while
// the worker waits; then every dependency, side by side; then what uses them.
func (w *Worker) startup(ctx context.Context, comps *components) error {
	if err := comps.start(w.healthComponent()); err != nil {
		return err
	}
	if w.opts.Started != nil {
		if err := w.opts.Started(); err != nil {
			return err
		}
	}
	w.setPhase(phaseWaiting)
	deps := make([]component, 0, len(w.deps))
	for _, d := range w.deps {
		deps = append(deps, w.dependencyComponent(d))
	}
	if err := comps.start(deps...); err != nil {
		return err
	}
	w.setPhase(phaseStarting)
	if err := w.checkSearchAttributes(ctx); err != nil {
		return err
	}
	for _, h := range w.hosts {
		w.conns[h.Name] = h.conn
	}
	if err := comps.start(w.hostwatchComponents()...); err != nil {
		return err
	}
	if err := comps.start(w.driftComponents()...); err != nil {
		return err
	}
	if err := comps.start(w.monitorComponent(), w.checkinComponent()); err != nil {
		return err
	}
	if err := comps.start(w.collectorComponents()...); err != nil {
		return err
	}
	if err := comps.start(w.temporalWorkerComponents()...); err != nil {
		return err
	}
	if err := comps.start(w.platformComponent()); err != nil {
		return err
	}
	w.log.Info("workers started", "task_queue", w.cfg.Controller.Temporal.TaskQueue, "hosts", len(w.conns))
	if w.opts.StartGroups {
		if err := w.applyGroups(ctx); err != nil {
			return err
		}
	}
	w.setPhase(phaseRunning)
	w.notify("READY=1")
	w.notify(fmt.Sprintf("STATUS=running: task queue %s, %d hosts", w.cfg.Controller.Temporal.TaskQueue, len(w.conns)))
	if w.opts.Ready != nil {
		return w.opts.Ready()
	}
	return nil
}

// stopping is called once, when the worker begins to stop.
func (w *Worker) stopping() {
	w.setPhase(phaseStopping)
	w.log.Info("shutting down")
	w.notify("STOPPING=1")
}

func (w *Worker) notify(state string) {
	if w.opts.Notify == nil {
		return
	}
	if err := w.opts.Notify(state); err != nil {
		w.log.Warn("systemd notify failed", "state", state, "error", err)
	}
}

func (w *Worker) setPhase(p string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.phase = p
}

func (w *Worker) temporalWorkerComponents() []component {
	queues := []string{w.cfg.Controller.Temporal.TaskQueue}
	for _, h := range w.servedHosts() {
		queues = append(queues, spec.HostTaskQueue(h.Name))
	}
	workers := w.temporalWorkers()
	comps := make([]component, len(workers))
	for i, tw := range workers {
		comps[i] = component{name: "Temporal worker " + queues[i], run: func(ctx context.Context, up func()) error {
			if err := tw.Start(); err != nil {
				return fmt.Errorf("start Temporal worker on task queue %s: %w", queues[i], err)
			}
			up()
			<-ctx.Done()
			// In-flight activities are cancelled and retried by another worker.
			tw.Stop()
			return nil
		}}
	}
	return comps
}

// temporalWorkers makes the shared task queue's worker, with the workflows and the database
// activities, and one worker per served host with its libvirt activities.
func (a *Worker) temporalWorkers() []sdkworker.Worker {
	c := a.cfg.Controller
	var workers []sdkworker.Worker
	copier := a.imageCopier()
	opts := taskQueueOptions()
	opts.Interceptors = []interceptor.WorkerInterceptor{&activityErrors{}}
	shared := sdkworker.New(a.temporal, c.Temporal.TaskQueue, opts)
	shared.RegisterWorkflow(workflows.GroupWorkflow)
	shared.RegisterWorkflow(workflows.InstanceWorkflow)
	shared.RegisterActivity(&activities.Activities{Store: a.store, Metrics: influxdb.Sources(a.metrics), Logger: a.quiet,
		HostDownAfter: a.cfg.Controller.Autoscale.HostDownAfter.Duration, Temporal: a.temporal})
	workers = append(workers, shared)
	for _, h := range a.servedHosts() {
		w := sdkworker.New(a.temporal, spec.HostTaskQueue(h.Name), opts)
		w.RegisterActivity(&activities.HostActivities{
			Host: h.Name, Hyper: a.conns[h.Name], Logger: a.quiet.With("host", h.Name), Allowance: h.Allowance(), Images: copier,
			CheckinURL: func(instance string) string { return checkin.URL(c.Checkin.URL, a.secret, instance) },
		})
		workers = append(workers, w)
	}
	return workers
}

func (a *Worker) applyGroups(ctx context.Context) error {
	ctl := a.Groups()
	specs, err := a.cfg.GroupSpecs()
	if err != nil {
		return err
	}
	for _, gs := range specs {
		name := gs.Name
		res, err := ctl.Apply(ctx, gs)
		if err != nil {
			return err
		}
		if res.Started {
			a.log.Info("group started", "group", name, "run_id", res.RunID)
		} else {
			a.log.Info("group already running; new spec sent", "group", name)
		}
	}
	return nil
}

// Groups returns a group controller on this worker's Temporal client and state store; use it
// once the worker is ready.
func (w *Worker) Groups() *groupctl.Client {
	return &groupctl.Client{Temporal: w.temporal, TaskQueue: w.cfg.Controller.Temporal.TaskQueue, Store: w.store}
}

// Temporal returns the worker's Temporal client, once the worker is ready.
func (w *Worker) Temporal() client.Client { return w.temporal }

// checkinSecret is controller.checkin.secret, or else one generated once and kept in MySQL,
// so every worker signs and checks the same tokens.
func (w *Worker) checkinSecret(ctx context.Context) ([]byte, error) {
	if s := w.cfg.Controller.Checkin.Secret; s != "" {
		return []byte(s), nil
	}
	secret, err := w.store.Secret(ctx, checkin.SecretSetting, checkin.NewSecret)
	if err != nil {
		return nil, fmt.Errorf("load the check-in secret: %w", err)
	}
	return secret, nil
}

func (w *Worker) checkinComponent() component {
	return component{name: "check-in endpoint", run: func(ctx context.Context, up func()) error {
		listen := w.cfg.Controller.Checkin.Listen
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return fmt.Errorf("listen for check-ins on controller.checkin.listen %s: %w", listen, err)
		}
		w.mu.Lock()
		w.checkinAddr = ln.Addr().String()
		w.mu.Unlock()
		srv := &checkin.Server{Secret: w.secret, Instances: w.store, Signaler: w.temporal, Logger: w.quiet.With("component", "checkin"),
			Observe: w.telemetry.Checkin}
		w.log.Info("check-in endpoint listening", "address", ln.Addr().String(), "url", w.cfg.Controller.Checkin.URL)
		up()
		return serveHTTP(ctx, &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}, ln)
	}}
}

// imageCopier copies base images onto the hosts this worker serves, from a group's image source
// or from any host of the config that has the image.
func (w *Worker) imageCopier() *images.Copier {
	c := &images.Copier{Records: w.store, Logger: w.log.With("component", "images"), HTTP: &http.Client{}}
	timeout := w.cfg.Controller.Databases.HostConnectionTimeout.Duration
	for _, h := range w.cfg.Controller.Autoscale.Hosts {
		uri, err := h.LibvirtURI()
		if err != nil {
			continue // validated at load; a host without a URI cannot be copied from
		}
		c.Peers = append(c.Peers, images.DialPeer(h.Name, uri, libvirt.Options{CallTimeout: timeout, Logger: w.log.With("host", h.Name)}))
	}
	return c
}

// driftComponents sweep every served host for orphans and foreign domains.
func (w *Worker) driftComponents() []component {
	as := w.cfg.Controller.Autoscale
	var comps []component
	for _, h := range w.hosts {
		s := &drift.Sweeper{
			Host: h.Name, Hyper: h.conn, Store: w.store, Workflows: groupInstances{w.Groups()},
			Grace: as.OrphanGracePeriod.Duration, Mode: as.Drift, Logger: w.quiet.With("component", "drift"),
		}
		comps = append(comps, component{name: "drift sweep " + h.Name, run: func(ctx context.Context, up func()) error {
			up()
			s.Run(ctx, drift.Period(as.OrphanGracePeriod.Duration))
			return nil
		}})
	}
	return comps
}

// groupInstances tells the drift sweep which instances a group's workflow owns.
type groupInstances struct{ ctl *groupctl.Client }

func (g groupInstances) Instances(ctx context.Context, group string) ([]string, bool, error) {
	s, err := g.ctl.Status(ctx, group)
	if errors.Is(err, groupctl.ErrNotRunning) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	names := make([]string, len(s.Instances))
	for i, in := range s.Instances {
		names[i] = in.Name
	}
	return names, true, nil
}

// hostwatchComponents prove every served host alive in the state database at a short period.
func (w *Worker) hostwatchComponents() []component {
	as := w.cfg.Controller.Autoscale
	name, _ := os.Hostname()
	id := fmt.Sprintf("%s/%d", name, os.Getpid())
	var comps []component
	for _, h := range w.hosts {
		p := &hostwatch.Prober{
			Host: h.Name, Hyper: h.conn, Store: w.store, Worker: id, Period: hostwatch.Period(as.HostDownAfter.Duration),
			Allowance: h.Host.Allowance(),
			Logger:    w.quiet.With("component", "hostwatch"),
			OnProof:   w.hostMetrics,
			OnError:   w.telemetry.DependencyError,
		}
		comps = append(comps, component{name: "host watch " + h.Name, run: func(ctx context.Context, up func()) error {
			up()
			p.Run(ctx)
			return nil
		}})
	}
	return comps
}

// hostMetrics exports what a host probe measured: the host's capacity and what PremiScale's
// domains on it take, as placement counts them.
func (w *Worker) hostMetrics(p state.HostProof) {
	w.telemetry.Host(p.Name,
		telemetry.Resources{CPUs: p.CPUs, MemoryBytes: p.MemoryMiB << 20},
		telemetry.Resources{CPUs: p.UsedCPUs, MemoryBytes: p.UsedMemoryMiB << 20})
}

// collectorComponents sample every served host's domains into InfluxDB.
func (w *Worker) collectorComponents() []component {
	interval := w.cfg.Controller.Databases.CollectionInterval.Duration
	var comps []component
	for _, h := range w.hosts {
		c := collector.New(h.Name, h.conn, w.metrics, interval, w.quiet)
		c.OnRound, c.OnError = w.telemetry.CollectorRound, w.telemetry.DependencyError
		comps = append(comps, component{name: "collector " + h.Name, run: func(ctx context.Context, up func()) error {
			up()
			c.Run(ctx)
			return nil
		}})
	}
	return comps
}

func (w *Worker) healthComponent() component {
	return component{name: "health endpoint", run: func(ctx context.Context, up func()) error {
		hc := w.cfg.Controller.Healthcheck
		ln, err := net.Listen("tcp", net.JoinHostPort(hc.Host, strconv.Itoa(hc.Port)))
		if err != nil {
			return fmt.Errorf("listen for health checks on controller.healthcheck %s:%d: %w", hc.Host, hc.Port, err)
		}
		w.mu.Lock()
		w.healthAddr = ln.Addr().String()
		w.mu.Unlock()
		w.log.Info("health endpoint listening", "address", ln.Addr().String())
		up()
		return serveHTTP(ctx, &http.Server{Handler: w.healthHandler(), ReadHeaderTimeout: 5 * time.Second}, ln)
	}}
}

// HealthAddr and CheckinAddr are where the health and check-in endpoints listen, once started.
func (w *Worker) HealthAddr() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.healthAddr
}

// CheckinAddr: see HealthAddr.
func (w *Worker) CheckinAddr() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.checkinAddr
}
