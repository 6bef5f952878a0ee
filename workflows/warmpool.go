package workflows

import (
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/workflow"

	"github.com/premiscale/premiscale/internal/placement"
	"github.com/premiscale/premiscale/internal/spec"
)

// Warm pools. A group with warmPool.size > 0 keeps up to that many instances created ahead of
// need, booted once and parked (stopped, saved or running: see poolmember.go). They are in the
// group's Instances in state warming (being created, booted or parked) or warm (parked),
// which count toward maxNodes and hold room on their hosts, but not toward the group's size or
// its metrics (spec.IsLive is false for them, and their domains are marked so the collector
// leaves them out).
//
//   - A launch takes a warm member of the current launch generation first (a warming one next:
//     it runs as soon as it is up), on a host that is up; only the rest launch cold
//     (launchUpTo). A taken member is resuming, and live, until its workflow says it runs.
//   - Every evaluation then retires what the pool should no longer hold — members of an older
//     generation (a spec change refreshes the pool), those beyond warmPool.size or beyond what
//     maxNodes leaves after the group's own instances, all of them when the group is deleted —
//     and refills it, within maxNodes, maxConcurrentLaunches (warming members count) and the
//     launch back-off; not while the group is paused or a dry run.
//   - With reuseOnScaleIn a scale-in returns instances of the current generation to the pool,
//     up to its size, instead of retiring them (retire).
//   - A member that fails (to boot, to park, in the pool) is only replaced by the refill; one
//     that fails to resume after it was taken is owed a replacement like any failed instance.

// poolMembers counts the pool's members of the current generation: warm and warming.
func (g *group) poolMembers() (warm, warming int) {
	for _, ref := range g.st.Instances {
		if ref.Generation != g.st.Generation {
			continue
		}
		switch ref.State {
		case spec.StateWarm:
			warm++
		case spec.StateWarming:
			warming++
		}
	}
	return warm, warming
}

// takeFromPool takes up to n members of the current generation into the group, warm ones
// first, and returns how many it took. A taken member moves to the end of Instances, as a
// launch would add it (a roll marks the last instance it launched).
func (g *group) takeFromPool(ctx workflow.Context, n int, why string, replacement bool) int {
	if !g.pool || n <= 0 {
		return 0
	}
	taken := 0
	for taken < n {
		i := g.poolCandidate()
		if i < 0 {
			break
		}
		ref := g.st.Instances[i]
		g.st.Instances = append(g.st.Instances[:i], g.st.Instances[i+1:]...)
		ref.State, ref.Replacement, ref.Reason = spec.StateResuming, replacement, why
		if ref.Reason == "" {
			ref.Reason = "taken from the warm pool"
		}
		g.st.Instances = append(g.st.Instances, ref)
		counted := false
		if !g.signalInstance(ctx, ref.Name, spec.SignalTake, nil, func(reason string) {
			// Its workflow is gone: so is the member. A lean run learns it after the take was
			// counted; the shortfall is launched by the next evaluation.
			g.logger.Warn("could not take a warm-pool member", "instance", ref.Name, "error", reason)
			g.applyStatus(ctx, spec.InstanceStatus{Name: ref.Name, State: spec.StateTerminated, Reason: reason})
			if counted {
				g.st.PoolTaken--
			}
		}) {
			continue
		}
		counted = true
		g.logger.Info("took an instance from the warm pool", "group", g.eff.Name, "instance", ref.Name)
		g.poolTaken = append(g.poolTaken, ref.Name)
		g.st.PoolTaken++
		taken++
	}
	return taken
}

// poolCandidate is the index of the member a take gets: warm before warming, the oldest first,
// never one on a host known to be down.
func (g *group) poolCandidate() int {
	best := -1
	for i, ref := range g.st.Instances {
		if !spec.InPool(ref.State) || ref.Generation != g.st.Generation {
			continue
		}
		if h, ok := g.host(ref.Host); ok && !h.Up {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		b := g.st.Instances[best]
		if (ref.State == spec.StateWarm) != (b.State == spec.StateWarm) {
			if ref.State == spec.StateWarm {
				best = i
			}
			continue
		}
		if ref.Seq < b.Seq {
			best = i
		}
	}
	return best
}

// returnToPool parks a live instance a scale-in chose in the warm pool instead of retiring it,
// when the group reuses instances and its pool has room; it says whether it did.
func (g *group) returnToPool(ctx workflow.Context, ref spec.InstanceRef) bool {
	w := g.eff.WarmPool
	if !g.pool || !w.ReuseOnScaleIn || w.Size <= 0 || g.st.Deleting || ref.Generation != g.st.Generation || ref.Rolled {
		return false
	}
	if warm, warming := g.poolMembers(); warm+warming >= w.Size {
		return false
	}
	for i := range g.st.Instances {
		if g.st.Instances[i].Name == ref.Name {
			in := &g.st.Instances[i]
			in.State, in.Defined, in.Replacement, in.Reason = spec.StateWarming, true, false, "returned to the warm pool"
		}
	}
	if !g.signalInstance(ctx, ref.Name, spec.SignalPark, w.State, func(reason string) {
		g.logger.Warn("could not return an instance to the warm pool", "instance", ref.Name, "error", reason)
		g.applyStatus(ctx, spec.InstanceStatus{Name: ref.Name, State: spec.StateTerminated, Reason: reason})
	}) {
		return true
	}
	g.poolReturned = append(g.poolReturned, ref.Name)
	return true
}

// poolStep says what the evaluation did with the pool (takes and returns), trims the pool and
// refills it. It returns the text for the decision's reason, "" when nothing happened.
func (g *group) poolStep(ctx workflow.Context, outcome string) string {
	var did []string
	if len(g.poolTaken) > 0 {
		did = append(did, "took "+strings.Join(g.poolTaken, ", ")+" from the warm pool")
	}
	if len(g.poolReturned) > 0 {
		did = append(did, "returned "+strings.Join(g.poolReturned, ", ")+" to the warm pool")
	}
	g.poolTaken, g.poolReturned = nil, nil
	if outcome == spec.OutcomeActed || outcome == spec.OutcomeHeld || outcome == spec.OutcomeDeleting {
		if retired := g.trimPool(ctx); len(retired) > 0 {
			did = append(did, "retired "+strings.Join(retired, ", ")+" from the warm pool")
		}
		launched, holds := g.refillPool(ctx)
		if len(launched) > 0 {
			did = append(did, "launched "+strings.Join(launched, ", ")+" into the warm pool")
		}
		if holds != "" && len(did) > 0 {
			did = append(did, "the pool waits: "+holds)
		}
	}
	if len(did) == 0 {
		return ""
	}
	g.poolActed = true
	warm, warming := g.poolMembers()
	return fmt.Sprintf("; warm pool (%d ready, %d warming of %d): %s", warm, warming, g.eff.WarmPool.Size, strings.Join(did, "; "))
}

// poolWant is how many members the pool should hold now: its size, within what maxNodes leaves
// after the group's other instances (live, retiring, members of older generations).
func (g *group) poolWant() int {
	if g.st.Deleting || g.eff.DryRun {
		return 0
	}
	warm, warming := g.poolMembers()
	others := g.owned() - warm - warming
	return max(0, min(g.eff.WarmPool.Size, g.eff.Policy.Max-others))
}

// trimPool retires the members the pool should not hold, and returns their names.
func (g *group) trimPool(ctx workflow.Context) []string {
	var stale, current []spec.InstanceRef
	for _, ref := range g.st.Instances {
		switch {
		case !spec.InPool(ref.State):
		case ref.Generation != g.st.Generation:
			stale = append(stale, ref)
		default:
			current = append(current, ref)
		}
	}
	// Past what is wanted, warming members go before warm ones, the newest first.
	slices.SortStableFunc(current, func(a, b spec.InstanceRef) int {
		if aw, bw := a.State == spec.StateWarm, b.State == spec.StateWarm; aw != bw {
			if aw {
				return 1
			}
			return -1
		}
		return b.Seq - a.Seq
	})
	excess := max(0, len(current)-g.poolWant())
	var names []string
	for _, ref := range append(stale, current[:excess]...) {
		g.setState(ref.Name, spec.StateRetiring)
		g.signalInstance(ctx, ref.Name, spec.SignalRetire, nil, func(reason string) {
			g.logger.Warn("could not signal a warm-pool member to retire", "instance", ref.Name, "error", reason)
			g.applyStatus(ctx, spec.InstanceStatus{Name: ref.Name, State: spec.StateTerminated, Reason: reason})
		})
		names = append(names, ref.Name)
	}
	return names
}

// refillPool launches the members the pool lacks, within maxNodes, maxConcurrentLaunches and
// the launch back-off, and returns their names and, if fewer, why.
func (g *group) refillPool(ctx workflow.Context) ([]string, string) {
	switch {
	case g.st.Deleting || g.eff.DryRun || g.eff.WarmPool.Size <= 0:
		return nil, ""
	case g.st.Paused:
		return nil, "the group is paused"
	case g.backingOff(ctx):
		return nil, "launches back off: " + g.st.Launches.LastError
	}
	warm, warming := g.poolMembers()
	need := g.poolWant() - warm - warming
	var names []string
	var hosts []placement.Host
	for ; need > 0; need-- {
		if owned := g.owned(); owned >= g.eff.Policy.Max {
			return names, fmt.Sprintf("the group owns %d instances and maxNodes is %d", owned, g.eff.Policy.Max)
		}
		if limit := g.eff.MaxConcurrentLaunches; limit > 0 && g.inFlight()+g.warming() >= limit {
			return names, fmt.Sprintf("%d launches already in flight (maxConcurrentLaunches %d)", g.inFlight()+g.warming(), limit)
		}
		if hosts == nil {
			hosts = g.placementHosts(ctx)
			placement.Load(hosts, g.st.Instances, g.shape())
		}
		host, err := placement.Pick(g.eff.Placement, hosts, g.shape())
		if err != nil {
			return names, err.Error()
		}
		if !g.launch(ctx, "warm pool", host, false, g.eff.WarmPool.State) {
			return names, "no free static address"
		}
		names = append(names, g.st.Instances[len(g.st.Instances)-1].Name)
		for i := range hosts {
			if hosts[i].Name == host {
				hosts[i].GroupInstances++
				hosts[i].UsedCPUs += g.shape().VCPUs
				hosts[i].UsedMemoryMiB += g.shape().MemoryMiB
			}
		}
	}
	return names, ""
}

// warming counts the pool's members being created, booted or parked, of any generation.
func (g *group) warming() int {
	n := 0
	for _, ref := range g.st.Instances {
		if ref.State == spec.StateWarming {
			n++
		}
	}
	return n
}

// poolStatus is the pool as status shows it; nil for a group without one.
func (g *group) poolStatus() *spec.PoolStatus {
	w := g.eff.WarmPool
	warm, warming := g.poolMembers()
	if w.Size <= 0 && warm+warming == 0 {
		return nil
	}
	return &spec.PoolStatus{Size: w.Size, State: w.State, ReuseOnScaleIn: w.ReuseOnScaleIn, Ready: warm, Warming: warming, Taken: g.st.PoolTaken}
}
