package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/premiscale/premiscale/internal/spec"
)

// Starting instance workflows and signalling workflows through the client rather than as
// workflow commands. A group's child starts and its instances' signals are each a task the
// Temporal server runs for one workflow after another (on the dev server, a few per second);
// client calls run side by side. Both activities are idempotent: a start finds the workflow it
// started before, and every signal PremiScale sends can arrive twice without harm.

// WorkflowStart is one instance workflow to start.
type WorkflowStart struct {
	// ID is the workflow ID; Group and Host its search attributes.
	ID, Group, Host string
	// Summary and Details are what the web UI shows.
	Summary, Details string
	// Input is the workflow's argument, as JSON.
	Input json.RawMessage
}

// StartWorkflowsParams asks for workflows of one type on one task queue.
type StartWorkflowsParams struct {
	Workflow, TaskQueue string
	Starts              []WorkflowStart
}

// startParallelism bounds the calls to Temporal one activity makes at once.
const startParallelism = 16

// StartWorkflows starts each workflow unless it runs already (then the running one is kept:
// a retried activity finds the starts of its earlier attempt). It returns one message per
// start, "" for a workflow that runs, else why it could not start: a closed workflow of that
// ID is not started again, whether it ran to its end after an earlier attempt started it (its
// own report tells the group) or an earlier group used the name. It fails only when Temporal
// cannot be reached, and is then retried.
func (a *Activities) StartWorkflows(ctx context.Context, p StartWorkflowsParams) ([]string, error) {
	out := make([]string, len(p.Starts))
	err := parallel(ctx, len(p.Starts), func(i int) error {
		s := p.Starts[i]
		opts := client.StartWorkflowOptions{
			ID:                       s.ID,
			TaskQueue:                p.TaskQueue,
			WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
			WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
			// A closed workflow of that ID is an error, not the run to report.
			WorkflowExecutionErrorWhenAlreadyStarted: true,
			TypedSearchAttributes:                    temporal.NewSearchAttributes(spec.AttrGroup.ValueSet(s.Group), spec.AttrHost.ValueSet(s.Host)),
			StaticSummary:                            s.Summary,
			StaticDetails:                            s.Details,
			// The first workflow task comes back in the start's response and runs on this
			// worker, without a trip through the server's task matching.
			EnableEagerStart: true,
		}
		_, err := a.Temporal.ExecuteWorkflow(ctx, opts, p.Workflow, s.Input)
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		switch {
		case err == nil:
			return nil
		case errors.As(err, &started):
			out[i] = fmt.Sprintf("workflow %s ran already and is not started again", s.ID)
			return nil
		case permanent(err):
			out[i] = err.Error()
			return nil
		}
		return fmt.Errorf("start workflow %s: %w", s.ID, err)
	})
	return out, err
}

// Signal is one signal to a workflow's current run.
type Signal struct {
	WorkflowID, Name string
	Arg              any
}

// SignalWorkflows sends each signal, and returns one message per signal: "" when it was
// delivered, else why it cannot be (the workflow is gone); an error when Temporal could not
// be reached (a retry sends again what was delivered: PremiScale's signals bear that).
func (a *Activities) SignalWorkflows(ctx context.Context, signals []Signal) ([]string, error) {
	out := make([]string, len(signals))
	err := parallel(ctx, len(signals), func(i int) error {
		s := signals[i]
		err := a.Temporal.SignalWorkflow(ctx, s.WorkflowID, "", s.Name, s.Arg)
		switch {
		case err == nil:
			return nil
		case permanent(err):
			out[i] = err.Error()
			return nil
		}
		return fmt.Errorf("signal %s to workflow %s: %w", s.Name, s.WorkflowID, err)
	})
	return out, err
}

// permanent says whether a call failed for good: the workflow does not exist (any more), or the
// request is refused as it is.
func permanent(err error) bool {
	var notFound *serviceerror.NotFound
	var invalid *serviceerror.InvalidArgument
	return errors.As(err, &notFound) || errors.As(err, &invalid)
}

// parallel runs f for 0..n-1, startParallelism at a time, heartbeating as calls finish, and
// returns the first error.
func parallel(ctx context.Context, n int, f func(i int) error) error {
	sem := make(chan struct{}, startParallelism)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	done := 0
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := f(i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			done++
			if activity.IsActivity(ctx) && !activity.GetInfo(ctx).IsLocalActivity {
				activity.RecordHeartbeat(ctx, done)
			}
		})
	}
	wg.Wait()
	return first
}
