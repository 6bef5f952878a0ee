//go:build benchscale

package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"
)

// TestBenchWarmPoolRealVMs measures, on real VMs (qemu:///system, the cloud-init guest image,
// 1 vCPU and 512 MiB under TCG), the time from the scale-out decision to the new instance
// running: launched cold (boot, cloud-init, check-in) and taken from a warm pool in each state
// (stopped: booted again, running once its guest sends a heartbeat; saved: restored with
// libvirt's managed save; running). One `premiscale worker`, one group per mode, one after the
// other, each with maxNodes 1, so at most one VM runs at a time and no refill competes with
// the measured resume. A pool's member goes back to the pool after each run (reuseOnScaleIn),
// so later runs cost no new boot.
//
// It is a benchmark, not part of `make test` (build tag benchscale):
//
//	flock /tmp/premiscale-realvm.lock go test -tags benchscale -v -timeout 60m \
//	    -run TestBenchWarmPoolRealVMs ./cmd/premiscale/
//
// PREMISCALE_BENCH_RUNS (default 2) sets the runs per mode; PREMISCALE_BENCH_MODES (default
// "cold,stopped,saved,running") which modes run. Times come from the workflows' own clocks:
// the decision is the decision log's row, running is the instance's record of it.
func TestBenchWarmPoolRealVMs(t *testing.T) {
	runs := 2
	if v := os.Getenv("PREMISCALE_BENCH_RUNS"); v != "" {
		if _, err := fmt.Sscanf(v, "%d", &runs); err != nil || runs < 1 {
			t.Fatalf("PREMISCALE_BENCH_RUNS=%q: want a number of runs", v)
		}
	}
	modes := []string{"cold", string(spec.PoolStopped), string(spec.PoolSaved), string(spec.PoolRunning)}
	if v := os.Getenv("PREMISCALE_BENCH_MODES"); v != "" {
		modes = strings.Split(v, ",")
	}
	startLoad := loadAverage()
	ctx := context.Background()
	conn, pool, _ := systemWithGuestImage(t)
	// The guests post here when their cloud-config ran: proof of a real boot.
	m := &markers{seen: map[string]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: m, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	markerPort := ln.Addr().(*net.TCPAddr).Port

	host := testservices.UniqueName(t, "h")
	checkinPort := testservices.FreePort(t)
	ac := testservices.WriteAgentConfigFor(t, testservices.AgentOptions{
		Host: host, URI: "qemu:///system", CheckinPort: checkinPort, CheckinURL: fmt.Sprintf("http://10.0.2.2:%d", checkinPort),
		// The worker's own clock is not what is measured; a short interval only makes the
		// group act on a command sooner, as it would on a metric.
		ReconcileInterval: 2 * time.Second, CollectionInterval: 5 * time.Second,
	})
	store, err := state.Open(ctx, ac.Config.Controller.Databases.State)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	tc, err := client.DialContext(ctx, client.Options{HostPort: ac.Config.Controller.Temporal.Address})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	ctl := &groupctl.Client{Temporal: tc, TaskQueue: ac.Config.Controller.Temporal.TaskQueue, Store: store}
	stop := startWorker(t, ac.Path)
	defer stop()

	type sample struct {
		total, resume, guest time.Duration
		instance             string
	}
	results := map[string][]sample{}
	var parkTimes []string
	for _, mode := range modes {
		group := testservices.UniqueName(t, "wp"+strings.ReplaceAll(mode, "-", ""))
		t.Cleanup(func() { removeLeftovers(t, conn, pool, group) })
		warmPool := ""
		if mode != "cold" {
			warmPool = fmt.Sprintf("\n    warmPool: {size: 1, state: %s, reuseOnScaleIn: true}", mode)
		}
		file := filepath.Join(t.TempDir(), "group.yaml")
		doc := fmt.Sprintf(`version: v1alpha1
groups:
  %[1]s:
    image: %[2]s
    domain: {vcpus: 1, memory: 512, type: qemu, network: user, kernel: %[3]s, initrd: %[4]s, cmdline: %[5]q}
    cloud-init:
      inline: |
        #cloud-config
        runcmd:
          - [curl, -fsS, -m, "20", -X, POST, "http://10.0.2.2:%[6]d/marker/{{.Name}}"]
    hosts: [%[7]s]
    networking: {type: dynamic}
    health: {bootTimeout: 10m, heartbeatInterval: 5s, heartbeatTimeout: 5m, shutdownGrace: 60s}
    scaling: {minNodes: 0, maxNodes: 1, scaleIn: {stabilizationWindow: 1h}, resourceTarget: {cpu: 90}}%[8]s
`, group, guest.image, guest.kernel, guest.initrd, guest.cmdline, markerPort, host, warmPool)
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		if r := run(t, time.Minute, "group", "create", group, "-f", file, "-c", ac.Path); r.code != 0 {
			t.Fatalf("group create %s: exit %d\n%s%s", group, r.code, r.stdout, r.stderr)
		}
		if mode != "cold" {
			start := time.Now()
			benchWait(t, ctl, group, 15*time.Minute, "a warm pool member", func(s groupctl.Status) bool { return s.Pool != nil && s.Pool.Ready == 1 })
			parkTimes = append(parkTimes, fmt.Sprintf("%s pool ready %.0f s after group create", mode, time.Since(start).Seconds()))
		}
		for i := 0; i < runs; i++ {
			command := time.Now()
			if r := run(t, time.Minute, "group", "scale", group, "--desired", "1", "-c", ac.Path); r.code != 0 {
				t.Fatalf("scale %s to 1: exit %d\n%s", group, r.code, r.stderr)
			}
			s := benchWait(t, ctl, group, 15*time.Minute, "1 running", func(s groupctl.Status) bool {
				return s.Current == 1 && len(s.Instances) > 0 && slices.ContainsFunc(s.Instances, func(in spec.InstanceRef) bool { return in.State == spec.StateRunning })
			})
			var name string
			for _, in := range s.Instances {
				if in.State == spec.StateRunning {
					name = in.Name
				}
			}
			decided := decisionTime(t, store, group, command)
			running, resume, guestUp := instanceTimes(t, tc, name, decided)
			smp := sample{total: running.Sub(decided), resume: resume, guest: guestUp, instance: name}
			results[mode] = append(results[mode], smp)
			t.Logf("%-8s run %d: %s running %.1f s after the decision (resume %.1f s, guest %.1f s)", mode, i+1, name,
				smp.total.Seconds(), resume.Seconds(), guestUp.Seconds())
			if mode == "cold" && !waitUntil(time.Minute, func() bool { return m.has("/marker/" + name) }) {
				t.Errorf("%s ran, but its cloud-config did not (no marker)", name)
			}
			if r := run(t, time.Minute, "group", "scale", group, "--desired", "0", "-c", ac.Path); r.code != 0 {
				t.Fatalf("scale %s to 0: exit %d\n%s", group, r.code, r.stderr)
			}
			benchWait(t, ctl, group, 10*time.Minute, "back to 0", func(s groupctl.Status) bool {
				if mode == "cold" {
					return len(s.Instances) == 0
				}
				return s.Current == 0 && s.Pool != nil && s.Pool.Ready == 1
			})
		}
		if r := run(t, 10*time.Minute, "group", "delete", group, "-c", ac.Path); r.code != 0 {
			t.Errorf("delete %s: exit %d\n%s", group, r.code, r.stderr)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "warm pool vs cold scale-out on real VMs (qemu:///system, TCG, 1 vCPU, 512 MiB, the cloud-init guest image), %d runs each\n", runs)
	fmt.Fprintf(&b, "%-8s %10s %10s   %s\n", "mode", "median s", "max s", "decision → running per run (resume activity; guest up after it)")
	for _, mode := range modes {
		ss := results[mode]
		if len(ss) == 0 {
			continue
		}
		totals := make([]time.Duration, len(ss))
		var each []string
		for i, s := range ss {
			totals[i] = s.total
			if mode == "cold" {
				each = append(each, fmt.Sprintf("%.1f", s.total.Seconds()))
			} else {
				each = append(each, fmt.Sprintf("%.1f (%.1f; %.1f)", s.total.Seconds(), s.resume.Seconds(), s.guest.Seconds()))
			}
		}
		slices.Sort(totals)
		median := (totals[(len(totals)-1)/2] + totals[len(totals)/2]) / 2
		fmt.Fprintf(&b, "%-8s %10.1f %10.1f   %s\n", mode, median.Seconds(), totals[len(totals)-1].Seconds(), strings.Join(each, ", "))
	}
	for _, p := range parkTimes {
		fmt.Fprintf(&b, "(%s)\n", p)
	}
	fmt.Fprintf(&b, "(load average at the start %s, at the end %s; %d CPUs)\n", startLoad, loadAverage(), runtime.NumCPU())
	t.Log("\n" + b.String())
}

// loadAverage is the machine's 1, 5 and 15 minute load averages: other work on the machine
// slows real VMs under software emulation, cold boots most.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// benchWait polls the group's status in process until ok accepts it.
func benchWait(t *testing.T, ctl *groupctl.Client, group string, timeout time.Duration, what string, ok func(groupctl.Status) bool) groupctl.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last groupctl.Status
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		last, err = ctl.Status(ctx, group)
		cancel()
		if err == nil && ok(last) {
			return last
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("group %s: no %s within %s (last status %+v, %v)", group, what, timeout, last.GroupStatus, err)
	return last
}

// decisionTime is the time of the group's decision-log row that scaled it out after the command.
func decisionTime(t *testing.T, store *state.Store, group string, after time.Time) time.Time {
	t.Helper()
	events, err := store.ListScalingEvents(context.Background(), group, after.Add(-2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.To == 1 && e.From == 0 && e.Outcome == spec.OutcomeActed {
			return e.At
		}
	}
	t.Fatalf("no decision-log row of %s scaling out after %s: %+v", group, after, events)
	return time.Time{}
}

// instanceTimes reads the instance's history: when it recorded itself running after since, how
// long the last ResumeInstance before that took, and how long after it the guest was found up.
func instanceTimes(t *testing.T, tc client.Client, name string, since time.Time) (running time.Time, resume, guestUp time.Duration) {
	t.Helper()
	scheduled := map[int64]time.Time{}
	resumes := map[int64]bool{}
	var resumeDone time.Time
	it := tc.GetWorkflowHistory(context.Background(), spec.InstanceWorkflowID(name), "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", name, err)
		}
		switch ev.GetEventType() {
		case enums.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			a := ev.GetActivityTaskScheduledEventAttributes()
			scheduled[ev.GetEventId()] = ev.GetEventTime().AsTime()
			switch a.GetActivityType().GetName() {
			case "ResumeInstance":
				resumes[ev.GetEventId()] = true
			case "RecordInstance":
				var rec activities.InstanceRecord
				if err := converter.GetDefaultDataConverter().FromPayloads(a.GetInput(), &rec); err != nil {
					t.Fatal(err)
				}
				if rec.State == spec.StateRunning && rec.At.After(since) && running.IsZero() {
					running = rec.At
					if !resumeDone.IsZero() {
						guestUp = rec.At.Sub(resumeDone)
					}
				}
			}
		case enums.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			id := ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()
			if at := scheduled[id]; resumes[id] && at.After(since) && running.IsZero() {
				resume = ev.GetEventTime().AsTime().Sub(at)
				resumeDone = ev.GetEventTime().AsTime()
			}
		}
	}
	if running.IsZero() {
		t.Fatalf("%s recorded no running state after %s", name, since)
	}
	return running, resume, guestUp
}
