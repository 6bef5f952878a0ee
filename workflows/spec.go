package workflows

import (
	"fmt"
	"time"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/cloudinit"
	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/policy"
)

// GroupSpec is everything a GroupWorkflow needs to know about its group. It is built from the
// config once, outside the workflow, so the workflow never reads files or the environment.
type GroupSpec struct {
	Name string
	// Interval is the time between evaluations.
	Interval time.Duration
	Policy   policy.Spec
	// TerminationPolicy orders scale-in: newest-first, oldest-first or unhealthy-first.
	TerminationPolicy string
	// MaxConcurrentLaunches bounds instances launching or booting at once; 0 = unlimited.
	MaxConcurrentLaunches int
	LaunchBackoff         BackoffSpec
	// DryRun groups decide and record but never act.
	DryRun bool
	// Hosts are the hosts instances may be placed on, in preference order.
	Hosts  []string
	Launch LaunchSpec
	// StaticAddresses is the expanded pool of networking.addresses (static networking only).
	StaticAddresses []string
}

// BackoffSpec: after After consecutive failed launches the group waits Initial before the next,
// doubling up to Max.
type BackoffSpec struct {
	After        int
	Initial, Max time.Duration
}

// LaunchSpec is what an InstanceWorkflow needs to create, and watch, a VM.
type LaunchSpec struct {
	ImagePool, ImageVolume string
	// Domain is the shape of a new VM; with Template set, its non-zero fields override the
	// template's.
	Domain config.DomainShape
	// Template names an existing domain each instance is cloned from; "" builds from Domain.
	Template string
	// CloudInit is the user's #cloud-config template; "" for none.
	CloudInit  string
	Networking NetworkSpec
	Health     HealthSpec
}

// NetworkSpec is the group's networking; the address itself is chosen per instance.
type NetworkSpec struct {
	Type, Subnet, Gateway string
	Nameservers           []string
}

// HealthSpec says when an instance counts as up and when it counts as broken.
type HealthSpec struct {
	// Checkin makes an instance wait in "booting" for its cloud-init check-in.
	Checkin bool
	// BootTimeout: no check-in by then and the instance is replaced.
	BootTimeout time.Duration
	// HeartbeatInterval is the period of the guest's heartbeat timer; 0 disables it.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout: no heartbeat for this long and the instance is replaced; 0 disables it.
	HeartbeatTimeout time.Duration
	// ShutdownGrace is how long a retiring guest gets after the ACPI request before destroy.
	ShutdownGrace time.Duration
}

// defaultHealthCheckInterval is how often a running instance's domain state is checked when
// no heartbeat interval says otherwise.
const defaultHealthCheckInterval = time.Minute

// CheckInterval is how often a running instance is health-checked.
func (h HealthSpec) CheckInterval() time.Duration {
	if h.HeartbeatInterval > 0 {
		return h.HeartbeatInterval
	}
	return defaultHealthCheckInterval
}

func (l LaunchSpec) activityParams() activities.LaunchParams {
	return activities.LaunchParams{
		ImagePool: l.ImagePool, ImageVolume: l.ImageVolume, Domain: l.Domain, Template: l.Template,
		CloudInit:   l.CloudInit,
		NetworkType: l.Networking.Type, Subnet: l.Networking.Subnet, Gateway: l.Networking.Gateway,
		Nameservers:       l.Networking.Nameservers,
		Checkin:           l.Health.Checkin,
		HeartbeatInterval: l.Health.HeartbeatInterval,
	}
}

// SpecFromConfig builds the spec of the named group. The metric window covers at least two
// collection intervals so that an evaluation always sees a sample from every live instance.
func SpecFromConfig(cfg *config.Config, name string, g config.Group) (GroupSpec, error) {
	var shape config.DomainShape
	if g.Domain != nil {
		shape = *g.Domain
	}
	c := cfg.Controller
	interval := c.Reconciliation.Interval.Duration
	sc := g.Scaling
	health := HealthSpec{
		Checkin:           g.Health.CheckinEnabled(),
		BootTimeout:       g.Health.BootTimeout.Duration,
		HeartbeatInterval: g.Health.HeartbeatInterval.Duration,
		HeartbeatTimeout:  g.Health.HeartbeatTimeout.Duration,
		ShutdownGrace:     g.Health.ShutdownGrace.Duration,
	}
	if !health.Checkin {
		// Heartbeats go to the check-in endpoint; without check-in no guest sends any.
		health.HeartbeatTimeout = 0
	}
	var addresses []string
	if g.Networking.Type == cloudinit.NetworkStatic {
		pool, err := cloudinit.ExpandAddresses(g.Networking.Addresses)
		if err != nil {
			return GroupSpec{}, fmt.Errorf("group %s: networking.addresses: %w", name, err)
		}
		for _, a := range pool {
			addresses = append(addresses, a.String())
		}
	}
	return GroupSpec{
		Name:                  name,
		Interval:              interval,
		Policy:                g.PolicySpec(interval),
		TerminationPolicy:     sc.TerminationPolicy,
		MaxConcurrentLaunches: sc.MaxConcurrentLaunches,
		LaunchBackoff: BackoffSpec{
			After: sc.LaunchBackoff.After, Initial: sc.LaunchBackoff.Initial.Duration, Max: sc.LaunchBackoff.Max.Duration,
		},
		DryRun: sc.DryRun,
		Hosts:  append([]string(nil), g.Hosts...),
		Launch: LaunchSpec{
			ImagePool:   g.ImagePool(),
			ImageVolume: g.ImageVolume(),
			Domain:      shape,
			Template:    g.Name,
			CloudInit:   g.CloudInit.Content,
			Networking: NetworkSpec{
				Type: g.Networking.Type, Subnet: g.Networking.Subnet, Gateway: g.Networking.Gateway,
			},
			Health: health,
		},
		StaticAddresses: addresses,
	}, nil
}
