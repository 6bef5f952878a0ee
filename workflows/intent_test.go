package workflows

import (
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/spec"
)

// slowLaunchSpec launches one instance at a time and keeps it booting (nothing checks in),
// so an operator's goal stays pending.
func slowLaunchSpec() spec.Group {
	gs := testSpec()
	gs.Policy.Max = 6
	gs.MaxConcurrentLaunches = 1
	gs.Launch.Health = spec.Health{Checkin: true, BootTimeout: 24 * time.Hour}
	return gs
}

func eventWith(events []activities.ScalingEventRecord, text string) (activities.ScalingEventRecord, bool) {
	for _, e := range events {
		if strings.Contains(e.Reason, text) {
			return e, true
		}
	}
	return activities.ScalingEventRecord{}, false
}

// TestPendingGoalFollowsTheBounds: a desired size the new bounds do not allow is clamped to
// the nearest bound, or dropped when that bound is the group's size already; the answer and
// the decision log say which, and the policy is consulted again.
func TestPendingGoalFollowsTheBounds(t *testing.T) {
	f := newFakeFleet()
	env := newEnv(t, f)
	var clamp, drop *outcome[spec.ScaleResult]
	env.RegisterDelayedCallback(func() {
		update[spec.ScaleResult](env, spec.UpdateScale, spec.ScaleRequest{Desired: intp(5)})
	}, 10*time.Second)
	pending := sizesAt(t, env, minutes(0.4))
	env.RegisterDelayedCallback(func() {
		clamp = update[spec.ScaleResult](env, spec.UpdateScale, spec.ScaleRequest{Max: intp(3)})
	}, 30*time.Second)
	clamped := sizesAt(t, env, minutes(0.75))
	env.RegisterDelayedCallback(func() {
		drop = update[spec.ScaleResult](env, spec.UpdateScale, spec.ScaleRequest{Max: intp(1)})
	}, 50*time.Second)
	dropped := sizesAt(t, env, minutes(1.5))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 2*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(slowLaunchSpec()))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	if g := pending[0].Goal; g == nil || g.Size != 5 || pending[0].Current != 1 || !g.Expires.Equal(g.SetAt.Add(15*time.Minute)) {
		t.Fatalf("goal 5 with one launch at a time: status %+v, goal %+v; want pending, expiring 15 min after it was set", pending[0], g)
	}
	if clamp.err != nil || clamp.result.Desired == nil || *clamp.result.Desired != 3 || clamp.result.Max != 3 || clamp.result.Sources.Max != spec.SourceScale ||
		len(clamp.result.Notes) != 1 || clamp.result.Notes[0] != "desired size 5 is above the new max 3: clamped to 3" {
		t.Errorf("max 3 under goal 5: %+v", clamp)
	}
	if g := clamped[0].Goal; g == nil || g.Size != 3 {
		t.Errorf("goal after max 3: %+v, want 3", g)
	}
	if e, ok := eventWith(f.events, "clamped to 3"); !ok || e.Winner != "operator" {
		t.Errorf("no decision-log row with the clamp by the operator's goal: %+v", f.events)
	}
	if drop.err != nil || drop.result.Desired != nil || len(drop.result.Notes) != 1 ||
		drop.result.Notes[0] != "desired size 3 is above the new max 1, the group's size already: goal dropped" {
		t.Errorf("max 1 under goal 3: %+v", drop)
	}
	d := dropped[0]
	if d.Goal != nil || d.Max != 1 || d.Current != 1 || d.LastDecision.Winner == "operator" {
		t.Errorf("after the goal was dropped: %+v, decision %+v; want no goal, max 1, the policy deciding", d, d.LastDecision)
	}
	if _, ok := eventWith(f.events, "goal dropped"); !ok {
		t.Errorf("the dropped goal is not in the decision log: %+v", f.events)
	}
}

// TestGoalExpires: a desired size not reached within its time is dropped with a reason.
func TestGoalExpires(t *testing.T) {
	f := newFakeFleet()
	env := newEnv(t, f)
	gs := slowLaunchSpec()
	env.RegisterDelayedCallback(func() {
		update[spec.ScaleResult](env, spec.UpdateScale, spec.ScaleRequest{Desired: intp(5)})
	}, 10*time.Second)
	before := sizesAt(t, env, minutes(15))
	after := sizesAt(t, env, minutes(16.5))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 17*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	if before[0].Goal == nil || before[0].Goal.Size != 5 {
		t.Errorf("goal before it expired: %+v", before[0].Goal)
	}
	if after[0].Goal != nil || after[0].LastDecision.Winner == "operator" {
		t.Errorf("goal after 16 min: %+v, decision %+v; want dropped", after[0].Goal, after[0].LastDecision)
	}
	if _, ok := eventWith(f.events, "desired size 5 not reached within 15m0s (the group has 1): goal dropped"); !ok {
		t.Errorf("the expiry is not in the decision log: %+v", f.events)
	}
}

// step is one thing an operator or a worker does to a running group, and what must follow.
type step struct {
	at    time.Duration
	do    func(env *testsuite.TestWorkflowEnvironment) func() error
	check func(t *testing.T, s spec.GroupStatus)
}

func runSteps(t *testing.T, gs spec.Group, steps []step) *fakeFleet {
	t.Helper()
	f := newFakeFleet()
	env := newEnv(t, f)
	results := make([]func() error, len(steps))
	seen := make([]spec.GroupStatus, len(steps))
	var last time.Duration
	for i, s := range steps {
		env.RegisterDelayedCallback(func() { results[i] = s.do(env) }, s.at)
		env.RegisterDelayedCallback(func() { seen[i] = queryStatus(t, env) }, s.at+5*time.Second)
		last = s.at
	}
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, last+time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	for i, s := range steps {
		if results[i] != nil {
			if err := results[i](); err != nil {
				t.Errorf("step %d at %s: %v", i, s.at, err)
			}
		}
		s.check(t, seen[i])
	}
	return f
}

func scaleStep(r spec.ScaleRequest, wantErr string) func(env *testsuite.TestWorkflowEnvironment) func() error {
	return func(env *testsuite.TestWorkflowEnvironment) func() error {
		o := update[spec.ScaleResult](env, spec.UpdateScale, r)
		return func() error { return wantError(o.err, wantErr) }
	}
}

func specStep(r spec.SpecRequest, wantErr string) func(env *testsuite.TestWorkflowEnvironment) func() error {
	return func(env *testsuite.TestWorkflowEnvironment) func() error {
		o := update[spec.SpecResult](env, spec.UpdateSpec, r)
		return func() error { return wantError(o.err, wantErr) }
	}
}

// configStep is a worker (re)starting with the config's spec.
func configStep(gs spec.Group) func(env *testsuite.TestWorkflowEnvironment) func() error {
	return func(env *testsuite.TestWorkflowEnvironment) func() error {
		env.SignalWorkflow(spec.SignalSpec, gs)
		return nil
	}
}

func wantError(err error, want string) error {
	switch {
	case want == "" && err != nil:
		return err
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		return &unexpected{err, want}
	}
	return nil
}

type unexpected struct {
	got  error
	want string
}

func (u *unexpected) Error() string {
	return "got error " + errString(u.got) + ", want one with " + u.want
}

func errString(err error) string {
	if err == nil {
		return "none"
	}
	return err.Error()
}

func bounds(min, max int, minFrom, maxFrom, specFrom string) func(t *testing.T, s spec.GroupStatus) {
	return func(t *testing.T, s spec.GroupStatus) {
		t.Helper()
		want := spec.Sources{Min: minFrom, Max: maxFrom, Spec: specFrom}
		if s.Min != min || s.Max != max || s.Sources != want {
			t.Errorf("at %s: min %d max %d from %+v; want %d %d from %+v", s.LastDecision.At.Format(time.TimeOnly), s.Min, s.Max, s.Sources, min, max, want)
		}
	}
}

// TestOverridesSurviveTheConfigUntilItChanges: the config's spec sent again (a worker's
// restart) keeps the operator's bounds and spec; a config whose own value changed replaces
// them; --reset and group update with the config's spec clear them.
func TestOverridesSurviveTheConfigUntilItChanges(t *testing.T) {
	config := testSpec() // min 1, max 4
	config5 := testSpec()
	config5.Policy.Max = 5
	own := config5
	own.Policy.Max, own.Policy.Increment = 7, 2
	config3 := config5
	config3.Policy.Max = 3
	const C, S, U = spec.SourceConfig, spec.SourceScale, spec.SourceUpdate
	f := runSteps(t, config, []step{
		{at: 10 * time.Second, do: scaleStep(spec.ScaleRequest{Max: intp(6)}, ""), check: bounds(1, 6, C, S, C)},
		{at: 20 * time.Second, do: configStep(config), check: bounds(1, 6, C, S, C)},
		{at: 40 * time.Second, do: configStep(config5), check: func(t *testing.T, s spec.GroupStatus) {
			bounds(1, 5, C, C, C)(t, s)
			if s.Config != (spec.Bounds{Min: 1, Max: 5}) {
				t.Errorf("config bounds %+v, want 1 and 5", s.Config)
			}
		}},
		{at: 70 * time.Second, do: scaleStep(spec.ScaleRequest{Min: intp(2), Desired: intp(3)}, ""), check: bounds(2, 5, S, C, C)},
		{at: 80 * time.Second, do: scaleStep(spec.ScaleRequest{Reset: true, Max: intp(2)}, "give it alone"), check: bounds(2, 5, S, C, C)},
		{at: 90 * time.Second, do: scaleStep(spec.ScaleRequest{Reset: true}, ""), check: bounds(1, 5, C, C, C)},
		// A bound set to the config's own value is no override.
		{at: 100 * time.Second, do: scaleStep(spec.ScaleRequest{Max: intp(5)}, ""), check: bounds(1, 5, C, C, C)},
		{at: 110 * time.Second, do: specStep(spec.SpecRequest{Spec: &own}, ""), check: func(t *testing.T, s spec.GroupStatus) {
			bounds(1, 7, U, U, U)(t, s)
			if s.Config != (spec.Bounds{Min: 1, Max: 5}) {
				t.Errorf("config bounds %+v under an operator's spec, want the config's 1 and 5", s.Config)
			}
		}},
		{at: 120 * time.Second, do: configStep(config5), check: bounds(1, 7, U, U, U)},
		{at: 130 * time.Second, do: scaleStep(spec.ScaleRequest{Min: intp(3)}, ""), check: bounds(3, 7, S, U, U)},
		// group update states the bounds too: group scale's min goes.
		{at: 140 * time.Second, do: specStep(spec.SpecRequest{Spec: &config5}, ""), check: bounds(1, 5, C, C, C)},
		{at: 150 * time.Second, do: specStep(spec.SpecRequest{Spec: &own}, ""), check: bounds(1, 7, U, U, U)},
		{at: 160 * time.Second, do: specStep(spec.SpecRequest{Reset: true}, ""), check: bounds(1, 5, C, C, C)},
		{at: 170 * time.Second, do: specStep(spec.SpecRequest{Spec: &own}, ""), check: bounds(1, 7, U, U, U)},
		{at: 180 * time.Second, do: scaleStep(spec.ScaleRequest{Max: intp(6)}, ""), check: bounds(1, 6, U, S, U)},
		{at: 190 * time.Second, do: configStep(config3), check: bounds(1, 3, C, C, C)},
		{at: 200 * time.Second, do: specStep(spec.SpecRequest{Spec: &spec.Group{Name: "db", Interval: time.Minute}}, `not "web"`), check: bounds(1, 3, C, C, C)},
	})
	for _, want := range []string{
		"the config's maxNodes changed (4 → 5): it replaces the operator's max 6",
		"min and max back to 1 and 5, from the config",
		"the config's maxNodes changed (5 → 3): it replaces the operator's max 6",
		"the config's spec changed: it replaces the operator's spec from group update at ",
	} {
		if _, ok := eventWith(f.events, want); !ok {
			t.Errorf("decision log lacks %q", want)
		}
	}
}
