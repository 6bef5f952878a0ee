package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/influxdb"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"
)

// TestOperatorControlsAgainstARunningWorker drives scale, pause, resume, protect and events
// through the CLI against a real worker, Temporal dev server and MariaDB.
func TestOperatorControlsAgainstARunningWorker(t *testing.T) {
	group := testservices.UniqueName(t, "ops")
	ac := testservices.WriteAgentConfig(t, group, testservices.UniqueName(t, "h"),
		"{minNodes: 1, maxNodes: 3, cooldown: 5s, scaleIn: {stabilizationWindow: 0}, resourceTarget: {cpu: 50}}")
	keepTestDriver(t, group)
	stop := startWorker(t, ac.Path)
	defer stop()

	waitStatus(t, ac.Path, group, func(s statusJSON) bool { return s.Current == 1 })

	// Out of range: rejected by the workflow's validator, with the reason.
	r := run(t, 30*time.Second, "group", "scale", group, "--desired", "5", "-c", ac.Path)
	if r.code == 0 || !strings.Contains(r.stderr, "desired size 5 is outside [1, 3]") {
		t.Errorf("scale --desired 5: exit %d, stderr %q", r.code, r.stderr)
	}
	r = run(t, 30*time.Second, "group", "scale", group, "--desired", "3", "-c", ac.Path)
	if r.code != 0 || !strings.Contains(r.stdout, "desired 3") {
		t.Fatalf("scale --desired 3: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	waitStatus(t, ac.Path, group, func(s statusJSON) bool { return s.Current == 3 })

	if r := run(t, 30*time.Second, "group", "protect", group, group+"-3", "-c", ac.Path); r.code != 0 || !strings.Contains(r.stdout, "is protected from scale-in") {
		t.Errorf("protect: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, 30*time.Second, "group", "protect", group, group+"-42", "-c", ac.Path); r.code == 0 || !strings.Contains(r.stderr, "is not a live instance") {
		t.Errorf("protect of an unknown instance: exit %d, %q", r.code, r.stderr)
	}

	// Paused, the group still evaluates: low load makes it want to shrink, and it only logs so.
	if r := run(t, 30*time.Second, "group", "pause", group, "-c", ac.Path); r.code != 0 {
		t.Fatalf("pause: exit %d\n%s", r.code, r.stderr)
	}
	stopLoad := writeLoad(t, ac, group, 5)
	defer stopLoad()
	s := waitStatus(t, ac.Path, group, func(s statusJSON) bool {
		return s.Paused && s.LastDecision.Outcome == "paused" && strings.Contains(s.LastDecision.Reason, "would scale-in")
	})
	if s.Current != 3 {
		t.Errorf("a paused group changed size to %d", s.Current)
	}
	if r := run(t, 30*time.Second, "group", "resume", group, "-c", ac.Path); r.code != 0 {
		t.Fatalf("resume: exit %d\n%s", r.code, r.stderr)
	}
	// Low load shrinks it to min, but the protected instance stays.
	// Retiring instances stay listed until their VM is gone; wait for that too.
	s = waitStatusFor(t, ac.Path, group, 3*time.Minute, func(s statusJSON) bool { return s.Current == 1 && len(s.Instances) == 1 })
	if s.Instances[0].Name != group+"-3" {
		ev := run(t, 30*time.Second, "group", "events", group, "-c", ac.Path)
		t.Errorf("after scale-in the group kept %s, want the protected %s-3; decision log:\n%s\ninstances:\n%s", s.Instances[0].Name, group, ev.stdout, instanceHistory(t, ac))
	}
	stopLoad()

	// A new spec from a group file reaches the running group.
	groupFile := writeGroupFile(t, group, ac.Host, "{minNodes: 1, maxNodes: 5, resourceTarget: {cpu: 50}}")
	if r := run(t, 30*time.Second, "group", "update", group, "-f", groupFile, "-c", ac.Path); r.code != 0 || !strings.Contains(r.stdout, "new spec") {
		t.Errorf("group update: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	waitStatus(t, ac.Path, group, func(s statusJSON) bool { return s.Max == 5 })
	if r := run(t, 30*time.Second, "group", "update", "nosuchgroup", "-f", groupFile, "-c", ac.Path); r.code == 0 {
		t.Errorf("update of a group not in the file succeeded:\n%s", r.stdout)
	}

	r = run(t, 30*time.Second, "group", "events", group, "--since", "1h", "-o", "json", "-c", ac.Path)
	var events []struct {
		From, To int
		Action   string
		Outcome  string
		Winner   string
		Reason   string
		Checks   []struct{ Name string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &events); err != nil || r.code != 0 {
		t.Fatalf("group events -o json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	var sawOperator, sawPaused, sawScaleIn bool
	for _, e := range events {
		sawOperator = sawOperator || (e.Winner == "operator" && e.To == 3)
		sawPaused = sawPaused || e.Outcome == "paused"
		sawScaleIn = sawScaleIn || (e.Action == "scale-in" && e.Outcome == "acted" && len(e.Checks) == 1 && e.Checks[0].Name == "cpu")
	}
	if !sawOperator || !sawPaused || !sawScaleIn {
		t.Errorf("decision log lacks the operator resize (%v), a paused evaluation (%v) or an acted scale-in with its check (%v): %+v", sawOperator, sawPaused, sawScaleIn, events)
	}
	if r := run(t, 30*time.Second, "group", "events", group, "-c", ac.Path); r.code != 0 || !strings.Contains(r.stdout, "OUTCOME") || !strings.Contains(r.stdout, "operator") {
		t.Errorf("group events table: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, 3*time.Minute, "group", "delete", group, "-c", ac.Path); r.code != 0 {
		t.Errorf("delete: exit %d\n%s", r.code, r.stderr)
	}
}

// startWorker runs `premiscale worker` as a process and returns a function that stops it
// with SIGTERM and checks it exits cleanly.
func startWorker(t *testing.T, configPath string) func() {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "worker.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	worker := exec.Command(binary, "worker", "-c", configPath, "--log-stdout")
	worker.Stdout, worker.Stderr = logFile, logFile
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- worker.Wait() }()
	stopped := false
	return func() {
		if stopped {
			return
		}
		stopped = true
		defer logFile.Close()
		_ = worker.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("worker exited with %v after SIGTERM", err)
			}
		case <-time.After(30 * time.Second):
			worker.Process.Kill()
			t.Error("worker did not stop within 30s of SIGTERM")
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("worker log:\n%s", b)
		}
	}
}

// writeLoad writes a CPU sample for instances 1-3 of the group every 500 ms until stopped.
func writeLoad(t *testing.T, ac testservices.AgentConfig, group string, cpu float64) func() {
	t.Helper()
	m, err := influxdb.New(ac.Config.Controller.Databases.Timeseries.InfluxOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			var samples []influxdb.DomainSample
			for i := 1; i <= 3; i++ {
				samples = append(samples, influxdb.DomainSample{Group: group, Instance: fmt.Sprintf("%s-%d", group, i), Host: ac.Host, At: time.Now(), CPUPercent: cpu})
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := m.WriteDomainSamples(ctx, samples); err != nil {
				t.Errorf("write samples: %v", err)
			}
			cancel()
			select {
			case <-done:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done); <-finished; m.Close() })
	}
}

// instanceHistory lists every instance MySQL knows of the group, for failure messages.
func instanceHistory(t *testing.T, ac testservices.AgentConfig) string {
	store, err := state.Open(context.Background(), ac.Config.Controller.Databases.State)
	if err != nil {
		return err.Error()
	}
	defer store.Close()
	recs, err := store.ListInstances(context.Background(), ac.Group, true)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "%s %s %q\n", r.Name, r.State, r.Reason)
	}
	return b.String()
}
