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
