package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/policy"
	"github.com/premiscale/premiscale/internal/spec"
)

// A group on a fleet of hosts. Every evaluation observes the group's checks and its hosts in
// one activity. A launch goes to an up host with room (internal/placement). An instance whose
// host has been down longer than the group's hostGracePeriod is lost: it stops counting toward
// the group's size and maxNodes, a replacement is owed, and its InstanceWorkflow removes the VM
// when the host answers again.

// observe reads the group's checks (nothing for fixed checks, at every size) and the state of
// its hosts and of the hosts its instances are on, in one activity.
func (g *group) observe(ctx workflow.Context, withChecks bool) map[string]policy.Reading {
	var queries []policy.Check
	if withChecks {
		for _, c := range g.eff.Policy.Checks {
			if c.ReadsData() && c.Metric != "" {
				queries = append(queries, c)
			}
		}
	}
	var exclude []string
	running := 0
	hosts := slices.Clone(g.eff.Hosts)
	for _, ref := range g.st.Instances {
		if ref.State == spec.StateRunning {
			running++
		} else {
			exclude = append(exclude, ref.Name)
		}
		if ref.Host != "" && !slices.Contains(hosts, ref.Host) {
			hosts = append(hosts, ref.Host)
		}
	}
	if g.lean && len(queries) == 0 && (len(g.st.Instances) == 0 || g.eff.HostGracePeriod <= 0) {
		// Nothing to read and no instance a host could lose: no observation at all, and a
		// launch reads its hosts' state when it places.
		g.hosts = nil
		return nil
	}
	p := activities.ObserveParams{
		Checks: activities.ReadChecksParams{Group: g.eff.Name, Checks: queries, Exclude: exclude, Running: running},
		Hosts:  hosts,
	}
	var a *activities.Activities
	var obs activities.Observation
	if err := g.observeActivity(ctx, a.Observe, p).Get(ctx, &obs); err != nil {
		// Every check then has no data and follows its onError rule; the hosts' state is
		// unknown, so nothing is placed and nothing is judged lost.
		g.logger.Warn("observing the group failed", "group", g.eff.Name, "error", err)
		obs.Readings = map[string]policy.Reading{}
		for _, c := range queries {
			obs.Readings[c.Name] = policy.Reading{Err: err.Error()}
		}
		g.hosts = nil
		return obs.Readings
	}
	switch {
	case obs.HostsErr != "" && obs.HostsUnreachable:
		g.logger.Debug("could not read host states", "group", g.eff.Name, "error", obs.HostsErr)
	case obs.HostsErr != "":
		g.logger.Warn("could not read host states", "group", g.eff.Name, "error", obs.HostsErr)
	}
	g.hosts = obs.Hosts
	g.markLost(ctx)
	return obs.Readings
}

// observeActivity runs a short read of the state database or InfluxDB that an evaluation
// waits for: a local activity in lean runs (no activity task, no events but its result),
// else a regular one.
func (g *group) observeActivity(ctx workflow.Context, activity any, args ...any) workflow.Future {
	retry := &temporal.RetryPolicy{MaximumAttempts: 3}
	if g.lean {
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: 30 * time.Second,
			RetryPolicy:         retry,
		})
		return workflow.ExecuteLocalActivity(lctx, activity, args...)
	}
	mctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         retry,
	})
	return workflow.ExecuteActivity(mctx, activity, args...)
}

// markLost declares lost the instances on hosts down longer than hostGracePeriod (never, when
// it is 0): each stops counting, a replacement is owed for each the group still wanted, and its
// workflow is told, so that it removes the VM when the host answers again.
func (g *group) markLost(ctx workflow.Context) {
	grace := g.eff.HostGracePeriod
	if grace <= 0 {
		return
	}
	for i, ref := range g.st.Instances {
		if ref.State == spec.StateLost {
			continue
		}
		h, ok := g.host(ref.Host)
		if !ok || h.Up || h.DownFor < grace {
			continue
		}
		reason := fmt.Sprintf("host %s down for %s (hostGracePeriod %s)", ref.Host, h.DownFor.Round(time.Second), grace)
		wanted := spec.IsLive(ref.State)
		g.st.Instances[i].State, g.st.Instances[i].Reason = spec.StateLost, reason
		g.logger.Warn("instance lost", "instance", ref.Name, "reason", reason)
		if wanted && !g.st.Deleting {
			g.st.ReplacementsOwed++
			g.note("%s lost: %s; a replacement is owed", ref.Name, reason)
		} else {
			g.note("%s lost: %s", ref.Name, reason)
		}
		g.signalInstance(ctx, ref.Name, spec.SignalLost, reason, func(why string) {
			g.logger.Warn("could not tell a lost instance", "instance", ref.Name, "error", why)
		})
	}
}

// host is the last observed state of the named host.
func (g *group) host(name string) (spec.Host, bool) {
	for _, h := range g.hosts {
		if h.Name == name {
			return h, true
		}
	}
	return spec.Host{}, false
}
