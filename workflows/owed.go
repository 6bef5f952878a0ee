package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/premiscale/premiscale/internal/spec"
)

// Replacements owed. A failed instance the group still wanted is owed a replacement until one
// is launched: the limits (maxNodes, maxConcurrentLaunches, a launch back-off) may hold it
// back, a pause or a dry run too, but no evaluation forgets it. Owed replacements count toward
// the group's size as booting instances do, so an evaluation neither launches them a second
// time nor, holding on missing data, settles for the smaller size; a scale-in takes them off
// first, before it retires instances that run.

// onInstanceStatus applies an instance's report under the intent rules.
func (g *group) onInstanceStatus(ctx workflow.Context, st spec.InstanceStatus) {
	fx := g.applyStatus(ctx, st)
	if fx.owed(st) && !g.st.Deleting {
		g.st.ReplacementsOwed++
		g.logger.Info("replacing failed instance", "instance", st.Name, "reason", st.Reason, "owed", g.st.ReplacementsOwed)
		if fx.wasLaunch && !st.Replace {
			// A replacement whose launch failed: the next evaluation tries again, so a launch
			// that fails at once cannot spin.
			return
		}
	}
	// Any report may have freed what held an owed replacement back: a launch finished, an
	// instance is gone.
	g.payOwed(ctx)
}

// payOwed launches the owed replacements the limits allow now; it returns what held the rest
// back, if any.
func (g *group) payOwed(ctx workflow.Context) string {
	switch {
	case g.st.ReplacementsOwed == 0 || g.st.Deleting:
		return ""
	case g.st.Paused:
		return "the group is paused"
	case g.eff.DryRun:
		return "the group is a dry run"
	}
	n, limit := g.launchUpTo(ctx, g.st.ReplacementsOwed, "replacement of a failed instance", true)
	g.st.ReplacementsOwed -= n
	return limit
}

// capOwed forgets owed replacements the maximum no longer leaves room for.
func (g *group) capOwed() {
	room := max(0, g.eff.Policy.Max-g.live())
	if g.st.ReplacementsOwed > room {
		g.note("%d replacements owed, but the max %d leaves room for %d: the others are not owed any more", g.st.ReplacementsOwed, g.eff.Policy.Max, room)
		g.st.ReplacementsOwed = room
	}
}

// actOwing launches or retires instances for an evaluation that went from live+owed to `to`:
// owed replacements come off first when the group is to shrink, and are launched before new
// instances when it is to grow. It returns what limited it, if anything.
func (g *group) actOwing(ctx workflow.Context, to int) string {
	live := g.live()
	owed := &g.st.ReplacementsOwed
	if excess := live + *owed - to; excess > 0 && *owed > 0 {
		cancel := min(excess, *owed)
		*owed -= cancel
	}
	switch {
	case to > live:
		want := to - live
		paid, limit := 0, ""
		if *owed > 0 {
			paid, limit = g.launchUpTo(ctx, min(*owed, want), "replacement of a failed instance", true)
			*owed -= paid
		}
		fresh := 0
		if rest := want - paid - *owed; rest > 0 && limit == "" {
			fresh, limit = g.launchUpTo(ctx, rest, "", false)
		}
		if paid+fresh < want {
			return fmt.Sprintf("; launched %d of %d: %s", paid+fresh, want, limit)
		}
	case to < live:
		retired := g.retire(ctx, live-to, g.st.Deleting)
		if retired < live-to {
			return fmt.Sprintf("; retired %d of %d: the others are protected from scale-in", retired, live-to)
		}
	}
	return ""
}
