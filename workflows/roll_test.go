package workflows

import (
	"strings"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/spec"
)

// TestRollingReplacementOnAnImageChange: a new image replaces every instance, at most maxSurge
// above the group's size and never fewer running than its size (maxUnavailable 0), whether
// maxNodes leaves room above the size or not (a fixed-size group).
func TestRollingReplacementOnAnImageChange(t *testing.T) {
	for _, tt := range []struct {
		name     string
		maxNodes int
	}{{"room below maxNodes", 6}, {"at maxNodes", 3}} {
		t.Run(tt.name, func(t *testing.T) { testRollingReplacement(t, tt.maxNodes) })
	}
}

func testRollingReplacement(t *testing.T, maxNodes int) {
	f := newFakeFleet()
	f.setCPU(ptr(50))
	env := newEnv(t, f)
	gs := testSpec()
	gs.Policy.Min, gs.Policy.Max, gs.Policy.Increment = 3, maxNodes, 3
	gs.Rollout = spec.Rollout{MaxSurge: 2}
	next := gs
	next.Launch.ImageVolume = "base-v2.qcow2"
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalSpec, next) }, 90*time.Second)
	var at []float64
	for m := 2.0; m <= 10; m += 0.25 {
		at = append(at, m)
	}
	seen := sizesAt(t, env, minutes(at...))
	end := sizesAt(t, env, minutes(10.5))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 11*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	for _, s := range seen {
		live, running := 0, 0
		for _, in := range s.Instances {
			if spec.IsLive(in.State) {
				live++
			}
			if in.State == spec.StateRunning {
				running++
			}
		}
		if live > 5 {
			t.Errorf("%d live instances during the roll, more than size 3 + maxSurge 2: %+v", live, s.Instances)
		}
		if running < 3 {
			t.Errorf("%d running during the roll, fewer than the size with maxUnavailable 0: %+v", running, s.Instances)
		}
	}
	// Each step of the roll is in the decision log.
	steps := 0
	for _, e := range f.events {
		if strings.Contains(e.Reason, "rolling replacement") {
			steps++
		}
	}
	if steps < 3 {
		t.Errorf("%d decision-log rows tell the roll, want its start, its steps and its end: %+v", steps, f.events)
	}
	last := end[0]
	if last.Current != 3 || last.Roll == nil || last.Roll.Active || last.Roll.Replaced != 3 || last.Roll.Total != 3 {
		t.Fatalf("after the roll: %d instances, roll %+v; want 3, a finished roll of 3", last.Current, last.Roll)
	}
	for _, in := range last.Instances {
		if in.Generation != 1 || in.Seq <= 3 {
			t.Errorf("%s (generation %d) survived the roll", in.Name, in.Generation)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, name := range []string{"web-1", "web-2", "web-3"} {
		if f.destroyed[name] != 1 {
			t.Errorf("old instance %s destroyed %d times, want once", name, f.destroyed[name])
		}
	}
}

// TestARollStopsWhenANewInstanceFails keeps the old instances when a new one does not come up.
func TestARollStopsWhenANewInstanceFails(t *testing.T) {
	f := newFakeFleet()
	f.setCPU(ptr(50))
	env := newEnv(t, f)
	gs := testSpec()
	gs.Policy.Min, gs.Policy.Max, gs.Policy.Increment = 2, 4, 2
	gs.Rollout = spec.Rollout{MaxSurge: 1}
	var rolled *outcome[spec.RollStatus]
	env.RegisterDelayedCallback(func() {
		f.mu.Lock()
		f.failNext = 5 // every attempt of the first new instance's launch
		f.mu.Unlock()
		rolled = update[spec.RollStatus](env, spec.UpdateRoll, spec.RollRequest{})
	}, 90*time.Second)
	seen := sizesAt(t, env, minutes(6))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 7*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	if rolled == nil || rolled.err != nil || !rolled.done {
		t.Fatalf("group roll: %+v", rolled)
	}
	s := seen[0]
	if s.Roll == nil || s.Roll.Active || !strings.Contains(s.Roll.Stopped, "the roll stopped and the old instances are kept") {
		t.Fatalf("roll = %+v; want stopped by the failed new instance", s.Roll)
	}
	names := []string{}
	for _, in := range s.Instances {
		names = append(names, in.Name)
	}
	if strings.Join(names, " ") != "web-1 web-2" {
		t.Errorf("instances after the stopped roll: %v; want the old web-1 and web-2", names)
	}
}
