package workflows

import (
	"fmt"
	"time"

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
// numbers, protected instances, operator overrides and requests not yet applied, and the
// replacements the group owes.
type GroupState struct {
	// Spec is the config's spec, as the worker or `group create` sent it last. The spec in
	// force is Spec with the operator's Overrides applied (see EffectiveSpec).
	Spec spec.Group
	// Overrides are what an operator set over the config; each lasts until the operator
	// clears it or the config's own value for it changes.
	Overrides Overrides `json:",omitzero"`
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
	// Desired is an operator's explicit size (group scale --desired), the goal until the group
	// reaches it, the goal expires (see goalTimeout) or the bounds move away from it; 0 with
	// DesiredSet false means none pending. DesiredAt is when it was set.
	Desired    int
	DesiredSet bool
	DesiredAt  time.Time `json:",omitzero"`
	// Launches tracks consecutive launch failures and the back-off they caused.
	Launches spec.LaunchHealth
	// EvaluationsPerRun overrides defaultEvaluationsPerRun (tests use a small value).
	EvaluationsPerRun int
	// ReplacementsOwed counts failed instances not replaced yet: they are launched as soon as
	// the limits allow, whatever the evaluations decide meanwhile (a scale-in takes them off
	// before it retires running instances). The JSON name is the one histories recorded.
	ReplacementsOwed int `json:"PendingReplacements"`
	// Notes say what changed in the operator's intent since the last evaluation (a goal
	// clamped or expired, an override the config replaced); the next evaluation gives them in
	// its reason and writes them to the decision log.
	Notes []string `json:",omitempty"`
	// DecisionLog remembers the decision log's last row, so identical evaluations are counted
	// on it instead of written again.
	DecisionLog DecisionLogState
	// Generation is the current launch generation, LaunchPrint the fingerprint of the launch
	// spec it stands for; Roll is the rolling replacement in progress (or the last one).
	Generation  int        `json:",omitempty"`
	LaunchPrint string     `json:",omitempty"`
	Roll        *RollState `json:",omitempty"`
	// SequenceLoaded is set once the highest sequence used by an earlier incarnation of the
	// group was read from the state database, so names never repeat across incarnations.
	SequenceLoaded bool
	// PoolTaken counts the instances scale-outs took from the warm pool.
	PoolTaken int `json:",omitempty"`
	// MemoSignature is the signature of the decision the memo shows (changeLeanHistory).
	MemoSignature string `json:",omitempty"`
}

// NewGroupState is the starting state of a group.
func NewGroupState(spec spec.Group) GroupState { return GroupState{Spec: spec} }

type group struct {
	st GroupState
	// eff is the spec in force: st.Spec with st.Overrides applied (see refresh).
	eff spec.Group
	// intent is set for runs with the rules of changeOperatorIntent (overrides that survive
	// the config's spec, goals checked against the bounds, replacements owed).
	intent bool
	// fleet is set for runs with the rules of changeFleet (hosts observed every evaluation,
	// placement by capacity, lost instances).
	fleet bool
	// lean is set for runs with the rules of changeLeanHistory (local observations, upserts
	// on change, commands issued together), clientStarts for those of changeClientStarts
	// (instances started and signalled through the client).
	lean, clientStarts bool
	// issued are the instance starts and signals issued and not waited for yet (lean runs).
	issued issuedCommands
	// hosts is the last observation of the group's hosts; nil before the first.
	hosts []spec.Host
	// rollActed is set by an evaluation whose roll step did something worth a decision-log row.
	rollActed bool
	// rolling is set while a roll step launches: its new instances may go above maxNodes.
	rolling bool
	wfID    string
	runID   string
	logger  log.Logger
	// wake is signalled by update handlers so the main loop acts at once.
	wake workflow.Channel

	// pool is set for runs with the rules of changeWarmPool (see warmpool.go); poolTaken and
	// poolReturned name what the current evaluation moved, poolActed says it did something
	// worth a decision-log row.
	pool                    bool
	poolTaken, poolReturned []string
	poolActed               bool
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
	// Runs recorded before the change replaced the whole spec with every spec signal, wrote
	// operator bounds into it, and dropped replacements the limits refused.
	g.intent = workflow.GetVersion(ctx, changeOperatorIntent, workflow.DefaultVersion, 1) >= 1
	g.fleet = g.intent && workflow.GetVersion(ctx, changeFleet, workflow.DefaultVersion, 1) >= 1
	g.pool = g.fleet && workflow.GetVersion(ctx, changeWarmPool, workflow.DefaultVersion, 1) >= 1
	g.lean = g.fleet && workflow.GetVersion(ctx, changeLeanHistory, workflow.DefaultVersion, 1) >= 1
	g.clientStarts = g.lean && workflow.GetVersion(ctx, changeClientStarts, workflow.DefaultVersion, 1) >= 1
	g.refresh()
	if err := g.registerHandlers(ctx); err != nil {
		return err
	}
	specCh := workflow.GetSignalChannel(ctx, spec.SignalSpec)
	deleteCh := workflow.GetSignalChannel(ctx, spec.SignalDelete)
	instanceCh := workflow.GetSignalChannel(ctx, spec.SignalInstanceStatus)
	// Reports a worker sends together; only instances with client reports send them.
	reportsCh := workflow.GetSignalChannel(ctx, spec.SignalInstanceStatuses)
	pauseCh := workflow.GetSignalChannel(ctx, spec.SignalPause)
	resumeCh := workflow.GetSignalChannel(ctx, spec.SignalResume)

	var a *activities.Activities
	if !g.st.SequenceLoaded {
		var last int
		if err := workflow.ExecuteActivity(g.dbCtx(ctx), a.LastInstanceSequence, g.eff.Name).Get(ctx, &last); err != nil {
			return fmt.Errorf("read the last instance number of group %s: %w", g.eff.Name, err)
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
		if g.st.Deleting && g.owned() == 0 {
			g.flushRepeats(ctx)
			rec := activities.GroupRecord{Name: g.eff.Name, At: workflow.Now(ctx)}
			if err := workflow.ExecuteActivity(g.dbCtx(ctx), a.MarkGroupDeleted, rec).Get(ctx, nil); err != nil {
				g.logger.Warn("could not mark group deleted", "group", g.eff.Name, "error", err)
			}
			g.logger.Info("group deleted", "group", g.eff.Name)
			return nil
		}
		if runEvaluations >= perRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			// Updates in flight finish first; signals that arrived but were not read would be
			// lost with this run, so they are applied now.
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return err
			}
			g.drain(ctx, specCh, deleteCh, instanceCh, reportsCh, pauseCh, resumeCh)
			return workflow.NewContinueAsNewError(ctx, GroupWorkflow, g.st)
		}
		g.evaluate(ctx)

		timerCtx, cancelTimer := workflow.WithCancel(ctx)
		timer := workflow.NewTimer(timerCtx, g.eff.Interval)
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
				g.setDeleting()
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
				g.onReports(ctx, st)
				wake = g.st.Deleting && g.owned() == 0
			})
			sel.AddReceive(reportsCh, func(c workflow.ReceiveChannel, _ bool) {
				var sts []spec.InstanceStatus
				c.Receive(ctx, &sts)
				g.onReports(ctx, sts...)
				wake = g.st.Deleting && g.owned() == 0
			})
			sel.Select(ctx)
		}
		cancelTimer()
	}
}

// onReports applies instances' reports as they come between evaluations; what they call for
// (replacements) is issued together.
func (g *group) onReports(ctx workflow.Context, sts ...spec.InstanceStatus) {
	for _, st := range sts {
		if g.intent {
			g.onInstanceStatus(ctx, st)
		} else if g.applyStatus(ctx, st).replaceAtOnce(st, g.backingOff(ctx)) && !g.st.Deleting {
			g.logger.Info("replacing failed instance", "instance", st.Name, "reason", st.Reason)
			g.launchUpTo(ctx, 1, "replacement of "+st.Name, false)
		}
	}
	if g.intent {
		g.awaitIssued(ctx)
	}
}

func (g *group) drain(ctx workflow.Context, specCh, deleteCh, instanceCh, reportsCh, pauseCh, resumeCh workflow.ReceiveChannel) {
	for {
		var ns spec.Group
		if !specCh.ReceiveAsync(&ns) {
			break
		}
		if g.intent {
			g.mergeConfigSpec(ns)
		} else {
			g.st.Spec = ns
		}
	}
	apply := func(st spec.InstanceStatus) {
		fx := g.applyStatus(ctx, st)
		switch {
		case g.intent:
			if fx.owed(st) {
				g.st.ReplacementsOwed++
			}
		case fx.replaceAtOnce(st, g.backingOff(ctx)):
			g.st.ReplacementsOwed++
		}
	}
	for {
		var st spec.InstanceStatus
		if !instanceCh.ReceiveAsync(&st) {
			break
		}
		apply(st)
	}
	for {
		var sts []spec.InstanceStatus
		if !reportsCh.ReceiveAsync(&sts) {
			break
		}
		for _, st := range sts {
			apply(st)
		}
	}
	g.refresh()
	for deleteCh.ReceiveAsync(nil) {
		g.setDeleting()
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

// applySpec takes the config's spec from a spec signal (a worker's start, `group create`).
func (g *group) applySpec(ctx workflow.Context, ns spec.Group) {
	if g.intent {
		g.mergeConfigSpec(ns)
	} else {
		g.st.Spec = ns
		g.refresh()
	}
	g.logger.Info("group spec updated", "group", ns.Name, "min", g.eff.Policy.Min, "max", g.eff.Policy.Max)
	g.recordGroup(ctx)
}

func (g *group) setDeleting() {
	g.st.Deleting = true
	if g.intent {
		// Nothing is owed to a group that is going away.
		g.st.ReplacementsOwed = 0
	}
}

func (g *group) setPaused(paused bool) {
	g.st.Paused = paused
	g.logger.Info("group paused state changed", "group", g.eff.Name, "paused", paused)
}

// owned counts the instances the group owns in any state but lost: what maxNodes bounds. A
// lost instance is its workflow's to remove once its host answers again; a group being deleted
// does not wait for it.
func (g *group) owned() int {
	n := 0
	for _, ref := range g.st.Instances {
		if ref.State != spec.StateLost {
			n++
		}
	}
	return n
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
	s := spec.GroupStatus{
		Group:            g.eff.Name,
		Min:              g.eff.Policy.Min,
		Max:              g.eff.Policy.Max,
		Desired:          desired,
		Current:          g.live(),
		Deleting:         g.st.Deleting,
		Paused:           g.st.Paused,
		DryRun:           g.eff.DryRun,
		Instances:        append([]spec.InstanceRef{}, g.st.Instances...),
		LastDecision:     g.st.LastDecision,
		Launches:         g.st.Launches,
		Evaluations:      g.st.Evaluations,
		Sources:          g.sources(),
		Config:           spec.Bounds{Min: g.st.Spec.Policy.Min, Max: g.st.Spec.Policy.Max},
		ReplacementsOwed: g.st.ReplacementsOwed,
		Roll:             g.rollStatus(),
		Hosts:            g.eff.Hosts,
		Pool:             g.poolStatus(),
	}
	if l := g.eff.Launch; l.ImageVolume != "" {
		s.Image = l.ImagePool + "/" + l.ImageVolume
	}
	if g.st.DesiredSet {
		s.Goal = &spec.Goal{Size: g.st.Desired, SetAt: g.st.DesiredAt}
		if g.intent && !g.st.DesiredAt.IsZero() {
			s.Goal.Expires = g.st.DesiredAt.Add(goalTimeout(g.eff.Interval))
		}
	}
	return s
}

func (g *group) recordGroup(ctx workflow.Context) {
	var a *activities.Activities
	rec := activities.GroupRecord{Name: g.eff.Name, Spec: g.eff, WorkflowID: g.wfID, At: workflow.Now(ctx)}
	if err := workflow.ExecuteActivity(g.dbCtx(ctx), a.RecordGroup, rec).Get(ctx, nil); err != nil {
		g.logger.Warn("could not record group", "group", g.eff.Name, "error", err)
	}
}

func (g *group) dbCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, databaseActivityOptions)
}
