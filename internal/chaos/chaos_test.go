//go:build chaos

package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/audit"
	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/influxdb"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"
)

const (
	minNodes, maxNodes = 1, 4
	// killsPerPhase SIGKILLs land in every scale-out and every scale-in.
	killsPerPhase = 2
	// settleTimeout bounds how long a group may take to reach its size after the last fault. A
	// retirement cut short by a kill is retried once its attempt times out (the shutdown grace
	// plus two minutes), which is the longest wait.
	settleTimeout = 5 * time.Minute
)

// TestChaos runs the chaos suite; see the package documentation.
func TestChaos(t *testing.T) {
	rounds := envInt(t, "PREMISCALE_CHAOS_ROUNDS", 9)
	seed := uint64(envInt(t, "PREMISCALE_CHAOS_SEED", int(time.Now().UnixNano()%1e9)))
	s := newSuite(t, seed)
	start := time.Now()
	t.Logf("chaos: seed %d, %d rounds, group %s on %s", seed, rounds, s.group, s.stack.Hosts[0].TestURI())

	s.startWorker()
	s.setLoad(50)
	s.waitSettled("the first instance", minNodes)
	for round := 1; round <= rounds; round++ {
		began, kills, anomalies := time.Now(), s.kills, len(s.anomalies)
		s.phase(fmt.Sprintf("round %d scale-out", round), 90, maxNodes, killsPerPhase, s.killWorker)
		s.phase(fmt.Sprintf("round %d scale-in", round), 5, minNodes, killsPerPhase, s.killWorker)
		t.Logf("round %d: %d kills, %d anomalies, %s", round, s.kills-kills, len(s.anomalies)-anomalies, time.Since(began).Round(time.Second))
	}

	restarts := []struct {
		name    string
		restart func()
	}{
		{"Temporal restarted", s.stack.Temporal.Restart},
		{"MariaDB restarted", s.stack.MariaDB.Restart},
		{"InfluxDB restarted", s.stack.InfluxDB.Restart},
		// Its test driver keeps its domains in the daemon's memory: a restart would be a host
		// that lost its VMs. A hung daemon that comes back is the fault here.
		{"libvirtd frozen 20 s and thawed", func() { s.stack.Hosts[0].Pause(); time.Sleep(20 * time.Second); s.stack.Hosts[0].Resume() }},
	}
	for _, d := range restarts {
		began, anomalies := time.Now(), len(s.anomalies)
		s.phase(d.name+" during a scale-out", 90, maxNodes, 1, d.restart)
		s.phase(d.name+", then a scale-in", 5, minNodes, 0, nil)
		t.Logf("%s: %d anomalies, %s", d.name, len(s.anomalies)-anomalies, time.Since(began).Round(time.Second))
	}

	summary := fmt.Sprintf("chaos: seed %d: %d rounds, %d worker kills (SIGKILL), %d dependency restarts, %d anomalies, %s",
		seed, rounds, s.kills, len(restarts), len(s.anomalies), time.Since(start).Round(time.Second))
	t.Log(summary)
	fmt.Println(summary)
	for _, a := range s.anomalies {
		t.Errorf("anomaly: %s", a)
	}
	s.deleteGroup()
}

type suite struct {
	t     *testing.T
	rng   *rand.Rand
	bin   string
	cfg   string
	group string
	stack *testservices.Stack
	conn  *libvirt.Conn
	store *state.Store
	ctl   *groupctl.Client

	worker    *exec.Cmd
	workerLog *os.File
	kills     int

	mu        sync.Mutex
	load      float64
	anomalies []string
}

func newSuite(t *testing.T, seed uint64) *suite {
	s := &suite{t: t, rng: rand.New(rand.NewPCG(seed, seed))}
	s.bin = buildPremiscale(t)
	s.stack = testservices.StartStack(t, 1)
	s.group = testservices.UniqueName(t, "chaos")
	host := testservices.UniqueName(t, "h")
	body := fmt.Sprintf(`
        image: %[1]s/%[2]s-base.qcow2
        domain: {vcpus: 1, memory: 128}
        hosts: [%[3]s]
        networking: {type: ignore}
        health: {checkin: false, heartbeatInterval: 10s, shutdownGrace: 2s}
        scaling:
          minNodes: %[4]d
          maxNodes: %[5]d
          increment: %[5]d
          cooldown: 0
          scaleIn: {stabilizationWindow: 0}
          resourceTarget: {cpu: 50}`, testservices.TestPool, s.group, host, minNodes, maxNodes)
	ac := testservices.WriteAgentConfigFor(t, s.stack.AgentOptions(t, testservices.AgentOptions{Group: s.group, Host: host, GroupBody: body}))
	s.cfg = ac.Path
	ctx := context.Background()
	var err error
	// The test driver forgets everything when its last connection closes: this one stays open.
	if s.conn, err = libvirt.Dial(ctx, s.stack.Hosts[0].TestURI(), libvirt.Options{CallTimeout: 20 * time.Second}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.conn.Close() })
	if _, err := s.conn.EnsureVolume(ctx, testservices.TestPool, s.group+"-base.qcow2", 1<<30, "qcow2"); err != nil {
		t.Fatal(err)
	}
	if s.store, err = state.Open(ctx, ac.Config.Controller.Databases.State); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.store.Close() })
	influx, err := influxdb.New(ac.Config.Controller.Databases.Timeseries.InfluxOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(influx.Close)
	if s.workerLog, err = os.Create(filepath.Join(t.TempDir(), "worker.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.stopWorker()
		if t.Failed() {
			t.Logf("the worker's log: %s", s.workerLog.Name())
		}
	})
	s.writeLoad(influx)
	return s
}

// phase sets the load, applies fault times once the group starts moving, each after a random
// moment, then waits for the group to settle at size and audits it.
func (s *suite) phase(name string, load float64, size, times int, fault func()) {
	s.t.Helper()
	s.setLoad(load)
	if times > 0 {
		s.waitMoving(name, size)
	}
	for range times {
		time.Sleep(time.Duration(s.rng.Int64N(int64(2 * time.Second))))
		fault()
	}
	s.waitSettled(name, size)
	s.audit(name)
}

func (s *suite) startWorker() {
	s.t.Helper()
	cmd := exec.Command(s.bin, "worker", "-c", s.cfg, "--log-stdout")
	cmd.Stdout, cmd.Stderr = s.workerLog, s.workerLog
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start premiscale worker: %v", err)
	}
	s.worker = cmd
}

// killWorker kills the worker as a crash would, and starts another at once or after a moment.
func (s *suite) killWorker() {
	s.t.Helper()
	if err := s.worker.Process.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatalf("kill the worker: %v", err)
	}
	_ = s.worker.Wait()
	s.kills++
	fmt.Fprintf(s.workerLog, "--- chaos: worker killed (kill %d)\n", s.kills)
	time.Sleep(time.Duration(s.rng.Int64N(int64(time.Second))))
	s.startWorker()
}

func (s *suite) stopWorker() {
	if s.worker == nil || s.worker.ProcessState != nil {
		return
	}
	_ = s.worker.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.worker.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		_ = s.worker.Process.Kill()
		<-done
	}
}

func (s *suite) setLoad(v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load = v
}

func (s *suite) anomaly(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.anomalies = append(s.anomalies, fmt.Sprintf(format, args...))
}

// writeLoad writes the current load as every live instance's CPU, every 500 ms, and checks
// that MySQL never lists more live instances than maxNodes. Failures (a dependency restarting)
// are skipped.
func (s *suite) writeLoad(influx *influxdb.Client) {
	stop := make(chan struct{})
	done := make(chan struct{})
	s.t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		over := false
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			recs, err := s.store.ListInstances(ctx, s.group, false)
			if err == nil {
				if len(recs) > maxNodes && !over {
					s.anomaly("MySQL lists %d live instances, more than maxNodes %d: %v", len(recs), maxNodes, names(recs))
				}
				over = len(recs) > maxNodes
				s.mu.Lock()
				load := s.load
				s.mu.Unlock()
				var samples []influxdb.DomainSample
				for _, r := range recs {
					samples = append(samples, influxdb.DomainSample{Group: s.group, Instance: r.Name, Host: r.Host, At: time.Now(), CPUPercent: load})
				}
				if len(samples) > 0 {
					_ = influx.WriteDomainSamples(ctx, samples)
				}
			}
			cancel()
		}
	}()
}

// status is `premiscale group status -o json`, as a user sees it.
func (s *suite) status(ctx context.Context, _ string) (spec.GroupStatus, error) {
	out, err := exec.CommandContext(ctx, s.bin, "group", "status", s.group, "-o", "json", "-c", s.cfg).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = strings.TrimSpace(string(ee.Stderr))
		}
		return spec.GroupStatus{}, fmt.Errorf("premiscale group status: %v: %s", err, stderr)
	}
	var st groupctl.Status
	if err := json.Unmarshal(out, &st); err != nil {
		return spec.GroupStatus{}, fmt.Errorf("premiscale group status -o json: %v: %s", err, out)
	}
	return st.GroupStatus, nil
}

// waitMoving waits until the group has started moving toward size.
func (s *suite) waitMoving(name string, size int) {
	s.wait(name+": the group moving", 2*time.Minute, func(st spec.GroupStatus) bool {
		if size > len(st.Instances) {
			return st.Desired > st.Current || len(st.Instances) > 1
		}
		for _, in := range st.Instances {
			if in.State == spec.StateRetiring {
				return true
			}
		}
		return len(st.Instances) < maxNodes
	})
}

// waitSettled waits until the group has size running instances.
func (s *suite) waitSettled(name string, size int) {
	s.wait(name+fmt.Sprintf(": %d running instances", size), settleTimeout, func(st spec.GroupStatus) bool {
		if len(st.Instances) != size {
			return false
		}
		for _, in := range st.Instances {
			if in.State != spec.StateRunning {
				return false
			}
		}
		return true
	})
}

func (s *suite) wait(what string, timeout time.Duration, ok func(spec.GroupStatus) bool) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	var last spec.GroupStatus
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		last, lastErr = s.status(ctx, s.group)
		cancel()
		if lastErr == nil && ok(last) {
			return
		}
		time.Sleep(time.Second)
	}
	s.anomaly("%s: not reached within %s; last status %s (error %v)", what, timeout, statusLine(last), lastErr)
	s.t.FailNow()
}

// audit compares the group's status, MySQL and libvirt until they agree or a minute passed.
func (s *suite) audit(name string) {
	s.t.Helper()
	src := audit.Sources{Status: s.status, Store: s.store, Hosts: []*libvirt.Conn{s.conn}, Pool: testservices.TestPool}
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		r, err := audit.Collect(ctx, src, s.group)
		cancel()
		var found []audit.Anomaly
		if err == nil {
			if found = audit.Compare(r); len(found) == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				s.anomaly("%s: audit: %v", name, err)
			}
			for _, a := range found {
				s.anomaly("%s: %s (status %s, MySQL %s, libvirt %s)", name, a, audit.Names(r.Workflow), audit.Names(r.Records), audit.Names(r.Domains))
			}
			return
		}
		time.Sleep(time.Second)
	}
}

func (s *suite) deleteGroup() {
	s.t.Helper()
	out, err := exec.Command(s.bin, "group", "delete", s.group, "-c", s.cfg).CombinedOutput()
	if err != nil {
		s.t.Errorf("premiscale group delete: %v\n%s", err, out)
		return
	}
	doms, err := s.conn.ListGroupDomains(context.Background(), s.group)
	if err != nil || len(doms) > 0 {
		s.t.Errorf("after delete libvirt has %v (%v)", doms, err)
	}
}

func statusLine(st spec.GroupStatus) string {
	var parts []string
	for _, in := range st.Instances {
		parts = append(parts, in.Name+"("+in.State+")")
	}
	return fmt.Sprintf("current %d desired %d %v", st.Current, st.Desired, parts)
}

func names(recs []state.Instance) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Name+"("+r.State+")")
	}
	return out
}

// buildPremiscale builds the premiscale command into a temporary folder.
func buildPremiscale(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "premiscale")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/premiscale")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build premiscale: %v\n%s", err, out)
	}
	return bin
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a whole number", name, v)
	}
	return n
}
