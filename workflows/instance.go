package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
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
	// Lost is set once the instance was lost with its host, and why: the workflow then only
	// waits for the host to answer again, to remove the VM.
	Lost       bool   `json:",omitempty"`
	LostReason string `json:",omitempty"`
	// Pool is the pool state of a warm-pool member, "" for a member of the group: it is booted
	// once, then parked in that state until a scale-out takes it (see poolmember.go).
	Pool spec.PoolState `json:",omitempty"`
	// Parked is the state the member is parked in, "" until it is.
	Parked spec.PoolState `json:",omitempty"`
	// Rules says which workflow changes the instance follows, deterministically as its input
	// is. 0 (instances started as child workflows) asks workflow.GetVersion about changeFleet
	// and changeLeanInstance, as such instances always did. rulesClientReports, set by a group
	// that starts its instances through the client (changeClientStarts), follows both without
	// asking (a GetVersion's marker and TemporalChangeVersion upsert are server writes per
	// instance) and reports to the group through the client, batched (activities.ReportStatus):
	// such a group runs code that reads batched reports, where a child's group may not yet
	// while workers are being upgraded.
	Rules int `json:",omitempty"`
}

// rulesClientReports: see InstanceParams.Rules.
const rulesClientReports = 1

// hostScheduleToStart is how long a host activity may wait for the host's worker before the
// host counts as down.
const hostScheduleToStart = time.Minute

// createHeartbeatTimeout is how long a launch may go without news from its worker before it
// counts as lost and is tried again (CreateInstance is idempotent).
const createHeartbeatTimeout = 10 * time.Second

// destroyHeartbeatTimeout is how long a retirement may go without news from its worker before
// it counts as cut short (the worker died) and is retried, by any worker serving the host. The
// retry resumes the shutdown grace where it was (see activities.DestroyInstance).
const destroyHeartbeatTimeout = 10 * time.Second

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
	lost    workflow.ReceiveChannel
	// take and park move an instance between the warm pool and the group.
	take workflow.ReceiveChannel
	park workflow.ReceiveChannel
	// fleet is set for runs with the rules of changeFleet, lean for those of changeLeanInstance.
	fleet, lean bool
	// clientReports: the instance reports to its group through the client (InstanceParams.Rules).
	clientReports bool
	// noRoom is set when the host's worker refused the launch for lack of room.
	noRoom bool
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
		lost:    workflow.GetSignalChannel(ctx, spec.SignalLost),
		take:    workflow.GetSignalChannel(ctx, spec.SignalTake),
		park:    workflow.GetSignalChannel(ctx, spec.SignalPark),
	}
	if p.Rules >= rulesClientReports {
		in.fleet, in.lean, in.clientReports = true, true, true
	} else {
		in.fleet = workflow.GetVersion(ctx, changeFleet, workflow.DefaultVersion, 1) >= 1
		in.lean = in.fleet && workflow.GetVersion(ctx, changeLeanInstance, workflow.DefaultVersion, 1) >= 1
	}
	in.setHost(p.Host)
	if p.Lost {
		return in.whenLost(p.LostReason)
	}
	if !p.Running {
		retired, err := in.launch()
		if err != nil || retired {
			return err
		}
	}
	// An instance moves between the group and its warm pool (taken by a scale-out, returned
	// by a scale-in with reuseOnScaleIn) until it is retired; only a group with a warm pool
	// sends the signals that move it, so the history of any other instance is as it was.
	for {
		if in.p.Pool != "" {
			if done, err := in.inPool(); done || err != nil {
				return err
			}
		}
		park, err := in.watch()
		if err != nil || park == "" {
			return err
		}
		in.p.Pool = park
	}
}

// launch creates the VM and waits for it to check in. It returns retired=true when the
// instance was retired (or failed) while launching.
func (in *instance) launch() (retired bool, err error) {
	p := in.p
	in.record(in.state(spec.StateLaunching), "")
	var h *activities.HostActivities
	cctx := workflow.WithActivityOptions(in.ctx, workflow.ActivityOptions{
		TaskQueue:              spec.HostTaskQueue(p.Host),
		ScheduleToStartTimeout: hostScheduleToStart,
		StartToCloseTimeout:    10 * time.Minute,
		// CreateInstance heartbeats through every step (an image copy included): an attempt
		// its worker lost is retried after this, not after the start-to-close timeout.
		HeartbeatTimeout: createHeartbeatTimeout,
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
		Pool:       p.Pool != "",
	}
	if err := workflow.ExecuteActivity(cctx, h.CreateInstance, create).Get(in.ctx, nil); err != nil {
		if in.fleet && isApplicationError(err, activities.ErrTypeNoCapacity) {
			// The host filled up since placement chose it: the group places it again.
			in.noRoom = true
		}
		return true, in.fail("launch failed: "+failureReason(err), false)
	}
	if p.Pool != "" {
		// The group places what is not defined yet on its own; from now on the host's
		// report holds the member.
		in.notify(spec.StateWarming, "", false)
	}
	if !p.Launch.Health.Checkin {
		in.booted(workflow.Now(in.ctx), "")
		return false, nil
	}

	if p.Pool == "" {
		in.record(spec.StateBooting, "")
		in.notify(spec.StateBooting, "", false)
	}
	timerCtx, cancel := workflow.WithCancel(in.ctx)
	defer cancel()
	timeout := workflow.NewTimer(timerCtx, p.Launch.Health.BootTimeout)
	var outcome string
	var signal spec.CheckinSignal
	sel := workflow.NewSelector(in.ctx)
	sel.AddReceive(in.checkin, func(c workflow.ReceiveChannel, _ bool) { c.Receive(in.ctx, &signal); outcome = "checkin" })
	sel.AddReceive(in.retire, func(c workflow.ReceiveChannel, _ bool) { c.Receive(in.ctx, nil); outcome = "retire" })
	var lostReason string
	sel.AddReceive(in.lost, func(c workflow.ReceiveChannel, _ bool) { c.Receive(in.ctx, &lostReason); outcome = "lost" })
	sel.AddFuture(timeout, func(workflow.Future) { outcome = "timeout" })
	sel.Select(in.ctx)
	switch outcome {
	case "retire":
		return true, in.retireNow()
	case "lost":
		return true, in.whenLost(lostReason)
	case "timeout":
		return true, in.fail(fmt.Sprintf("no check-in within the boot timeout of %s", p.Launch.Health.BootTimeout), true)
	}
	in.logger.Info("instance checked in", "instance", p.Name, "address", signal.Address)
	in.booted(workflow.Now(in.ctx), signal.Address)
	return false, nil
}

// booted follows a launch that came up: a member of the group runs; a warm-pool member is
// parked next (see inPool).
func (in *instance) booted(at time.Time, address string) {
	if in.p.Pool == "" {
		in.becomeRunning(at, address)
		return
	}
	in.p.Running = true
	in.p.LastHealthy = at
	if address != "" && in.p.Address == "" {
		in.p.Address = address
	}
}

// state is what an instance in launch state s is called: a warm-pool member is warming until
// it is parked.
func (in *instance) state(s spec.InstanceState) spec.InstanceState {
	if in.p.Pool != "" && (s == spec.StateLaunching || s == spec.StateBooting) {
		return spec.StateWarming
	}
	return s
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

// watch health-checks a running instance until it is retired or found unhealthy, or its group
// returns it to the warm pool: it then returns the pool state to park in.
func (in *instance) watch() (spec.PoolState, error) {
	interval := in.p.Launch.Health.CheckInterval()
	for checks := 0; ; checks++ {
		if checks >= healthChecksPerRun || workflow.GetInfo(in.ctx).GetContinueAsNewSuggested() {
			// A retire signal that arrived meanwhile must not be lost with this run.
			if in.retire.ReceiveAsync(nil) {
				return "", in.retireNow()
			}
			var park spec.PoolState
			if in.park.ReceiveAsync(&park) {
				return park, nil
			}
			return "", workflow.NewContinueAsNewError(in.ctx, InstanceWorkflow, in.p)
		}
		timerCtx, cancel := workflow.WithCancel(in.ctx)
		timer := workflow.NewTimer(timerCtx, interval)
		retire, lost := false, false
		var lostReason string
		var park spec.PoolState
		sel := workflow.NewSelector(in.ctx)
		sel.AddReceive(in.retire, func(c workflow.ReceiveChannel, _ bool) { c.Receive(in.ctx, nil); retire = true })
		sel.AddReceive(in.lost, func(c workflow.ReceiveChannel, _ bool) { c.Receive(in.ctx, &lostReason); lost = true })
		sel.AddReceive(in.park, func(c workflow.ReceiveChannel, _ bool) { c.Receive(in.ctx, &park) })
		// Repeated check-ins (a re-run of phone_home) carry nothing new.
		sel.AddReceive(in.checkin, func(c workflow.ReceiveChannel, _ bool) { c.Receive(in.ctx, nil) })
		sel.AddFuture(timer, func(workflow.Future) {})
		sel.Select(in.ctx)
		cancel()
		switch {
		case lost:
			return "", in.whenLost(lostReason)
		case retire:
			return "", in.retireNow()
		case park != "":
			return park, nil
		case interval == 0:
			continue
		}
		if reason := in.checkHealth(); reason != "" {
			return "", in.fail(reason, true)
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
	hctx, cancelCheck := workflow.WithCancel(hctx)
	defer cancelCheck()
	check := workflow.ExecuteActivity(hctx, h.DomainHealth, p.Name)
	if in.fleet && !in.signalWhile(check) {
		// Retired or lost while its host's worker did not answer: the caller takes the signal
		// now rather than after the check's schedule-to-start timeout.
		return ""
	}
	if err := check.Get(in.ctx, &dh); err != nil {
		in.logger.Warn("could not check domain state", "instance", p.Name, "error", err)
	} else if dh.Foreign {
		// An old history's result has no Foreign: it takes the branch below, as it did.
		return "its domain was replaced by a domain without PremiScale's metadata (left alone)"
	} else if !dh.Found {
		return "domain disappeared from its host"
	} else if dh.State == "crashed" || dh.State == "shutoff" {
		return fmt.Sprintf("domain found %s", dh.State)
	}
	if p.Launch.Health.HeartbeatTimeout <= 0 {
		return ""
	}
	var lastSeen time.Time
	if err := in.db(a.InstanceLastSeen, p.Name).Get(in.ctx, &lastSeen); err != nil {
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
	for {
		err := in.destroy(in.ctx)
		if err == nil {
			break
		}
		if in.fleet && isHostAway(err) {
			// The host's worker is not there to take the retirement: wait for it without
			// blocking the group, which declares the instance lost if the host stays down.
			if reason, lost := in.waitForHost(); lost {
				return in.whenLost(reason)
			}
			continue
		}
		reason := fmt.Sprintf("retire failed: %v", err)
		in.record(spec.StateFailed, reason)
		in.notify(spec.StateFailed, reason, false)
		return fmt.Errorf("retire instance %s: %w", in.p.Name, err)
	}
	in.record(spec.StateTerminated, "retired")
	in.notify(spec.StateTerminated, "retired", false)
	return nil
}

// hostRetryInterval is how often a workflow whose host is away asks again.
const hostRetryInterval = 30 * time.Second

// waitForHost waits hostRetryInterval, or until the group declares the instance lost.
func (in *instance) waitForHost() (string, bool) {
	var reason string
	lost := false
	timerCtx, cancel := workflow.WithCancel(in.ctx)
	defer cancel()
	sel := workflow.NewSelector(in.ctx)
	sel.AddReceive(in.lost, func(c workflow.ReceiveChannel, _ bool) { c.Receive(in.ctx, &reason); lost = true })
	sel.AddFuture(workflow.NewTimer(timerCtx, hostRetryInterval), func(workflow.Future) {})
	sel.Select(in.ctx)
	return reason, lost
}

// lostChecksPerRun bounds the history of a lost instance waiting for a host that stays down.
const lostChecksPerRun = 500

// whenLost is the life of an instance lost with its host: recorded lost, it no longer counts;
// it waits for the host to answer again, then removes the VM and its disks, and ends.
func (in *instance) whenLost(reason string) error {
	if !in.p.Lost {
		in.p.Lost, in.p.LostReason = true, reason
		in.logger.Warn("instance lost with its host", "instance", in.p.Name, "reason", reason)
		in.record(spec.StateLost, reason)
		in.notify(spec.StateLost, reason, false)
	}
	var a *activities.Activities
	for checks := 0; ; checks++ {
		if checks >= lostChecksPerRun {
			return workflow.NewContinueAsNewError(in.ctx, InstanceWorkflow, in.p)
		}
		if err := workflow.Sleep(in.ctx, in.p.Launch.Health.CheckInterval()); err != nil {
			return err
		}
		var hosts []spec.Host
		if err := in.db(a.HostStates, []string{in.p.Host}).Get(in.ctx, &hosts); err != nil {
			in.logger.Warn("could not read the state of a lost instance's host", "instance", in.p.Name, "host", in.p.Host, "error", err)
			continue
		}
		if len(hosts) != 1 || !hosts[0].Up {
			continue
		}
		if err := in.destroy(in.ctx); err != nil {
			in.logger.Warn("could not remove a lost instance from its host, which answers again", "instance", in.p.Name, "error", err)
			continue
		}
		why := fmt.Sprintf("lost (%s), removed when host %s answered again", in.p.LostReason, in.p.Host)
		in.record(spec.StateTerminated, why)
		in.notify(spec.StateTerminated, why, false)
		return nil
	}
}

// signalWhile waits for f unless a retire or lost signal comes first; it leaves the signal
// unread for the caller, and says whether f is ready.
func (in *instance) signalWhile(f workflow.Future) bool {
	signalled := false
	sel := workflow.NewSelector(in.ctx)
	sel.AddFuture(f, func(workflow.Future) {})
	sel.AddReceive(in.retire, func(workflow.ReceiveChannel, bool) { signalled = true })
	sel.AddReceive(in.lost, func(workflow.ReceiveChannel, bool) { signalled = true })
	sel.Select(in.ctx)
	return !signalled
}

// isHostAway says whether an activity on a host's task queue was never picked up: the host's
// worker is not running.
func isHostAway(err error) bool {
	var te *temporal.TimeoutError
	return errors.As(err, &te) && te.TimeoutType() == enums.TIMEOUT_TYPE_SCHEDULE_TO_START
}

// isApplicationError says whether err is an activity's ApplicationError of the given type.
func isApplicationError(err error, typ string) bool {
	var ae *temporal.ApplicationError
	return errors.As(err, &ae) && ae.Type() == typ
}

func (in *instance) destroy(ctx workflow.Context) error {
	var h *activities.HostActivities
	grace := in.p.Launch.Health.ShutdownGrace
	opts := workflow.ActivityOptions{
		TaskQueue:           spec.HostTaskQueue(in.p.Host),
		StartToCloseTimeout: grace + 2*time.Minute,
		HeartbeatTimeout:    destroyHeartbeatTimeout,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute, MaximumAttempts: 20},
	}
	if in.fleet {
		// No activity waits without limit for a host.
		opts.ScheduleToStartTimeout = hostScheduleToStart
	}
	dctx := workflow.WithActivityOptions(ctx, opts)
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

// db runs a state database activity: in lean runs a local activity, which the workflow's own
// worker runs within the workflow task (one event, its result, instead of an activity task and
// the workflow task after it). A local activity retries inside the workflow task, so it gets
// only a few seconds: when the database does not answer by then (an outage), the write falls
// back to a regular activity, which waits the outage out with the same retries and bound as
// outside lean runs, without holding a workflow task open.
func (in *instance) db(activity any, args ...any) workflow.Future {
	if !in.lean {
		return workflow.ExecuteActivity(in.dbCtx(), activity, args...)
	}
	return localFirst(in.ctx, in.dbCtx(), activity, args...)
}

// localFirst runs an activity as a local activity for a few seconds, then, if it has not
// succeeded, as a regular activity with regular's options. A local activity retries inside the
// workflow task: through an outage (of the database it writes to, or of Temporal it signals
// through) it would hold the task open, and the SDK warns and heartbeats the task, which fails
// while Temporal is away. A regular activity waits the outage out without holding a task.
func localFirst(ctx, regular workflow.Context, activity any, args ...any) workflow.Future {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    localActivityBound,
		ScheduleToCloseTimeout: localActivityBound,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Second},
	})
	local := workflow.ExecuteLocalActivity(lctx, activity, args...)
	result, settle := workflow.NewFuture(ctx)
	workflow.Go(ctx, func(gctx workflow.Context) {
		if err := local.Get(gctx, nil); err != nil {
			settle.Chain(workflow.ExecuteActivity(regular, activity, args...))
			return
		}
		settle.Chain(local)
	})
	return result
}

// localActivityBound is how long localFirst tries as a local activity before it falls back to
// a regular one: under the SDK's 5 s warning for a long workflow task.
const localActivityBound = 3 * time.Second

// setHost shows the instance's group and host in its search attributes, for runs that were
// started without them (by a group run before changeLeanHistory) or whose host is new; "" is
// no host yet.
func (in *instance) setHost(host string) {
	if !in.lean {
		return
	}
	have := workflow.GetTypedSearchAttributes(in.ctx)
	var set []temporal.SearchAttributeUpdate
	if g, ok := have.GetKeyword(spec.AttrGroup); !ok || g != in.p.Group {
		set = append(set, spec.AttrGroup.ValueSet(in.p.Group))
	}
	if h, ok := have.GetKeyword(spec.AttrHost); host != "" && (!ok || h != host) {
		set = append(set, spec.AttrHost.ValueSet(host))
	}
	if len(set) == 0 {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(in.ctx, set...); err != nil {
		in.logger.Warn("could not set the instance's search attributes", "instance", in.p.Name, "error", err)
	}
}

func (in *instance) record(state, reason string) {
	var a *activities.Activities
	rec := activities.InstanceRecord{
		Name: in.p.Name, Group: in.p.Group, Host: in.p.Host, State: state, Reason: reason,
		Address: in.p.Address, At: workflow.Now(in.ctx),
	}
	if err := in.db(a.RecordInstance, rec).Get(in.ctx, nil); err != nil {
		in.logger.Warn("could not record instance state", "instance", in.p.Name, "state", state, "error", err)
	}
}

func (in *instance) notify(state, reason string, replace bool) {
	st := spec.InstanceStatus{Name: in.p.Name, State: state, Reason: reason, Address: in.p.Address, Replace: replace, NoRoom: in.noRoom}
	if in.clientReports {
		// Through the client, with the reports other instances of this worker send the group
		// at the same time (see activities.ReportStatus): the group may hear a report twice,
		// which it ignores, rather than a hundred reports one after another.
		var a *activities.Activities
		var res string
		err := localFirst(in.ctx, signalCtx(in.ctx), a.ReportStatus,
			activities.ReportParams{GroupWorkflowID: in.p.GroupWorkflowID, Status: st}).Get(in.ctx, &res)
		if reason := callOutcome([]string{res}, 0, err); reason != "" {
			in.logger.Warn("could not report to group", "instance", in.p.Name, "group", in.p.GroupWorkflowID, "error", reason)
		}
		return
	}
	if err := workflow.SignalExternalWorkflow(in.ctx, in.p.GroupWorkflowID, "", spec.SignalInstanceStatus, st).Get(in.ctx, nil); err != nil {
		in.logger.Warn("could not report to group", "instance", in.p.Name, "group", in.p.GroupWorkflowID, "error", err)
	}
}
