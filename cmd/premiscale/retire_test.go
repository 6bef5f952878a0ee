package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"
)

// TestRetirementCutByACrashResumes kills the worker (SIGKILL) while it waits for a retiring
// VM to shut down, and checks that the retirement goes on as soon as a worker is back: the
// instance shows retiring meanwhile, and is gone within two reconciliation intervals of the
// worker's return, not after the destroy's start-to-close timeout (grace + 2 minutes).
//
// The VM is a real one on qemu:///system, but without an operating system (a blank disk):
// SeaBIOS finds nothing to boot and ignores the ACPI shutdown request, so the retirement
// waits out the shutdown grace, the window the worker is killed in. Run it under
// flock /tmp/premiscale-realvm.lock like the other real-VM tests.
func TestRetirementCutByACrashResumes(t *testing.T) {
	const pool = "premiscale"
	const interval = 10 * time.Second
	ctx := context.Background()
	conn, err := libvirt.Dial(ctx, "qemu:///system", libvirt.Options{CallTimeout: time.Minute})
	if err != nil {
		t.Fatalf("connect to qemu:///system: %v (run testenv/up)", err)
	}
	t.Cleanup(func() { conn.Close() })
	group := testservices.UniqueName(t, "crash")
	host := testservices.UniqueName(t, "h")
	base := group + "-blank.qcow2"
	if _, err := conn.EnsureVolume(ctx, pool, base, 16<<20, "qcow2"); err != nil {
		t.Fatalf("create a blank base image in pool %s: %v (run testenv/up)", pool, err)
	}
	t.Cleanup(func() {
		removeLeftovers(t, conn, pool, group)
		_, _ = conn.DeleteVolume(context.Background(), pool, base)
	})
	body := fmt.Sprintf(`
        image: %s/%s
        domain: {vcpus: 1, memory: 64, type: qemu}
        hosts: [%s]
        networking: {type: ignore}
        health: {checkin: false, shutdownGrace: 8s}
        scaling: {minNodes: 2, maxNodes: 2, resourceTarget: {cpu: 50}}`, pool, base, host)
	ac := testservices.WriteAgentConfigFor(t, testservices.AgentOptions{Group: group, Host: host, URI: "qemu:///system", GroupBody: body})
	path := ac.Path
	setInterval(t, path, interval)
	store, err := state.Open(ctx, ac.Config.Controller.Databases.State)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	tc, err := client.DialContext(ctx, client.Options{HostPort: testservices.TemporalAddress(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()

	w := runWorkerProcess(t, path)
	waitIntent(t, path, group, 3*time.Minute, "2 running VMs", func(s intentStatus) bool { return s.allRunning(2) })
	retiring := group + "-2"
	if r := run(t, 30*time.Second, "group", "scale", group, "--min", "1", "--desired", "1", "-c", path); r.code != 0 {
		t.Fatalf("scale to 1: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Kill the worker once the destroy is under way and has reported its progress.
	if !waitUntilFast(time.Minute, func() bool { return destroyStarted(ctx, tc, retiring) }) {
		t.Fatalf("the retirement of %s did not start within a minute", retiring)
	}
	w.kill()
	killed := time.Now()
	if d, found, err := conn.LookupDomain(ctx, retiring); err != nil || !found || d.State != libvirt.StateRunning {
		t.Fatalf("after the crash the VM %s is %+v (found %v, %v); want it still running (its guest ignores ACPI)", retiring, d, found, err)
	}
	if rec, _, err := store.GetInstance(ctx, retiring); err != nil || rec.State != spec.StateRetiring {
		t.Errorf("MySQL record of %s after the crash: %+v (%v); want retiring", retiring, rec, err)
	}
	time.Sleep(2 * time.Second) // the worker stays down a moment, as a crashed one does

	w = runWorkerProcess(t, path)
	back := w.started
	s := waitIntent(t, path, group, time.Minute, "status from the restarted worker", func(intentStatus) bool { return true })
	if in := findRef(s, retiring); in != "" && in != spec.StateRetiring {
		t.Errorf("%s is %s after the restart, want retiring until it is gone", retiring, in)
	}
	if !waitUntilFast(2*time.Minute, func() bool {
		_, found, err := conn.LookupDomain(ctx, retiring)
		return err == nil && !found
	}) {
		t.Fatalf("VM %s still exists 2 minutes after the worker came back", retiring)
	}
	gone := time.Since(back)
	t.Logf("VM gone %.1fs after the worker came back (%.1fs after the crash)", gone.Seconds(), time.Since(killed).Seconds())
	if gone > 2*interval {
		t.Errorf("the retirement took %s after the worker came back, want at most two reconciliation intervals (%s)", gone.Round(100*time.Millisecond), 2*interval)
	}
	s = waitIntent(t, path, group, time.Minute, "the group down to 1", func(s intentStatus) bool { return len(s.Instances) == 1 })
	if s.Instances[0].Name != group+"-1" {
		t.Errorf("the group kept %s, want %s-1", s.Instances[0].Name, group)
	}
	for _, vol := range []string{activities.OverlayVolumeName(retiring), activities.SeedVolumeName(retiring)} {
		if ok, err := conn.VolumeExists(ctx, pool, vol); err != nil || ok {
			t.Errorf("volume %s after the retirement: exists %v (%v)", vol, ok, err)
		}
	}
	if rec, _, err := store.GetInstance(ctx, retiring); err != nil || rec.State != spec.StateTerminated {
		t.Errorf("MySQL record of %s: %+v (%v); want terminated", retiring, rec, err)
	}
	if r := run(t, 3*time.Minute, "group", "delete", group, "-c", path); r.code != 0 {
		t.Errorf("delete: exit %d\n%s", r.code, r.stderr)
	}
	w.stop()
}

// setInterval changes the reconciliation interval of a test config.
func setInterval(t *testing.T, path string, d time.Duration) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), "reconciliation: {interval: 2s}", fmt.Sprintf("reconciliation: {interval: %s}", d), 1)
	if edited == string(b) {
		t.Fatalf("config %s has no reconciliation interval of 2s to change", path)
	}
	if err := os.WriteFile(path, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
}

// destroyStarted says whether an instance's DestroyInstance activity runs and has sent a
// heartbeat.
func destroyStarted(ctx context.Context, tc client.Client, instance string) bool {
	desc, err := tc.DescribeWorkflowExecution(ctx, spec.InstanceWorkflowID(instance), "")
	if err != nil {
		return false
	}
	for _, a := range desc.GetPendingActivities() {
		if a.GetActivityType().GetName() == "DestroyInstance" && a.GetState() == enums.PENDING_ACTIVITY_STATE_STARTED && a.GetHeartbeatDetails() != nil {
			return true
		}
	}
	return false
}

func findRef(s intentStatus, name string) string {
	for _, in := range s.Instances {
		if in.Name == name {
			return in.State
		}
	}
	return ""
}

func waitUntilFast(timeout time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ok() {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return ok()
}
