package workflows

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
)

// poolHost stands in for the host activities of warm pools: it records parks and resumes and
// fails the resumes a test asks it to.
type poolHost struct {
	mu      sync.Mutex
	parked  map[string][]spec.PoolState
	resumed map[string]int
	// failResume fails every resume of these instances.
	failResume map[string]bool
	// heartbeats counts AwaitHeartbeat calls.
	heartbeats map[string]int
}

func withPool(env *testsuite.TestWorkflowEnvironment) *poolHost {
	p := &poolHost{parked: map[string][]spec.PoolState{}, resumed: map[string]int{}, failResume: map[string]bool{}, heartbeats: map[string]int{}}
	var a *activities.Activities
	var h *activities.HostActivities
	env.OnActivity(h.ParkInstance, mock.Anything, mock.Anything).Return(
		func(_ context.Context, q activities.ParkInstanceParams) (spec.PoolState, error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.parked[q.Name] = append(p.parked[q.Name], q.State)
			return q.State, nil
		})
	env.OnActivity(h.ResumeInstance, mock.Anything, mock.Anything).Return(
		func(_ context.Context, name string) (libvirt.Resumed, error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.failResume[name] {
				return "", errors.New("restore domain " + name + ": the saved image is corrupt")
			}
			p.resumed[name]++
			how := libvirt.ResumedRestored
			if states := p.parked[name]; len(states) > 0 && states[len(states)-1] == spec.PoolStopped {
				how = libvirt.ResumedBooted
			}
			return how, nil
		})
	env.OnActivity(a.AwaitHeartbeat, mock.Anything, mock.Anything).Return(
		func(_ context.Context, q activities.AwaitHeartbeatParams) (time.Time, error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.heartbeats[q.Name]++
			return q.Since.Add(time.Second), nil
		})
	return p
}

// poolSpec is testSpec with a warm pool, no metrics (the operator sets the size) and room for 6.
func poolSpec(size int, state spec.PoolState) spec.Group {
	gs := testSpec()
	gs.Policy.Min, gs.Policy.Max, gs.Policy.Increment = 1, 6, 3
	gs.WarmPool = spec.WarmPool{Size: size, State: state}
	return gs
}

func statesOf(s spec.GroupStatus) map[string]spec.InstanceState {
	out := map[string]spec.InstanceState{}
	for _, in := range s.Instances {
		out[in.Name] = in.State
	}
	return out
}

func namesIn(s spec.GroupStatus, states ...spec.InstanceState) []string {
	var out []string
	for _, in := range s.Instances {
		if slices.Contains(states, in.State) {
			out = append(out, in.Name)
		}
	}
	slices.Sort(out)
	return out
}

func reasons(f *fakeFleet) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.events {
		out = append(out, e.Reason)
	}
	return strings.Join(out, "\n")
}

// TestScaleOutTakesThePoolFirst: the pool fills after the first launch; a scale-out by 3 takes
// both pool members, launches one cold, and the pool refills behind it. Pool members count
// toward neither the size nor the metrics.
func TestScaleOutTakesThePoolFirst(t *testing.T) {
	f := newFakeFleet()
	env := newEnv(t, f)
	p := withPool(env)
	gs := poolSpec(2, spec.PoolSaved)
	var scaled *outcome[spec.ScaleResult]
	env.RegisterDelayedCallback(func() { scaled = update[spec.ScaleResult](env, spec.UpdateScale, spec.ScaleRequest{Desired: intp(4)}) }, 90*time.Second)
	seen := sizesAt(t, env, minutes(1, 2))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 3*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	if scaled == nil || scaled.err != nil {
		t.Fatalf("scale: %+v", scaled)
	}
	before, after := seen[0], seen[1]
	if before.Current != 1 || strings.Join(namesIn(before, spec.StateWarm), " ") != "web-2 web-3" {
		t.Fatalf("before the scale-out: current %d, %v; want 1 running and web-2, web-3 warm", before.Current, statesOf(before))
	}
	if pl := before.Pool; pl == nil || pl.Ready != 2 || pl.Warming != 0 || pl.Size != 2 || pl.State != spec.PoolSaved {
		t.Errorf("pool status before = %+v", before.Pool)
	}
	if got := strings.Join(namesIn(after, spec.StateRunning), " "); after.Current != 4 || got != "web-1 web-2 web-3 web-4" {
		t.Fatalf("after the scale-out: current %d, running %s; want web-1..4 (web-2 and web-3 from the pool, web-4 cold)", after.Current, got)
	}
	if got := strings.Join(namesIn(after, spec.StateWarm), " "); got != "web-5 web-6" {
		t.Errorf("pool after the scale-out: %s, want refilled with web-5 and web-6", got)
	}
	if after.Pool == nil || after.Pool.Taken != 2 {
		t.Errorf("pool status after = %+v, want 2 taken", after.Pool)
	}
	p.mu.Lock()
	if p.resumed["web-2"] != 1 || p.resumed["web-3"] != 1 || p.resumed["web-4"] != 0 {
		t.Errorf("resumed %v, want web-2 and web-3 once", p.resumed)
	}
	for _, name := range []string{"web-2", "web-3", "web-5", "web-6"} {
		if !slices.Equal(p.parked[name], []spec.PoolState{spec.PoolSaved}) {
			t.Errorf("%s parked %v, want saved once", name, p.parked[name])
		}
	}
	p.mu.Unlock()
	for name, n := range f.created {
		if n != 1 {
			t.Errorf("%s created %d times", name, n)
		}
	}
	if len(f.created) != 6 {
		t.Errorf("created %v, want web-1..6", f.created)
	}
	// The metric reads never counted a pool member.
	if !slices.Contains(f.excluded, "web-5") || !slices.Contains(f.excluded, "web-2") {
		t.Errorf("excluded from metrics: %v; want the pool members", f.excluded)
	}
	r := reasons(f)
	for _, want := range []string{"launched web-2, web-3 into the warm pool", "took web-2, web-3 from the warm pool", "launched web-5, web-6 into the warm pool"} {
		if !strings.Contains(r, want) {
			t.Errorf("decision log lacks %q:\n%s", want, r)
		}
	}
	// Delete takes the pool with it.
	for _, name := range []string{"web-1", "web-2", "web-3", "web-4", "web-5", "web-6"} {
		if f.destroyed[name] != 1 {
			t.Errorf("%s destroyed %d times at delete, want once", name, f.destroyed[name])
		}
	}
}

// TestMaxNodesBoundsLivePlusPool: with 2 of 3 live, the pool of 2 holds 1; when the group
// shrinks, the pool grows to its size.
func TestMaxNodesBoundsLivePlusPool(t *testing.T) {
	f := newFakeFleet()
	env := newEnv(t, f)
	withPool(env)
	gs := poolSpec(2, spec.PoolStopped)
	gs.Policy.Min, gs.Policy.Max = 2, 3
	env.RegisterDelayedCallback(func() {
		update[spec.ScaleResult](env, spec.UpdateScale, spec.ScaleRequest{Min: intp(1), Desired: intp(1)})
	}, 150*time.Second)
	var at []float64
	for m := 0.25; m < 5; m += 0.25 {
		at = append(at, m)
	}
	seen := sizesAt(t, env, minutes(at...))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 5*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	for i, s := range seen {
		if len(s.Instances) > 3 {
			t.Errorf("at %s the group owns %d instances, more than maxNodes 3: %v", minutes(at[i])[0], len(s.Instances), statesOf(s))
		}
	}
	if s := seen[8]; s.Current != 2 || s.Pool == nil || s.Pool.Ready != 1 {
		t.Errorf("at 2m: current %d, pool %+v; want 2 live and 1 in the pool", s.Current, s.Pool)
	}
	if s := seen[len(seen)-1]; s.Current != 1 || s.Pool == nil || s.Pool.Ready != 2 {
		t.Errorf("at the end: current %d, pool %+v; want 1 live and the pool full with 2", s.Current, s.Pool)
	}
}

// TestReuseOnScaleIn: a scale-in returns instances to the pool (up to its size) instead of
// destroying them, and the next scale-out takes them back.
func TestReuseOnScaleIn(t *testing.T) {
	f := newFakeFleet()
	env := newEnv(t, f)
	p := withPool(env)
	gs := poolSpec(2, spec.PoolSaved)
	gs.Policy.Min, gs.Policy.Max = 1, 4
	gs.WarmPool.ReuseOnScaleIn = true
	// Out to 3: both pool members taken; maxNodes leaves room for one new member (web-4).
	env.RegisterDelayedCallback(func() { update[spec.ScaleResult](env, spec.UpdateScale, spec.ScaleRequest{Desired: intp(3)}) }, 90*time.Second)
	// In to 1: the pool has room for one: web-3 goes back to it, web-2 is retired.
	env.RegisterDelayedCallback(func() { update[spec.ScaleResult](env, spec.UpdateScale, spec.ScaleRequest{Desired: intp(1)}) }, 150*time.Second)
	env.RegisterDelayedCallback(func() { update[spec.ScaleResult](env, spec.UpdateScale, spec.ScaleRequest{Desired: intp(2)}) }, 270*time.Second)
	seen := sizesAt(t, env, minutes(2, 4, 5))
	var destroyed map[string]int
	env.RegisterDelayedCallback(func() { f.mu.Lock(); destroyed = maps.Clone(f.destroyed); f.mu.Unlock() }, 4*time.Minute)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 6*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	if got := statesOf(seen[0]); len(got) != 4 || got["web-2"] != spec.StateRunning || got["web-3"] != spec.StateRunning || got["web-4"] != spec.StateWarm {
		t.Fatalf("at 3: %v, want web-1, web-2, web-3 running (two from the pool) and web-4 warm", got)
	}
	got := statesOf(seen[1])
	if len(got) != 3 || got["web-1"] != spec.StateRunning || got["web-3"] != spec.StateWarm || got["web-4"] != spec.StateWarm {
		t.Fatalf("after the scale-in: %v, want web-1 running, web-3 back in the pool beside web-4", got)
	}
	if destroyed["web-3"] != 0 || destroyed["web-2"] != 1 || len(destroyed) != 1 {
		t.Errorf("destroyed %v after the scale-in, want web-2 retired and web-3 kept", destroyed)
	}
	if got := strings.Join(namesIn(seen[2], spec.StateRunning), " "); got != "web-1 web-3" {
		t.Errorf("after the next scale-out: running %s, want web-1 and web-3 (the oldest warm member) again", got)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resumed["web-3"] != 2 || len(p.parked["web-3"]) != 2 {
		t.Errorf("web-3 parked %v and resumed %d times, want twice each", p.parked["web-3"], p.resumed["web-3"])
	}
	if r := reasons(f); !strings.Contains(r, "returned web-3 to the warm pool") || !strings.Contains(r, "took web-3 from the warm pool") {
		t.Errorf("decision log does not tell the return and the take:\n%s", r)
	}
}

// TestAFailedResumeIsReplaced: a member that cannot be restored is destroyed, and its place is
// taken by the next pool member, then refilled.
func TestAFailedResumeIsReplaced(t *testing.T) {
	f := newFakeFleet()
	env := newEnv(t, f)
	p := withPool(env)
	p.failResume["web-2"] = true
	gs := poolSpec(2, spec.PoolSaved)
	env.RegisterDelayedCallback(func() { update[spec.ScaleResult](env, spec.UpdateScale, spec.ScaleRequest{Desired: intp(2)}) }, 90*time.Second)
	seen := sizesAt(t, env, minutes(3))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 4*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	s := seen[0]
	if _, ok := findInstance(s, "web-2"); ok || f.destroyed["web-2"] != 1 {
		t.Fatalf("web-2 failed to resume: still %v, destroyed %d times; want it gone", statesOf(s), f.destroyed["web-2"])
	}
	if s.Current != 2 || len(namesIn(s, spec.StateRunning)) != 2 {
		t.Errorf("after the failed resume: %v; want 2 running", statesOf(s))
	}
	if in, ok := findInstance(s, "web-3"); !ok || in.State != spec.StateRunning || !in.Replacement {
		t.Errorf("web-3 = %+v; want it taken from the pool as web-2's replacement", in)
	}
	if s.Pool == nil || s.Pool.Ready != 2 {
		t.Errorf("pool %+v, want refilled to 2", s.Pool)
	}
}

// TestASpecChangeRefreshesThePool: a new image retires the pool's members of the old
// generation and fills the pool with new ones; a take never gets an old one.
func TestASpecChangeRefreshesThePool(t *testing.T) {
	f := newFakeFleet()
	env := newEnv(t, f)
	withPool(env)
	gs := poolSpec(2, spec.PoolStopped)
	gs.Rollout = spec.Rollout{MaxSurge: 1}
	next := gs
	next.Launch.ImageVolume = "base-v2.qcow2"
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalSpec, next) }, 90*time.Second)
	seen := sizesAt(t, env, minutes(1, 5))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 6*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	if got := strings.Join(namesIn(seen[0], spec.StateWarm), " "); got != "web-2 web-3" {
		t.Fatalf("pool before the change: %s", got)
	}
	for _, name := range []string{"web-2", "web-3"} {
		if _, ok := findInstance(seen[1], name); ok || f.destroyed[name] != 1 {
			t.Errorf("old pool member %s still there or not destroyed once (%d)", name, f.destroyed[name])
		}
	}
	warm := 0
	for _, in := range seen[1].Instances {
		if spec.InPool(in.State) {
			warm++
			if in.Generation != 1 {
				t.Errorf("pool member %s of generation %d after the change", in.Name, in.Generation)
			}
		}
		if in.State == spec.StateRunning && in.Generation != 1 {
			t.Errorf("%s of the old generation still runs after the roll", in.Name)
		}
	}
	if warm != 2 {
		t.Errorf("pool after the change: %v, want 2 new members", statesOf(seen[1]))
	}
}

// TestStoppedMemberWaitsForItsHeartbeat: a stopped member with check-in runs once its guest,
// booted again, sends a heartbeat; its cloud-init does not check in twice.
func TestStoppedMemberWaitsForItsHeartbeat(t *testing.T) {
	f := newFakeFleet()
	env := newEnv(t, f)
	p := withPool(env)
	gs := poolSpec(1, spec.PoolStopped)
	gs.Launch.Health = spec.Health{Checkin: true, BootTimeout: 5 * time.Minute, HeartbeatInterval: time.Minute, HeartbeatTimeout: 10 * time.Minute}
	keepBeating := func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for name := range f.created {
			f.lastSeen[name] = env.Now()
		}
	}
	for s := 20; s < 300; s += 20 {
		env.RegisterDelayedCallback(keepBeating, time.Duration(s)*time.Second)
	}
	// Both first boots check in; the pool member parks then.
	for _, name := range []string{"web-1", "web-2"} {
		env.RegisterDelayedCallback(func() {
			env.SignalWorkflowByID(spec.InstanceWorkflowID(name), spec.SignalCheckin, spec.CheckinSignal{Address: "10.0.2.15"})
		}, 30*time.Second)
	}
	env.RegisterDelayedCallback(func() { update[spec.ScaleResult](env, spec.UpdateScale, spec.ScaleRequest{Desired: intp(2)}) }, 90*time.Second)
	seen := sizesAt(t, env, minutes(1.2, 2.5))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 4*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	if got := statesOf(seen[0]); got["web-1"] != spec.StateRunning || got["web-2"] != spec.StateWarm {
		t.Fatalf("before the scale-out: %v; want web-1 running, web-2 warm after its check-in", got)
	}
	if got := statesOf(seen[1]); got["web-2"] != spec.StateRunning {
		t.Fatalf("after the scale-out: %v; want web-2 running", got)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.heartbeats["web-2"] != 1 {
		t.Errorf("web-2 waited for %d heartbeats after its start, want 1", p.heartbeats["web-2"])
	}
}

// TestPoolMembersSurviveContinueAsNew: the pool's members and the count of takes go over to
// the next run with the rest of the group's state.
func TestPoolMembersSurviveContinueAsNew(t *testing.T) {
	f := newFakeFleet()
	env := newEnv(t, f)
	withPool(env)
	st := NewGroupState(poolSpec(2, spec.PoolSaved))
	st.EvaluationsPerRun = 3
	st.Paused = true
	st.SequenceLoaded = true
	st.NextSeq, st.PoolTaken = 3, 5
	st.Instances = []spec.InstanceRef{
		{Name: "web-1", Seq: 1, Host: "h1", State: spec.StateRunning},
		{Name: "web-2", Seq: 2, Host: "h2", State: spec.StateWarm, Defined: true},
		{Name: "web-3", Seq: 3, Host: "h1", State: spec.StateWarming},
	}
	env.ExecuteWorkflow(GroupWorkflow, st)
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("workflow ended with %v, want continue-as-new", err)
	}
	var next GroupState
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.PoolTaken != 5 || len(next.Instances) != 3 || next.Instances[1].State != spec.StateWarm || !next.Instances[1].Defined || next.Instances[2].State != spec.StateWarming {
		t.Errorf("carried %+v, want the pool members and 5 takes", next)
	}
}

// TestAParkedMemberContinuesAsNew: a member waiting in the pool for a long time continues as
// new, parked as it was, without parking again.
func TestAParkedMemberContinuesAsNew(t *testing.T) {
	f := newFakeFleet()
	f.created["web-2"] = 1
	env := newEnv(t, f)
	p := withPool(env)
	params := InstanceParams{Name: "web-2", Group: "web", Host: "h1", Index: 2, GroupWorkflowID: spec.GroupWorkflowID("web"),
		Launch: testSpec().Launch, Running: true, Pool: spec.PoolSaved, Parked: spec.PoolSaved}
	env.ExecuteWorkflow(InstanceWorkflow, params)
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("workflow ended with %v, want continue-as-new", err)
	}
	var next InstanceParams
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.Pool != spec.PoolSaved || next.Parked != spec.PoolSaved || !next.Running {
		t.Errorf("carried %+v, want a member parked saved", next)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.parked["web-2"]) != 0 {
		t.Errorf("a parked member was parked again: %v", p.parked)
	}
}
