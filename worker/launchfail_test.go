package worker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"

	"github.com/premiscale/premiscale/internal/spec"
)

// TestFailedLaunchLeavesNothingBehind launches on qemu:///system with a domain shape that
// libvirt accepts but cannot start (its kernel does not exist), after the overlay and the
// seed were made: the launch must undo both, and the domain.
func TestFailedLaunchLeavesNothingBehind(t *testing.T) {
	ctx := context.Background()
	conn, err := libvirt.Dial(ctx, "qemu:///system", libvirt.Options{CallTimeout: time.Minute})
	if err != nil {
		t.Fatalf("connect to qemu:///system: %v (run testenv/up)", err)
	}
	defer conn.Close()
	const pool = "default"
	group := testservices.UniqueName(t, "bad")
	host := testservices.UniqueName(t, "h")
	if _, err := conn.EnsureVolume(ctx, pool, group+"-base.qcow2", 64<<20, "qcow2"); err != nil {
		t.Fatalf("create base image in pool %s: %v (testenv/libvirt creates the pool)", pool, err)
	}
	t.Cleanup(func() { conn.DeleteVolume(ctx, pool, group+"-base.qcow2") })

	body := fmt.Sprintf(`
        image: %s/%s-base.qcow2
        domain: {vcpus: 1, memory: 64, type: qemu, kernel: /nonexistent/vmlinuz}
        cloud-init:
          inline: |
            #cloud-config
            runcmd: [[true]]
        hosts: [%s]
        networking: {type: ignore}
        health: {bootTimeout: 5m}
        scaling: {minNodes: 1, maxNodes: 1, resourceTarget: {cpu: 50}}`, pool, group, host)
	ac := testservices.WriteAgentConfigFor(t, testservices.AgentOptions{Group: group, Host: host, URI: "qemu:///system", GroupBody: body})
	f := &fixture{t: t, cfg: ac.Config, group: group, host: host, conn: conn}
	if f.store, err = state.Open(ctx, ac.Config.Controller.Databases.State); err != nil {
		t.Fatal(err)
	}
	defer f.store.Close()
	a := f.startWorker()
	defer a.stop(t)

	first := group + "-1"
	var rec state.Instance
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		rec, _, err = f.store.GetInstance(ctx, first)
		if err == nil && rec.State == spec.StateFailed {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if rec.State != spec.StateFailed || !strings.Contains(rec.Reason, "launch failed") {
		t.Fatalf("instance %s: %+v; want failed with the launch error", first, rec)
	}
	if _, found, err := conn.LookupDomain(ctx, first); err != nil || found {
		t.Errorf("domain %s after its failed launch: found %v (%v)", first, found, err)
	}
	for _, vol := range []string{activities.OverlayVolumeName(first), activities.SeedVolumeName(first)} {
		if ok, err := conn.VolumeExists(ctx, pool, vol); err != nil || ok {
			t.Errorf("volume %s after the failed launch: exists %v (%v)", vol, ok, err)
		}
	}
	t.Logf("failure recorded: %s", rec.Reason)
	f.deleteGroup(a.Groups())
}
