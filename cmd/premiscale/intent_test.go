package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"
)

// intentStatus is `group status -o json` with what these tests look at.
type intentStatus struct {
	Group            string `json:"group"`
	Min              int    `json:"min"`
	Max              int    `json:"max"`
	Current          int    `json:"current"`
	Evaluations      int    `json:"evaluations"`
	ReplacementsOwed int    `json:"replacementsOwed"`
	Sources          struct {
		Min  string `json:"min"`
		Max  string `json:"max"`
		Spec string `json:"spec"`
	} `json:"sources"`
	Config struct {
		Min int `json:"min"`
		Max int `json:"max"`
	} `json:"config"`
	Goal *struct {
		Size int `json:"size"`
	} `json:"goal"`
	LastDecision struct {
		Outcome string `json:"outcome"`
		Reason  string `json:"reason"`
	} `json:"lastDecision"`
	Instances []struct {
		Name        string `json:"name"`
		State       string `json:"state"`
		Replacement bool   `json:"replacement"`
	} `json:"instances"`
}

func (s intentStatus) running() []string {
	var names []string
	for _, in := range s.Instances {
		if in.State == "running" {
			names = append(names, in.Name)
		}
	}
	slices.Sort(names)
	return names
}

func (s intentStatus) allRunning(n int) bool { return len(s.Instances) == n && len(s.running()) == n }

// waitIntent polls `group status -o json` until ok accepts it.
func waitIntent(t *testing.T, configPath, group string, timeout time.Duration, what string, ok func(intentStatus) bool) intentStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last result
	for time.Now().Before(deadline) {
		last = run(t, 30*time.Second, "group", "status", group, "-o", "json", "-c", configPath)
		var s intentStatus
		if last.code == 0 && json.Unmarshal([]byte(last.stdout), &s) == nil && ok(s) {
			return s
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("group %s: no %s within %s; last status: exit %d\n%s%s", group, what, timeout, last.code, last.stdout, last.stderr)
	return intentStatus{}
}

// eventReasons returns the reasons in the group's decision log.
func eventReasons(t *testing.T, configPath, group string) []string {
	t.Helper()
	r := run(t, 30*time.Second, "group", "events", group, "-o", "json", "-c", configPath)
	var events []struct{ Reason string }
	if err := json.Unmarshal([]byte(r.stdout), &events); err != nil || r.code != 0 {
		t.Fatalf("group events -o json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	var out []string
	for _, e := range events {
		out = append(out, e.Reason)
	}
	return out
}

// waitEvent waits for a row of the group's decision log that says text: the evaluation that
// writes it may come an interval after the change.
func waitEvent(t *testing.T, configPath, group, text string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var reasons []string
	for time.Now().Before(deadline) {
		reasons = eventReasons(t, configPath, group)
		if slices.ContainsFunc(reasons, func(r string) bool { return strings.Contains(r, text) }) {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Errorf("decision log of %s lacks %q: %q", group, text, reasons)
}

// workerProcess is a `premiscale worker` the test can stop cleanly or kill.
type workerProcess struct {
	t       *testing.T
	cmd     *exec.Cmd
	exited  chan error
	log     string
	started time.Time
	done    bool
}

func runWorkerProcess(t *testing.T, configPath string) *workerProcess {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "worker.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	w := &workerProcess{t: t, cmd: exec.Command(binary, "worker", "-c", configPath, "--log-stdout"), exited: make(chan error, 1), log: logPath}
	w.cmd.Stdout, w.cmd.Stderr = logFile, logFile
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.started = time.Now()
	go func() { w.exited <- w.cmd.Wait(); logFile.Close() }()
	t.Cleanup(func() {
		if !w.done {
			w.kill()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("worker log (started %s):\n%s", w.started.Format(time.TimeOnly), b)
		}
	})
	return w
}

// stop ends the worker with SIGTERM, as an operator's restart does.
func (w *workerProcess) stop() {
	w.t.Helper()
	w.done = true
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-w.exited:
		if err != nil {
			w.t.Errorf("worker exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		w.kill()
		w.t.Error("worker did not stop within 30s of SIGTERM")
	}
}

// kill ends the worker with SIGKILL: a crash, with activities cut in the middle.
func (w *workerProcess) kill() {
	w.done = true
	_ = w.cmd.Process.Kill()
	<-w.exited
}

// testDriverConn connects to libvirt's test driver, the one the workers' host uses.
func testDriverConn(t *testing.T) *libvirt.Conn {
	t.Helper()
	conn, err := libvirt.Dial(context.Background(), "test:///default", libvirt.Options{CallTimeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("connect to libvirt test driver: %v (run testenv/up)", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// failDomains removes instances' domains behind the group's back, as a crashed host or an
// operator's virsh would.
func failDomains(t *testing.T, conn *libvirt.Conn, names ...string) {
	t.Helper()
	for _, name := range names {
		if existed, err := conn.RemoveDomain(context.Background(), name, 0); err != nil || !existed {
			t.Fatalf("remove domain %s: existed %v, %v", name, existed, err)
		}
	}
}

// TestFailuresTogetherAreAllReplaced: instances that fail at once are all replaced, though
// increment and maxConcurrentLaunches (1) are smaller than their number and the group holds
// its size for lack of metrics — with the worker up, with the worker paused for a while, and
// with the worker down when they fail.
func TestFailuresTogetherAreAllReplaced(t *testing.T) {
	group := testservices.UniqueName(t, "owed")
	host := testservices.UniqueName(t, "h")
	body := fmt.Sprintf(`
        image: %s/%s-base.qcow2
        domain: {vcpus: 1, memory: 128}
        hosts: [%s]
        networking: {type: ignore}
        health: {checkin: false, heartbeatInterval: 1s}
        scaling: {minNodes: 1, maxNodes: 8, increment: 1, maxConcurrentLaunches: 1, resourceTarget: {cpu: 50}}`,
		testservices.TestPool, group, host)
	ac := testservices.WriteAgentConfigFor(t, testservices.AgentOptions{Group: group, Host: host, URI: "test:///default", GroupBody: body})
	keepTestDriver(t, group)
	conn := testDriverConn(t)
	path := ac.Path

	w := runWorkerProcess(t, path)
	waitIntent(t, path, group, 90*time.Second, "first instance", func(s intentStatus) bool { return s.allRunning(1) })
	if r := run(t, 30*time.Second, "group", "scale", group, "--desired", "6", "-c", path); r.code != 0 {
		t.Fatalf("scale --desired 6: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	s := waitIntent(t, path, group, 2*time.Minute, "6 running", func(s intentStatus) bool { return s.allRunning(6) && s.Goal == nil })

	// Four fail at once while the worker runs.
	failed := s.running()[:4]
	failDomains(t, conn, failed...)
	s = waitIntent(t, path, group, 2*time.Minute, "6 running again after 4 failed", func(s intentStatus) bool {
		return s.allRunning(6) && s.ReplacementsOwed == 0 && !slices.ContainsFunc(s.running(), func(n string) bool { return slices.Contains(failed, n) })
	})
	// Replacements are launched as the failures are heard of, between evaluations; the next
	// evaluation holds the size for lack of metrics (and does not shrink the group).
	s = waitIntent(t, path, group, time.Minute, "an evaluation holding at 6 for lack of metrics", func(s intentStatus) bool {
		return s.allRunning(6) && strings.Contains(s.LastDecision.Reason, "hold")
	})

	// Paused, the group replaces nothing: what it owes shows in status, and is paid on resume.
	if r := run(t, 30*time.Second, "group", "pause", group, "-c", path); r.code != 0 {
		t.Fatalf("pause: exit %d\n%s", r.code, r.stderr)
	}
	failed = s.running()[:2]
	failDomains(t, conn, failed...)
	waitIntent(t, path, group, time.Minute, "2 replacements owed while paused", func(s intentStatus) bool {
		return s.ReplacementsOwed == 2 && len(s.Instances) == 4
	})
	if r := run(t, 30*time.Second, "group", "status", group, "-c", path); r.code != 0 || !strings.Contains(r.stdout, "Replacements owed:") || !strings.Contains(r.stdout, "Paused:") {
		t.Errorf("group status table while owing 2: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, 30*time.Second, "group", "resume", group, "-c", path); r.code != 0 {
		t.Fatalf("resume: exit %d\n%s", r.code, r.stderr)
	}
	s = waitIntent(t, path, group, 2*time.Minute, "6 running after resume", func(s intentStatus) bool { return s.allRunning(6) && s.ReplacementsOwed == 0 })

	// Three fail while no worker runs; the restarted worker finds them and replaces all.
	w.stop()
	failed = s.running()[:3]
	failDomains(t, conn, failed...)
	w = runWorkerProcess(t, path)
	s = waitIntent(t, path, group, 2*time.Minute, "6 running after a restart with 3 failed", func(s intentStatus) bool {
		return s.allRunning(6) && s.ReplacementsOwed == 0 && !slices.ContainsFunc(s.running(), func(n string) bool { return slices.Contains(failed, n) })
	})

	// 1 + 5 launched to reach 6, then 4 + 2 + 3 replacements.
	store, err := state.Open(context.Background(), ac.Config.Controller.Databases.State)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	all, err := store.ListInstances(context.Background(), group, true)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]int{}
	for _, in := range all {
		states[in.State]++
	}
	if len(all) != 15 || states["failed"] != 9 || states["running"] != 6 {
		t.Errorf("MySQL lists %d instances %v, want 15: 9 failed and 6 running", len(all), states)
	}
	if r := run(t, 3*time.Minute, "group", "delete", group, "-c", path); r.code != 0 {
		t.Errorf("delete: exit %d\n%s", r.code, r.stderr)
	}
	w.stop()
}

// TestOperatorIntentRules drives the rules of operator intent through the CLI against a real
// worker: a pending desired size follows the bounds (clamped, then dropped), overrides survive
// agent restarts, a change of the config's own value wins, --reset and group update --reset
// clear them, and status says where each value comes from.
func TestOperatorIntentRules(t *testing.T) {
	group := testservices.UniqueName(t, "intent")
	host := testservices.UniqueName(t, "h")
	// One failed launch blocks launches for 10 minutes, so a goal above the size stays pending.
	body := fmt.Sprintf(`
        image: %s/%s-base.qcow2
        domain: {vcpus: 1, memory: 128}
        hosts: [%s]
        networking: {type: ignore}
        health: {checkin: false}
        scaling: {minNodes: 1, maxNodes: 4, maxConcurrentLaunches: 1, launchBackoff: {after: 1, initial: 10m, max: 10m}, resourceTarget: {cpu: 50}}`,
		testservices.TestPool, group, host)
	ac := testservices.WriteAgentConfigFor(t, testservices.AgentOptions{Group: group, Host: host, URI: "test:///default", GroupBody: body})
	keepTestDriver(t, group)
	conn := testDriverConn(t)
	path := ac.Path
	scale := func(want string, args ...string) {
		t.Helper()
		r := run(t, 30*time.Second, append([]string{"group", "scale", group, "-c", path}, args...)...)
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("group scale %s: exit %d, want %q in\n%s%s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
		}
	}

	w := runWorkerProcess(t, path)
	waitIntent(t, path, group, 90*time.Second, "first instance", func(s intentStatus) bool { return s.allRunning(1) })
	// Without its base image no instance can launch any more.
	if _, err := conn.DeleteVolume(context.Background(), testservices.TestPool, group+"-base.qcow2"); err != nil {
		t.Fatal(err)
	}

	// A goal the group cannot reach now; then bounds below it.
	scale("min 1 (config), max 6 (operator: group scale), desired 5", "--max", "6", "--desired", "5")
	waitIntent(t, path, group, 2*time.Minute, "a failed launch and the goal pending", func(s intentStatus) bool {
		return s.Goal != nil && s.Goal.Size == 5 && len(s.Instances) == 1 && strings.Contains(s.LastDecision.Reason, "launch failing")
	})
	scale("desired size 5 is above the new max 3: clamped to 3", "--max", "3")
	waitIntent(t, path, group, 30*time.Second, "goal 3", func(s intentStatus) bool { return s.Goal != nil && s.Goal.Size == 3 && s.Max == 3 })
	scale("desired size 3 is above the new max 1, the group's size already: goal dropped", "--max", "1")
	s := waitIntent(t, path, group, 30*time.Second, "the goal dropped and the policy deciding", func(s intentStatus) bool {
		return s.Goal == nil && s.Max == 1 && strings.Contains(s.LastDecision.Reason, "goal dropped")
	})
	if s.Sources.Max != "scale" || s.Sources.Min != "config" || s.Config.Max != 4 {
		t.Errorf("sources %+v, config %+v; want max from scale, min from config, config max 4", s.Sources, s.Config)
	}
	for _, want := range []string{"desired size 5 is above the new max 3: clamped to 3", "goal dropped"} {
		waitEvent(t, path, group, want)
	}

	// A restart sends the config's spec again: the override stays.
	w.stop()
	w = runWorkerProcess(t, path)
	before := s.Evaluations
	s = waitIntent(t, path, group, time.Minute, "an evaluation after the restart", func(s intentStatus) bool { return s.Evaluations > before+1 })
	if s.Max != 1 || s.Sources.Max != "scale" {
		t.Errorf("after a restart: max %d from %s, want the operator's 1", s.Max, s.Sources.Max)
	}
	if r := run(t, 30*time.Second, "group", "status", group, "-c", path); r.code != 0 || !strings.Contains(r.stdout, "max 1 (operator: group scale; the config says 4)") || !strings.Contains(r.stdout, "min 1 (config)") {
		t.Errorf("group status table does not say where the bounds come from: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// The config's own maxNodes changes: the config wins, and says so.
	cfg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(cfg), "maxNodes: 4,", "maxNodes: 5,", 1)
	if edited == string(cfg) {
		t.Fatal("config has no maxNodes: 4 to change")
	}
	if err := os.WriteFile(path, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	w.stop()
	w = runWorkerProcess(t, path)
	waitIntent(t, path, group, time.Minute, "the config's new max in force", func(s intentStatus) bool {
		return s.Max == 5 && s.Sources.Max == "config" && s.Config.Max == 5
	})
	waitEvent(t, path, group, "the config's maxNodes changed (4 → 5): it replaces the operator's max 1")

	// --reset clears what group scale set.
	scale("min 2 (operator: group scale)", "--min", "2")
	scale("min and max back to 1 and 5, from the config", "--reset")
	waitIntent(t, path, group, 30*time.Second, "min back to the config's", func(s intentStatus) bool { return s.Min == 1 && s.Sources.Min == "config" })
	if r := run(t, 30*time.Second, "group", "scale", group, "--reset", "--max", "2", "-c", path); r.code == 0 {
		t.Errorf("--reset with --max was accepted:\n%s", r.stdout)
	}

	// group update: an override of the whole spec, kept over a restart, cleared by --reset.
	groupFile := writeGroupFile(t, group, host, "{minNodes: 1, maxNodes: 3, resourceTarget: {cpu: 50}}")
	if r := run(t, 30*time.Second, "group", "update", group, "-f", groupFile, "-c", path); r.code != 0 || !strings.Contains(r.stdout, "in place of the config's") {
		t.Fatalf("group update: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	waitIntent(t, path, group, 30*time.Second, "the operator's spec", func(s intentStatus) bool { return s.Max == 3 && s.Sources.Spec == "update" })
	w.stop()
	w = runWorkerProcess(t, path)
	s = waitIntent(t, path, group, time.Minute, "an evaluation after the restart", func(s intentStatus) bool { return s.LastDecision.Outcome != "" })
	before = s.Evaluations
	s = waitIntent(t, path, group, time.Minute, "another evaluation", func(s intentStatus) bool { return s.Evaluations > before })
	if s.Max != 3 || s.Sources.Spec != "update" {
		t.Errorf("after a restart the operator's spec is gone: max %d, sources %+v", s.Max, s.Sources)
	}
	if r := run(t, 30*time.Second, "group", "update", group, "--reset", "-c", path); r.code != 0 || !strings.Contains(r.stdout, "back to the config's spec") {
		t.Fatalf("group update --reset: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	waitIntent(t, path, group, 30*time.Second, "the config's spec again", func(s intentStatus) bool { return s.Max == 5 && s.Sources.Spec == "config" })

	if r := run(t, 3*time.Minute, "group", "delete", group, "-c", path); r.code != 0 {
		t.Errorf("delete: exit %d\n%s", r.code, r.stderr)
	}
	w.stop()
}
