package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/spec"
)

// issuedCommands are what a lean group has issued to its instances and not waited for yet.
// Issued together and then waited for, the launches and retirements of one evaluation go to
// the server in one workflow task instead of one task each. In runs with client starts
// (changeClientStarts) they are not commands at all: the starts go out in one StartWorkflows
// activity and the signals in one SignalWorkflows local activity, each making its calls to
// Temporal side by side, where as commands the server runs them for the group one after another.
type issuedCommands struct {
	list []issuedCommand
	// bytes estimates what their inputs weigh.
	bytes int

	starts  []pendingStart
	signals []pendingSignal
}

type issuedCommand struct {
	f      workflow.Future
	failed func(error)
}

type pendingStart struct {
	start  activities.WorkflowStart
	failed func(reason string)
}

type pendingSignal struct {
	signal activities.Signal
	failed func(reason string)
}

// maxIssuedBytes bounds what the commands of one workflow task, or the starts of one
// StartWorkflows activity, carry (an instance's input holds its launch spec and cloud-init):
// the server refuses a task completion of a few MiB and warns about payloads over 512 KiB.
const (
	maxIssuedBytes       = 1 << 20
	maxIssuedStartsBytes = 256 << 10
)

// issue takes a command's future: a lean run waits for it with the others at awaitIssued,
// other runs at once, as they always did. failed is given the command's error. It says
// whether the command is issued: false only when a run that waits at once saw it fail.
func (g *group) issue(ctx workflow.Context, f workflow.Future, size int, failed func(error)) bool {
	if !g.lean {
		if err := f.Get(ctx, nil); err != nil {
			failed(err)
			return false
		}
		return true
	}
	if g.issued.bytes+size > maxIssuedBytes {
		g.awaitIssued(ctx)
	}
	g.issued.list = append(g.issued.list, issuedCommand{f: f, failed: failed})
	g.issued.bytes += size
	return true
}

// signalInstance sends a signal to an instance's workflow (through the client in runs with
// client starts, as a command otherwise). It says whether the signal is issued: false only
// when a run that waits at once saw it fail; failed is given why it could not be delivered.
func (g *group) signalInstance(ctx workflow.Context, name, signal string, arg any, failed func(reason string)) bool {
	id := spec.InstanceWorkflowID(name)
	if g.clientStarts {
		g.issued.signals = append(g.issued.signals, pendingSignal{signal: activities.Signal{WorkflowID: id, Name: signal, Arg: arg}, failed: failed})
		return true
	}
	f := workflow.SignalExternalWorkflow(ctx, id, "", signal, arg)
	return g.issue(ctx, f, signalBytes, func(err error) { failed(err.Error()) })
}

// signalBytes is about what a signal to an instance weighs in its workflow task.
const signalBytes = 512

// queueStart adds an instance start to those sent at awaitIssued; failed is given why it
// could not start.
func (g *group) queueStart(ctx workflow.Context, s activities.WorkflowStart, failed func(string)) {
	if len(g.issued.starts) > 0 && g.issued.startBytes()+len(s.Input) > maxIssuedStartsBytes {
		g.awaitIssued(ctx)
	}
	g.issued.starts = append(g.issued.starts, pendingStart{start: s, failed: failed})
}

func (is issuedCommands) startBytes() int {
	n := 0
	for _, s := range is.starts {
		n += len(s.start.Input)
	}
	return n
}

// awaitIssued sends what is queued and waits for everything issued, in the order issued.
func (g *group) awaitIssued(ctx workflow.Context) {
	is := g.issued
	g.issued = issuedCommands{}
	var a *activities.Activities
	var startF, signalF workflow.Future
	if len(is.starts) > 0 {
		p := activities.StartWorkflowsParams{Workflow: "InstanceWorkflow", TaskQueue: workflow.GetInfo(ctx).TaskQueueName}
		for _, s := range is.starts {
			p.Starts = append(p.Starts, s.start)
		}
		sctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 2 * time.Minute,
			HeartbeatTimeout:    30 * time.Second,
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second},
		})
		startF = workflow.ExecuteActivity(sctx, a.StartWorkflows, p)
	}
	if len(is.signals) > 0 {
		signals := make([]activities.Signal, len(is.signals))
		for i, s := range is.signals {
			signals[i] = s.signal
		}
		signalF = localFirst(ctx, signalCtx(ctx), a.SignalWorkflows, signals)
	}
	for _, c := range is.list {
		if err := c.f.Get(ctx, nil); err != nil {
			c.failed(err)
		}
	}
	if startF != nil {
		var res []string
		err := startF.Get(ctx, &res)
		for i, s := range is.starts {
			if reason := callOutcome(res, i, err); reason != "" {
				s.failed(reason)
			}
		}
	}
	if signalF != nil {
		var res []string
		err := signalF.Get(ctx, &res)
		for i, s := range is.signals {
			if reason := callOutcome(res, i, err); reason != "" {
				s.failed(reason)
			}
		}
	}
}

// signalCtx runs SignalWorkflows and ReportStatus as regular activities, when their first
// seconds as local activities did not deliver (see localFirst): retried through an outage of
// Temporal.
func signalCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 30 * time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second},
	})
}

// callOutcome is why the i-th call of a batch failed, "" if it did not.
func callOutcome(res []string, i int, err error) string {
	switch {
	case err != nil:
		return rootCause(err)
	case i >= len(res):
		return fmt.Sprintf("no result for call %d of %d", i+1, len(res))
	}
	return res[i]
}
