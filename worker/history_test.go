package worker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/premiscale/premiscale/activities"

	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/spec"
)

// TestHistoryReadsWell runs a group on the real services and reads its histories: an idle
// evaluation writes only its timer, its workflow task and its observation; the launches of one
// evaluation are one StartWorkflows activity, and retirements and reports are signals through
// the client, not commands; instance workflows carry their group and host as search
// attributes, and groups and instances a summary for the web UI.
func TestHistoryReadsWell(t *testing.T) {
	f := newFixture(t, "{minNodes: 0, maxNodes: 5, increment: 5, maxConcurrentLaunches: 0, cooldown: 0, scaleIn: {stabilizationWindow: 0}, resourceTarget: {cpu: 50}}")
	a := f.startWorker()
	defer a.stop(t)
	ctl := a.Groups()
	tc := a.Temporal()
	groupID := spec.GroupWorkflowID(f.group)
	ctx := context.Background()

	// Idle: no instance, no data, the same hold every evaluation.
	f.waitFor(ctl, "five evaluations", time.Minute, func(s groupctl.Status) bool { return s.Evaluations >= 5 })
	evs := fetchHistory(t, tc, groupID, "").GetEvents()
	evals := evaluations(evs)
	if len(evals) < 4 {
		t.Fatalf("%d evaluations in the group's history, want at least 4", len(evals))
	}
	// The first evaluations record the group, the versions and the first decision; the later
	// ones repeat it.
	for _, e := range evals[2:] {
		want := []enums.EventType{
			enums.EVENT_TYPE_TIMER_FIRED, enums.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, enums.EVENT_TYPE_WORKFLOW_TASK_STARTED,
			enums.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, enums.EVENT_TYPE_MARKER_RECORDED, enums.EVENT_TYPE_TIMER_STARTED,
		}
		if got := eventTypes(e); !slices.Equal(got, want) {
			t.Errorf("an idle evaluation wrote %v, want %v", got, want)
		}
	}

	// A scale-out of 5 starts its 5 instances in one StartWorkflows activity.
	desired := 5
	if _, err := ctl.Scale(ctx, f.group, spec.ScaleRequest{Desired: &desired}); err != nil {
		t.Fatal(err)
	}
	f.waitFor(ctl, "5 running instances", 2*time.Minute, running(5))
	evs = fetchHistory(t, tc, groupID, "").GetEvents()
	if n := count(evs, enums.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED); n != 0 {
		t.Errorf("%d child workflow starts in the group's history, want none", n)
	}
	if starts := activityInputs(t, evs, "StartWorkflows"); len(starts) != 1 || len(starts[0].Starts) != 5 {
		t.Errorf("StartWorkflows activities: %d, want one starting all 5", len(starts))
	}

	// Each instance carries its group and host, so one query lists them.
	query := fmt.Sprintf("%s = '%s' AND %s = '%s'", spec.AttrGroup.GetName(), f.group, spec.AttrHost.GetName(), f.host)
	var listed []string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			t.Fatalf("list %q: %v", query, err)
		}
		listed = listed[:0]
		for _, e := range resp.GetExecutions() {
			listed = append(listed, e.GetExecution().GetWorkflowId())
		}
		if len(listed) == 5 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	slices.Sort(listed)
	var want []string
	for i := 1; i <= 5; i++ {
		want = append(want, spec.InstanceWorkflowID(fmt.Sprintf("%s-%d", f.group, i)))
	}
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Errorf("%q lists %v, want %v", query, listed, want)
	}

	// Summaries for the web UI.
	checkSummary(t, tc, groupID, "autoscaling group "+f.group, "evaluated every 2s")
	checkSummary(t, tc, spec.InstanceWorkflowID(f.group+"-3"), fmt.Sprintf("instance %s-3 of group %s on host %s", f.group, f.group, f.host), "shutdown grace 1m0s")

	// A scale-in of 5 signals its 5 retirements through the client, not as commands.
	desired = 0
	if _, err := ctl.Scale(ctx, f.group, spec.ScaleRequest{Desired: &desired}); err != nil {
		t.Fatal(err)
	}
	f.waitFor(ctl, "no instance", 2*time.Minute, func(s groupctl.Status) bool { return len(s.Instances) == 0 })
	evs = fetchHistory(t, tc, groupID, "").GetEvents()
	if n := count(evs, enums.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED); n != 0 {
		t.Errorf("%d external signal commands in the group's history, want none", n)
	}
	for i := 1; i <= 5; i++ {
		id := spec.InstanceWorkflowID(fmt.Sprintf("%s-%d", f.group, i))
		ievs := fetchHistory(t, tc, id, "").GetEvents()
		if n := count(ievs, enums.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED); n != 0 {
			t.Errorf("%s reported to its group with %d external signal commands, want none", id, n)
		}
		if last := ievs[len(ievs)-1].GetEventType(); last != enums.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED {
			t.Errorf("%s ended with %s, want completed", id, last)
		}
	}
	f.deleteGroup(ctl)
}

func count(evs []*historypb.HistoryEvent, typ enums.EventType) int {
	n := 0
	for _, ev := range evs {
		if ev.GetEventType() == typ {
			n++
		}
	}
	return n
}

// activityInputs decodes the input of every activity of the given type in a history.
func activityInputs(t *testing.T, evs []*historypb.HistoryEvent, activity string) []activities.StartWorkflowsParams {
	t.Helper()
	var out []activities.StartWorkflowsParams
	for _, ev := range evs {
		a := ev.GetActivityTaskScheduledEventAttributes()
		if a == nil || a.GetActivityType().GetName() != activity {
			continue
		}
		var p activities.StartWorkflowsParams
		if err := converter.GetDefaultDataConverter().FromPayloads(a.GetInput(), &p); err != nil {
			t.Fatalf("decode %s input: %v", activity, err)
		}
		out = append(out, p)
	}
	return out
}

// evaluations splits a group's history at its interval timers: each part runs from one timer
// firing to the next timer's start.
func evaluations(evs []*historypb.HistoryEvent) [][]*historypb.HistoryEvent {
	var out [][]*historypb.HistoryEvent
	var cur []*historypb.HistoryEvent
	for _, ev := range evs {
		if ev.GetEventType() == enums.EVENT_TYPE_TIMER_FIRED {
			cur = nil
		}
		cur = append(cur, ev)
		if ev.GetEventType() == enums.EVENT_TYPE_TIMER_STARTED && cur[0].GetEventType() == enums.EVENT_TYPE_TIMER_FIRED {
			out = append(out, cur)
		}
	}
	return out
}

func eventTypes(evs []*historypb.HistoryEvent) []enums.EventType {
	out := make([]enums.EventType, len(evs))
	for i, ev := range evs {
		out[i] = ev.GetEventType()
	}
	return out
}

func checkSummary(t *testing.T, tc client.Client, id, summary, details string) {
	t.Helper()
	desc, err := tc.DescribeWorkflow(context.Background(), id, "")
	if err != nil {
		t.Fatalf("describe %s: %v", id, err)
	}
	s, err := desc.GetStaticSummary()
	if err != nil {
		t.Fatal(err)
	}
	d, err := desc.GetStaticDetails()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, summary) || !strings.Contains(d, details) {
		t.Errorf("%s shows summary %q and details %q; want a summary starting %q and details that say %q", id, s, d, summary, details)
	}
}
