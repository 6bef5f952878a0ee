package workflows

import (
	"fmt"
	"strings"

	"github.com/premiscale/premiscale/internal/spec"
)

// What the Temporal web UI shows at the top of a group's or an instance's workflow: a one-line
// summary and markdown details, fixed when the workflow starts (Temporal keeps them for that
// run only; a run after continue-as-new shows its current details instead). Durations are
// written as durations, where the workflow's input holds nanoseconds.

// GroupSummary is the web UI's summary and details of a group's workflow started with gs.
func GroupSummary(gs spec.Group) (summary, details string) {
	summary = fmt.Sprintf("autoscaling group %s: %d to %d instances on %s", gs.Name, gs.Policy.Min, gs.Policy.Max, strings.Join(gs.Hosts, ", "))
	var b strings.Builder
	b.WriteString(fmt.Sprintf("**%s**, as started: %d to %d instances, evaluated every %s", gs.Name, gs.Policy.Min, gs.Policy.Max, gs.Interval))
	if gs.DryRun {
		b.WriteString(" (**dry run**)")
	}
	b.WriteString("\n\n")
	for _, c := range gs.Policy.Checks {
		b.WriteString(fmt.Sprintf("- check %s", c.Name))
		if c.Metric != "" {
			b.WriteString(fmt.Sprintf(" on %s", c.Metric))
		}
		if c.Window > 0 {
			b.WriteString(fmt.Sprintf(" over %s", c.Window))
		}
		b.WriteString("\n")
	}
	if p := gs.Policy; p.ScaleOutCooldown > 0 || p.ScaleInCooldown > 0 || p.ScaleInStabilization > 0 {
		b.WriteString(fmt.Sprintf("- cooldowns: scale-out %s, scale-in %s; scale-in stabilization %s\n", p.ScaleOutCooldown, p.ScaleInCooldown, p.ScaleInStabilization))
	}
	b.WriteString(launchDetails(gs.Launch))
	if gs.HostGracePeriod > 0 {
		b.WriteString(fmt.Sprintf("- instances of a host down for %s are replaced elsewhere\n", gs.HostGracePeriod))
	}
	b.WriteString(fmt.Sprintf("\nInstances: `PremiscaleGroup = '%s'`; current size and last decision: the current details.", gs.Name))
	return summary, b.String()
}

// instanceSummary is the web UI's summary and details of an instance's workflow.
func instanceSummary(p InstanceParams, why string) (summary, details string) {
	summary = fmt.Sprintf("instance %s of group %s on host %s", p.Name, p.Group, p.Host)
	var b strings.Builder
	b.WriteString(fmt.Sprintf("**%s**: instance %d of group **%s**, on host **%s**", p.Name, p.Index, p.Group, p.Host))
	if p.Address != "" {
		b.WriteString(", address " + p.Address)
	}
	if why != "" {
		b.WriteString(" (" + why + ")")
	}
	b.WriteString("\n\n")
	b.WriteString(launchDetails(p.Launch))
	return summary, b.String()
}

// launchDetails lists what an instance is made of and how its health is judged.
func launchDetails(l spec.Launch) string {
	var b strings.Builder
	b.WriteString(fmt.Sprintf("- image %s/%s", l.ImagePool, l.ImageVolume))
	switch {
	case l.Template != "":
		b.WriteString(fmt.Sprintf(", cloned from domain %s", l.Template))
	default:
		b.WriteString(fmt.Sprintf(", %d vCPUs, %d MiB", l.Domain.VCPUs, l.Domain.Memory))
	}
	b.WriteString(fmt.Sprintf("; networking %s\n", l.Networking.Type))
	h := l.Health
	if h.Checkin {
		b.WriteString(fmt.Sprintf("- running once it checks in, within %s", h.BootTimeout))
	} else {
		b.WriteString("- running once started (no check-in)")
	}
	if h.HeartbeatInterval > 0 {
		b.WriteString(fmt.Sprintf("; heartbeat every %s", h.HeartbeatInterval))
	}
	if h.HeartbeatTimeout > 0 {
		b.WriteString(fmt.Sprintf(", replaced after %s without one", h.HeartbeatTimeout))
	}
	b.WriteString(fmt.Sprintf("; health checked every %s; shutdown grace %s\n", h.CheckInterval(), h.ShutdownGrace))
	return b.String()
}
