package workflows

import (
	"strings"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/spec"
)

// TestLaunchesGoWhereThereIsRoom: instances go only to up hosts with room; when none has room
// the group says what is missing where, launches nothing, and grows once room appears.
func TestLaunchesGoWhereThereIsRoom(t *testing.T) {
	f := newFakeFleet()
	f.setCPU(ptr(50))
	// h1 has room for one 1-vCPU/512-MiB instance (something else holds its other CPU), h2 is down.
	f.hosts["h1"] = spec.Host{Name: "h1", Up: true, CPUs: 2, MemoryMiB: 1024, Allowance: spec.Allowance{CPUOvercommit: 1, MemoryOvercommit: 1}, UsedCPUs: 1}
	f.hosts["h2"] = spec.Host{Name: "h2", Down: "no proof of life for 3m0s"}
	env := newEnv(t, f)
	gs := testSpec()
	gs.Policy.Min, gs.Policy.Max, gs.Policy.Increment = 3, 4, 3
	seen := sizesAt(t, env, minutes(0.5, 2.5))
	env.RegisterDelayedCallback(func() {
		f.mu.Lock()
		f.hosts["h2"] = spec.Host{Name: "h2", Up: true, CPUs: 8, MemoryMiB: 8192, Allowance: spec.Allowance{CPUOvercommit: 1, MemoryOvercommit: 1}}
		f.mu.Unlock()
	}, 90*time.Second)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 3*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	first := seen[0]
	if first.Current != 1 || first.Instances[0].Host != "h1" {
		t.Fatalf("before room appeared: %+v; want one instance, on h1", first.Instances)
	}
	want := "no capacity: h1 needs 1 vCPUs (0 free); h2 is down (no proof of life for 3m0s)"
	if r := first.LastDecision.Reason; !strings.Contains(r, "launched 1 of 3: ") || !strings.Contains(r, want) {
		t.Errorf("decision %q; want it to say %q", r, want)
	}
	f.mu.Lock()
	created := len(f.created)
	f.mu.Unlock()
	if created != 3 {
		t.Errorf("created %d instances in all, want 3 (one while full, two once h2 was up)", created)
	}
	if seen[1].Current != 3 {
		t.Errorf("after h2 came up: %d instances, want 3", seen[1].Current)
	}
	for _, in := range seen[1].Instances[1:] {
		if in.Host != "h2" {
			t.Errorf("%s went to %s, want h2 (the only host with room)", in.Name, in.Host)
		}
	}
	// While nothing fits, the refusal is one decision-log row, repeated, not one per evaluation.
	n := 0
	for _, e := range f.events {
		if strings.Contains(e.Reason, "launched 0 of 2: no capacity") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d decision-log rows say no capacity, want 1: %+v", n, f.events)
	}
}

// TestInstancesOfADeadHostAreLostAndReplaced: a host down longer than hostGracePeriod loses its
// instances; they stop counting (the group stays within maxNodes with their replacements), and
// each is removed from its host when the host answers again.
func TestInstancesOfADeadHostAreLostAndReplaced(t *testing.T) {
	f := newFakeFleet()
	f.setCPU(ptr(50))
	env := newEnv(t, f)
	gs := testSpec()
	gs.Hosts = []string{"h1", "h2", "h3"}
	gs.Policy.Min, gs.Policy.Max, gs.Policy.Increment = 3, 3, 3
	gs.HostGracePeriod = 5 * time.Minute
	env.RegisterDelayedCallback(func() {
		f.mu.Lock()
		f.hosts["h2"] = spec.Host{Name: "h2", Down: "no proof of life for 6m0s", DownFor: 6 * time.Minute}
		f.mu.Unlock()
	}, 90*time.Second)
	env.RegisterDelayedCallback(func() {
		f.mu.Lock()
		delete(f.hosts, "h2")
		f.mu.Unlock()
	}, 6*time.Minute)
	seen := sizesAt(t, env, minutes(1, 3.5, 8))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 9*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	if in, ok := findInstance(seen[0], "web-2"); !ok || in.Host != "h2" || seen[0].Current != 3 {
		t.Fatalf("before the outage: %+v; want 3 instances, web-2 on h2", seen[0].Instances)
	}
	during := seen[1]
	lost, ok := findInstance(during, "web-2")
	if !ok || lost.State != spec.StateLost || !strings.Contains(lost.Reason, "host h2 down for 6m0s (hostGracePeriod 5m0s)") {
		t.Errorf("web-2 during the outage: %+v; want lost, with its reason", lost)
	}
	if during.Current != 3 {
		t.Errorf("during the outage the group has %d live instances, want 3 (web-2 replaced)", during.Current)
	}
	for _, in := range during.Instances {
		if in.State != spec.StateLost && in.Host == "h2" {
			t.Errorf("%s was placed on the down host h2", in.Name)
		}
	}
	if in, ok := findInstance(seen[2], "web-2"); ok {
		t.Errorf("web-2 is still there after h2 came back: %+v", in)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.destroyed["web-2"] == 0 {
		t.Error("the lost instance's VM was not removed once its host answered again")
	}
}

// TestALaunchRefusedForRoomIsPlacedAgain: a host's worker that finds no room refuses the launch;
// that is no failed launch (no back-off), and the group launches again.
func TestALaunchRefusedForRoomIsPlacedAgain(t *testing.T) {
	f := newFakeFleet()
	f.setCPU(ptr(50))
	f.noRoomNext = 3
	env := newEnv(t, f)
	gs := testSpec()
	gs.Policy.Min, gs.Policy.Max = 1, 1
	gs.LaunchBackoff = spec.Backoff{After: 2, Initial: time.Hour, Max: time.Hour}
	seen := sizesAt(t, env, minutes(5))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 6*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	if s := seen[0]; s.Current != 1 || s.Launches.ConsecutiveFailures != 0 || !s.Launches.BlockedUntil.IsZero() {
		t.Errorf("after 3 refusals for room: %d instances, launches %+v; want 1 and no back-off", s.Current, s.Launches)
	}
}
