package workflows

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/premiscale/premiscale/internal/spec"
)

func (f *fakeFleet) crash(names ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range names {
		f.crashed[n] = true
	}
}

// TestFailuresTogetherAreAllReplaced: four instances fail at once in a group that holds its
// size (no metrics) and launches one at a time. Every replacement is owed until launched, so
// the group gets back to six; before, the refused ones were forgotten and it stayed at three.
func TestFailuresTogetherAreAllReplaced(t *testing.T) {
	f := newFakeFleet()
	env := newEnv(t, f)
	gs := testSpec()
	gs.Policy.Max = 8
	gs.MaxConcurrentLaunches = 1
	env.RegisterDelayedCallback(func() {
		update[spec.ScaleResult](env, spec.UpdateScale, spec.ScaleRequest{Desired: intp(6)})
	}, 10*time.Second)
	grown := sizesAt(t, env, minutes(7.5))
	env.RegisterDelayedCallback(func() { f.crash("web-1", "web-2", "web-3", "web-4") }, 8*time.Minute)
	after := sizesAt(t, env, minutes(12))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 13*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	if grown[0].Current != 6 {
		t.Fatalf("the group did not reach 6 before the failures: %+v", grown[0])
	}
	s := after[0]
	if s.Current != 6 || s.ReplacementsOwed != 0 || len(f.created) != 10 {
		t.Errorf("after 4 failures at once: size %d, owed %d, %d created; want 6, 0, 10 (decision %+v)", s.Current, s.ReplacementsOwed, len(f.created), s.LastDecision)
	}
	for _, name := range []string{"web-1", "web-2", "web-3", "web-4"} {
		if _, ok := findInstance(s, name); ok {
			t.Errorf("failed instance %s is still in the group", name)
		}
	}
	replacements := 0
	for _, in := range s.Instances {
		if in.Replacement {
			replacements++
		}
	}
	if replacements != 4 {
		t.Errorf("%d instances marked as replacements, want 4: %+v", replacements, s.Instances)
	}
}

// TestOwedReplacementsWaitForResume: a paused group does not act, replacing included; what
// it owes shows in its status and reason, and is launched when it resumes.
func TestOwedReplacementsWaitForResume(t *testing.T) {
	f := newFakeFleet()
	env := newEnv(t, f)
	env.RegisterDelayedCallback(func() {
		update[spec.ScaleResult](env, spec.UpdateScale, spec.ScaleRequest{Desired: intp(3)})
	}, 10*time.Second)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalPause, nil) }, 2*time.Minute)
	env.RegisterDelayedCallback(func() { f.crash("web-1", "web-2") }, 150*time.Second)
	paused := sizesAt(t, env, minutes(4.5))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalResume, nil) }, 5*time.Minute)
	resumed := sizesAt(t, env, minutes(5.5))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 6*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(testSpec()))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	p := paused[0]
	if p.Current != 1 || p.ReplacementsOwed != 2 || !strings.Contains(p.LastDecision.Reason, "2 replacements owed: the group is paused") {
		t.Errorf("paused with 2 failed: size %d, owed %d, reason %q; want 1, 2 and the reason saying so", p.Current, p.ReplacementsOwed, p.LastDecision.Reason)
	}
	// Owed replacements count toward the size: the paused group would hold 3, not shrink or grow.
	if p.LastDecision.From != 3 || p.LastDecision.To != 3 {
		t.Errorf("paused decision %d → %d, want 3 → 3 (1 live + 2 owed)", p.LastDecision.From, p.LastDecision.To)
	}
	if r := resumed[0]; r.Current != 3 || r.ReplacementsOwed != 0 {
		t.Errorf("after resume: size %d, owed %d; want 3, 0", r.Current, r.ReplacementsOwed)
	}
}

// TestOwedReplacementsOutliveContinueAsNew: what the group owes is part of its state.
func TestOwedReplacementsOutliveContinueAsNew(t *testing.T) {
	f := newFakeFleet()
	env := newEnv(t, f)
	st := NewGroupState(testSpec())
	st.EvaluationsPerRun = 2
	st.SequenceLoaded = true
	st.Paused = true
	st.ReplacementsOwed = 2
	st.Notes = []string{"desired size 5 is above the new max 3: clamped to 3"}
	st.Overrides.Max = &BoundOverride{Value: 3, Config: 4}
	env.ExecuteWorkflow(GroupWorkflow, st)
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("workflow ended with %v, want continue-as-new", err)
	}
	var next GroupState
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.ReplacementsOwed != 2 || next.Overrides.Max == nil || next.Overrides.Max.Value != 3 {
		t.Errorf("carried owed %d and max override %+v; want 2 and 3", next.ReplacementsOwed, next.Overrides.Max)
	}
	if len(next.Notes) != 0 {
		t.Errorf("notes %v were not taken by an evaluation", next.Notes)
	}
	// The recorded JSON name of the count stays the one older histories have.
	payload, err := converter.GetDefaultDataConverter().ToPayload(next)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(payload.Data), `"PendingReplacements":2`) {
		t.Errorf("state JSON lacks PendingReplacements: %s", payload.Data)
	}
}

// TestBackOffIsLoggedOnce: a group backing off after failed launches writes a row when it
// starts backing off, not one per evaluation.
func TestBackOffIsLoggedOnce(t *testing.T) {
	f := newFakeFleet()
	f.failNext = 1000
	env := newEnv(t, f)
	gs := testSpec()
	gs.Policy.Min = 2
	gs.LaunchBackoff = spec.Backoff{After: 2, Initial: 20 * time.Minute, Max: time.Hour}
	seen := sizesAt(t, env, minutes(19))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 19*time.Minute+30*time.Second)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	if !strings.Contains(seen[0].LastDecision.Reason, "launch failing: ") || seen[0].LastDecision.Repeats < 10 {
		t.Fatalf("decision while backing off: %+v; want launch failing, repeated", seen[0].LastDecision)
	}
	var rows []string
	for _, e := range f.events {
		if strings.Contains(e.Reason, "launch failing") {
			rows = append(rows, fmt.Sprintf("%s: %s", e.At.Format(time.TimeOnly), e.Reason))
		}
	}
	if len(rows) != 1 {
		t.Errorf("%d decision-log rows about the back-off over 18 evaluations, want 1:\n%s", len(rows), strings.Join(rows, "\n"))
	}
}
