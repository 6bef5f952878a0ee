package workflows

import (
	"strings"
	"testing"
	"time"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/spec"
	"go.temporal.io/sdk/testsuite"
)

// outcome collects what an update returned; the test environment delivers it after the
// workflow processed the update, so tests read it once the workflow has finished.
type outcome[T any] struct {
	result T
	err    error
	done   bool
}

func update[T any](env *testsuite.TestWorkflowEnvironment, name string, arg any) *outcome[T] {
	o := &outcome[T]{}
	env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
		OnReject: func(err error) { o.err, o.done = err, true },
		OnAccept: func() {},
		OnComplete: func(v any, err error) {
			o.done = true
			if err != nil {
				o.err = err
				return
			}
			if r, ok := v.(T); ok {
				o.result = r
			}
		},
	}, arg)
	return o
}

func intp(v int) *int { return &v }

func TestOperatorScale(t *testing.T) {
	f := newFakeFleet()
	env := newEnv(t, f)
	var rejected, outOfMax, accepted, widened *outcome[spec.ScaleResult]
	env.RegisterDelayedCallback(func() {
		rejected = update[spec.ScaleResult](env, spec.UpdateScale, spec.ScaleRequest{Desired: intp(9)})
		outOfMax = update[spec.ScaleResult](env, spec.UpdateScale, spec.ScaleRequest{Min: intp(5)})
		accepted = update[spec.ScaleResult](env, spec.UpdateScale, spec.ScaleRequest{Desired: intp(3)})
	}, 10*time.Second)
	seen := sizesAt(t, env, minutes(0.5, 1.5))
	env.RegisterDelayedCallback(func() {
		widened = update[spec.ScaleResult](env, spec.UpdateScale, spec.ScaleRequest{Desired: intp(6), Max: intp(6)})
	}, 2*time.Minute)
	after := sizesAt(t, env, minutes(2.5))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 3*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(testSpec()))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	if rejected.err == nil || !strings.Contains(rejected.err.Error(), "desired size 9 is outside [1, 4]") {
		t.Errorf("desired 9 with max 4: got %+v, want a rejection naming the range", rejected)
	}
	if outOfMax.err == nil || !strings.Contains(outOfMax.err.Error(), "min (5) is greater than max (4)") {
		t.Errorf("min 5 with max 4: got %+v", outOfMax)
	}
	if res := accepted.result; accepted.err != nil || res.Desired == nil || *res.Desired != 3 || res.Min != 1 || res.Max != 4 {
		t.Fatalf("desired 3: %+v", accepted)
	}
	// Applied at once, not at the next interval; metrics (none here) then hold it.
	if seen[0].Current != 3 || seen[1].Current != 3 {
		t.Errorf("sizes after desired 3: %d then %d, want 3 and 3", seen[0].Current, seen[1].Current)
	}
	if widened.err != nil || after[0].Current != 6 || after[0].Max != 6 {
		t.Errorf("desired 6 with max 6: %+v, status %d/%d", widened, after[0].Current, after[0].Max)
	}
}

func TestPauseEvaluatesButDoesNotAct(t *testing.T) {
	f := newFakeFleet()
	f.setCPU(ptr(100))
	env := newEnv(t, f)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalPause, nil) }, 30*time.Second)
	paused := sizesAt(t, env, minutes(2.5))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalResume, nil) }, 3*time.Minute)
	resumed := sizesAt(t, env, minutes(3.2))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 4*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(testSpec()))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	p := paused[0]
	if p.Current != 1 || !p.Paused || p.LastDecision.Outcome != spec.OutcomePaused || !strings.Contains(p.LastDecision.Reason, "would scale-out 1 → 2") {
		t.Errorf("while paused: size %d, paused %v, decision %+v; want 1, paused, a logged would-scale-out", p.Current, p.Paused, p.LastDecision)
	}
	if resumed[0].Current != 2 || resumed[0].Paused {
		t.Errorf("resume should act at once: size %d, paused %v", resumed[0].Current, resumed[0].Paused)
	}
	var pausedRows []activities.ScalingEventRecord
	for _, e := range f.events {
		if e.Outcome == spec.OutcomePaused {
			pausedRows = append(pausedRows, e)
		}
	}
	// The paused evaluations say the same thing: one row, the others counted on it.
	if len(pausedRows) != 1 || f.repeats[pausedRows[0].Key].Repeats < 1 {
		t.Errorf("the paused evaluations were not logged once with repeats: %+v, repeats %+v", f.events, f.repeats)
	}
}

func TestDryRunDecidesAndRecordsButNeverActs(t *testing.T) {
	f := newFakeFleet()
	f.setCPU(ptr(100))
	env := newEnv(t, f)
	gs := testSpec()
	gs.DryRun = true
	seen := sizesAt(t, env, minutes(2.5))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 3*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	if len(f.created) != 0 {
		t.Errorf("a dry-run group created %v", f.created)
	}
	if d := seen[0].LastDecision; !seen[0].DryRun || d.Outcome != spec.OutcomeDryRun || !strings.Contains(d.Reason, "would scale-out 0 → 1") {
		t.Errorf("dry-run decision %+v", d)
	}
	if len(f.events) < 1 || f.repeats[f.events[0].Key].Repeats < 1 {
		t.Errorf("dry-run decisions were not recorded (a row and its repeats): %+v, repeats %+v", f.events, f.repeats)
	}
	for _, e := range f.events {
		if e.Outcome != spec.OutcomeDryRun && e.Outcome != spec.OutcomeDeleting {
			t.Errorf("event with outcome %q in a dry-run group", e.Outcome)
		}
	}
}

func TestScaleInOrderAndProtection(t *testing.T) {
	tests := []struct {
		policy        spec.TerminationPolicy
		protect, want string
	}{
		{spec.TerminateNewestFirst, "", "web-1"},
		{spec.TerminateOldestFirst, "", "web-3"},
		{spec.TerminateNewestFirst, "web-3", "web-3"},
		{spec.TerminateOldestFirst, "web-1", "web-1"},
	}
	for _, tt := range tests {
		t.Run(string(tt.policy)+"/protect="+tt.protect, func(t *testing.T) {
			f := newFakeFleet()
			env := newEnv(t, f)
			gs := testSpec()
			gs.Policy.Min, gs.Policy.Increment = 3, 3
			gs.TerminationPolicy = tt.policy
			var protected, unknown *outcome[spec.InstanceRef]
			if tt.protect != "" {
				env.RegisterDelayedCallback(func() {
					protected = update[spec.InstanceRef](env, spec.UpdateProtect, spec.ProtectRequest{Instance: tt.protect, Protected: true})
					unknown = update[spec.InstanceRef](env, spec.UpdateProtect, spec.ProtectRequest{Instance: "web-99", Protected: true})
				}, 30*time.Second)
			}
			env.RegisterDelayedCallback(func() {
				update[spec.ScaleResult](env, spec.UpdateScale, spec.ScaleRequest{Min: intp(1), Desired: intp(1)})
			}, 45*time.Second)
			seen := sizesAt(t, env, minutes(1.5))
			env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 2*time.Minute)
			env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
			if err := env.GetWorkflowError(); err != nil {
				t.Fatalf("group workflow failed: %v", err)
			}
			if tt.protect != "" {
				if protected.err != nil || !protected.result.Protected {
					t.Fatalf("protect %s: %+v", tt.protect, protected)
				}
				if unknown.err == nil || !strings.Contains(unknown.err.Error(), "web-99 is not a live instance") {
					t.Errorf("protecting an unknown instance: %+v", unknown)
				}
			}
			if len(seen[0].Instances) != 1 || seen[0].Instances[0].Name != tt.want {
				t.Errorf("after scaling 3 → 1 the group has %+v, want only %s", seen[0].Instances, tt.want)
			}
			// Deleting retires protected instances too.
			if f.live() != 0 {
				t.Errorf("%d instances left after delete", f.live())
			}
		})
	}
}

func TestLaunchLimits(t *testing.T) {
	t.Run("maxConcurrentLaunches", func(t *testing.T) {
		f := newFakeFleet()
		env := newEnv(t, f)
		gs := testSpec()
		gs.Policy.Min, gs.Policy.Increment = 3, 3
		gs.MaxConcurrentLaunches = 2
		gs.Launch.Health = spec.Health{Checkin: true, BootTimeout: time.Hour}
		seen := sizesAt(t, env, minutes(0.5, 1.5))
		env.RegisterDelayedCallback(func() {
			env.SignalWorkflowByID(spec.InstanceWorkflowID("web-1"), spec.SignalCheckin, spec.CheckinSignal{})
		}, 100*time.Second)
		after := sizesAt(t, env, minutes(2.5))
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 3*time.Minute)
		env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
		if err := env.GetWorkflowError(); err != nil {
			t.Fatalf("group workflow failed: %v", err)
		}
		if seen[0].Current != 2 || seen[1].Current != 2 || !strings.Contains(seen[1].LastDecision.Reason, "launches already in flight") {
			t.Errorf("with 2 booting and a limit of 2: sizes %d, %d, decision %q", seen[0].Current, seen[1].Current, seen[1].LastDecision.Reason)
		}
		if after[0].Current != 3 {
			t.Errorf("once one checked in the third should launch: size %d", after[0].Current)
		}
	})
	t.Run("back-off after failed launches", func(t *testing.T) {
		f := newFakeFleet()
		f.failNext = 1000
		env := newEnv(t, f)
		gs := testSpec()
		gs.LaunchBackoff = spec.Backoff{After: 2, Initial: 10 * time.Minute, Max: time.Hour}
		seen := sizesAt(t, env, minutes(5))
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 6*time.Minute)
		env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
		if err := env.GetWorkflowError(); err != nil {
			t.Fatalf("group workflow failed: %v", err)
		}
		s := seen[0]
		if s.Launches.ConsecutiveFailures != 2 || !strings.Contains(s.Launches.LastError, "no space left") {
			t.Errorf("launch health %+v, want 2 failures with the last error", s.Launches)
		}
		if !strings.Contains(s.LastDecision.Reason, "launch failing: ") {
			t.Errorf("decision while backing off: %q", s.LastDecision.Reason)
		}
		if used := 1000 - f.failNext; used != 10 {
			t.Errorf("%d create attempts, want 10 (2 launches × 5 attempts) before backing off", used)
		}
	})
}
