package activities

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/temporalclient"
	"github.com/premiscale/premiscale/internal/testservices"
)

func devTemporal(t *testing.T) client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := temporalclient.Dial(ctx, config.Temporal{Address: testservices.TemporalAddress(t), Namespace: "default"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// StartWorkflows on the real dev server: a start that a retry repeats finds the running
// workflow; a closed one is not started again; the search attributes and summary are set.
func TestStartWorkflowsIsIdempotent(t *testing.T) {
	tc := devTemporal(t)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := &Activities{Temporal: tc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	env.RegisterActivity(a)
	// No worker polls this queue: the workflows wait, started.
	tq := testservices.UniqueName(t, "tq")
	group, host := testservices.UniqueName(t, "g"), testservices.UniqueName(t, "h")
	var starts []WorkflowStart
	for _, n := range []string{"1", "2", "3"} {
		input, _ := json.Marshal(map[string]string{"Name": group + "-" + n})
		starts = append(starts, WorkflowStart{ID: spec.InstanceWorkflowID(group + "-" + n), Group: group, Host: host,
			Summary: "instance " + n, Details: "**details**", Input: input})
	}
	t.Cleanup(func() {
		for _, st := range starts {
			_ = tc.TerminateWorkflow(context.Background(), st.ID, "", "test done")
		}
	})
	p := StartWorkflowsParams{Workflow: "InstanceWorkflow", TaskQueue: tq, Starts: starts}
	run := func() []string {
		t.Helper()
		v, err := env.ExecuteActivity(a.StartWorkflows, p)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		if err := v.Get(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := run(); strings.Join(out, "") != "" {
		t.Fatalf("first start: %q", out)
	}
	desc, err := tc.DescribeWorkflow(context.Background(), starts[1].ID, "")
	if err != nil {
		t.Fatal(err)
	}
	firstRun := desc.WorkflowExecution.RunID
	if sum, _ := desc.GetStaticSummary(); sum != "instance 2" {
		t.Errorf("summary %q, want %q", sum, "instance 2")
	}
	if g, _ := desc.TypedSearchAttributes.GetKeyword(spec.AttrGroup); g != group {
		t.Errorf("%s carries group %q, want %q", starts[1].ID, g, group)
	}
	if h, _ := desc.TypedSearchAttributes.GetKeyword(spec.AttrHost); h != host {
		t.Errorf("%s carries host %q, want %q", starts[1].ID, h, host)
	}

	// A retry finds the running workflows.
	if out := run(); strings.Join(out, "") != "" {
		t.Fatalf("second start: %q", out)
	}
	desc, err = tc.DescribeWorkflow(context.Background(), starts[1].ID, "")
	if err != nil || desc.WorkflowExecution.RunID != firstRun {
		t.Fatalf("after the retry %s runs as %v (%v), want the first run %s", starts[1].ID, desc.WorkflowExecution, err, firstRun)
	}

	// A closed one is not started again, and says so.
	if err := tc.TerminateWorkflow(context.Background(), starts[0].ID, "", "ended"); err != nil {
		t.Fatal(err)
	}
	out := run()
	if !strings.Contains(out[0], "ran already") || out[1] != "" || out[2] != "" {
		t.Errorf("start after the first ended: %q, want it refused and the others found running", out)
	}
}

func TestSignalWorkflowsSaysWhichAreGone(t *testing.T) {
	tc := devTemporal(t)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := &Activities{Temporal: tc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	env.RegisterActivity(a)
	id := "vm/" + testservices.UniqueName(t, "sig")
	if _, err := tc.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: id, TaskQueue: testservices.UniqueName(t, "tq")}, "InstanceWorkflow"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tc.TerminateWorkflow(context.Background(), id, "", "test done") })
	signals := []Signal{{WorkflowID: id, Name: spec.SignalRetire}, {WorkflowID: id + "-gone", Name: spec.SignalLost, Arg: "host down"}}
	v, err := env.ExecuteActivity(a.SignalWorkflows, signals)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0] != "" || !strings.Contains(out[1], "not found") {
		t.Errorf("results %q, want the first delivered and the second not found", out)
	}
	hist := tc.GetWorkflowHistory(context.Background(), id, "", false, 0)
	signalled := false
	for hist.HasNext() {
		ev, err := hist.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == spec.SignalRetire {
			signalled = true
		}
	}
	if !signalled {
		t.Errorf("%s has no %s signal in its history", id, spec.SignalRetire)
	}
}
