package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"
	"github.com/premiscale/premiscale/workflows"
)

// poolStatus is `group status -o json` with what the warm-pool tests look at.
type poolStatus struct {
	Current   int                `json:"current"`
	Pool      *spec.PoolStatus   `json:"pool"`
	Instances []spec.InstanceRef `json:"instances"`
	Last      struct {
		Reason string `json:"reason"`
	} `json:"lastDecision"`
}

func (s poolStatus) named(states ...spec.InstanceState) []string {
	var out []string
	for _, in := range s.Instances {
		if slices.Contains(states, in.State) {
			out = append(out, in.Name)
		}
	}
	slices.Sort(out)
	return out
}

func (s poolStatus) ready(live, pool int) bool {
	return len(s.named(spec.StateRunning)) == live && s.Current == live && s.Pool != nil && s.Pool.Ready == pool &&
		len(s.Instances) == live+pool
}

// waitPool polls `group status -o json` until ok accepts it. When it gives up, the worker w
// dumps its goroutines into its log (SIGQUIT), which the test prints: a hang shows where.
func waitPool(t *testing.T, w *workerProcess, path, group string, timeout time.Duration, what string, ok func(poolStatus) bool) poolStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last result
	for time.Now().Before(deadline) {
		last = run(t, 30*time.Second, "group", "status", group, "-o", "json", "-c", path)
		var s poolStatus
		if last.code == 0 && json.Unmarshal([]byte(last.stdout), &s) == nil && ok(s) {
			return s
		}
		time.Sleep(200 * time.Millisecond)
	}
	if w != nil {
		_ = w.cmd.Process.Signal(syscall.SIGQUIT)
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("group %s: no %s within %s; last status: exit %d\n%s%s", group, what, timeout, last.code, last.stdout, last.stderr)
	return poolStatus{}
}

// TestWarmPoolOnTheTestDriver takes a group with a saved warm pool through the user's path —
// its config file, `premiscale worker`, the group commands — on libvirt's test driver: the
// pool fills behind the group's minimum with saved domains, a scale-out takes it first and
// launches cold for the rest, the pool refills within maxNodes, a member whose domain vanished
// fails to resume and is replaced, a scale-in returns instances to the pool (and a worker
// killed meanwhile changes nothing), a new launch spec refreshes the pool, and a delete removes
// it. The group's and a member's histories are replayed against the workflow code.
func TestWarmPoolOnTheTestDriver(t *testing.T) {
	ctx := context.Background()
	group := testservices.UniqueName(t, "warm")
	host := testservices.UniqueName(t, "h")
	body := fmt.Sprintf(`
        image: %s/%s-base.qcow2
        domain: {vcpus: 1, memory: 128}
        hosts: [%s]
        networking: {type: ignore}
        health: {checkin: false, heartbeatInterval: 10s}
        warmPool: {size: 2, state: saved, reuseOnScaleIn: true}
        scaling: {minNodes: 1, maxNodes: 5, increment: 3, cooldown: 0, scaleIn: {stabilizationWindow: 0}, resourceTarget: {cpu: 50}}`,
		testservices.TestPool, group, host)
	// A host of its own: the shared test driver's capacity is what every other test's domains
	// leave, and placement would refuse launches on a crowded one.
	lv := testservices.StartLibvirtd(t, testservices.LibvirtdOptions{})
	ac := testservices.WriteAgentConfigFor(t, testservices.AgentOptions{Group: group, Host: host, URI: lv.TestURI(), GroupBody: body})
	// The connection also keeps the private test driver's state alive between workers.
	conn, err := libvirt.Dial(ctx, lv.TestURI(), libvirt.Options{CallTimeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("connect to the private test driver: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.EnsureVolume(ctx, testservices.TestPool, group+"-base.qcow2", 1<<30, "qcow2"); err != nil {
		t.Fatalf("create base image: %v", err)
	}
	path := ac.Path
	store, err := state.Open(ctx, ac.Config.Controller.Databases.State)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	name := func(n int) string { return fmt.Sprintf("%s-%d", group, n) }
	// expectDomain checks a domain on the host: its state, its pool mark, a saved image.
	expectDomain := func(n int, state libvirt.DomainState, pool, saved bool) {
		t.Helper()
		d, found, err := conn.LookupDomain(ctx, name(n))
		has, herr := conn.HasManagedSave(ctx, name(n))
		if err != nil || herr != nil || !found || d.State != state || d.Pool != pool || has != saved {
			t.Errorf("domain %s = %+v (found %v, saved image %v; %v, %v); want %s, pool mark %v, saved image %v",
				name(n), d, found, has, err, herr, state, pool, saved)
		}
	}
	expectGone := func(n int) {
		t.Helper()
		if _, found, err := conn.LookupDomain(ctx, name(n)); err != nil || found {
			t.Errorf("domain %s still exists (%v)", name(n), err)
		}
	}
	scale := func(desired int) {
		t.Helper()
		if r := run(t, 30*time.Second, "group", "scale", group, "--desired", fmt.Sprint(desired), "-c", path); r.code != 0 {
			t.Fatalf("scale --desired %d: exit %d\n%s%s", desired, r.code, r.stdout, r.stderr)
		}
	}

	w := runWorkerProcess(t, path)
	// The minimum, then a pool of 2 behind it: saved, marked, recorded warm.
	s := waitPool(t, w, path, group, 3*time.Minute, "1 running and 2 in the pool", func(s poolStatus) bool { return s.ready(1, 2) })
	if got := strings.Join(s.named(spec.StateWarm), " "); got != name(2)+" "+name(3) {
		t.Fatalf("pool = %s, want %s and %s", got, name(2), name(3))
	}
	expectDomain(1, libvirt.StateRunning, false, false)
	expectDomain(2, libvirt.StateShutoff, true, true)
	expectDomain(3, libvirt.StateShutoff, true, true)
	if rec, _, err := store.GetInstance(ctx, name(2)); err != nil || rec.State != spec.StateWarm {
		t.Errorf("MySQL record of %s: %+v (%v); want warm", name(2), rec, err)
	}
	if r := run(t, 30*time.Second, "group", "status", group, "-c", path); r.code != 0 || !strings.Contains(r.stdout, "Warm pool:") ||
		!strings.Contains(r.stdout, "2 of 2 ready (saved); scale-ins return instances to it; 0 taken so far") {
		t.Errorf("group status does not show the pool: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Out to 4: both pool members are taken, one launch is cold, and the pool refills to the
	// one place maxNodes (5) leaves.
	start := time.Now()
	scale(4)
	waitPool(t, w, path, group, 3*time.Minute, "the pool members running", func(s poolStatus) bool {
		return slices.Contains(s.named(spec.StateRunning), name(2)) && slices.Contains(s.named(spec.StateRunning), name(3))
	})
	t.Logf("pool members running %.1fs after the scale command", time.Since(start).Seconds())
	s = waitPool(t, w, path, group, 3*time.Minute, "4 running and 1 in the pool", func(s poolStatus) bool { return s.ready(4, 1) })
	if got := strings.Join(s.named(spec.StateWarm), " "); got != name(5) || s.Pool.Taken != 2 {
		t.Fatalf("pool after the scale-out = %s (%+v), want %s refilled, 2 taken", got, s.Pool, name(5))
	}
	for _, n := range []int{2, 3, 4} {
		expectDomain(n, libvirt.StateRunning, false, false)
	}
	expectDomain(5, libvirt.StateShutoff, true, true)
	waitEvent(t, path, group, fmt.Sprintf("took %s, %s from the warm pool", name(2), name(3)))
	waitEvent(t, path, group, fmt.Sprintf("launched %s into the warm pool", name(5)))

	// A member whose domain vanished fails to resume: it is removed and replaced cold.
	failDomains(t, conn, name(5))
	scale(5)
	s = waitPool(t, w, path, group, 3*time.Minute, "5 running after a failed resume", func(s poolStatus) bool {
		return len(s.named(spec.StateRunning)) == 5 && !slices.Contains(s.named(spec.StateRunning), name(5))
	})
	if rec, _, err := store.GetInstance(ctx, name(5)); err != nil || rec.State != spec.StateFailed || !strings.Contains(rec.Reason, "warm pool") {
		t.Errorf("MySQL record of %s: %+v (%v); want failed, saying why", name(5), rec, err)
	}

	// In to 2: the pool has room for 2, so the two newest go back to it and one is retired;
	// the worker is killed right after the command, and its successor finishes the job.
	before := s.named(spec.StateRunning)
	scale(2)
	time.Sleep(300 * time.Millisecond)
	w.kill()
	w = runWorkerProcess(t, path)
	s = waitPool(t, w, path, group, 3*time.Minute, "2 running and 2 back in the pool", func(s poolStatus) bool { return s.ready(2, 2) })
	returned := s.named(spec.StateWarm)
	for _, n := range returned {
		if !slices.Contains(before, n) {
			t.Errorf("%s is in the pool but was not running before the scale-in (%v)", n, before)
		}
		var seq int
		fmt.Sscanf(strings.TrimPrefix(n, group+"-"), "%d", &seq)
		expectDomain(seq, libvirt.StateShutoff, true, true)
	}
	if recs, err := store.ListInstances(ctx, group, true); err == nil {
		terminated := 0
		for _, r := range recs {
			if r.State == spec.StateTerminated {
				terminated++
			}
		}
		if terminated != 1 {
			t.Errorf("%d instances terminated by the scale-in, want 1 (the pool took the other two)", terminated)
		}
	}
	waitEvent(t, path, group, "to the warm pool")

	// Back out by one: the oldest returned member comes back.
	scale(3)
	s = waitPool(t, w, path, group, 3*time.Minute, "3 running", func(s poolStatus) bool { return len(s.named(spec.StateRunning)) == 3 })
	if !slices.Contains(s.named(spec.StateRunning), returned[0]) {
		t.Errorf("running %v after the scale-out, want the returned %s among them", s.named(spec.StateRunning), returned[0])
	}

	// A new launch spec (more memory) starts a new generation: the pool is refreshed.
	w.stop()
	rewriteConfig(t, path, "domain: {vcpus: 1, memory: 128}", "domain: {vcpus: 1, memory: 256}")
	w = runWorkerProcess(t, path)
	s = waitPool(t, w, path, group, 3*time.Minute, "a pool of the new generation", func(s poolStatus) bool {
		if s.Pool == nil || s.Pool.Ready != 2 {
			return false
		}
		for _, in := range s.Instances {
			if spec.InPool(in.State) && in.Generation != 1 || in.State == spec.StateRetiring {
				return false
			}
		}
		return true
	})
	for _, n := range returned[1:] {
		var seq int
		fmt.Sscanf(strings.TrimPrefix(n, group+"-"), "%d", &seq)
		expectGone(seq)
	}
	for _, in := range s.Instances {
		if in.State == spec.StateWarm {
			if d, _, _ := conn.LookupDomain(ctx, in.Name); d.MemoryMiB != 256 {
				t.Errorf("new pool member %s has %d MiB, want 256", in.Name, d.MemoryMiB)
			}
		}
	}

	// Delete takes the pool with the group.
	all := s.Instances
	if r := run(t, 3*time.Minute, "group", "delete", group, "-c", path); r.code != 0 {
		t.Fatalf("delete: exit %d\n%s", r.code, r.stderr)
	}
	for _, in := range all {
		if _, found, _ := conn.LookupDomain(ctx, in.Name); found {
			t.Errorf("domain %s (%s) still exists after delete", in.Name, in.State)
		}
	}
	w.stop()

	replayPoolHistories(t, ac, group, returned[0])
}

// replayPoolHistories replays the group's last run and a pool member's history against the
// workflow code. With PREMISCALE_RECORD_HISTORIES set it saves them for workflows' replay test.
func replayPoolHistories(t *testing.T, ac testservices.AgentConfig, group, member string) {
	t.Helper()
	tc, err := client.DialContext(context.Background(), client.Options{HostPort: ac.Config.Controller.Temporal.Address})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	for _, h := range []struct{ id, file string }{
		{spec.GroupWorkflowID(group), "group-warm-pool.json"},
		{spec.InstanceWorkflowID(member), "instance-warm-pool.json"},
	} {
		hist := &historypb.History{}
		it := tc.GetWorkflowHistory(context.Background(), h.id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatalf("read history of %s: %v", h.id, err)
			}
			hist.Events = append(hist.Events, ev)
		}
		r := worker.NewWorkflowReplayer()
		r.RegisterWorkflow(workflows.GroupWorkflow)
		r.RegisterWorkflow(workflows.InstanceWorkflow)
		if err := r.ReplayWorkflowHistory(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)), hist); err != nil {
			t.Errorf("replay of %s (%d events): %v", h.id, len(hist.Events), err)
		}
		if dir := os.Getenv("PREMISCALE_RECORD_HISTORIES"); dir != "" {
			b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(hist)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, h.file), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
