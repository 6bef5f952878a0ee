// Package worker wires a PremiScale agent together: the Temporal client, a worker on the
// shared task queue (workflows and database activities), one worker per served host (that
// host's libvirt activities), the groups from the config, and the health endpoint.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/checkin"
	"github.com/premiscale/premiscale/internal/collector"
	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/influxdb"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/temporalclient"
	"github.com/premiscale/premiscale/workflows"
)

// Options tune an agent beyond its config file.
type Options struct {
	Logger *slog.Logger
	// StartGroups starts (or updates) every group in the config once the workers run.
	StartGroups bool
	// Hosts limits the hosts this agent serves; empty serves every host in the config.
	Hosts []string
	// Ready, if set, is called by Run once the agent is fully started.
	Ready func() error
}

// Agent is a running PremiScale worker.
type Agent struct {
	cfg      *config.Config
	opts     Options
	log      *slog.Logger
	temporal client.Client
	store    *state.Store
	metrics  *influxdb.Client
	conns    map[string]*libvirt.Conn
	workers  []sdkworker.Worker
	health   *http.Server
	checkin  *http.Server
	secret   []byte
	// stop ends the collectors; wg waits for them.
	stop context.CancelFunc
	wg   sync.WaitGroup
	// HealthAddr and CheckinAddr are where the health and check-in endpoints listen, once started.
	HealthAddr, CheckinAddr string
}

// New connects to MySQL (applying migrations), InfluxDB, Temporal and every served host.
// On error, whatever was opened is closed again.
func New(ctx context.Context, cfg *config.Config, opts Options) (a *Agent, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	// The error returns below set a to nil before this defer runs: close what was built.
	built := &Agent{cfg: cfg, opts: opts, log: opts.Logger, conns: map[string]*libvirt.Conn{}}
	a = built
	defer func() {
		if err != nil {
			built.Close()
			a = nil
		}
	}()
	c := cfg.Controller
	if a.store, err = state.Open(ctx, c.Databases.State); err != nil {
		return nil, fmt.Errorf("open state database: %w", err)
	}
	if a.metrics, err = influxdb.New(c.Databases.Timeseries.InfluxOptions(), a.log); err != nil {
		return nil, fmt.Errorf("open time-series database: %w", err)
	}
	if err = a.metrics.EnsureDatabase(ctx); err != nil {
		return nil, fmt.Errorf("prepare time-series database: %w", err)
	}
	if a.secret, err = a.checkinSecret(ctx); err != nil {
		return nil, err
	}
	if a.temporal, err = temporalclient.Dial(ctx, c.Temporal, a.log.With("component", "temporal")); err != nil {
		return nil, err
	}
	for _, h := range a.servedHosts() {
		uri, err := h.LibvirtURI()
		if err != nil {
			return nil, fmt.Errorf("host %s: %w", h.Name, err)
		}
		conn, err := libvirt.Dial(ctx, uri, libvirt.Options{
			CallTimeout: c.Databases.HostConnectionTimeout.Duration,
			Logger:      a.log.With("host", h.Name),
		})
		if err != nil {
			return nil, fmt.Errorf("connect to host %s at %s: %w", h.Name, uri, err)
		}
		a.conns[h.Name] = conn
	}
	return a, nil
}

func (a *Agent) servedHosts() []config.Host {
	hosts := a.cfg.Controller.Autoscale.Hosts
	if len(a.opts.Hosts) == 0 {
		return hosts
	}
	var out []config.Host
	for _, h := range hosts {
		for _, want := range a.opts.Hosts {
			if h.Name == want {
				out = append(out, h)
			}
		}
	}
	return out
}

// Start runs the Temporal workers and the health endpoint, then starts the config's groups.
func (a *Agent) Start(ctx context.Context) error {
	c := a.cfg.Controller
	shared := sdkworker.New(a.temporal, c.Temporal.TaskQueue, sdkworker.Options{})
	shared.RegisterWorkflow(workflows.GroupWorkflow)
	shared.RegisterWorkflow(workflows.InstanceWorkflow)
	shared.RegisterActivity(&activities.Activities{Store: a.store, Metrics: influxdb.Sources(a.metrics), Logger: a.log})
	a.workers = append(a.workers, shared)
	for _, h := range a.servedHosts() {
		w := sdkworker.New(a.temporal, spec.HostTaskQueue(h.Name), sdkworker.Options{})
		w.RegisterActivity(&activities.HostActivities{
			Host: h.Name, Hyper: a.conns[h.Name], Logger: a.log.With("host", h.Name),
			CheckinURL: func(instance string) string { return checkin.URL(c.Checkin.URL, a.secret, instance) },
		})
		a.workers = append(a.workers, w)
	}
	for _, w := range a.workers {
		if err := w.Start(); err != nil {
			return fmt.Errorf("start Temporal worker: %w", err)
		}
	}
	a.log.Info("workers started", "task_queue", c.Temporal.TaskQueue, "hosts", len(a.conns))
	if err := a.startHealth(); err != nil {
		return err
	}
	if err := a.startCheckin(); err != nil {
		return err
	}
	a.startCollectors()
	if a.opts.StartGroups {
		if err := a.applyGroups(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (a *Agent) applyGroups(ctx context.Context) error {
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

// Groups returns a group controller on this agent's Temporal client and state store.
func (a *Agent) Groups() *groupctl.Client {
	return &groupctl.Client{Temporal: a.temporal, TaskQueue: a.cfg.Controller.Temporal.TaskQueue, Store: a.store}
}

func (a *Agent) startHealth() error {
	hc := a.cfg.Controller.Healthcheck
	ln, err := net.Listen("tcp", net.JoinHostPort(hc.Host, strconv.Itoa(hc.Port)))
	if err != nil {
		return fmt.Errorf("listen for health checks on controller.healthcheck %s:%d: %w", hc.Host, hc.Port, err)
	}
	a.HealthAddr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.serveHealth)
	a.health = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := a.health.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("health endpoint stopped", "error", err)
		}
	}()
	return nil
}

func (a *Agent) serveHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	status := map[string]string{"temporal": "ok"}
	code := http.StatusOK
	if _, err := a.temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		status["temporal"] = err.Error()
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(status)
}

// checkinSecret is controller.checkin.secret, or else one generated once and kept in MySQL,
// so every agent signs and checks the same tokens.
func (a *Agent) checkinSecret(ctx context.Context) ([]byte, error) {
	if s := a.cfg.Controller.Checkin.Secret; s != "" {
		return []byte(s), nil
	}
	secret, err := a.store.Secret(ctx, checkin.SecretSetting, checkin.NewSecret)
	if err != nil {
		return nil, fmt.Errorf("load the check-in secret: %w", err)
	}
	return secret, nil
}

func (a *Agent) startCheckin() error {
	listen := a.cfg.Controller.Checkin.Listen
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen for check-ins on controller.checkin.listen %s: %w", listen, err)
	}
	a.CheckinAddr = ln.Addr().String()
	srv := &checkin.Server{Secret: a.secret, Instances: a.store, Signaler: a.temporal, Logger: a.log.With("component", "checkin")}
	a.checkin = &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	go func() {
		if err := a.checkin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("check-in endpoint stopped", "error", err)
		}
	}()
	a.log.Info("check-in endpoint listening", "address", a.CheckinAddr, "url", a.cfg.Controller.Checkin.URL)
	return nil
}

// startCollectors samples every served host's domains into InfluxDB until Close.
func (a *Agent) startCollectors() {
	ctx, cancel := context.WithCancel(context.Background())
	a.stop = cancel
	interval := a.cfg.Controller.Databases.CollectionInterval.Duration
	for name, conn := range a.conns {
		c := collector.New(name, conn, a.metrics, interval, a.log.With("component", "collector", "host", name))
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			c.Run(ctx)
		}()
	}
}

// Close stops the workers (in-flight activities are cancelled and retried elsewhere) and
// closes every connection. It is safe on a partly built Agent.
func (a *Agent) Close() {
	for _, w := range a.workers {
		w.Stop()
	}
	a.workers = nil
	if a.stop != nil {
		a.stop()
		a.wg.Wait()
	}
	for _, srv := range []*http.Server{a.health, a.checkin} {
		if srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = srv.Shutdown(ctx)
			cancel()
		}
	}
	for name, c := range a.conns {
		if err := c.Close(); err != nil {
			a.log.Warn("close libvirt connection", "host", name, "error", err)
		}
	}
	if a.temporal != nil {
		a.temporal.Close()
	}
	if a.metrics != nil {
		a.metrics.Close()
	}
	if a.store != nil {
		_ = a.store.Close()
	}
}

// Run is the agent's main loop: start, then wait for ctx to end (SIGTERM/SIGINT), then stop.
func Run(ctx context.Context, cfg *config.Config, opts Options) error {
	a, err := New(ctx, cfg, opts)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.Start(ctx); err != nil {
		return err
	}
	if opts.Ready != nil {
		if err := opts.Ready(); err != nil {
			return err
		}
	}
	<-ctx.Done()
	a.log.Info("shutting down")
	return nil
}

// Temporal returns the agent's Temporal client.
func (a *Agent) Temporal() client.Client { return a.temporal }
