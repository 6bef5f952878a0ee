package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/policy"
)

// defaultEvaluationsPerRun bounds a run's history even when the server never suggests
// continue-as-new (each evaluation adds a timer and a few activities).
const defaultEvaluationsPerRun = 500

// GroupState is the whole state of a group workflow. It is the workflow's argument, so
// continue-as-new carries it over exactly.
type GroupState struct {
	Spec GroupSpec
	// NextSeq is the last instance sequence number used; names are "<group>-<seq>".
	NextSeq   int
	Instances []InstanceRef
	// LastActionAt is when the group last changed size (cooldown clock).
	LastActionAt time.Time
	LastDecision *DecisionRecord
	// Evaluations counts evaluations over the group's whole life.
	Evaluations int
	Deleting    bool
	// EvaluationsPerRun overrides defaultEvaluationsPerRun (tests use a small value).
	EvaluationsPerRun int
	// PendingReplacements counts failed instances to replace at the next evaluation (reported
	// while the run was about to continue as new).
	PendingReplacements int
	// SequenceLoaded is set once the highest sequence used by an earlier incarnation of the
	// group was read from the state database, so names never repeat across incarnations.
	SequenceLoaded bool
}

// InstanceRef is the group's view of one of its instances.
type InstanceRef struct {
	Name       string    `json:"name"`
	Seq        int       `json:"seq"`
	Host       string    `json:"host"`
	State      string    `json:"state"`
	LaunchedAt time.Time `json:"launchedAt"`
	Reason     string    `json:"reason,omitempty"`
	Address    string    `json:"address,omitempty"`
}

// DecisionRecord is the latest evaluation, as shown by status.
type DecisionRecord struct {
	At          time.Time          `json:"at"`
	Action      string             `json:"action"`
	From        int                `json:"from"`
	To          int                `json:"to"`
	Recommended int                `json:"recommended"`
	Reason      string             `json:"reason"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
}

// GroupStatus is the answer to QueryStatus.
type GroupStatus struct {
	Group        string          `json:"group"`
	Min          int             `json:"min"`
	Max          int             `json:"max"`
	Desired      int             `json:"desired"`
	Current      int             `json:"current"`
	Deleting     bool            `json:"deleting"`
	Instances    []InstanceRef   `json:"instances"`
	LastDecision *DecisionRecord `json:"lastDecision,omitempty"`
	Evaluations  int             `json:"evaluations"`
}

// InstanceStatus is what an InstanceWorkflow tells its group.
type InstanceStatus struct {
	Name, State, Reason, Address string
	// Replace asks the group to launch a replacement for a failed instance right away.
	Replace bool
}

// NewGroupState is the starting state of a group.
func NewGroupState(spec GroupSpec) GroupState { return GroupState{Spec: spec} }

type group struct {
	st     GroupState
	wfID   string
	runID  string
	logger log.Logger
}

// GroupWorkflow keeps one autoscaling group at the size its policy asks for: every interval it
// reads the group's metrics, decides, and launches or retires instances (each an
// InstanceWorkflow child) to match. It ends only when the group is deleted.
func GroupWorkflow(ctx workflow.Context, st GroupState) error {
	info := workflow.GetInfo(ctx)
	g := &group{st: st, wfID: info.WorkflowExecution.ID, runID: info.WorkflowExecution.RunID, logger: workflow.GetLogger(ctx)}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (GroupStatus, error) { return g.status(), nil }); err != nil {
		return fmt.Errorf("register status query: %w", err)
	}
	specCh := workflow.GetSignalChannel(ctx, SignalSpec)
	deleteCh := workflow.GetSignalChannel(ctx, SignalDelete)
	instanceCh := workflow.GetSignalChannel(ctx, SignalInstanceStatus)

	dbCtx := workflow.WithActivityOptions(ctx, databaseActivityOptions)
	var a *activities.Activities
	if !g.st.SequenceLoaded {
		var last int
		if err := workflow.ExecuteActivity(dbCtx, a.LastInstanceSequence, g.st.Spec.Name).Get(ctx, &last); err != nil {
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
			rec := activities.GroupRecord{Name: g.st.Spec.Name, At: workflow.Now(ctx)}
			if err := workflow.ExecuteActivity(dbCtx, a.MarkGroupDeleted, rec).Get(ctx, nil); err != nil {
				g.logger.Warn("could not mark group deleted", "group", g.st.Spec.Name, "error", err)
			}
			g.logger.Info("group deleted", "group", g.st.Spec.Name)
			return nil
		}
		if runEvaluations >= perRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			// Signals that arrived but were not read would be lost with this run.
			g.drain(ctx, specCh, deleteCh, instanceCh)
			return workflow.NewContinueAsNewError(ctx, GroupWorkflow, g.st)
		}
		g.evaluate(ctx)

		timerCtx, cancelTimer := workflow.WithCancel(ctx)
		timer := workflow.NewTimer(timerCtx, g.st.Spec.Interval)
		for wake := false; !wake; {
			sel := workflow.NewSelector(ctx)
			sel.AddFuture(timer, func(workflow.Future) { wake = true })
			sel.AddReceive(specCh, func(c workflow.ReceiveChannel, _ bool) { g.applySpec(ctx, c) })
			sel.AddReceive(deleteCh, func(c workflow.ReceiveChannel, _ bool) {
				c.Receive(ctx, nil)
				g.st.Deleting = true
				wake = true
			})
			sel.AddReceive(instanceCh, func(c workflow.ReceiveChannel, _ bool) {
				g.applyInstanceStatus(ctx, c)
				wake = g.st.Deleting && len(g.st.Instances) == 0
			})
			sel.Select(ctx)
		}
		cancelTimer()
	}
}

var databaseActivityOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 30 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 10,
	},
}

func (g *group) drain(ctx workflow.Context, specCh, deleteCh, instanceCh workflow.ReceiveChannel) {
	for {
		var spec GroupSpec
		if !specCh.ReceiveAsync(&spec) {
			break
		}
		g.st.Spec = spec
	}
	for {
		var st InstanceStatus
		if !instanceCh.ReceiveAsync(&st) {
			break
		}
		if g.applyStatus(st) {
			g.st.PendingReplacements++
		}
	}
	for deleteCh.ReceiveAsync(nil) {
		g.st.Deleting = true
	}
}

func (g *group) applySpec(ctx workflow.Context, c workflow.ReceiveChannel) {
	var spec GroupSpec
	c.Receive(ctx, &spec)
	g.st.Spec = spec
	g.logger.Info("group spec updated", "group", spec.Name, "min", spec.Policy.Min, "max", spec.Policy.Max)
	g.recordGroup(ctx)
}

func (g *group) applyInstanceStatus(ctx workflow.Context, c workflow.ReceiveChannel) {
	var st InstanceStatus
	c.Receive(ctx, &st)
	if g.applyStatus(st) && !g.st.Deleting {
		g.logger.Info("replacing failed instance", "instance", st.Name, "reason", st.Reason)
		g.launch(ctx)
	}
}

// applyStatus moves an instance forward; late or repeated reports never move it back. It
// reports whether the instance failed in a way that calls for a replacement.
func (g *group) applyStatus(st InstanceStatus) (replace bool) {
	for i, ref := range g.st.Instances {
		if ref.Name != st.Name {
			continue
		}
		if st.Address != "" {
			g.st.Instances[i].Address = st.Address
		}
		switch st.State {
		case StateTerminated, StateFailed:
			g.st.Instances = append(g.st.Instances[:i], g.st.Instances[i+1:]...)
			if st.State == StateFailed {
				g.logger.Warn("instance failed", "instance", st.Name, "reason", st.Reason)
			}
			// A replacement only makes sense for an instance the group still wanted.
			return st.Replace && ref.State != StateRetiring
		case StateBooting:
			if ref.State == StateLaunching {
				g.st.Instances[i].State = StateBooting
			}
		case StateRunning:
			if ref.State == StateLaunching || ref.State == StateBooting {
				g.st.Instances[i].State = StateRunning
			}
		}
		return false
	}
	return false
}

func (g *group) live() int {
	n := 0
	for _, ref := range g.st.Instances {
		if isLive(ref.State) {
			n++
		}
	}
	return n
}

// isLive says whether an instance in this state counts toward the group's size.
func isLive(state string) bool {
	return state == StateLaunching || state == StateBooting || state == StateRunning
}

func (g *group) status() GroupStatus {
	desired := g.live()
	if g.st.LastDecision != nil {
		desired = g.st.LastDecision.To
	}
	return GroupStatus{
		Group:        g.st.Spec.Name,
		Min:          g.st.Spec.Policy.Min,
		Max:          g.st.Spec.Policy.Max,
		Desired:      desired,
		Current:      g.live(),
		Deleting:     g.st.Deleting,
		Instances:    append([]InstanceRef{}, g.st.Instances...),
		LastDecision: g.st.LastDecision,
		Evaluations:  g.st.Evaluations,
	}
}

func (g *group) evaluate(ctx workflow.Context) {
	for ; g.st.PendingReplacements > 0; g.st.PendingReplacements-- {
		if !g.st.Deleting {
			g.launch(ctx)
		}
	}
	now := workflow.Now(ctx)
	current := g.live()
	var d policy.Decision
	var values map[string]float64
	if g.st.Deleting {
		d = policy.Decision{Action: policy.Hold, From: current, Desired: 0, Recommended: 0, Reason: "group is being deleted"}
		if current > 0 {
			d.Action = policy.ScaleIn
			d.Reason = fmt.Sprintf("group is being deleted; retiring %d", current)
		}
	} else {
		values = g.queryMetrics(ctx, current)
		d = policy.Decide(g.st.Spec.Policy, policy.Input{
			Now: now, Current: current, Metrics: values, LastAction: g.st.LastActionAt,
		})
	}
	g.st.Evaluations++
	g.st.LastDecision = &DecisionRecord{
		At: now, Action: string(d.Action), From: d.From, To: d.Desired, Recommended: d.Recommended,
		Reason: d.Reason, Metrics: values,
	}
	g.logger.Info("evaluated", "group", g.st.Spec.Name, "action", d.Action, "from", d.From, "to", d.Desired, "reason", d.Reason)

	switch d.Action {
	case policy.ScaleOut:
		for range d.Desired - current {
			g.launch(ctx)
		}
	case policy.ScaleIn:
		g.retireNewest(ctx, current-d.Desired)
	}
	if d.Action != policy.Hold {
		g.st.LastActionAt = now
		var a *activities.Activities
		ev := activities.ScalingEventRecord{
			Key:   fmt.Sprintf("%s/%s/%d", g.wfID, g.runID, g.st.Evaluations),
			Group: g.st.Spec.Name, At: now, From: d.From, To: d.Desired, Metrics: values,
			Reason: d.Reason, Action: string(d.Action), WorkflowID: g.wfID, RunID: g.runID,
		}
		dbCtx := workflow.WithActivityOptions(ctx, databaseActivityOptions)
		if err := workflow.ExecuteActivity(dbCtx, a.RecordScalingEvent, ev).Get(ctx, nil); err != nil {
			g.logger.Warn("could not record scaling event", "group", g.st.Spec.Name, "error", err)
		}
	}
	g.publish(ctx)
}

// queryMetrics returns the metric means, or nil when there are none to read or reading failed:
// the decision then holds (and still enforces the size bounds).
func (g *group) queryMetrics(ctx workflow.Context, current int) map[string]float64 {
	if current == 0 || len(g.st.Spec.Policy.Targets) == 0 {
		return nil
	}
	names := make([]string, 0, len(g.st.Spec.Policy.Targets))
	for _, name := range []string{"cpu", "memory"} {
		if _, ok := g.st.Spec.Policy.Targets[name]; ok {
			names = append(names, name)
		}
	}
	var a *activities.Activities
	var res activities.MetricsResult
	mctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	// Instances still booting have no meaningful load yet: they count as capacity, not as data.
	var exclude []string
	for _, ref := range g.st.Instances {
		if ref.State != StateRunning {
			exclude = append(exclude, ref.Name)
		}
	}
	q := activities.MetricsQuery{Group: g.st.Spec.Name, Window: g.st.Spec.Window, Metrics: names, Exclude: exclude}
	if err := workflow.ExecuteActivity(mctx, a.QueryGroupMetrics, q).Get(ctx, &res); err != nil {
		g.logger.Warn("metrics query failed; holding", "group", g.st.Spec.Name, "error", err)
		return nil
	}
	return res.Values
}

func (g *group) launch(ctx workflow.Context) {
	address := ""
	if g.st.Spec.Launch.Networking.Type == "static" {
		var ok bool
		if address, ok = g.freeAddress(); !ok {
			g.logger.Warn("no free static address; not launching", "group", g.st.Spec.Name, "in_use", len(g.st.Instances))
			return
		}
	}
	g.st.NextSeq++
	ref := InstanceRef{
		Name:       fmt.Sprintf("%s-%d", g.st.Spec.Name, g.st.NextSeq),
		Seq:        g.st.NextSeq,
		Host:       g.pickHost(),
		State:      StateLaunching,
		LaunchedAt: workflow.Now(ctx),
		Address:    address,
	}
	g.st.Instances = append(g.st.Instances, ref)
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID: InstanceWorkflowID(ref.Name),
		// Instances outlive a run of their group (continue-as-new) and report back by signal.
		ParentClosePolicy: enums.PARENT_CLOSE_POLICY_ABANDON,
	})
	params := InstanceParams{
		Name: ref.Name, Group: g.st.Spec.Name, Host: ref.Host, Index: ref.Seq, Address: address,
		Launch: g.st.Spec.Launch, GroupWorkflowID: g.wfID,
	}
	child := workflow.ExecuteChildWorkflow(cctx, InstanceWorkflow, params)
	if err := child.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		g.logger.Warn("could not start instance workflow", "instance", ref.Name, "error", err)
		g.applyStatus(InstanceStatus{Name: ref.Name, State: StateFailed, Reason: err.Error()})
	}
}

// freeAddress returns the first static address no instance of the group holds. Retiring
// instances still hold theirs: an address is free only once its VM is gone.
func (g *group) freeAddress() (string, bool) {
	for _, addr := range g.st.Spec.StaticAddresses {
		used := false
		for _, ref := range g.st.Instances {
			if ref.Address == addr {
				used = true
				break
			}
		}
		if !used {
			return addr, true
		}
	}
	return "", false
}

// pickHost places a new instance on the group's host with the fewest live instances; ties go
// to the host listed first.
func (g *group) pickHost() string {
	best, bestCount := "", -1
	for _, h := range g.st.Spec.Hosts {
		n := 0
		for _, ref := range g.st.Instances {
			if ref.Host == h && ref.State != StateRetiring {
				n++
			}
		}
		if bestCount < 0 || n < bestCount {
			best, bestCount = h, n
		}
	}
	return best
}

// retireNewest retires the n most recently launched live instances.
func (g *group) retireNewest(ctx workflow.Context, n int) {
	for i := len(g.st.Instances) - 1; i >= 0 && n > 0; i-- {
		ref := &g.st.Instances[i]
		if !isLive(ref.State) {
			continue
		}
		ref.State = StateRetiring
		n--
		name := ref.Name
		err := workflow.SignalExternalWorkflow(ctx, InstanceWorkflowID(name), "", SignalRetire, nil).Get(ctx, nil)
		if err != nil {
			// The instance workflow is gone, so nothing is left to retire.
			g.logger.Warn("could not signal instance to retire", "instance", name, "error", err)
			g.applyStatus(InstanceStatus{Name: name, State: StateTerminated, Reason: err.Error()})
		}
	}
}

func (g *group) recordGroup(ctx workflow.Context) {
	var a *activities.Activities
	dbCtx := workflow.WithActivityOptions(ctx, databaseActivityOptions)
	rec := activities.GroupRecord{Name: g.st.Spec.Name, Spec: g.st.Spec, WorkflowID: g.wfID, At: workflow.Now(ctx)}
	if err := workflow.ExecuteActivity(dbCtx, a.RecordGroup, rec).Get(ctx, nil); err != nil {
		g.logger.Warn("could not record group", "group", g.st.Spec.Name, "error", err)
	}
}

// publish shows the latest decision in the Temporal UI and in search attributes.
func (g *group) publish(ctx workflow.Context) {
	s := g.status()
	last := ""
	if s.LastDecision != nil {
		last = s.LastDecision.Action
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		AttrGroup.ValueSet(s.Group),
		AttrDesired.ValueSet(int64(s.Desired)),
		AttrCurrent.ValueSet(int64(s.Current)),
		AttrLastAction.ValueSet(last),
	); err != nil {
		g.logger.Warn("could not upsert search attributes", "error", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "**%s**: %d running or launching, desired %d (min %d, max %d)\n\n", s.Group, s.Current, s.Desired, s.Min, s.Max)
	if s.LastDecision != nil {
		fmt.Fprintf(&b, "Last decision at %s: %s (%s)\n", s.LastDecision.At.Format(time.RFC3339), s.LastDecision.Action, s.LastDecision.Reason)
	}
	workflow.SetCurrentDetails(ctx, b.String())
}
