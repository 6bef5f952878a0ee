package workflows

import (
	"fmt"
	"time"

	"github.com/premiscale/premiscale/internal/placement"
	"github.com/premiscale/premiscale/internal/spec"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/workflow"
)

// launchUpTo launches at most n instances, fewer when a limit holds: maxNodes counts every
// instance the group owns in any state, launches in flight are bounded, and a group whose
// launches keep failing backs off. It returns how many it launched and, if fewer, why.
func (g *group) launchUpTo(ctx workflow.Context, n int, why string) (int, string) {
	now := workflow.Now(ctx)
	if l := g.st.Launches; now.Before(l.BlockedUntil) {
		return 0, fmt.Sprintf("launch failing: %s (%d in a row; next attempt after %s)",
			l.LastError, l.ConsecutiveFailures, l.BlockedUntil.Format(time.RFC3339))
	}
	launched := 0
	for ; launched < n; launched++ {
		if owned := len(g.st.Instances); owned >= g.st.Spec.Policy.Max {
			return launched, fmt.Sprintf("the group owns %d instances (booting and retiring ones count) and maxNodes is %d", owned, g.st.Spec.Policy.Max)
		}
		if limit := g.st.Spec.MaxConcurrentLaunches; limit > 0 && g.inFlight() >= limit {
			return launched, fmt.Sprintf("%d launches already in flight (maxConcurrentLaunches %d)", g.inFlight(), limit)
		}
		if !g.launch(ctx, why) {
			return launched, "no free static address"
		}
	}
	return launched, ""
}

func (g *group) inFlight() int {
	n := 0
	for _, ref := range g.st.Instances {
		if ref.State == spec.StateLaunching || ref.State == spec.StateBooting {
			n++
		}
	}
	return n
}

// launch starts one InstanceWorkflow; false when static networking has no address left.
func (g *group) launch(ctx workflow.Context, why string) bool {
	address := ""
	if g.st.Spec.Launch.Networking.Type == spec.NetworkStatic {
		a, ok := placement.FreeAddress(g.st.Spec.StaticAddresses, g.st.Instances)
		if !ok {
			g.logger.Warn("no free static address; not launching", "group", g.st.Spec.Name, "in_use", len(g.st.Instances))
			return false
		}
		address = a.String()
	}
	host, _ := placement.Pick(placement.Load(g.st.Spec.Hosts, g.st.Instances))
	g.st.NextSeq++
	ref := spec.InstanceRef{
		Name:       fmt.Sprintf("%s-%d", g.st.Spec.Name, g.st.NextSeq),
		Seq:        g.st.NextSeq,
		Host:       host,
		State:      spec.StateLaunching,
		LaunchedAt: workflow.Now(ctx),
		Address:    address,
		Reason:     why,
	}
	g.st.Instances = append(g.st.Instances, ref)
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID: spec.InstanceWorkflowID(ref.Name),
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
		g.applyStatus(ctx, spec.InstanceStatus{Name: ref.Name, State: spec.StateFailed, Reason: err.Error()})
	}
	return true
}

// applyStatus moves an instance forward; late or repeated reports never move it back. It
// reports whether the instance failed in a way that calls for a replacement now.
func (g *group) applyStatus(ctx workflow.Context, st spec.InstanceStatus) (replace bool) {
	for i, ref := range g.st.Instances {
		if ref.Name != st.Name {
			continue
		}
		if st.Address != "" {
			g.st.Instances[i].Address = st.Address
		}
		switch st.State {
		case spec.StateTerminated, spec.StateFailed:
			g.st.Instances = append(g.st.Instances[:i], g.st.Instances[i+1:]...)
			if st.State == spec.StateTerminated {
				return false
			}
			g.logger.Warn("instance failed", "instance", st.Name, "reason", st.Reason)
			if ref.State == spec.StateLaunching || ref.State == spec.StateBooting {
				// It never ran: that is a failed launch, and enough of them in a row stop
				// the group from creating more until a back-off passes.
				g.launchFailed(ctx, st.Reason)
				return st.Replace && !workflow.Now(ctx).Before(g.st.Launches.BlockedUntil)
			}
			// A replacement only makes sense for an instance the group still wanted.
			return st.Replace && ref.State != spec.StateRetiring
		case spec.StateBooting:
			if ref.State == spec.StateLaunching {
				g.st.Instances[i].State = spec.StateBooting
			}
		case spec.StateRunning:
			if ref.State == spec.StateLaunching || ref.State == spec.StateBooting {
				g.st.Instances[i].State = spec.StateRunning
				g.st.Launches = spec.LaunchHealth{}
			}
		}
		return false
	}
	return false
}

func (g *group) launchFailed(ctx workflow.Context, reason string) {
	l := &g.st.Launches
	l.ConsecutiveFailures++
	l.LastError = reason
	b := g.st.Spec.LaunchBackoff
	if b.After <= 0 || l.ConsecutiveFailures < b.After {
		return
	}
	wait := b.Initial
	for i := b.After; i < l.ConsecutiveFailures && wait < b.Max; i++ {
		wait *= 2
	}
	wait = min(wait, b.Max)
	l.BlockedUntil = workflow.Now(ctx).Add(wait)
	g.logger.Warn("launches failing; backing off", "group", g.st.Spec.Name, "failures", l.ConsecutiveFailures, "wait", wait, "last_error", reason)
}

// retire retires up to n live instances in the order of the termination policy, skipping
// protected ones unless force (the group is being deleted), and returns how many it retired.
func (g *group) retire(ctx workflow.Context, n int, force bool) int {
	var candidates []spec.InstanceRef
	for _, ref := range g.st.Instances {
		if spec.IsLive(ref.State) && (force || !ref.Protected) {
			candidates = append(candidates, ref)
		}
	}
	candidates = placement.RetireOrder(g.st.Spec.TerminationPolicy, candidates)
	if len(candidates) > n {
		candidates = candidates[:n]
	}
	for _, c := range candidates {
		g.setState(c.Name, spec.StateRetiring)
		if err := workflow.SignalExternalWorkflow(ctx, spec.InstanceWorkflowID(c.Name), "", spec.SignalRetire, nil).Get(ctx, nil); err != nil {
			// The instance workflow is gone, so nothing is left to retire.
			g.logger.Warn("could not signal instance to retire", "instance", c.Name, "error", err)
			g.applyStatus(ctx, spec.InstanceStatus{Name: c.Name, State: spec.StateTerminated, Reason: err.Error()})
		}
	}
	return len(candidates)
}

func (g *group) setState(name, state string) {
	for i := range g.st.Instances {
		if g.st.Instances[i].Name == name {
			g.st.Instances[i].State = state
		}
	}
}
