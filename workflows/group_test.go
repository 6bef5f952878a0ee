package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/policy"
	"github.com/premiscale/premiscale/internal/spec"
)

// fakeFleet stands in for libvirt, MySQL and InfluxDB in workflow tests: it records what the
// activities were asked to do and serves a CPU value that the test changes over time.
type fakeFleet struct {
	mu        sync.Mutex
	cpu       *float64
	created   map[string]int
	destroyed map[string]int
	events    []activities.ScalingEventRecord
	repeats   map[string]activities.EventRepeats
	// hosts overrides the state of a host (default: up, with room for anything); placed maps
	// the live instances recorded to their host.
	hosts    map[string]spec.Host
	placed   map[string]string
	failNext int
	// noRoomNext refuses that many launches as a full host's worker does.
	noRoomNext int
	crashed    map[string]bool
	// foreign: a domain without PremiScale's metadata has taken the instance's name.
	foreign  map[string]bool
	excluded []string
	lastSeen map[string]time.Time
	// signals are those sent through SignalWorkflows, in signalCalls calls.
	signals     []activities.Signal
	signalCalls int
	// reports are those sent through ReportStatus; with reportsFailLocally set, the local
	// attempts fail (as they do while Temporal is away), counted in localReportFailures.
	reports             []activities.ReportParams
	reportsFailLocally  bool
	localReportFailures int
}

func newFakeFleet() *fakeFleet {
	return &fakeFleet{created: map[string]int{}, destroyed: map[string]int{}, crashed: map[string]bool{}, foreign: map[string]bool{}, lastSeen: map[string]time.Time{},
		repeats: map[string]activities.EventRepeats{}, hosts: map[string]spec.Host{}, placed: map[string]string{}}
}

func (f *fakeFleet) setCPU(v *float64) { f.mu.Lock(); f.cpu = v; f.mu.Unlock() }

func (f *fakeFleet) live() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for name := range f.created {
		if f.destroyed[name] == 0 {
			n++
		}
	}
	return n
}

func ptr(v float64) *float64 { return &v }

// hostStates is what the fleet's hosts look like; f.mu is held.
func (f *fakeFleet) hostStates(names []string) []spec.Host {
	out := make([]spec.Host, len(names))
	for i, n := range names {
		out[i] = spec.Host{Name: n, Up: true, CPUs: 64, MemoryMiB: 1 << 20, Allowance: spec.Allowance{CPUOvercommit: 1, MemoryOvercommit: 1}}
		if h, ok := f.hosts[n]; ok {
			out[i] = h
		}
		// As a worker's probe would find them: every instance recorded on the host holds the
		// test spec's shape.
		for _, host := range f.placed {
			if host == n {
				out[i].UsedCPUs++
				out[i].UsedMemoryMiB += 512
			}
		}
	}
	return out
}

// readChecks serves the test's cpu value; f.mu is held.
func (f *fakeFleet) readChecks(q activities.ReadChecksParams) map[string]policy.Reading {
	f.excluded = append(f.excluded, q.Exclude...)
	res := map[string]policy.Reading{}
	if f.cpu != nil && len(q.Checks) > 0 {
		res["cpu"] = policy.Reading{Value: *f.cpu, HasData: true}
	}
	return res
}

func testSpec() spec.Group {
	return spec.Group{
		Name:     "web",
		Interval: time.Minute,
		Policy: policy.Spec{
			Min: 1, Max: 4, Increment: 1,
			Checks: []policy.Check{{Name: "cpu", Metric: policy.MetricCPU, Window: time.Minute,
				Strategy: policy.StrategySpec{Target: &policy.Target{Value: 50}}}},
		},
		Hosts:  []string{"h1", "h2"},
		Launch: spec.Launch{ImagePool: "default", ImageVolume: "base.qcow2", Domain: spec.Domain{VCPUs: 1, Memory: 512}},
		// Launch.Health zero: instances count as running once started, no health checks.
	}
}

// newEnv is a test environment for a group "web" whose instances run as child workflows: the
// test environment cannot start a workflow that is not its main workflow's child, so the
// group's starts stay those of runs before changeClientStarts (newClientStartsEnv tests the
// starts through the client). Everything else is today's code, signals through
// SignalWorkflows included: they reach the test's workflows.
func newEnv(t *testing.T, f *fakeFleet, options ...func(*testsuite.WorkflowTestSuite)) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	env := newBareEnv(t, f, options...)
	env.OnGetVersion(changeClientStarts, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	var a *activities.Activities
	env.OnActivity(a.SignalWorkflows, mock.Anything, mock.Anything).Return(
		func(_ context.Context, signals []activities.Signal) ([]string, error) {
			f.mu.Lock()
			f.signals = append(f.signals, signals...)
			f.signalCalls++
			f.mu.Unlock()
			// Delivered from the environment's own loop, as the server would.
			for _, sg := range signals {
				env.RegisterDelayedCallback(func() {
					if sg.WorkflowID == spec.GroupWorkflowID("web") {
						env.SignalWorkflow(sg.Name, sg.Arg)
					} else if err := env.SignalWorkflowByID(sg.WorkflowID, sg.Name, sg.Arg); err != nil {
						t.Logf("signal %s to %s: %v", sg.Name, sg.WorkflowID, err)
					}
				}, 0)
			}
			return make([]string, len(signals)), nil
		})
	env.OnActivity(a.ReportStatus, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, r activities.ReportParams) (string, error) {
			f.mu.Lock()
			if f.reportsFailLocally && activity.GetInfo(ctx).IsLocalActivity {
				f.localReportFailures++
				f.mu.Unlock()
				return "", errors.New("temporal: connection refused")
			}
			f.reports = append(f.reports, r)
			f.mu.Unlock()
			env.RegisterDelayedCallback(func() {
				env.SignalWorkflow(spec.SignalInstanceStatuses, []spec.InstanceStatus{r.Status})
			}, 0)
			return "", nil
		})
	return env
}

// newClientStartsEnv is a test environment for a group "web" that starts its instances through
// the client. Its instances are fakes: one started reports running at once, one told to retire
// is destroyed and reports terminated; starts is every StartWorkflows call.
func newClientStartsEnv(t *testing.T, f *fakeFleet, starts *[]activities.StartWorkflowsParams) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	env := newBareEnv(t, f)
	var a *activities.Activities
	report := func(name, state, reason string) {
		env.RegisterDelayedCallback(func() {
			env.SignalWorkflow(spec.SignalInstanceStatus, spec.InstanceStatus{Name: name, State: state, Reason: reason})
		}, 0)
	}
	env.OnActivity(a.StartWorkflows, mock.Anything, mock.Anything).Return(
		func(_ context.Context, p activities.StartWorkflowsParams) ([]string, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			*starts = append(*starts, p)
			out := make([]string, len(p.Starts))
			for i, st := range p.Starts {
				var in InstanceParams
				if err := json.Unmarshal(st.Input, &in); err != nil {
					return nil, err
				}
				if f.failNext > 0 {
					f.failNext--
					out[i] = "workflow " + st.ID + " could not start"
					continue
				}
				f.created[in.Name]++
				f.placed[in.Name] = in.Host
				report(in.Name, spec.StateRunning, "")
			}
			return out, nil
		})
	env.OnActivity(a.SignalWorkflows, mock.Anything, mock.Anything).Return(
		func(_ context.Context, signals []activities.Signal) ([]string, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.signals = append(f.signals, signals...)
			f.signalCalls++
			out := make([]string, len(signals))
			for i, sg := range signals {
				name, _ := strings.CutPrefix(sg.WorkflowID, "vm/")
				switch {
				case f.created[name] == 0 || f.destroyed[name] > 0:
					out[i] = "workflow " + sg.WorkflowID + " not found"
				case sg.Name == spec.SignalRetire:
					f.destroyed[name]++
					delete(f.placed, name)
					report(name, spec.StateTerminated, "retired")
				}
			}
			return out, nil
		})
	return env
}

// newBareEnv is the environment newEnv and newClientStartsEnv share: the fleet's activities.
func newBareEnv(t *testing.T, f *fakeFleet, options ...func(*testsuite.WorkflowTestSuite)) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	for _, o := range options {
		o(&s)
	}
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(GroupWorkflow)
	env.RegisterWorkflow(InstanceWorkflow)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: spec.GroupWorkflowID("web"), TaskQueue: spec.DefaultTaskQueue})
	var a *activities.Activities
	var h *activities.HostActivities
	env.RegisterActivity(a)
	env.RegisterActivity(h)
	env.OnActivity(a.LastInstanceSequence, mock.Anything, mock.Anything).Return(0, nil)
	env.OnActivity(a.RecordGroup, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(a.MarkGroupDeleted, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(a.RecordInstance, mock.Anything, mock.Anything).Return(
		func(_ context.Context, r activities.InstanceRecord) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.placed[r.Name] = r.Host
			if spec.IsEnded(r.State) {
				delete(f.placed, r.Name)
			}
			return nil
		})
	env.OnActivity(a.RecordScalingEvent, mock.Anything, mock.Anything).Return(
		func(_ context.Context, e activities.ScalingEventRecord) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.events = append(f.events, e)
			return nil
		})
	env.OnActivity(a.RecordEventRepeats, mock.Anything, mock.Anything).Return(
		func(_ context.Context, r activities.EventRepeats) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.repeats[r.Key] = r
			return nil
		})
	env.OnActivity(a.HostStates, mock.Anything, mock.Anything).Return(
		func(_ context.Context, names []string) ([]spec.Host, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.hostStates(names), nil
		})
	env.OnActivity(a.ReadChecks, mock.Anything, mock.Anything).Return(
		func(_ context.Context, q activities.ReadChecksParams) (map[string]policy.Reading, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.readChecks(q), nil
		})
	env.OnActivity(a.Observe, mock.Anything, mock.Anything).Return(
		func(_ context.Context, p activities.ObserveParams) (activities.Observation, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return activities.Observation{Readings: f.readChecks(p.Checks), Hosts: f.hostStates(p.Hosts)}, nil
		})
	env.OnActivity(h.CreateInstance, mock.Anything, mock.Anything).Return(
		func(_ context.Context, p activities.CreateInstanceParams) (activities.CreateInstanceResult, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.failNext > 0 {
				f.failNext--
				return activities.CreateInstanceResult{}, errors.New("define domain: no space left")
			}
			if f.noRoomNext > 0 {
				f.noRoomNext--
				return activities.CreateInstanceResult{}, temporal.NewNonRetryableApplicationError(
					"launch instance "+p.Name+": no capacity: h1 needs 1 vCPUs (0 free)", activities.ErrTypeNoCapacity, nil)
			}
			f.created[p.Name]++
			return activities.CreateInstanceResult{DomainCreated: true}, nil
		})
	env.OnActivity(h.DomainHealth, mock.Anything, mock.Anything).Return(
		func(_ context.Context, name string) (activities.DomainHealth, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			live := f.created[name] > 0 && f.destroyed[name] == 0
			state := "running"
			if f.crashed[name] {
				state = "crashed"
			}
			if f.foreign[name] {
				return activities.DomainHealth{Found: true, Foreign: true, State: "running"}, nil
			}
			return activities.DomainHealth{Found: live, State: state}, nil
		})
	env.OnActivity(a.InstanceLastSeen, mock.Anything, mock.Anything).Return(
		func(_ context.Context, name string) (time.Time, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.lastSeen[name], nil
		})
	env.OnActivity(h.DestroyInstance, mock.Anything, mock.Anything).Return(
		func(_ context.Context, p activities.DestroyInstanceParams) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.destroyed[p.Name]++
			return nil
		})
	return env
}

func queryStatus(t *testing.T, env *testsuite.TestWorkflowEnvironment) spec.GroupStatus {
	t.Helper()
	v, err := env.QueryWorkflow(spec.QueryStatus)
	if err != nil {
		t.Fatalf("query status: %v", err)
	}
	var s spec.GroupStatus
	if err := v.Get(&s); err != nil {
		t.Fatalf("decode status: %v", err)
	}
	return s
}

// at runs check at a workflow time offset and records what it saw for later assertions.
func sizesAt(t *testing.T, env *testsuite.TestWorkflowEnvironment, offsets []time.Duration) []spec.GroupStatus {
	out := make([]spec.GroupStatus, len(offsets))
	for i, d := range offsets {
		env.RegisterDelayedCallback(func() { out[i] = queryStatus(t, env) }, d)
	}
	return out
}

func minutes(ms ...float64) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m * float64(time.Minute))
	}
	return out
}

func TestGroupScalesOutThenInThenDeletes(t *testing.T) {
	f := newFakeFleet()
	f.setCPU(ptr(100))
	env := newEnv(t, f)
	seen := sizesAt(t, env, minutes(0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 9.5))
	env.RegisterDelayedCallback(func() { f.setCPU(ptr(5)) }, 4*time.Minute+45*time.Second)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 10*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(testSpec()))

	if !env.IsWorkflowCompleted() {
		t.Fatal("group workflow did not complete after delete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	want := []int{1, 2, 3, 4, 4, 3, 2, 1, 1}
	for i, s := range seen {
		if s.Current != want[i] {
			t.Errorf("size at check %d = %d, want %d (decision: %+v)", i, s.Current, want[i], s.LastDecision)
		}
	}
	if len(f.created) != 4 {
		t.Errorf("created %v, want 4 instances", f.created)
	}
	for _, name := range []string{"web-1", "web-2", "web-3", "web-4"} {
		if f.created[name] != 1 || f.destroyed[name] != 1 {
			t.Errorf("instance %s created %d times and destroyed %d times, want once each", name, f.created[name], f.destroyed[name])
		}
	}
	// One event per action (1 below-minimum launch, 3 scale-outs, 3 scale-ins, 1 delete),
	// plus the holds that wanted to grow past the maximum.
	if n := countActions(f.events); n != 8 {
		t.Errorf("recorded %d scaling actions, want 8: %+v", n, f.events)
	}
	keys := map[string]bool{}
	for _, e := range f.events {
		if keys[e.Key] {
			t.Errorf("duplicate event key %s", e.Key)
		}
		keys[e.Key] = true
	}
	if seen[0].Instances[0].Host != "h1" || seen[1].Instances[1].Host != "h2" {
		t.Errorf("instances not spread over hosts: %+v", seen[1].Instances)
	}
}

func TestGroupRespectsCooldown(t *testing.T) {
	f := newFakeFleet()
	f.setCPU(ptr(100))
	env := newEnv(t, f)
	gs := testSpec()
	gs.Policy.ScaleOutCooldown = 3 * time.Minute
	seen := sizesAt(t, env, minutes(0.5, 1.5, 2.5, 3.5, 5.5, 6.5))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 7*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	want := []int{1, 1, 1, 2, 2, 3}
	for i, s := range seen {
		if s.Current != want[i] {
			t.Errorf("size at check %d = %d, want %d (decision: %+v)", i, s.Current, want[i], s.LastDecision)
		}
	}
	if r := seen[1].LastDecision.Reason; !strings.Contains(r, "cooldown") {
		t.Errorf("decision during cooldown says %q, want it to mention the cooldown", r)
	}
}

func TestGroupHoldsWithoutMetrics(t *testing.T) {
	f := newFakeFleet()
	env := newEnv(t, f)
	gs := testSpec()
	gs.Policy.Min = 2
	seen := sizesAt(t, env, minutes(0.5, 1.5, 4.5))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 5*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	if seen[0].Current != 1 || seen[1].Current != 2 || seen[2].Current != 2 {
		t.Errorf("sizes %d, %d, %d; want 1, 2, 2 (reach min, then hold)", seen[0].Current, seen[1].Current, seen[2].Current)
	}
	last := seen[2].LastDecision
	if last.Action != string(policy.Hold) || !strings.Contains(last.Reason, "cpu no reading → hold 2") {
		t.Errorf("decision without metrics = %+v, want a hold that says there were no cpu metrics", last)
	}
	// Two launches to reach min, the hold on missing data once (not once per evaluation), the
	// delete; the repeats of the hold are counted on its row.
	if len(f.events) != 4 || !strings.Contains(f.events[2].Reason, "cpu no reading → hold 2") {
		t.Fatalf("recorded %d events, want 4 with the no-data hold once: %+v", len(f.events), f.events)
	}
	if r := f.repeats[f.events[2].Key]; r.Repeats < 2 {
		t.Errorf("repeats of the no-data hold = %+v, want the later identical evaluations counted", r)
	}
}

func TestFailedLaunchIsCleanedUpAndReplaced(t *testing.T) {
	f := newFakeFleet()
	f.failNext = 5 // every attempt of the first launch fails
	env := newEnv(t, f)
	seen := sizesAt(t, env, minutes(2.5))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 3*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(testSpec()))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	if f.destroyed["web-1"] == 0 {
		t.Error("failed launch of web-1 was not cleaned up")
	}
	if seen[0].Current != 1 || seen[0].Instances[0].Name != "web-2" {
		t.Errorf("after a failed launch the group has %+v, want web-2 as its one instance", seen[0].Instances)
	}
}

func TestGroupContinuesAsNewCarryingState(t *testing.T) {
	f := newFakeFleet()
	f.setCPU(ptr(100)) // the group wants to grow, but it is paused: nothing but timers
	env := newEnv(t, f)
	st := NewGroupState(testSpec())
	st.EvaluationsPerRun = 3
	st.SequenceLoaded = true
	st.NextSeq = 7
	st.Evaluations = 40
	st.Paused = true
	lastOut := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	st.Policy = policy.State{
		LastScaleOut:    lastOut,
		Recommendations: []policy.TimedSize{{At: lastOut, Size: 2}},
		Changes:         []policy.TimedDelta{{At: lastOut, Delta: 1}},
	}
	st.Launches = spec.LaunchHealth{ConsecutiveFailures: 1, LastError: "define domain: no space left"}
	st.Instances = []spec.InstanceRef{
		{Name: "web-6", Seq: 6, Host: "h1", State: spec.StateRunning, Protected: true},
		{Name: "web-7", Seq: 7, Host: "h2", State: spec.StateLaunching, Address: "10.0.0.7"},
	}
	env.ExecuteWorkflow(GroupWorkflow, st)

	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("workflow ended with %v, want continue-as-new", err)
	}
	var next GroupState
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatalf("decode continue-as-new input: %v", err)
	}
	if next.Evaluations != 43 || next.NextSeq != 7 || !next.Paused {
		t.Errorf("carried %d evaluations, next seq %d, paused %v; want 43, 7, true", next.Evaluations, next.NextSeq, next.Paused)
	}
	if !reflect.DeepEqual(next.Policy, st.Policy) || next.Launches != st.Launches {
		t.Errorf("carried policy state %+v and launches %+v, want %+v and %+v", next.Policy, next.Launches, st.Policy, st.Launches)
	}
	if !reflect.DeepEqual(next.Instances, st.Instances) {
		t.Errorf("carried instances %+v, want %+v", next.Instances, st.Instances)
	}
	if next.LastDecision == nil || next.LastDecision.Outcome != spec.OutcomePaused || !next.SequenceLoaded || next.EvaluationsPerRun != 3 {
		t.Errorf("carried state lost the last decision or flags: %+v", next)
	}
	if !reflect.DeepEqual(next.Spec, st.Spec) {
		t.Errorf("carried spec changed: %+v", next.Spec)
	}
}

func countActions(events []activities.ScalingEventRecord) int {
	n := 0
	for _, e := range events {
		if e.Action != string(policy.Hold) && e.Outcome != spec.OutcomeDryRun && e.Outcome != spec.OutcomePaused {
			n++
		}
	}
	return n
}

// Each upsert is a history event: an idle group writes its search attributes and memo when
// they change, not at every evaluation.
func TestIdleEvaluationsUpsertOnlyWhatChanged(t *testing.T) {
	f := newFakeFleet()
	f.setCPU(ptr(50)) // on target: the group holds at its minimum
	var starts []activities.StartWorkflowsParams
	env := newClientStartsEnv(t, f, &starts)
	var mu sync.Mutex
	var upserts [][]string
	memos := 0
	env.OnUpsertTypedSearchAttributes(mock.Anything).Return(nil).Run(func(args mock.Arguments) {
		mu.Lock()
		defer mu.Unlock()
		var names []string
		for k := range args.Get(0).(temporal.SearchAttributes).GetUntypedValues() {
			names = append(names, k.GetName())
		}
		slices.Sort(names)
		upserts = append(upserts, names)
	})
	env.OnUpsertMemo(mock.Anything).Return(nil).Run(func(mock.Arguments) { mu.Lock(); memos++; mu.Unlock() })
	seen := sizesAt(t, env, minutes(12.5))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 13*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(testSpec()))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	if seen[0].Evaluations < 12 || seen[0].Current != 1 {
		t.Fatalf("after 12.5 minutes: %d evaluations, %d instances; want at least 12 at size 1", seen[0].Evaluations, seen[0].Current)
	}
	// The launch to the minimum sets every attribute; the first hold changes the last action;
	// the delete at the end changes the sizes and the action.
	want := [][]string{
		{"PremiscaleCurrent", "PremiscaleDesired", "PremiscaleGroup", "PremiscaleLastAction"},
		{"PremiscaleLastAction"},
	}
	if len(upserts) < 2 || !reflect.DeepEqual(upserts[:2], want) || len(upserts) > 4 {
		t.Errorf("search attribute upserts %v over %d evaluations; want %v, then only the delete's", upserts, seen[0].Evaluations, want)
	}
	if memos > 4 {
		t.Errorf("%d memo upserts over %d evaluations; want one per new decision (the launch, the hold, the delete)", memos, seen[0].Evaluations)
	}
}

// A lean group starts an evaluation's instances in one StartWorkflows activity, with their
// search attributes and summaries, and tells them to retire in one SignalWorkflows call.
func TestInstancesStartAndRetireTogether(t *testing.T) {
	f := newFakeFleet()
	var starts []activities.StartWorkflowsParams
	env := newClientStartsEnv(t, f, &starts)
	gs := testSpec()
	gs.Policy.Min, gs.Policy.Increment = 4, 4
	seen := sizesAt(t, env, minutes(0.5))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 2*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	if seen[0].Current != 4 || !reflect.DeepEqual(running(seen[0]), []string{"web-1", "web-2", "web-3", "web-4"}) {
		t.Errorf("after the first evaluation: %+v, want web-1 to web-4 running", seen[0].Instances)
	}
	if len(starts) != 1 || len(starts[0].Starts) != 4 {
		t.Fatalf("StartWorkflows calls %+v, want one with 4 starts", starts)
	}
	p := starts[0]
	if p.Workflow != "InstanceWorkflow" || p.TaskQueue != spec.DefaultTaskQueue {
		t.Errorf("started %s on %s, want InstanceWorkflow on the group's task queue %s", p.Workflow, p.TaskQueue, spec.DefaultTaskQueue)
	}
	for i, st := range p.Starts {
		name := fmt.Sprintf("web-%d", i+1)
		if st.ID != spec.InstanceWorkflowID(name) || st.Group != "web" || st.Host == "" ||
			!strings.HasPrefix(st.Summary, "instance "+name+" of group web on host "+st.Host) || !strings.Contains(st.Details, "512 MiB") {
			t.Errorf("start %d: %+v, want %s with its group, host, summary and details", i, st, name)
		}
	}
	if f.signalCalls != 1 || len(f.signals) != 4 {
		t.Errorf("retirements sent in %d calls (%+v), want the 4 in one", f.signalCalls, f.signals)
	}
	for name, n := range f.destroyed {
		if n != 1 {
			t.Errorf("%s retired %d times", name, n)
		}
	}
}

// A start that fails is a failed launch, as a child that could not start was: counted toward
// the launch back-off, and the next evaluation launches again.
func TestFailedStartIsReplaced(t *testing.T) {
	f := newFakeFleet()
	f.failNext = 1
	var starts []activities.StartWorkflowsParams
	env := newClientStartsEnv(t, f, &starts)
	seen := sizesAt(t, env, minutes(0.5, 1.5))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 2*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(testSpec()))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	if seen[0].Current != 0 || seen[0].Launches.ConsecutiveFailures != 1 || !strings.Contains(seen[0].Launches.LastError, "could not start") {
		t.Errorf("after the failed start: %d instances, launches %+v; want none, one failure saying why", seen[0].Current, seen[0].Launches)
	}
	if !reflect.DeepEqual(running(seen[1]), []string{"web-2"}) {
		t.Errorf("a minute later: %+v, want the replacement web-2 running", seen[1].Instances)
	}
}

func running(s spec.GroupStatus) []string {
	var out []string
	for _, in := range s.Instances {
		if in.State == spec.StateRunning {
			out = append(out, in.Name)
		}
	}
	return out
}

// The group's launch limits hold for starts through the client: an evaluation starts no more
// than its increment, nor more than maxConcurrentLaunches in flight.
func TestClientStartsKeepTheLaunchLimits(t *testing.T) {
	for _, tc := range []struct {
		name              string
		increment, flight int
		want              []int
	}{
		{name: "increment 2", increment: 2, want: []int{2, 2}},
		{name: "maxConcurrentLaunches 3", increment: 4, flight: 3, want: []int{3, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeFleet()
			var starts []activities.StartWorkflowsParams
			env := newClientStartsEnv(t, f, &starts)
			gs := testSpec()
			gs.Policy.Min, gs.Policy.Max, gs.Policy.Increment = 4, 4, tc.increment
			gs.MaxConcurrentLaunches = tc.flight
			env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 2*time.Minute+30*time.Second)
			env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
			if err := env.GetWorkflowError(); err != nil {
				t.Fatalf("group workflow failed: %v", err)
			}
			var got []int
			for _, p := range starts {
				got = append(got, len(p.Starts))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("starts per StartWorkflows call %v, want %v", got, tc.want)
			}
		})
	}
}
