package worker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"
)

// TestLaunchErrorsNoRetryCanFix launches groups whose launch cannot work — a base image that
// does not exist, a template domain that does not exist (both on the test driver), a kernel
// that does not exist (on qemu:///system, where libvirt defines the domain and only its start
// fails, after the overlay was made) — and checks that each launch:
//   - is tried once (no retry can fix it), and leaves nothing behind;
//   - reads, in MySQL, in group status and in the decision log, as the root cause once with
//     the instance, the host and the step, without Temporal's wrapping;
//   - starts the group's back-off (launchBackoff.after 1) instead of an immediate retry.
func TestLaunchErrorsNoRetryCanFix(t *testing.T) {
	tests := []struct {
		name string
		uri  string
		pool string
		// image and shape are the group's; {pool} and {group} are replaced.
		image, shape string
		// cause is the root cause the reason must name once; step what was being done.
		cause, step string
	}{
		{
			name: "base image that does not exist", uri: "test:///default", pool: testPool,
			image: "{pool}/{group}-missing.qcow2", shape: "domain: {vcpus: 1, memory: 64}",
			cause: "it does not exist there, no image.source is set, and there is no other host to copy it from",
			step:  "copy base image {pool}/{group}-missing.qcow2 onto host ",
		},
		{
			name: "template domain that does not exist", uri: "test:///default", pool: testPool,
			image: "{pool}/{group}-base.qcow2", shape: "name: {group}-no-template",
			cause: `template domain "{group}-no-template" does not exist on {uri}`,
			step:  "create domain of instance {group}-1 on host ",
		},
		{
			// libvirt defines the domain; only its start fails, after the overlay and the seed
			// were made.
			name: "kernel that does not exist", uri: "qemu:///system", pool: "default",
			image: "{pool}/{group}-base.qcow2", shape: "domain: {vcpus: 1, memory: 64, type: qemu, kernel: /nonexistent/vmlinuz}",
			cause: "unable to stat: /nonexistent/vmlinuz: No such file or directory",
			step:  "create domain of instance {group}-1 on host ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			group, host := testservices.UniqueName(t, "bad"), testservices.UniqueName(t, "h")
			conn, err := libvirt.Dial(ctx, tt.uri, libvirt.Options{CallTimeout: time.Minute})
			if err != nil {
				t.Fatalf("connect to %s: %v (run testenv/up)", tt.uri, err)
			}
			defer conn.Close()
			if _, err := conn.EnsureVolume(ctx, tt.pool, group+"-base.qcow2", 64<<20, "qcow2"); err != nil {
				t.Fatalf("create base image in pool %s: %v (testenv/libvirt creates the pool)", tt.pool, err)
			}
			t.Cleanup(func() { conn.DeleteVolume(ctx, tt.pool, group+"-base.qcow2") })

			fill := strings.NewReplacer("{pool}", tt.pool, "{group}", group, "{uri}", tt.uri).Replace
			cloudInit := ""
			if tt.uri == "qemu:///system" {
				// The test driver cannot take the seed's upload: cloud-init only on QEMU.
				cloudInit = "\n        cloud-init: {inline: \"#cloud-config\\nruncmd: [[true]]\\n\"}"
			}
			body := fmt.Sprintf(`
        image: %s
        %s%s
        hosts: [%s]
        networking: {type: ignore}
        health: {checkin: false}
        scaling: {minNodes: 1, maxNodes: 1, resourceTarget: {cpu: 50}, launchBackoff: {after: 1, initial: 10m, max: 10m}}`,
				fill(tt.image), fill(tt.shape), cloudInit, host)
			ac := testservices.WriteAgentConfigFor(t, testservices.AgentOptions{Group: group, Host: host, URI: tt.uri, GroupBody: body})
			f := &fixture{t: t, cfg: ac.Config, group: group, host: host, conn: conn}
			if f.store, err = state.Open(ctx, ac.Config.Controller.Databases.State); err != nil {
				t.Fatal(err)
			}
			defer f.store.Close()
			w := f.startWorker()
			defer w.stop(t)
			ctl := w.Groups()

			first := group + "-1"
			var rec state.Instance
			for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
				if rec, _, err = f.store.GetInstance(ctx, first); err == nil && rec.State == spec.StateFailed {
					break
				}
			}
			if rec.State != spec.StateFailed {
				t.Fatalf("instance %s: %+v; want failed", first, rec)
			}
			cause := fill(tt.cause)
			want := "launch failed: " + fill(tt.step)
			t.Logf("reason: %s", rec.Reason)
			if !strings.HasPrefix(rec.Reason, want) || !strings.HasSuffix(rec.Reason, cause) || strings.Count(rec.Reason, cause) != 1 ||
				!strings.Contains(rec.Reason, host) {
				t.Errorf("MySQL's reason for %s:\n  %s\nwant it to begin %q, name host %s and end with the cause %q, once", first, rec.Reason, want, host, cause)
			}
			for _, noise := range []string{"(type:", "retryable", "activity error", "scheduledEventID"} {
				if strings.Contains(rec.Reason, noise) {
					t.Errorf("the reason carries Temporal's wrapping %q: %s", noise, rec.Reason)
				}
			}

			// One attempt: the history's started event carries the attempt that ended it.
			attempts := 0
			hist := w.Temporal().GetWorkflowHistory(ctx, spec.InstanceWorkflowID(first), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			scheduled := map[int64]string{}
			for hist.HasNext() {
				ev, err := hist.Next()
				if err != nil {
					t.Fatal(err)
				}
				if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
					scheduled[ev.GetEventId()] = a.GetActivityType().GetName()
				}
				if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && scheduled[a.GetScheduledEventId()] == "CreateInstance" {
					attempts = int(a.GetAttempt())
				}
			}
			if attempts != 1 {
				t.Errorf("CreateInstance ended on attempt %d, want 1: no retry can fix it", attempts)
			}

			// Group status and the decision log say the same, and the group backs off.
			s := f.waitFor(ctl, "the failed launch in status", time.Minute, func(s groupctl.Status) bool {
				return s.Launches.ConsecutiveFailures == 1
			})
			if s.Launches.LastError != rec.Reason || s.Launches.BlockedUntil.IsZero() {
				t.Errorf("status launches %+v; want the reason %q and a back-off", s.Launches, rec.Reason)
			}
			var logged string
			for deadline := time.Now().Add(time.Minute); logged == "" && time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
				for _, e := range f.events() {
					if strings.Contains(e.Reason, "launch failing: ") {
						logged = e.Reason
					}
				}
			}
			if !strings.Contains(logged, "launch failing: "+rec.Reason+" (1 in a row; next attempt after ") || strings.Count(logged, cause) != 1 {
				t.Errorf("decision log: %q; want the launch failing with the reason once, and the back-off", logged)
			}
			if n := len(s.Instances); n != 0 {
				t.Errorf("the group launched %d more while backing off", n)
			}

			if _, found, err := conn.LookupDomain(ctx, first); err != nil || found {
				t.Errorf("domain %s after its failed launch: found %v (%v)", first, found, err)
			}
			for _, vol := range []string{activities.OverlayVolumeName(first), activities.SeedVolumeName(first)} {
				if ok, err := conn.VolumeExists(ctx, tt.pool, vol); err != nil || ok {
					t.Errorf("volume %s after the failed launch: exists %v (%v)", vol, ok, err)
				}
			}
			f.deleteGroup(ctl)
		})
	}
}
