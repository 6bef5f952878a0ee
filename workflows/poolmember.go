package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
)

// A warm-pool member's life in its InstanceWorkflow: launched and booted like any instance
// (cloud-init done, checked in when the group's check-in is on), then parked — shut down,
// saved with libvirt's managed save, or left running — and health-checked until its group
// takes it (SignalTake) or retires it. A taken member starts or restores its VM and runs as a
// member of the group; when it was stopped and checks in, it counts as running once its guest
// sends a heartbeat after the start (its cloud-init does not phone home twice). A member that
// cannot be parked or resumed is destroyed and reported failed, and its group replaces it.

// poolCheckInterval is the health-check period of a parked member that is not running: only
// its domain is looked at, there is no heartbeat to miss.
const poolCheckInterval = time.Minute

// inPool parks the member unless it was taken already, then waits in the pool. It returns
// done=true when the workflow is over (retired, failed, lost, continued as new), and false
// once the member was taken and runs in its group.
func (in *instance) inPool() (done bool, err error) {
	if in.p.Parked == "" {
		if in.retire.ReceiveAsync(nil) {
			return true, in.retireNow()
		}
		// Taken while it booted (or a scale-in returned it and a scale-out took it back at
		// once): it is up already, no need to park it.
		if in.take.ReceiveAsync(nil) {
			return in.resume()
		}
		in.record(spec.StateWarming, "")
		parked, err := in.parkVM()
		if err != nil {
			if isApplicationError(err, activities.ErrTypeDomainGone) {
				return true, in.fail("domain disappeared from its host while it was parked in the warm pool", false)
			}
			return true, in.fail(fmt.Sprintf("could not park in the warm pool: %v", err), false)
		}
		in.p.Parked = parked
		in.record(spec.StateWarm, "parked "+string(parked))
		in.notify(spec.StateWarm, "", false)
	}
	interval := poolCheckInterval
	if in.p.Parked == spec.PoolRunning {
		interval = in.p.Launch.Health.CheckInterval()
	}
	for checks := 0; ; checks++ {
		if checks >= healthChecksPerRun || workflow.GetInfo(in.ctx).GetContinueAsNewSuggested() {
			// Signals that arrived meanwhile must not be lost with this run.
			var lostReason string
			switch {
			case in.retire.ReceiveAsync(nil):
				return true, in.retireNow()
			case in.take.ReceiveAsync(nil):
				return in.resume()
			case in.lost.ReceiveAsync(&lostReason):
				return true, in.whenLost(lostReason)
			}
			return true, workflow.NewContinueAsNewError(in.ctx, InstanceWorkflow, in.p)
		}
		timerCtx, cancel := workflow.WithCancel(in.ctx)
		var next string
		var lostReason string
		sel := workflow.NewSelector(in.ctx)
		sel.AddReceive(in.retire, func(c workflow.ReceiveChannel, _ bool) { c.Receive(in.ctx, nil); next = "retire" })
		sel.AddReceive(in.take, func(c workflow.ReceiveChannel, _ bool) { c.Receive(in.ctx, nil); next = "take" })
		sel.AddReceive(in.lost, func(c workflow.ReceiveChannel, _ bool) { c.Receive(in.ctx, &lostReason); next = "lost" })
		// A check-in repeated by the guest (a running member) carries nothing new.
		sel.AddReceive(in.checkin, func(c workflow.ReceiveChannel, _ bool) { c.Receive(in.ctx, nil) })
		sel.AddFuture(workflow.NewTimer(timerCtx, interval), func(workflow.Future) { next = "check" })
		sel.Select(in.ctx)
		cancel()
		switch next {
		case "retire":
			return true, in.retireNow()
		case "take":
			return in.resume()
		case "lost":
			return true, in.whenLost(lostReason)
		case "check":
			if reason := in.poolHealth(); reason != "" {
				return true, in.fail(reason+" while in the warm pool", false)
			}
		}
	}
}

// parkVM parks the booted VM in its pool state and returns the state it is parked in.
func (in *instance) parkVM() (spec.PoolState, error) {
	var h *activities.HostActivities
	grace := in.p.Launch.Health.ShutdownGrace
	ctx := workflow.WithActivityOptions(in.ctx, workflow.ActivityOptions{
		TaskQueue:              spec.HostTaskQueue(in.p.Host),
		ScheduleToStartTimeout: hostScheduleToStart,
		// A managed save writes the guest's memory; a shutdown waits up to the grace.
		StartToCloseTimeout: grace + 15*time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 5,
			NonRetryableErrorTypes: []string{activities.ErrTypeDomainGone},
		},
	})
	var parked spec.PoolState
	p := activities.ParkInstanceParams{Name: in.p.Name, State: in.p.Pool, Grace: grace}
	err := workflow.ExecuteActivity(ctx, h.ParkInstance, p).Get(in.ctx, &parked)
	return parked, err
}

// resume brings a taken member into its group: its VM restored or started (or, running
// already, only unmarked), then, for a member booted again with check-in on, the first
// heartbeat of its guest. A member that does not come back is destroyed and reported failed:
// its group owes a replacement. It returns done=true when the workflow is over.
func (in *instance) resume() (done bool, err error) {
	in.record(spec.StateResuming, "taken from the warm pool")
	start := workflow.Now(in.ctx)
	var h *activities.HostActivities
	ctx := workflow.WithActivityOptions(in.ctx, workflow.ActivityOptions{
		TaskQueue:              spec.HostTaskQueue(in.p.Host),
		ScheduleToStartTimeout: hostScheduleToStart,
		StartToCloseTimeout:    15 * time.Minute,
		HeartbeatTimeout:       time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, MaximumInterval: 10 * time.Second, MaximumAttempts: 3,
			NonRetryableErrorTypes: []string{activities.ErrTypeDomainGone},
		},
	})
	var how libvirt.Resumed
	if err := workflow.ExecuteActivity(ctx, h.ResumeInstance, in.p.Name).Get(in.ctx, &how); err != nil {
		return true, in.fail(fmt.Sprintf("resume from the warm pool failed: %v", err), true)
	}
	health := in.p.Launch.Health
	if how == libvirt.ResumedBooted && health.Checkin && health.HeartbeatInterval > 0 {
		if done, err := in.awaitGuest(start); done || err != nil {
			return true, err
		}
	}
	in.logger.Info("instance taken from the warm pool", "instance", in.p.Name, "how", how, "parked", in.p.Parked)
	in.p.Pool, in.p.Parked = "", ""
	in.becomeRunning(workflow.Now(in.ctx), "")
	return false, nil
}

// awaitGuest waits for the first heartbeat of a guest booted again, within the boot timeout,
// while staying open to a retirement.
func (in *instance) awaitGuest(since time.Time) (done bool, err error) {
	var a *activities.Activities
	timeout := in.p.Launch.Health.BootTimeout
	actx, cancel := workflow.WithCancel(in.ctx)
	defer cancel()
	actx = workflow.WithActivityOptions(actx, workflow.ActivityOptions{
		StartToCloseTimeout: timeout + time.Minute,
		HeartbeatTimeout:    30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, MaximumInterval: 10 * time.Second,
			NonRetryableErrorTypes: []string{activities.ErrTypeNoHeartbeat},
		},
	})
	wait := workflow.ExecuteActivity(actx, a.AwaitHeartbeat, activities.AwaitHeartbeatParams{Name: in.p.Name, Since: since, Timeout: timeout})
	var waitErr error
	next := ""
	var lostReason string
	sel := workflow.NewSelector(in.ctx)
	sel.AddFuture(wait, func(f workflow.Future) { waitErr = f.Get(in.ctx, nil); next = "up" })
	sel.AddReceive(in.retire, func(c workflow.ReceiveChannel, _ bool) { c.Receive(in.ctx, nil); next = "retire" })
	sel.AddReceive(in.lost, func(c workflow.ReceiveChannel, _ bool) { c.Receive(in.ctx, &lostReason); next = "lost" })
	sel.Select(in.ctx)
	switch next {
	case "retire":
		cancel()
		return true, in.retireNow()
	case "lost":
		cancel()
		return true, in.whenLost(lostReason)
	}
	if waitErr != nil {
		return true, in.fail(fmt.Sprintf("no heartbeat within the boot timeout of %s after its start from the warm pool: %v", timeout, waitErr), true)
	}
	return false, nil
}

// poolHealth returns why a parked member is unhealthy, or "" when it is fine: a running member
// is checked as any running instance; a stopped or saved one only needs its domain to exist.
func (in *instance) poolHealth() string {
	if in.p.Parked == spec.PoolRunning {
		return in.checkHealth()
	}
	var h *activities.HostActivities
	hctx := workflow.WithActivityOptions(in.ctx, workflow.ActivityOptions{
		TaskQueue:              spec.HostTaskQueue(in.p.Host),
		ScheduleToStartTimeout: hostScheduleToStart,
		StartToCloseTimeout:    time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 2},
	})
	var dh activities.DomainHealth
	if err := workflow.ExecuteActivity(hctx, h.DomainHealth, in.p.Name).Get(in.ctx, &dh); err != nil {
		in.logger.Warn("could not check domain state", "instance", in.p.Name, "error", err)
		return ""
	}
	switch {
	case !dh.Found:
		return "domain disappeared from its host"
	case dh.State == "crashed":
		return "domain found crashed"
	}
	return ""
}
