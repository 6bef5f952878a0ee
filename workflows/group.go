package workflows

import (
	"fmt"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/workflow"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/policy"
	"github.com/premiscale/premiscale/internal/spec"
)

// defaultEvaluationsPerRun bounds a run's history even when the server never suggests
// continue-as-new (each evaluation adds a timer and a few activities).
const defaultEvaluationsPerRun = 500

// GroupState is the whole state of a group workflow. It is the workflow's argument, so
// continue-as-new carries it over exactly: policy clocks, the stabilization window, sequence
// numbers, protected instances and operator requests not yet applied.
type GroupState struct {
	Spec spec.Group
	// NextSeq is the last instance sequence number used; names are "<group>-<seq>".
	NextSeq   int
	Instances []spec.InstanceRef
	// Policy is the scaling engine's memory: cooldown clocks, recent recommendations, changes.
	Policy       policy.State
	LastDecision *spec.DecisionRecord
	// Evaluations counts evaluations over the group's whole life.
	Evaluations int
	Deleting    bool
	Paused      bool
	// Desired is an operator's explicit size (group scale --desired), applied at the next
	// evaluation; 0 with DesiredSet false means none pending.
	Desired    int
	DesiredSet bool
	// Launches tracks consecutive launch failures and the back-off they caused.
	Launches spec.LaunchHealth
	// EvaluationsPerRun overrides defaultEvaluationsPerRun (tests use a small value).
	EvaluationsPerRun int
	// PendingReplacements counts failed instances to replace at the next evaluation (reported
	// while the run was about to continue as new).
	PendingReplacements int
	// DecisionLog remembers the decision log's last row, so identical evaluations are counted
	// on it instead of written again.
	DecisionLog DecisionLogState
	// SequenceLoaded is set once the highest sequence used by an earlier incarnation of the
	// group was read from the state database, so names never repeat across incarnations.
	SequenceLoaded bool
}

// NewGroupState is the starting state of a group.
func NewGroupState(spec spec.Group) GroupState { return GroupState{Spec: spec} }

type group struct {
	st     GroupState
	wfID   string
	runID  string
	logger log.Logger
	// wake is signalled by update handlers so the main loop acts at once.
	wake workflow.Channel
}

// GroupWorkflow keeps one autoscaling group at the size its policy asks for: every interval it
// reads the group's metrics, decides, and launches or retires instances (each an
// InstanceWorkflow child) to match. It ends only when the group is deleted.
func GroupWorkflow(ctx workflow.Context, st GroupState) error {
	info := workflow.GetInfo(ctx)
	g := &group{
		st: st, wfID: info.WorkflowExecution.ID, runID: info.WorkflowExecution.RunID,
		logger: workflow.GetLogger(ctx), wake: workflow.NewBufferedChannel(ctx, 1),
	}
	if err := g.registerHandlers(ctx); err != nil {
		return err
	}
	specCh := workflow.GetSignalChannel(ctx, spec.SignalSpec)
	deleteCh := workflow.GetSignalChannel(ctx, spec.SignalDelete)
	instanceCh := workflow.GetSignalChannel(ctx, spec.SignalInstanceStatus)
	pauseCh := workflow.GetSignalChannel(ctx, spec.SignalPause)
	resumeCh := workflow.GetSignalChannel(ctx, spec.SignalResume)

	var a *activities.Activities
	if !g.st.SequenceLoaded {
		var last int
		if err := workflow.ExecuteActivity(g.dbCtx(ctx), a.LastInstanceSequence, g.st.Spec.Name).Get(ctx, &last); err != nil {
			return fmt.Errorf("read the last instance number of group %s: %w", g.st.Spec.Name, err)
		}
		g.st.NextSeq = max(g.st.NextSeq, last)
		g.st.SequenceLoaded = true
	}
	g.recordGroup(ctx)

	perRun := g.st.EvaluationsPerRun
	if perRun <= 0 {
		perRun = defaultEvaluationsPerRun
	}
	for runEvaluations := 0; ; runEvaluations++ {
		if g.st.Deleting && len(g.st.Instances) == 0 {
			g.flushRepeats(ctx)
			rec := activities.GroupRecord{Name: g.st.Spec.Name, At: workflow.Now(ctx)}
			if err := workflow.ExecuteActivity(g.dbCtx(ctx), a.MarkGroupDeleted, rec).Get(ctx, nil); err != nil {
				g.logger.Warn("could not mark group deleted", "group", g.st.Spec.Name, "error", err)
			}
			g.logger.Info("group deleted", "group", g.st.Spec.Name)
			return nil
		}
		if runEvaluations >= perRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			// Updates in flight finish first; signals that arrived but were not read would be
			// lost with this run, so they are applied now.
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return err
			}
			g.drain(ctx, specCh, deleteCh, instanceCh, pauseCh, resumeCh)
			return workflow.NewContinueAsNewError(ctx, GroupWorkflow, g.st)
		}
		g.evaluate(ctx)

		timerCtx, cancelTimer := workflow.WithCancel(ctx)
		timer := workflow.NewTimer(timerCtx, g.st.Spec.Interval)
		for wake := false; !wake; {
			sel := workflow.NewSelector(ctx)
			sel.AddFuture(timer, func(workflow.Future) { wake = true })
			sel.AddReceive(specCh, func(c workflow.ReceiveChannel, _ bool) {
				var ns spec.Group
				c.Receive(ctx, &ns)
				g.applySpec(ctx, ns)
			})
			sel.AddReceive(deleteCh, func(c workflow.ReceiveChannel, _ bool) {
				c.Receive(ctx, nil)
				g.st.Deleting = true
				wake = true
			})
			sel.AddReceive(pauseCh, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); g.setPaused(true) })
			sel.AddReceive(resumeCh, func(c workflow.ReceiveChannel, _ bool) {
				c.Receive(ctx, nil)
				g.setPaused(false)
				wake = true
			})
			sel.AddReceive(g.wake, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); wake = true })
			sel.AddReceive(instanceCh, func(c workflow.ReceiveChannel, _ bool) {
				var st spec.InstanceStatus
				c.Receive(ctx, &st)
				if g.applyStatus(ctx, st) && !g.st.Deleting {
					g.logger.Info("replacing failed instance", "instance", st.Name, "reason", st.Reason)
					g.launchUpTo(ctx, 1, "replacement of "+st.Name)
				}
				wake = g.st.Deleting && len(g.st.Instances) == 0
			})
			sel.Select(ctx)
		}
		cancelTimer()
	}
}

func (g *group) drain(ctx workflow.Context, specCh, deleteCh, instanceCh, pauseCh, resumeCh workflow.ReceiveChannel) {
	for {
		var ns spec.Group
		if !specCh.ReceiveAsync(&ns) {
			break
		}
		g.st.Spec = ns
	}
	for {
		var st spec.InstanceStatus
		if !instanceCh.ReceiveAsync(&st) {
			break
		}
		if g.applyStatus(ctx, st) {
			g.st.PendingReplacements++
		}
	}
	for deleteCh.ReceiveAsync(nil) {
		g.st.Deleting = true
	}
	// Pause and resume are applied in the order the channels give; a pause and a resume in
	// the same drain leave the group as the later channel says, which is resume.
	for pauseCh.ReceiveAsync(nil) {
		g.st.Paused = true
	}
	for resumeCh.ReceiveAsync(nil) {
		g.st.Paused = false
	}
}

func (g *group) applySpec(ctx workflow.Context, ns spec.Group) {
	g.st.Spec = ns
	g.logger.Info("group spec updated", "group", ns.Name, "min", ns.Policy.Min, "max", ns.Policy.Max)
	g.recordGroup(ctx)
}

func (g *group) setPaused(paused bool) {
	g.st.Paused = paused
	g.logger.Info("group paused state changed", "group", g.st.Spec.Name, "paused", paused)
}

func (g *group) live() int {
	n := 0
	for _, ref := range g.st.Instances {
		if spec.IsLive(ref.State) {
			n++
		}
	}
	return n
}

func (g *group) status() spec.GroupStatus {
	desired := g.live()
	if g.st.LastDecision != nil {
		desired = g.st.LastDecision.To
	}
	return spec.GroupStatus{
		Group:        g.st.Spec.Name,
		Min:          g.st.Spec.Policy.Min,
		Max:          g.st.Spec.Policy.Max,
		Desired:      desired,
		Current:      g.live(),
		Deleting:     g.st.Deleting,
		Paused:       g.st.Paused,
		DryRun:       g.st.Spec.DryRun,
		Instances:    append([]spec.InstanceRef{}, g.st.Instances...),
		LastDecision: g.st.LastDecision,
		Launches:     g.st.Launches,
		Evaluations:  g.st.Evaluations,
	}
}

func (g *group) recordGroup(ctx workflow.Context) {
	var a *activities.Activities
	rec := activities.GroupRecord{Name: g.st.Spec.Name, Spec: g.st.Spec, WorkflowID: g.wfID, At: workflow.Now(ctx)}
	if err := workflow.ExecuteActivity(g.dbCtx(ctx), a.RecordGroup, rec).Get(ctx, nil); err != nil {
		g.logger.Warn("could not record group", "group", g.st.Spec.Name, "error", err)
	}
}

func (g *group) dbCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, databaseActivityOptions)
}
