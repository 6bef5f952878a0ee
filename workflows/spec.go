package workflows

import (
	"fmt"
	"time"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/policy"
)

// GroupSpec is everything a GroupWorkflow needs to know about its group. It is built from the
// config once, outside the workflow, so the workflow never reads files or the environment.
type GroupSpec struct {
	Name string
	// Interval is the time between evaluations.
	Interval time.Duration
	// Window is how far back the metric means reach.
	Window time.Duration
	Policy policy.Policy
	// Hosts are the hosts instances may be placed on, in preference order.
	Hosts  []string
	Launch LaunchSpec
	// RetireGrace is how long a retiring guest gets to shut down before it is destroyed.
	RetireGrace time.Duration
}

// LaunchSpec is what an InstanceWorkflow needs to create a VM.
type LaunchSpec struct {
	ImagePool, ImageVolume string
	Domain                 config.DomainShape
}

// defaultRetireGrace leaves a guest time for a clean ACPI shutdown.
const defaultRetireGrace = 60 * time.Second

// SpecFromConfig builds the spec of the named group. The metric window covers at least two
// collection intervals so that an evaluation always sees a sample from every live instance.
func SpecFromConfig(cfg *config.Config, name string, g config.Group) (GroupSpec, error) {
	if g.Domain == nil {
		return GroupSpec{}, fmt.Errorf("group %s: only groups with a domain shape can be launched yet (template domains via name: are not supported)", name)
	}
	c := cfg.Controller
	interval := c.Reconciliation.Interval.Duration
	targets := map[string]float64{}
	if v := g.Scaling.ResourceTarget.CPU; v > 0 {
		targets["cpu"] = v
	}
	if v := g.Scaling.ResourceTarget.Memory; v > 0 {
		targets["memory"] = v
	}
	return GroupSpec{
		Name:     name,
		Interval: interval,
		Window:   max(interval, 2*c.Databases.CollectionInterval.Duration),
		Policy: policy.Policy{
			Min:       g.Scaling.MinNodes,
			Max:       g.Scaling.MaxNodes,
			Increment: g.Scaling.Increment,
			Cooldown:  g.Scaling.Cooldown.Duration,
			Targets:   targets,
		},
		Hosts: append([]string(nil), g.Hosts...),
		Launch: LaunchSpec{
			ImagePool:   g.ImagePool(),
			ImageVolume: g.ImageVolume(),
			Domain:      *g.Domain,
		},
		RetireGrace: defaultRetireGrace,
	}, nil
}
