//go:build benchscale

package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/temporalclient"
	"github.com/premiscale/premiscale/internal/testservices"
)

// Environment variables that tune the benchmarks.
const (
	// envTemporal: "private" (the default) starts a Temporal dev server of the benchmark's own,
	// so its CPU is the benchmark's alone; "shared" uses the one on 127.0.0.1:7233.
	envTemporal = "PREMISCALE_BENCH_TEMPORAL"
	// envBinary names a premiscale binary to run instead of building this checkout's (to
	// compare two versions under the same load).
	envBinary = "PREMISCALE_BENCH_BIN"
)

// checkinSecret signs check-in tokens in every benchmark config, so a benchmark can make them.
const checkinSecret = "bench-secret-not-for-production-0123456789"

// stack is the services a benchmark runs against, and the premiscale binary.
type stack struct {
	t            *testing.T
	temporalAddr string
	// temporalPid is the Temporal server's process, 0 when unknown (a shared server not
	// started by testenv).
	temporalPid int
	mysql       config.StateDB
	influx      config.Timeseries
	bin         string
	// lv keeps libvirt's test driver alive between workers (it forgets everything when its
	// last connection closes) and makes base images.
	lv *libvirt.Conn
}

// newStack finds (or starts) the services and builds the binary.
func newStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{t: t, mysql: testservices.MySQL(t), influx: testservices.Influx(t), bin: premiscaleBinary(t)}
	if os.Getenv(envTemporal) == "shared" {
		s.temporalAddr = testservices.TemporalAddress(t)
		s.temporalPid = sharedTemporalPid()
	} else {
		tmp := testservices.StartTemporal(t)
		s.temporalAddr, s.temporalPid = tmp.Addr(), tmp.Pid()
	}
	ctx := context.Background()
	var err error
	if s.lv, err = libvirt.Dial(ctx, "test:///default", libvirt.Options{CallTimeout: 20 * time.Second}); err != nil {
		t.Fatalf("connect to libvirt test driver: %v (run testenv/up)", err)
	}
	t.Cleanup(func() { s.lv.Close() })
	printMachine(t)
	return s
}

// sharedTemporalPid reads testenv's pid file of the shared dev server.
func sharedTemporalPid() int {
	dir := os.Getenv("PREMISCALE_TESTENV_DIR")
	if dir == "" {
		dir = filepath.Join("..", ".testenv")
	}
	b, err := os.ReadFile(filepath.Join(dir, "temporal.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// pidOf finds the process of a shared service by its command name (the oldest of that name,
// the one testenv started rather than a test's private one); 0 when there is none.
func pidOf(command string) int {
	entries, _ := os.ReadDir("/proc")
	best, bestStart := 0, int64(-1)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(comm)) != command {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 20 {
			continue
		}
		start, _ := strconv.ParseInt(f[19], 10, 64)
		if bestStart < 0 || start < bestStart {
			best, bestStart = pid, start
		}
	}
	return best
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// premiscaleBinary builds bin/premiscale once per benchmark run, into a temporary folder.
func premiscaleBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv(envBinary); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "premiscale-bench-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "premiscale")
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		cmd := exec.Command(goTool, "build", "-o", builtBin, "./cmd/premiscale")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/premiscale: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// hostOptions shape the one test-driver host of a benchmark config.
type workerConfig struct {
	// Host names the test:///default host; TaskQueue the shared queue (unique per worker).
	Host, TaskQueue string
	// Interval is controller.reconciliation.interval; CollectionInterval the collector's.
	Interval, CollectionInterval time.Duration
	// Group, when set, is the body of one group in the config (the worker starts it).
	Groups string
}

// config writes a worker config for c and loads it.
func (s *stack) config(c workerConfig) (string, *config.Config) {
	s.t.Helper()
	if c.Interval == 0 {
		c.Interval = 5 * time.Second
	}
	if c.CollectionInterval == 0 {
		c.CollectionInterval = 10 * time.Second
	}
	if c.Groups == "" {
		c.Groups = "{}"
	}
	dir := s.t.TempDir()
	doc := fmt.Sprintf(`version: v1alpha1
controller:
  pidFile: %[1]s/premiscale.pid
  healthcheck: {host: 127.0.0.1, port: %[2]d}
  temporal: {address: %[3]q, namespace: default, taskQueue: %[4]q}
  databases:
    collectionInterval: %[5]s
    hostConnectionTimeout: 30s
    state:
      type: mysql
      connection: {url: %[6]q, database: %[7]q, credentials: {username: %[8]q, password: %[9]q}}
    timeseries:
      type: influxdb
      connection: {url: %[10]q, database: %[11]q}
  checkin: {listen: "127.0.0.1:%[12]d", url: "http://127.0.0.1:%[12]d", secret: %[13]q}
  reconciliation: {interval: %[14]s}
  autoscale:
    hosts:
      # The test driver's host has 16 CPUs and 3 GiB: overcommit lets hundreds of small
      # domains (which run nothing) fit.
      - name: %[15]s
        uri: test:///default
        cpuOvercommit: 64
        memoryOvercommit: 64
    groups: %[16]s
`, dir, testservices.FreePort(s.t), s.temporalAddr, c.TaskQueue, c.CollectionInterval,
		s.mysql.Connection.URL, s.mysql.Connection.Database, s.mysql.Connection.Credentials.Username, s.mysql.Connection.Credentials.Password,
		s.influx.Connection.URL, s.influx.Connection.Database, testservices.FreePort(s.t), checkinSecret, c.Interval, c.Host, c.Groups)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		s.t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		s.t.Fatalf("benchmark config does not load: %v\n%s", err, doc)
	}
	return path, cfg
}

// groupSpec converts one group body (as in a config's groups mapping) to the spec the group
// commands send, as the loader would for a config that holds it.
func (s *stack) groupSpec(c workerConfig, name, body string) spec.Group {
	s.t.Helper()
	c.Groups = "\n      " + name + ":" + body
	_, cfg := s.config(c)
	gs, err := cfg.Controller.GroupSpec(name, cfg.Controller.Autoscale.Groups[name])
	if err != nil {
		s.t.Fatalf("group %s: %v", name, err)
	}
	return gs
}

// testDriverGroup is a group body on the test driver: its base image (made here), no check-in
// unless checkin, and the scaling mapping given.
func (s *stack) testDriverGroup(group, host, scaling string, checkin bool) string {
	s.t.Helper()
	image := group + "-base.qcow2"
	if _, err := s.lv.EnsureVolume(context.Background(), testservices.TestPool, image, 1<<30, "qcow2"); err != nil {
		s.t.Fatalf("create base image: %v", err)
	}
	s.t.Cleanup(func() {
		if _, err := s.lv.DeleteVolume(context.Background(), testservices.TestPool, image); err != nil {
			s.t.Logf("delete base image %s: %v", image, err)
		}
	})
	return fmt.Sprintf(`
        image: %[1]s/%[2]s
        domain: {vcpus: 1, memory: 64}
        hosts: [%[3]s]
        networking: {type: ignore}
        health: {checkin: %[5]t, bootTimeout: 1h}
        scaling: %[4]s`, testservices.TestPool, image, host, scaling, checkin)
}

// workerProc is a `premiscale worker` process.
type workerProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	cfg  *config.Config
	log  string
	done chan error
	// health and checkin are the worker's endpoints.
	health, checkin string
}

// startWorker runs `premiscale worker -c path` and waits until /readyz says ready.
func (s *stack) startWorker(path string, cfg *config.Config) *workerProc {
	s.t.Helper()
	logPath := filepath.Join(filepath.Dir(path), "worker.log")
	logf, err := os.Create(logPath)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(s.bin, "worker", "-c", path, "--log-stdout")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start worker: %v", err)
	}
	hc := cfg.Controller.Healthcheck
	w := &workerProc{
		t: s.t, cmd: cmd, cfg: cfg, log: logPath, done: make(chan error, 1),
		health:  fmt.Sprintf("http://%s:%d", hc.Host, hc.Port),
		checkin: "http://" + cfg.Controller.Checkin.Listen,
	}
	go func() { w.done <- cmd.Wait(); logf.Close() }()
	s.t.Cleanup(w.stop)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(w.health + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return w
			}
		}
		select {
		case err := <-w.done:
			s.t.Fatalf("worker exited during start-up: %v\n%s", err, tail(logPath))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("worker not ready within 2 minutes\n%s", tail(logPath))
		}
	}
}

// stop ends the worker as systemd does (SIGTERM) and waits for it.
func (w *workerProc) stop() {
	if w.cmd.ProcessState != nil {
		return
	}
	_ = w.cmd.Process.Signal(os.Interrupt)
	select {
	case <-w.done:
	case <-time.After(time.Minute):
		_ = w.cmd.Process.Kill()
		<-w.done
		w.t.Errorf("worker did not stop within a minute of SIGTERM")
	}
}

func (w *workerProc) pid() int { return w.cmd.Process.Pid }

// tail is the end of a log file, for failure messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// clients are a benchmark's own connections: Temporal, MySQL and a group controller.
type clients struct {
	temporal client.Client
	store    *state.Store
	groups   *groupctl.Client
}

func (s *stack) clients(cfg *config.Config) *clients {
	s.t.Helper()
	ctx := context.Background()
	tc, err := temporalclient.Dial(ctx, cfg.Controller.Temporal, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(tc.Close)
	store, err := state.Open(ctx, cfg.Controller.Databases.State)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { store.Close() })
	return &clients{temporal: tc, store: store, groups: &groupctl.Client{Temporal: tc, TaskQueue: cfg.Controller.Temporal.TaskQueue, Store: store}}
}

// waitStatus polls a group's status every poll until ok accepts it, failing after timeout.
func (c *clients) waitStatus(t *testing.T, group string, poll, timeout time.Duration, what string, ok func(groupctl.Status) bool) groupctl.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last groupctl.Status
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		last, err = c.groups.Status(ctx, group)
		cancel()
		if err == nil && ok(last) {
			return last
		}
		time.Sleep(poll)
	}
	t.Fatalf("group %s: no %s within %s; last status: %d instances, current %d (error %v)", group, what, timeout, len(last.Instances), last.Current, err)
	return last
}

// procStat is one sample of a process's CPU time and resident memory.
type procStat struct {
	at     time.Time
	cpu    time.Duration
	rssKiB int64
}

// clockTick is USER_HZ, 100 on every Linux this runs on.
const clockTick = 100

func readProc(pid int) (procStat, error) {
	st := procStat{at: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// The command name may hold spaces: the fields start after its closing parenthesis.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return st, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	st.cpu = time.Duration(utime+stime) * time.Second / clockTick
	sf, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	defer sf.Close()
	sc := bufio.NewScanner(sf)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			st.rssKiB, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return st, nil
}

// usage is what a process used over a window: CPU as a percentage of one core, and its
// resident memory (mean and highest of the samples).
type usage struct {
	CPUPercent         float64
	RSSMeanMiB, RSSMax float64
}

func (u usage) String() string {
	return fmt.Sprintf("CPU %.0f%% of a core, RSS %.0f MiB (max %.0f)", u.CPUPercent, u.RSSMeanMiB, u.RSSMax)
}

// sampler samples processes every second until stopped.
type sampler struct {
	pids    map[string]int
	mu      sync.Mutex
	samples map[string][]procStat
	stopCh  chan struct{}
	done    chan struct{}
}

func startSampler(pids map[string]int) *sampler {
	s := &sampler{pids: pids, samples: map[string][]procStat{}, stopCh: make(chan struct{}), done: make(chan struct{})}
	s.sample()
	go func() {
		defer close(s.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-s.stopCh:
				s.sample()
				return
			case <-tick.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *sampler) sample() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, pid := range s.pids {
		if pid == 0 {
			continue
		}
		if st, err := readProc(pid); err == nil {
			s.samples[name] = append(s.samples[name], st)
		}
	}
}

// stop ends sampling and returns each process's usage; a process without two samples is left out.
func (s *sampler) stop() map[string]usage {
	close(s.stopCh)
	<-s.done
	out := map[string]usage{}
	for name, ss := range s.samples {
		if len(ss) < 2 {
			continue
		}
		first, last := ss[0], ss[len(ss)-1]
		u := usage{CPUPercent: 100 * (last.cpu - first.cpu).Seconds() / last.at.Sub(first.at).Seconds()}
		var sum float64
		for _, st := range ss {
			mib := float64(st.rssKiB) / 1024
			sum += mib
			u.RSSMax = max(u.RSSMax, mib)
		}
		u.RSSMeanMiB = sum / float64(len(ss))
		out[name] = u
	}
	return out
}

// percentile is the p-th percentile (0-100) of sorted values, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// durations sorts a copy of ds.
func sortedCopy(ds []time.Duration) []time.Duration {
	out := slices.Clone(ds)
	slices.Sort(out)
	return out
}

// report prints one benchmark result line, "BENCH name: text", to stdout (where `go test -v`
// and make bench-scale show it) and to the test log.
func report(t *testing.T, name, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf("BENCH %s: %s", name, fmt.Sprintf(format, args...))
	fmt.Println(line)
}

var machineOnce sync.Once

// printMachine says what the numbers were measured on, once per run.
func printMachine(t *testing.T) {
	machineOnce.Do(func() {
		model := "unknown CPU"
		if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "model name"); ok {
					model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
					break
				}
			}
		}
		load, _ := os.ReadFile("/proc/loadavg")
		report(t, "machine", "%s, %d cores, %s, load average %s", model, runtime.NumCPU(), runtime.Version(), strings.Join(strings.Fields(string(load))[:3], " "))
	})
}

// envInt, envDuration and envInts read a benchmark knob, or its default.
func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return d
}

func envInts(t *testing.T, name, def string) []int {
	v := os.Getenv(name)
	if v == "" {
		v = def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			t.Fatalf("%s=%q: %v", name, v, err)
		}
		out = append(out, n)
	}
	return out
}
