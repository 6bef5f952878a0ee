package worker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/workflows"
)

// recordDirEnv names a folder to save the replayed histories in, to refresh the recorded
// histories that workflows' replay test runs without any server:
//
//	PREMISCALE_RECORD_HISTORIES=$PWD/workflows/testdata/histories go test ./worker/
const recordDirEnv = "PREMISCALE_RECORD_HISTORIES"

// replay fetches a finished workflow's history from the server and replays it against the
// current workflow code: a non-deterministic change fails here, on a real history.
func replay(t *testing.T, tc client.Client, workflowID, saveAs string) {
	t.Helper()
	replayHistory(t, fetchHistory(t, tc, workflowID, ""), workflowID, saveAs)
}

// fetchHistory reads one run of a workflow ("" for the latest).
func fetchHistory(t *testing.T, tc client.Client, workflowID, runID string) *historypb.History {
	t.Helper()
	hist := &historypb.History{}
	it := tc.GetWorkflowHistory(context.Background(), workflowID, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("read history of %s: %v", workflowID, err)
		}
		hist.Events = append(hist.Events, ev)
	}
	return hist
}

func replayHistory(t *testing.T, hist *historypb.History, workflowID, saveAs string) {
	t.Helper()
	r := sdkworker.NewWorkflowReplayer()
	r.RegisterWorkflow(workflows.GroupWorkflow)
	r.RegisterWorkflow(workflows.InstanceWorkflow)
	if err := r.ReplayWorkflowHistory(tlog.NewStructuredLogger(quietLogger()), hist); err != nil {
		t.Errorf("replay of %s (%d events) failed: %v", workflowID, len(hist.Events), err)
	}
	if dir := os.Getenv(recordDirEnv); dir != "" && saveAs != "" {
		b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(hist)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, saveAs), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGroupLifecycleHistoriesReplay takes a group through scale-out, pause, resume, scale-in,
// several continue-as-new and delete on the real dev server, then replays every run.
func TestGroupLifecycleHistoriesReplay(t *testing.T) {
	f := newFixture(t, "{minNodes: 1, maxNodes: 3, increment: 2, cooldown: 0, scaleIn: {stabilizationWindow: 0}, resourceTarget: {cpu: 50}}")
	ctx := context.Background()
	a := f.runWorker(Options{})
	defer a.stop(t)
	gs, err := f.cfg.Controller.GroupSpec(f.group, f.cfg.Controller.Autoscale.Groups[f.group])
	if err != nil {
		t.Fatal(err)
	}
	// Short runs, so the group continues as new several times during the test.
	st := workflows.NewGroupState(gs)
	st.EvaluationsPerRun = 2
	id := spec.GroupWorkflowID(f.group)
	opts := client.StartWorkflowOptions{ID: id, TaskQueue: f.cfg.Controller.Temporal.TaskQueue}
	first, err := a.Temporal().ExecuteWorkflow(ctx, opts, workflows.GroupWorkflow, st)
	if err != nil {
		t.Fatalf("start group workflow: %v", err)
	}
	ctl := a.Groups()
	f.waitFor(ctl, "the minimum of 1", time.Minute, running(1))
	load := f.writeLoad(ctl, 90)
	defer load.close()
	f.waitFor(ctl, "growth to 3", 2*time.Minute, running(3))
	if err := ctl.Pause(ctx, f.group); err != nil {
		t.Fatal(err)
	}
	load.set(5)
	f.waitFor(ctl, "a paused evaluation that wants to shrink", time.Minute, func(s groupctl.Status) bool {
		return s.Paused && s.LastDecision != nil && s.LastDecision.Outcome == spec.OutcomePaused && s.Current == 3
	})
	if err := ctl.Resume(ctx, f.group); err != nil {
		t.Fatal(err)
	}
	f.waitFor(ctl, "shrinking to 1 after resume", 2*time.Minute, running(1))
	load.close()
	f.deleteGroup(ctl)

	// Follow the chain of runs from the first, each ending in continue-as-new but the last.
	var paused, resumed, retired bool
	run := first.GetRunID()
	for n := 1; run != ""; n++ {
		hist := fetchHistory(t, a.Temporal(), id, run)
		replayHistory(t, hist, id, fmt.Sprintf("group-lifecycle-run%02d.json", n))
		run = ""
		for _, ev := range hist.GetEvents() {
			switch ev.GetEventType() {
			case enums.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
				name := ev.GetWorkflowExecutionSignaledEventAttributes().GetSignalName()
				paused = paused || name == spec.SignalPause
				resumed = resumed || name == spec.SignalResume
			case enums.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
				retired = retired || ev.GetSignalExternalWorkflowExecutionInitiatedEventAttributes().GetSignalName() == spec.SignalRetire
			case enums.EVENT_TYPE_MARKER_RECORDED:
				// A group with client starts signals its retirements from a local activity.
				retired = retired || localActivity(t, ev) == "SignalWorkflows"
			case enums.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
				run = ev.GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
			}
		}
		if run != "" && n > 200 {
			t.Fatalf("more than 200 runs of %s", id)
		}
		if run == "" && n < 2 {
			t.Errorf("%s never continued as new", id)
		}
	}
	if !paused || !resumed || !retired {
		t.Errorf("the replayed runs lack a pause (%v), a resume (%v) or a retirement (%v)", paused, resumed, retired)
	}
}

// localActivity is the activity type of a local activity's marker, "" for another event.
func localActivity(t *testing.T, ev *historypb.HistoryEvent) string {
	t.Helper()
	m := ev.GetMarkerRecordedEventAttributes()
	if m.GetMarkerName() != "LocalActivity" {
		return ""
	}
	var data struct{ ActivityType string }
	if err := converter.GetDefaultDataConverter().FromPayloads(m.GetDetails()["data"], &data); err != nil {
		t.Fatalf("decode a local activity's marker: %v", err)
	}
	return data.ActivityType
}
