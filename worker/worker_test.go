package worker

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/influxdb"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"

	"github.com/premiscale/premiscale/internal/spec"
)

// testPool is the storage pool every test:///default driver has.
const testPool = testservices.TestPool

// fixture is one worker's worth of real services, with names unique to the test.
type fixture struct {
	t      *testing.T
	cfg    *config.Config
	group  string
	host   string
	conn   *libvirt.Conn
	store  *state.Store
	influx *influxdb.Client
}

func newFixture(t *testing.T, scaling string) *fixture {
	t.Helper()
	return newFixtureFrom(t, testservices.WriteAgentConfig(t, testservices.UniqueName(t, "g"), testservices.UniqueName(t, "h"), scaling))
}

// newFixtureFrom builds the fixture of an agent config with one group on the test driver.
func newFixtureFrom(t *testing.T, ac testservices.AgentConfig) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, cfg: ac.Config, group: ac.Group, host: ac.Host}
	// The test driver forgets everything when its last connection closes, so this connection
	// stays open for the whole test; it also makes the group's base image.
	uri, err := f.cfg.Controller.Autoscale.Hosts[0].LibvirtURI()
	if err != nil {
		t.Fatal(err)
	}
	if f.conn, err = libvirt.Dial(ctx, uri, libvirt.Options{CallTimeout: 20 * time.Second}); err != nil {
		t.Fatalf("connect to libvirt test driver %s: %v (run testenv/up)", uri, err)
	}
	t.Cleanup(func() { f.conn.Close() })
	if _, err := f.conn.EnsureVolume(ctx, testPool, f.group+"-base.qcow2", 1<<30, "qcow2"); err != nil {
		t.Fatalf("create base image: %v", err)
	}
	if f.store, err = state.Open(ctx, f.cfg.Controller.Databases.State); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close() })
	if f.influx, err = influxdb.New(f.cfg.Controller.Databases.Timeseries.InfluxOptions(), quietLogger()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.influx.Close)
	return f
}

func quietLogger() *slog.Logger {
	if os.Getenv("PREMISCALE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// runningWorker is a worker run by a test, in process.
type runningWorker struct {
	*Worker
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// startWorker runs a worker that starts the config's group; see runWorker.
func (f *fixture) startWorker() *runningWorker {
	f.t.Helper()
	return f.runWorker(Options{StartGroups: true})
}

// runWorker runs a worker on the fixture's config (failing at once if a dependency is
// missing) and returns once it is ready. stop ends it.
func (f *fixture) runWorker(opts Options) *runningWorker {
	f.t.Helper()
	ready := make(chan struct{})
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	opts.Ready = func() error { close(ready); return nil }
	w, err := New(f.cfg, opts)
	if err != nil {
		f.t.Fatalf("new worker: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningWorker{Worker: w, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	select {
	case <-ready:
	case err := <-r.done:
		cancel()
		f.t.Fatalf("worker stopped during start-up: %v", err)
	case <-time.After(2 * time.Minute):
		cancel()
		f.t.Fatal("worker not ready within 2 minutes")
	}
	return r
}

// stop cancels the worker's context, as SIGTERM does, and waits for it to stop cleanly.
func (r *runningWorker) stop(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("worker stopped with %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("worker did not stop within a minute of its context ending")
		}
	})
}

// waitFor polls the group's status until ok accepts it.
func (f *fixture) waitFor(ctl *groupctl.Client, what string, timeout time.Duration, ok func(groupctl.Status) bool) groupctl.Status {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	var last groupctl.Status
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		last, lastErr = ctl.Status(ctx, f.group)
		cancel()
		if lastErr == nil && ok(last) {
			return last
		}
		time.Sleep(250 * time.Millisecond)
	}
	f.t.Fatalf("group %s: timed out after %s waiting for %s; last status %+v (error %v)", f.group, timeout, what, last, lastErr)
	return last
}

func running(n int) func(groupctl.Status) bool {
	return func(s groupctl.Status) bool {
		if len(s.Instances) != n {
			return false
		}
		for _, in := range s.Instances {
			if in.State != spec.StateRunning {
				return false
			}
		}
		return true
	}
}

// cpuLoad writes a CPU sample for every instance the group has, every 300 ms, until stopped.
type cpuLoad struct {
	mu    sync.Mutex
	value float64
	// tolerant ignores failed writes: outage tests stop InfluxDB and Temporal under it.
	tolerant bool
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

func (f *fixture) writeLoad(ctl *groupctl.Client, value float64) *cpuLoad {
	l := &cpuLoad{value: value, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s, err := ctl.Status(ctx, f.group)
			if err == nil {
				l.mu.Lock()
				v := l.value
				l.mu.Unlock()
				var samples []influxdb.DomainSample
				for _, in := range s.Instances {
					samples = append(samples, influxdb.DomainSample{Group: f.group, Instance: in.Name, Host: f.host, At: time.Now(), CPUPercent: v})
				}
				if len(samples) > 0 {
					l.mu.Lock()
					tolerant := l.tolerant
					l.mu.Unlock()
					if err := f.influx.WriteDomainSamples(ctx, samples); err != nil && !tolerant {
						f.t.Errorf("write samples: %v", err)
					}
				}
			}
			cancel()
		}
	}()
	return l
}

func (l *cpuLoad) set(v float64)   { l.mu.Lock(); l.value = v; l.mu.Unlock() }
func (l *cpuLoad) tolerateErrors() { l.mu.Lock(); l.tolerant = true; l.mu.Unlock() }
func (l *cpuLoad) close()          { l.once.Do(func() { close(l.stop) }); <-l.done }

// domainNames lists the group's domains in libvirt, sorted.
func (f *fixture) domainNames() []string {
	f.t.Helper()
	doms, err := f.conn.ListGroupDomains(context.Background(), f.group)
	if err != nil {
		f.t.Fatalf("list domains: %v", err)
	}
	var names []string
	for _, d := range doms {
		names = append(names, d.Name)
	}
	slices.Sort(names)
	return names
}

// liveRecords lists the group's non-terminated instances in MySQL, sorted.
func (f *fixture) liveRecords() []string {
	f.t.Helper()
	recs, err := f.store.ListInstances(context.Background(), f.group, false)
	if err != nil {
		f.t.Fatalf("list instances: %v", err)
	}
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
	}
	slices.Sort(names)
	return names
}

func (f *fixture) deleteGroup(ctl *groupctl.Client) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := ctl.Delete(ctx, f.group); err != nil {
		f.t.Fatalf("delete group: %v", err)
	}
	if names := f.domainNames(); len(names) != 0 {
		f.t.Errorf("after delete libvirt still has domains %v", names)
	}
	if names := f.liveRecords(); len(names) != 0 {
		f.t.Errorf("after delete MySQL still lists live instances %v", names)
	}
}

func TestGroupFollowsLoadOnRealServices(t *testing.T) {
	f := newFixture(t, "{minNodes: 1, maxNodes: 4, increment: 2, cooldown: 0, scaleIn: {stabilizationWindow: 0}, resourceTarget: {cpu: 50}}")
	a := f.startWorker()
	defer a.stop(t)
	ctl := a.Groups()

	f.waitFor(ctl, "the minimum of 1 running instance", time.Minute, running(1))
	load := f.writeLoad(ctl, 90)
	defer load.close()
	f.waitFor(ctl, "growth to the maximum of 4 under high CPU", 2*time.Minute, running(4))
	load.set(5)
	f.waitFor(ctl, "shrinking to the minimum of 1 under low CPU", 2*time.Minute, running(1))
	load.close()

	// Retirement is finished once the domains are gone: the group forgets an instance only
	// after its InstanceWorkflow removed it.
	domains, records := f.domainNames(), f.liveRecords()
	if len(domains) != 1 || !slices.Equal(domains, records) {
		t.Errorf("libvirt has domains %v, MySQL lists live instances %v; want the same single instance", domains, records)
	}
	all, err := f.store.ListInstances(context.Background(), f.group, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if r.State == spec.StateTerminated {
			exists, err := f.conn.VolumeExists(context.Background(), testPool, r.Name+".qcow2")
			if err != nil || exists {
				t.Errorf("retired instance %s still has its disk (exists=%v, err=%v)", r.Name, exists, err)
			}
		}
	}

	// One scaling event per action, and together they account for every launch.
	events, err := f.store.ListScalingEvents(context.Background(), f.group, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	size, launched := 0, 0
	for i, e := range events {
		if e.From != size {
			t.Errorf("event %d goes from %d, but the group was at %d: %+v", i, e.From, size, e)
		}
		if e.To > e.From {
			launched += e.To - e.From
		}
		size = e.To
	}
	if size != 1 || launched != len(all) {
		t.Errorf("events end at size %d having launched %d; want 1, and %d instances recorded", size, launched, len(all))
	}
	f.deleteGroup(ctl)
	replay(t, a.Temporal(), spec.GroupWorkflowID(f.group), "group-scale-out-in-delete.json")
	replay(t, a.Temporal(), spec.InstanceWorkflowID(f.group+"-2"), "instance-launch-retire.json")
}

func TestReplacementWorkerFinishesScaleOutWithoutDuplicates(t *testing.T) {
	f := newFixture(t, "{minNodes: 3, maxNodes: 3, increment: 3, cooldown: 0, resourceTarget: {cpu: 50}}")
	first := f.startWorker()
	ctl := first.Groups()
	// Stop the first worker as soon as the scale-out is under way: some instances are being
	// created, the rest not yet.
	deadline := time.Now().Add(time.Minute)
	for len(f.domainNames()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no domain appeared within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	first.stop(t)
	t.Logf("first worker stopped with domains %v", f.domainNames())

	second := f.startWorker()
	defer second.stop(t)
	ctl = second.Groups()
	f.waitFor(ctl, "3 running instances after the replacement worker took over", 3*time.Minute, running(3))
	want := []string{f.group + "-1", f.group + "-2", f.group + "-3"}
	if got := f.domainNames(); !slices.Equal(got, want) {
		t.Errorf("libvirt has domains %v, want exactly %v", got, want)
	}
	if got := f.liveRecords(); !slices.Equal(got, want) {
		t.Errorf("MySQL lists %v, want exactly %v", got, want)
	}
	f.deleteGroup(ctl)
	replay(t, second.Temporal(), spec.GroupWorkflowID(f.group), "")
}
