package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/premiscale/premiscale/activities"
)

// InstanceParams is the argument of an InstanceWorkflow.
type InstanceParams struct {
	Name, Group, Host string
	Launch            LaunchSpec
	RetireGrace       time.Duration
	// GroupWorkflowID is where state changes are reported; the current run of the group
	// receives them, whatever run started this instance.
	GroupWorkflowID string
}

// hostScheduleToStart is how long a host activity may wait for the host's worker before the
// host counts as down.
const hostScheduleToStart = time.Minute

// InstanceWorkflow owns one VM: it creates it on its host, reports it running, waits to be
// retired, then removes the domain and its disks. A failed launch removes whatever it made.
func InstanceWorkflow(ctx workflow.Context, p InstanceParams) error {
	logger := workflow.GetLogger(ctx)
	retireCh := workflow.GetSignalChannel(ctx, SignalRetire)
	var a *activities.Activities
	var h *activities.HostActivities

	// State writes must not be lost to a short database outage, so they retry for a while.
	dbCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 30 * time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
	record := func(state, reason string) {
		rec := activities.InstanceRecord{Name: p.Name, Group: p.Group, Host: p.Host, State: state, Reason: reason, At: workflow.Now(ctx)}
		if err := workflow.ExecuteActivity(dbCtx, a.RecordInstance, rec).Get(ctx, nil); err != nil {
			logger.Warn("could not record instance state", "instance", p.Name, "state", state, "error", err)
		}
	}
	notify := func(state, reason string) {
		st := InstanceStatus{Name: p.Name, State: state, Reason: reason}
		if err := workflow.SignalExternalWorkflow(ctx, p.GroupWorkflowID, "", SignalInstanceStatus, st).Get(ctx, nil); err != nil {
			logger.Warn("could not report to group", "instance", p.Name, "group", p.GroupWorkflowID, "error", err)
		}
	}
	destroy := func(ctx workflow.Context) error {
		dctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:           HostTaskQueue(p.Host),
			StartToCloseTimeout: p.RetireGrace + 2*time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute, MaximumAttempts: 20},
		})
		params := activities.DestroyInstanceParams{Name: p.Name, Pool: p.Launch.ImagePool, Grace: p.RetireGrace}
		return workflow.ExecuteActivity(dctx, h.DestroyInstance, params).Get(ctx, nil)
	}

	record(StateLaunching, "")
	cctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              HostTaskQueue(p.Host),
		ScheduleToStartTimeout: hostScheduleToStart,
		StartToCloseTimeout:    5 * time.Minute,
		HeartbeatTimeout:       30 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 5},
	})
	create := activities.CreateInstanceParams{
		Name: p.Name, Group: p.Group, ImagePool: p.Launch.ImagePool, ImageVolume: p.Launch.ImageVolume, Domain: p.Launch.Domain,
	}
	if err := workflow.ExecuteActivity(cctx, h.CreateInstance, create).Get(ctx, nil); err != nil {
		reason := fmt.Sprintf("launch failed: %v", err)
		// Undo whatever the failed launch made, even if this workflow is being cancelled.
		dctx, cancel := workflow.NewDisconnectedContext(ctx)
		defer cancel()
		if derr := destroy(dctx); derr != nil {
			reason += fmt.Sprintf("; cleanup failed: %v", derr)
		}
		logger.Warn("instance launch failed", "instance", p.Name, "reason", reason)
		record(StateFailed, reason)
		notify(StateFailed, reason)
		return nil
	}
	record(StateRunning, "")
	notify(StateRunning, "")

	retireCh.Receive(ctx, nil)
	record(StateRetiring, "")
	if err := destroy(ctx); err != nil {
		reason := fmt.Sprintf("retire failed: %v", err)
		record(StateFailed, reason)
		notify(StateFailed, reason)
		return fmt.Errorf("retire instance %s: %w", p.Name, err)
	}
	record(StateTerminated, "retired")
	notify(StateTerminated, "retired")
	return nil
}
