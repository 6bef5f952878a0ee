package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/premiscale/premiscale/internal/spec"
)

// Rolling replacement. Every instance carries the group's launch generation from when it was
// launched; a change of what a launch makes (image, domain shape, cloud-init, networking,
// health) starts a new generation, and so does `premiscale group roll`. A roll then replaces
// the instances of older generations, in steps bounded by the group's rollout:
//
//   - at most rollout.maxSurge new instances above what the roll has retired, launched within
//     maxNodes;
//   - an old instance retires once a new one runs (checked in) in its place, or earlier, up to
//     rollout.maxUnavailable of them.
//
// A new instance that fails (no check-in, a failed launch) stops the roll and keeps the old
// instances, until the next change or `group roll`. A paused group's roll waits with it.

// RollState is a rolling replacement in progress (or the last one).
type RollState struct {
	Reason string
	// StartedAt is set at the roll's first step.
	StartedAt time.Time `json:",omitzero"`
	// Total is how many instances were to be replaced at the start; Retired how many old ones
	// the roll retired so far.
	Total, Retired int
	// Stopped says why a new instance's failure stopped the roll; Done that it finished.
	Stopped string `json:",omitempty"`
	Done    bool   `json:",omitempty"`
}

// trackLaunch starts a new launch generation when what a launch makes changed, and a roll of
// the instances of the older ones.
func (g *group) trackLaunch() {
	fp := fingerprint(g.eff.Launch)
	switch {
	case g.st.LaunchPrint == "":
		// The first spec this run knows (or a run from before generations): nothing to roll.
		g.st.LaunchPrint = fp
	case fp != g.st.LaunchPrint:
		g.st.LaunchPrint = fp
		g.st.Generation++
		g.startRoll("the launch spec changed (image, domain, cloud-init, networking or health)")
	}
}

// startRoll replaces every instance of an older generation than the current one.
func (g *group) startRoll(reason string) {
	old := g.oldInstances()
	if len(old) == 0 {
		return
	}
	g.st.Roll = &RollState{Reason: reason, Total: len(old)}
	g.note("rolling replacement of %d instances started: %s", len(old), reason)
}

// oldInstances are the live instances of an older generation, oldest first.
func (g *group) oldInstances() []spec.InstanceRef {
	var old []spec.InstanceRef
	for _, ref := range g.st.Instances {
		if spec.IsLive(ref.State) && ref.Generation < g.st.Generation {
			old = append(old, ref)
		}
	}
	slices.SortFunc(old, func(a, b spec.InstanceRef) int { return a.Seq - b.Seq })
	return old
}

// rollStep moves a roll on and says what it did or what holds it, for the decision log; a
// step that retired, launched or finished something is always written there.
func (g *group) rollStep(ctx workflow.Context) string {
	r := g.st.Roll
	if r == nil || r.Done || r.Stopped != "" || g.st.Deleting || g.st.Paused || g.eff.DryRun {
		return ""
	}
	before := len(g.st.Instances)
	retiredBefore := r.Retired
	msg := g.stepRoll(ctx, r)
	if len(g.st.Instances) != before || r.Retired != retiredBefore || r.Done {
		g.rollActed = true
	}
	return msg
}

func (g *group) stepRoll(ctx workflow.Context, r *RollState) string {
	if r.StartedAt.IsZero() {
		r.StartedAt = workflow.Now(ctx)
	}
	old := g.oldInstances()
	var launched, running, pending int
	for _, ref := range g.st.Instances {
		if !ref.Rolled || !spec.IsLive(ref.State) {
			continue
		}
		launched++
		if ref.State == spec.StateRunning {
			running++
		} else {
			pending++
		}
	}
	if len(old) == 0 {
		if pending > 0 {
			return fmt.Sprintf("; rolling replacement: %d new instances still booting", pending)
		}
		r.Done = true
		g.clearRolled()
		return fmt.Sprintf("; rolling replacement done: %d instances replaced (%s)", r.Total, r.Reason)
	}
	ro := g.eff.Rollout
	// Retire the old instances the running new ones stand in for, and maxUnavailable more.
	var did []string
	canRetire := min(len(old), running+ro.MaxUnavailable-r.Retired)
	for _, ref := range old[:max(canRetire, 0)] {
		g.signalRetire(ctx, ref.Name, ref.Host)
		r.Retired++
		did = append(did, "retired "+ref.Name)
	}
	old = old[max(canRetire, 0):]
	// Launch replacements for the old ones still there, up to maxSurge beyond what is retired.
	want := min(len(old)-pending, ro.MaxSurge-(launched-r.Retired))
	holds := ""
	// maxSurge lets the roll go above maxNodes too: a group at its maximum (a fixed-size group)
	// must still be able to roll without taking an instance out first.
	g.rolling = true
	defer func() { g.rolling = false }()
	for i := 0; i < want; i++ {
		n, limit := g.launchUpTo(ctx, 1, "rolling replacement", false)
		if n == 0 {
			holds = limit
			break
		}
		g.st.Instances[len(g.st.Instances)-1].Rolled = true
		did = append(did, "launched "+g.st.Instances[len(g.st.Instances)-1].Name)
	}
	msg := fmt.Sprintf("; rolling replacement (%s): %d of %d replaced", r.Reason, r.Total-len(old), r.Total)
	if len(did) > 0 {
		msg += ", " + strings.Join(did, ", ")
	}
	if holds != "" {
		msg += "; waiting: " + holds
	}
	return msg
}

// rollSurplus counts the roll's new instances that do not stand in for a retired old one yet:
// they are above the group's size (by up to maxSurge), and neither the policy nor maxNodes
// counts them.
func (g *group) rollSurplus() int {
	r := g.st.Roll
	if r == nil || r.Done || r.Stopped != "" {
		return 0
	}
	n := 0
	for _, ref := range g.st.Instances {
		if ref.Rolled && spec.IsLive(ref.State) {
			n++
		}
	}
	return max(n-r.Retired, 0)
}

// rollFailed stops the roll when one of its new instances failed: the old ones stay.
func (g *group) rollFailed(name, reason string) {
	r := g.st.Roll
	if r == nil || r.Done || r.Stopped != "" {
		return
	}
	r.Stopped = fmt.Sprintf("%s failed (%s): the roll stopped and the old instances are kept; run premiscale group roll to try again", name, reason)
	g.note("rolling replacement stopped: %s", r.Stopped)
	g.clearRolled()
}

// clearRolled makes the roll's new instances ordinary members once the roll is over.
func (g *group) clearRolled() {
	for i := range g.st.Instances {
		g.st.Instances[i].Rolled = false
	}
}

// rollStatus is the roll as status shows it.
func (g *group) rollStatus() *spec.RollStatus {
	r := g.st.Roll
	if r == nil {
		return nil
	}
	return &spec.RollStatus{
		Active: !r.Done && r.Stopped == "", Reason: r.Reason, Total: r.Total,
		Replaced: r.Total - len(g.oldInstances()), StartedAt: r.StartedAt, Stopped: r.Stopped,
	}
}
