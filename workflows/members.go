package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/placement"
	"github.com/premiscale/premiscale/internal/spec"
)

// launchUpTo launches at most n instances, fewer when a limit holds: maxNodes counts every
// instance the group owns in any state, launches in flight are bounded, and a group whose
// launches keep failing backs off. It returns how many it launched and, if fewer, why.
// replacement marks the instances as replacements of failed ones.
func (g *group) launchUpTo(ctx workflow.Context, n int, why string, replacement bool) (int, string) {
	// The warm pool first: its members are not bound by the launch limits, they are owned already.
	if taken := g.takeFromPool(ctx, n, why, replacement); taken > 0 {
		if taken == n {
			return n, ""
		}
		launched, limit := g.launchUpTo(ctx, n-taken, why, replacement)
		return taken + launched, limit
	}
	now := workflow.Now(ctx)
	if l := g.st.Launches; now.Before(l.BlockedUntil) {
		return 0, fmt.Sprintf("launch failing: %s (%d in a row; next attempt after %s)",
			l.LastError, l.ConsecutiveFailures, l.BlockedUntil.Format(time.RFC3339))
	}
	launched := 0
	var hosts []placement.Host
	for ; launched < n; launched++ {
		limit, owned := g.eff.Policy.Max, g.owned()
		if g.rolling {
			limit += g.eff.Rollout.MaxSurge
		} else {
			owned -= g.rollSurplus()
		}
		if owned >= limit && g.rolling {
			return launched, fmt.Sprintf("the group owns %d instances (booting and retiring ones count): maxNodes %d + rollout.maxSurge %d", owned, g.eff.Policy.Max, g.eff.Rollout.MaxSurge)
		}
		if owned >= limit {
			return launched, fmt.Sprintf("the group owns %d instances (booting and retiring ones count) and maxNodes is %d", owned, g.eff.Policy.Max)
		}
		if limit := g.eff.MaxConcurrentLaunches; limit > 0 && g.inFlight() >= limit {
			return launched, fmt.Sprintf("%d launches already in flight (maxConcurrentLaunches %d)", g.inFlight(), limit)
		}
		if hosts == nil {
			// Read once per batch: each launch below adds its own shape to the host it took.
			hosts = g.placementHosts(ctx)
			placement.Load(hosts, g.st.Instances, g.shape())
		}
		host, err := placement.Pick(g.eff.Placement, hosts, g.shape())
		if err != nil {
			return launched, err.Error()
		}
		if !g.launch(ctx, why, host, replacement, "") {
			return launched, "no free static address"
		}
		for i := range hosts {
			if hosts[i].Name == host {
				hosts[i].GroupInstances++
				hosts[i].UsedCPUs += g.shape().VCPUs
				hosts[i].UsedMemoryMiB += g.shape().MemoryMiB
			}
		}
	}
	return launched, ""
}

// shape is what one instance of the group takes from a host; zero for a template group, whose
// shape is the template's (the host's worker checks it when it defines the domain).
func (g *group) shape() placement.Shape {
	d := g.eff.Launch.Domain
	return placement.Shape{VCPUs: d.VCPUs, MemoryMiB: int64(d.Memory)}
}

// placementHosts reads the group's hosts as the fleet sees them: up or down, capacity, use.
// When that cannot be read every host counts as down: a launch never goes to a host without
// known room.
func (g *group) placementHosts(ctx workflow.Context) []placement.Host {
	hosts := make([]placement.Host, len(g.eff.Hosts))
	if !g.fleet {
		// Runs recorded before placement knew capacity placed by instance count alone.
		for i, name := range g.eff.Hosts {
			hosts[i].Host = spec.Host{Name: name, Up: true, CPUs: 1 << 30, MemoryMiB: 1 << 50, Allowance: spec.Allowance{CPUOvercommit: 1, MemoryOvercommit: 1}}
		}
		return hosts
	}
	states := g.hosts
	if states == nil {
		var a *activities.Activities
		f := workflow.ExecuteActivity(g.dbCtx(ctx), a.HostStates, g.eff.Hosts)
		if g.lean {
			f = g.observeActivity(ctx, a.HostStates, g.eff.Hosts)
		}
		if err := f.Get(ctx, &states); err != nil {
			g.logger.Warn("could not read host states", "group", g.eff.Name, "error", err)
			for i, name := range g.eff.Hosts {
				hosts[i].Host = spec.Host{Name: name, Down: "its state could not be read: " + rootCause(err)}
			}
			return hosts
		}
	}
	for i, name := range g.eff.Hosts {
		hosts[i].Host = spec.Host{Name: name, Down: "its state is unknown"}
		for _, h := range states {
			if h.Name == name {
				hosts[i].Host = h
			}
		}
	}
	return hosts
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

// launch starts one InstanceWorkflow on host; false when static networking has no address
// left. replacement marks the instance as the replacement of a failed one; pool, when set,
// launches a warm-pool member to be parked in that state.
func (g *group) launch(ctx workflow.Context, why, host string, replacement bool, pool spec.PoolState) bool {
	address := ""
	if g.eff.Launch.Networking.Type == spec.NetworkStatic {
		a, ok := placement.FreeAddress(g.eff.StaticAddresses, g.st.Instances)
		if !ok {
			g.logger.Warn("no free static address; not launching", "group", g.eff.Name, "in_use", len(g.st.Instances))
			return false
		}
		address = a.String()
	}
	g.st.NextSeq++
	ref := spec.InstanceRef{
		Name:        fmt.Sprintf("%s-%d", g.eff.Name, g.st.NextSeq),
		Seq:         g.st.NextSeq,
		Host:        host,
		State:       spec.StateLaunching,
		LaunchedAt:  workflow.Now(ctx),
		Address:     address,
		Reason:      why,
		Replacement: replacement,
		Generation:  g.st.Generation,
	}
	if pool != "" {
		ref.State = spec.StateWarming
	}
	g.st.Instances = append(g.st.Instances, ref)
	g.metrics(ctx).launched(host)
	params := InstanceParams{
		Name: ref.Name, Group: g.eff.Name, Host: ref.Host, Index: ref.Seq, Address: address,
		Launch: g.eff.Launch, GroupWorkflowID: g.wfID, Pool: pool,
	}
	failed := func(reason string) {
		g.logger.Warn("could not start instance workflow", "instance", ref.Name, "error", reason)
		g.applyStatus(ctx, spec.InstanceStatus{Name: ref.Name, State: spec.StateFailed, Reason: reason})
	}
	if g.clientStarts {
		params.Rules = rulesClientReports
		// Deterministic output (see fingerprint); workflowcheck flags encoding/json's type cache.
		input, err := json.Marshal(params) //workflowcheck:ignore
		if err != nil {
			failed(fmt.Sprintf("encode the instance's parameters: %v", err))
			return true
		}
		summary, details := instanceSummary(params, why)
		g.queueStart(ctx, activities.WorkflowStart{
			ID: spec.InstanceWorkflowID(ref.Name), Group: g.eff.Name, Host: host,
			Summary: summary, Details: details, Input: input,
		}, failed)
		return true
	}
	opts := workflow.ChildWorkflowOptions{
		WorkflowID: spec.InstanceWorkflowID(ref.Name),
		// Instances outlive a run of their group (continue-as-new) and report back by signal.
		ParentClosePolicy: enums.PARENT_CLOSE_POLICY_ABANDON,
	}
	if g.lean {
		// One query lists a group's instances, or a host's.
		opts.TypedSearchAttributes = temporal.NewSearchAttributes(spec.AttrGroup.ValueSet(g.eff.Name), spec.AttrHost.ValueSet(host))
		opts.StaticSummary, opts.StaticDetails = instanceSummary(params, why)
	}
	child := workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, opts), InstanceWorkflow, params)
	g.issue(ctx, child.GetChildWorkflowExecution(), len(g.eff.Launch.CloudInit)+4096, func(err error) { failed(err.Error()) })
	return true
}

// statusEffect is what an instance's report did to the group.
type statusEffect struct {
	// failed: the instance failed and is gone from the group.
	failed bool
	// wasLaunch: it failed before it ever ran (a failed launch); wasRetiring: while retiring.
	wasLaunch, wasRetiring bool
	// wasReplacement: it was itself a replacement of a failed instance.
	wasReplacement bool
	// noRoom: its host's worker refused the launch for lack of room.
	noRoom bool
	// lost: a live instance was lost with its host.
	lost bool
	// rolled: a rolling replacement launched it, beyond the group's size.
	rolled bool
	// pool: it was a warm-pool member, which the pool's refill replaces; resuming: a
	// scale-out had taken it from the pool, and the group still wants it.
	pool, resuming bool
}

// replaceAtOnce is the rule of runs before changeOperatorIntent: a failure that calls for a
// replacement now, one at a time, none while launches back off.
func (fx statusEffect) replaceAtOnce(st spec.InstanceStatus, backingOff bool) bool {
	switch {
	case !fx.failed || fx.pool:
		return false
	case fx.wasLaunch:
		return st.Replace && !backingOff
	}
	return st.Replace && !fx.wasRetiring
}

// owed says whether the failure leaves the group owing a replacement: an instance the group
// still wanted went bad (st.Replace), or a replacement's own launch failed.
func (fx statusEffect) owed(st spec.InstanceStatus) bool {
	return fx.lost || fx.failed && !fx.wasRetiring && !fx.rolled && !fx.pool && (st.Replace || fx.wasReplacement || fx.noRoom || fx.resuming)
}

// applyStatus moves an instance forward; late or repeated reports never move it back.
func (g *group) applyStatus(ctx workflow.Context, st spec.InstanceStatus) statusEffect {
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
				return statusEffect{}
			}
			g.logger.Warn("instance failed", "instance", st.Name, "reason", st.Reason)
			fx := statusEffect{failed: true, wasRetiring: ref.State == spec.StateRetiring, wasReplacement: ref.Replacement, rolled: ref.Rolled,
				pool: spec.InPool(ref.State), resuming: ref.State == spec.StateResuming}
			if ref.Rolled {
				g.rollFailed(st.Name, st.Reason)
			}
			if ref.State == spec.StateLaunching || ref.State == spec.StateBooting || ref.State == spec.StateWarming {
				// It never ran: that is a failed launch, and enough of them in a row stop
				// the group from creating more until a back-off passes. A host that had no
				// room after all is no failure of the launch: it goes elsewhere.
				fx.wasLaunch = true
				g.metrics(ctx).launchFailed(ref.Host, st)
				if st.NoRoom {
					fx.noRoom = true
				} else {
					g.launchFailed(ctx, st.Reason)
				}
			}
			return fx
		case spec.StateLost:
			if ref.State != spec.StateLost {
				g.st.Instances[i].State, g.st.Instances[i].Reason = spec.StateLost, st.Reason
				return statusEffect{lost: spec.IsLive(ref.State)}
			}
		case spec.StateBooting:
			if ref.State == spec.StateLaunching {
				g.st.Instances[i].State = spec.StateBooting
			}
		case spec.StateRunning:
			if ref.State == spec.StateLaunching || ref.State == spec.StateBooting || ref.State == spec.StateResuming {
				g.st.Instances[i].State = spec.StateRunning
				g.st.Launches = spec.LaunchHealth{}
			}
		case spec.StateWarming:
			g.st.Instances[i].Defined = true
		case spec.StateWarm:
			if ref.State == spec.StateWarming {
				g.st.Instances[i].State, g.st.Instances[i].Defined = spec.StateWarm, true
				g.st.Launches = spec.LaunchHealth{}
			}
		}
		return statusEffect{}
	}
	return statusEffect{}
}

// backingOff says whether launches wait for a back-off to pass.
func (g *group) backingOff(ctx workflow.Context) bool {
	return workflow.Now(ctx).Before(g.st.Launches.BlockedUntil)
}

func (g *group) launchFailed(ctx workflow.Context, reason string) {
	l := &g.st.Launches
	l.ConsecutiveFailures++
	l.LastError = reason
	b := g.eff.LaunchBackoff
	if b.After <= 0 || l.ConsecutiveFailures < b.After {
		return
	}
	wait := b.Initial
	for i := b.After; i < l.ConsecutiveFailures && wait < b.Max; i++ {
		wait *= 2
	}
	wait = min(wait, b.Max)
	l.BlockedUntil = workflow.Now(ctx).Add(wait)
	g.logger.Warn("launches failing; backing off", "group", g.eff.Name, "failures", l.ConsecutiveFailures, "wait", wait, "last_error", reason)
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
	candidates = placement.RetireOrder(g.eff.TerminationPolicy, candidates)
	if g.fleet {
		// Instances of an older generation go first: a roll would replace them anyway.
		slices.SortStableFunc(candidates, func(a, b spec.InstanceRef) int { return a.Generation - b.Generation })
	}
	if len(candidates) > n {
		candidates = candidates[:n]
	}
	for _, c := range candidates {
		if !force && g.returnToPool(ctx, c) {
			continue
		}
		g.signalRetire(ctx, c.Name, c.Host)
	}
	return len(candidates)
}

// signalRetire tells an instance to retire.
func (g *group) signalRetire(ctx workflow.Context, name, host string) {
	g.setState(name, spec.StateRetiring)
	g.metrics(ctx).retired(host)
	g.signalInstance(ctx, name, spec.SignalRetire, nil, func(reason string) {
		// The instance workflow is gone, so nothing is left to retire.
		g.logger.Warn("could not signal instance to retire", "instance", name, "error", reason)
		g.applyStatus(ctx, spec.InstanceStatus{Name: name, State: spec.StateTerminated, Reason: reason})
	})
}

func (g *group) setState(name, state string) {
	for i := range g.st.Instances {
		if g.st.Instances[i].Name == name {
			g.st.Instances[i].State = state
		}
	}
}

// rootCause is the innermost message of an activity's error: Temporal wraps each attempt's
// failure, and the chain would repeat the same context several times.
func rootCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}
