package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/spec"
)

// InstanceParams is the argument of an InstanceWorkflow. The fields after spec.GroupWorkflowID are
// the workflow's own progress, carried over continue-as-new.
type InstanceParams struct {
	Name, Group, Host string
	// Index is the instance's sequence number in its group (templates see it as .Index).
	Index int
	// Address is the static address given to the instance, "" unless networking is static.
	Address string
	Launch  spec.Launch
	// GroupWorkflowID is where state changes are reported; the current run of the group
	// receives them, whatever run started this instance.
	GroupWorkflowID string

	// Running is set once the instance checked in (or started, without check-in).
	Running bool
	// LastHealthy is when the instance was last seen healthy.
	LastHealthy time.Time
}

// hostScheduleToStart is how long a host activity may wait for the host's worker before the
// host counts as down.
const hostScheduleToStart = time.Minute

// healthChecksPerRun bounds an instance workflow's history; it continues as new after that
// many health checks.
const healthChecksPerRun = 200

// errUnhealthy marks an instance that must be replaced.
var errUnhealthy = errors.New("unhealthy")

type instance struct {
	p      InstanceParams
	ctx    workflow.Context
	logger interface {
		Info(string, ...any)
		Warn(string, ...any)
	}
	retire  workflow.ReceiveChannel
	checkin workflow.ReceiveChannel
}

// InstanceWorkflow owns one VM: launching → booting (waiting for its cloud-init check-in) →
// running (health-checked) → retiring → gone. A VM that does not check in within the boot
// timeout, is found crashed or shut off, or stops sending heartbeats is removed and reported
// failed, and its group launches a replacement. A failed launch removes whatever it made.
func InstanceWorkflow(ctx workflow.Context, p InstanceParams) error {
	in := &instance{
		p: p, ctx: ctx, logger: workflow.GetLogger(ctx),
		retire:  workflow.GetSignalChannel(ctx, spec.SignalRetire),
		checkin: workflow.GetSignalChannel(ctx, spec.SignalCheckin),
	}
	if !p.Running {
		retired, err := in.launch()
		if err != nil || retired {
			return err
		}
	}
	return in.watch()
}

// launch creates the VM and waits for it to check in. It returns retired=true when the
// instance was retired (or failed) while launching.
func (in *instance) launch() (retired bool, err error) {
	p := in.p
	in.record(spec.StateLaunching, "")
	var h *activities.HostActivities
	cctx := workflow.WithActivityOptions(in.ctx, workflow.ActivityOptions{
		TaskQueue:              spec.HostTaskQueue(p.Host),
		ScheduleToStartTimeout: hostScheduleToStart,
		StartToCloseTimeout:    10 * time.Minute,
		HeartbeatTimeout:       time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 5,
			NonRetryableErrorTypes: []string{activities.ErrTypeBadLaunchSpec},
		},
	})
	create := activities.CreateInstanceParams{
		Name: p.Name, Group: p.Group, Index: p.Index, Address: p.Address,
		// The run ID is unique per launch and stable across retries: cloud-init's instance-id.
		InstanceID: p.Name + "-" + workflow.GetInfo(in.ctx).WorkflowExecution.RunID,
		Launch:     p.Launch,
	}
	if err := workflow.ExecuteActivity(cctx, h.CreateInstance, create).Get(in.ctx, nil); err != nil {
		return true, in.fail("launch failed: "+failureReason(err), false)
	}
	if !p.Launch.Health.Checkin {
		in.becomeRunning(workflow.Now(in.ctx), "")
		return false, nil
	}

	in.record(spec.StateBooting, "")
	in.notify(spec.StateBooting, "", false)
	timerCtx, cancel := workflow.WithCancel(in.ctx)
	defer cancel()
	timeout := workflow.NewTimer(timerCtx, p.Launch.Health.BootTimeout)
	var outcome string
	var signal spec.CheckinSignal
	sel := workflow.NewSelector(in.ctx)
	sel.AddReceive(in.checkin, func(c workflow.ReceiveChannel, _ bool) { c.Receive(in.ctx, &signal); outcome = "checkin" })
	sel.AddReceive(in.retire, func(c workflow.ReceiveChannel, _ bool) { c.Receive(in.ctx, nil); outcome = "retire" })
	sel.AddFuture(timeout, func(workflow.Future) { outcome = "timeout" })
	sel.Select(in.ctx)
	switch outcome {
	case "retire":
		return true, in.retireNow()
	case "timeout":
		return true, in.fail(fmt.Sprintf("no check-in within the boot timeout of %s", p.Launch.Health.BootTimeout), true)
	}
	in.logger.Info("instance checked in", "instance", p.Name, "address", signal.Address)
	in.becomeRunning(workflow.Now(in.ctx), signal.Address)
	return false, nil
}

func (in *instance) becomeRunning(at time.Time, address string) {
	in.p.Running = true
	in.p.LastHealthy = at
	if address != "" && in.p.Address == "" {
		in.p.Address = address
	}
	in.record(spec.StateRunning, "")
	in.notify(spec.StateRunning, "", false)
}

// watch health-checks a running instance until it is retired or found unhealthy.
func (in *instance) watch() error {
	interval := in.p.Launch.Health.CheckInterval()
	for checks := 0; ; checks++ {
		if checks >= healthChecksPerRun || workflow.GetInfo(in.ctx).GetContinueAsNewSuggested() {
			// A retire signal that arrived meanwhile must not be lost with this run.
			if in.retire.ReceiveAsync(nil) {
				return in.retireNow()
			}
			return workflow.NewContinueAsNewError(in.ctx, InstanceWorkflow, in.p)
		}
		timerCtx, cancel := workflow.WithCancel(in.ctx)
		timer := workflow.NewTimer(timerCtx, interval)
		retire := false
		sel := workflow.NewSelector(in.ctx)
		sel.AddReceive(in.retire, func(c workflow.ReceiveChannel, _ bool) { c.Receive(in.ctx, nil); retire = true })
		// Repeated check-ins (a re-run of phone_home) carry nothing new.
		sel.AddReceive(in.checkin, func(c workflow.ReceiveChannel, _ bool) { c.Receive(in.ctx, nil) })
		sel.AddFuture(timer, func(workflow.Future) {})
		sel.Select(in.ctx)
		cancel()
		if retire {
			return in.retireNow()
		}
		if interval == 0 {
			continue
		}
		if reason := in.checkHealth(); reason != "" {
			return in.fail(reason, true)
		}
	}
}

// checkHealth returns why the instance is unhealthy, or "" when it is fine. A failure to
// check (host or database unreachable) is not the instance's fault and is only logged.
func (in *instance) checkHealth() string {
	p := in.p
	var h *activities.HostActivities
	var a *activities.Activities
	hctx := workflow.WithActivityOptions(in.ctx, workflow.ActivityOptions{
		TaskQueue:              spec.HostTaskQueue(p.Host),
		ScheduleToStartTimeout: hostScheduleToStart,
		StartToCloseTimeout:    time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 2},
	})
	var dh activities.DomainHealth
	if err := workflow.ExecuteActivity(hctx, h.DomainHealth, p.Name).Get(in.ctx, &dh); err != nil {
		in.logger.Warn("could not check domain state", "instance", p.Name, "error", err)
	} else if !dh.Found {
		return "domain disappeared from its host"
	} else if dh.State == "crashed" || dh.State == "shutoff" {
		return fmt.Sprintf("domain found %s", dh.State)
	}
	if p.Launch.Health.HeartbeatTimeout <= 0 {
		return ""
	}
	var lastSeen time.Time
	if err := workflow.ExecuteActivity(in.dbCtx(), a.InstanceLastSeen, p.Name).Get(in.ctx, &lastSeen); err != nil {
		in.logger.Warn("could not read last heartbeat", "instance", p.Name, "error", err)
		return ""
	}
	if lastSeen.After(in.p.LastHealthy) {
		in.p.LastHealthy = lastSeen
	}
	if silent := workflow.Now(in.ctx).Sub(in.p.LastHealthy); silent > p.Launch.Health.HeartbeatTimeout {
		return fmt.Sprintf("no heartbeat for %s (timeout %s)", silent.Round(time.Second), p.Launch.Health.HeartbeatTimeout)
	}
	return ""
}

// fail removes whatever the instance has on its host, records why, and tells the group, which
// launches a replacement when replace is set (a VM that went bad, not a launch that cannot work).
func (in *instance) fail(reason string, replace bool) error {
	// Undo even if this workflow is being cancelled.
	dctx, cancel := workflow.NewDisconnectedContext(in.ctx)
	defer cancel()
	if err := in.destroy(dctx); err != nil {
		reason += fmt.Sprintf("; cleanup failed: %v", err)
	}
	in.logger.Warn("instance failed", "instance", in.p.Name, "reason", reason)
	in.record(spec.StateFailed, reason)
	in.notify(spec.StateFailed, reason, replace)
	return nil
}

func (in *instance) retireNow() error {
	in.record(spec.StateRetiring, "")
	if err := in.destroy(in.ctx); err != nil {
		reason := fmt.Sprintf("retire failed: %v", err)
		in.record(spec.StateFailed, reason)
		in.notify(spec.StateFailed, reason, false)
		return fmt.Errorf("retire instance %s: %w", in.p.Name, err)
	}
	in.record(spec.StateTerminated, "retired")
	in.notify(spec.StateTerminated, "retired", false)
	return nil
}

func (in *instance) destroy(ctx workflow.Context) error {
	var h *activities.HostActivities
	grace := in.p.Launch.Health.ShutdownGrace
	dctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           spec.HostTaskQueue(in.p.Host),
		StartToCloseTimeout: grace + 2*time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute, MaximumAttempts: 20},
	})
	params := activities.DestroyInstanceParams{Name: in.p.Name, Pool: in.p.Launch.ImagePool, Grace: grace}
	return workflow.ExecuteActivity(dctx, h.DestroyInstance, params).Get(ctx, nil)
}

// dbCtx is for state writes, which must survive a short database outage.
func (in *instance) dbCtx() workflow.Context {
	return workflow.WithActivityOptions(in.ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 30 * time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
}

func (in *instance) record(state, reason string) {
	var a *activities.Activities
	rec := activities.InstanceRecord{
		Name: in.p.Name, Group: in.p.Group, Host: in.p.Host, State: state, Reason: reason,
		Address: in.p.Address, At: workflow.Now(in.ctx),
	}
	if err := workflow.ExecuteActivity(in.dbCtx(), a.RecordInstance, rec).Get(in.ctx, nil); err != nil {
		in.logger.Warn("could not record instance state", "instance", in.p.Name, "state", state, "error", err)
	}
}

func (in *instance) notify(state, reason string, replace bool) {
	st := spec.InstanceStatus{Name: in.p.Name, State: state, Reason: reason, Address: in.p.Address, Replace: replace}
	if err := workflow.SignalExternalWorkflow(in.ctx, in.p.GroupWorkflowID, "", spec.SignalInstanceStatus, st).Get(in.ctx, nil); err != nil {
		in.logger.Warn("could not report to group", "instance", in.p.Name, "group", in.p.GroupWorkflowID, "error", err)
	}
}
