package config

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/premiscale/premiscale/internal/spec"
)

// GroupSpec converts a validated group into the spec its workflow runs. It is the one
// conversion from YAML types to the types the workflows, activities and the platform link
// carry: every value is parsed here (durations, addresses, the subnet), so nothing downstream
// parses YAML strings again.
func (c *Controller) GroupSpec(name string, g Group) (spec.Group, error) {
	health := spec.Health{
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
	network, pool, err := networkSpec(g.Networking)
	if err != nil {
		return spec.Group{}, fmt.Errorf("group %s: networking: %w", name, err)
	}
	var domain spec.Domain
	if d := g.Domain; d != nil {
		domain = spec.Domain{
			VCPUs: d.VCPUs, Memory: d.Memory, Type: d.Type, Arch: d.Arch, Machine: d.Machine,
			Kernel: d.Kernel, Initrd: d.Initrd, Cmdline: d.Cmdline, Network: d.Network,
		}
	}
	sc := g.Scaling
	return spec.Group{
		Name:                  name,
		Interval:              c.Reconciliation.Interval.Duration,
		Policy:                g.PolicySpec(c.DefaultCheckWindow()),
		TerminationPolicy:     spec.TerminationPolicy(sc.TerminationPolicy),
		MaxConcurrentLaunches: sc.MaxConcurrentLaunches,
		LaunchBackoff: spec.Backoff{
			After: sc.LaunchBackoff.After, Initial: sc.LaunchBackoff.Initial.Duration, Max: sc.LaunchBackoff.Max.Duration,
		},
		DryRun: sc.DryRun,
		Hosts:  append([]string(nil), g.Hosts...),
		Launch: spec.Launch{
			ImagePool:   g.ImagePool(),
			ImageVolume: g.ImageVolume(),
			ImageSource: g.Image.Source,
			ImageSHA256: strings.ToLower(g.Image.SHA256),
			Domain:      domain,
			Template:    g.Name,
			CloudInit:   g.CloudInit.Content,
			Networking:  network,
			Health:      health,
		},
		StaticAddresses: pool,
		Placement:       spec.Placement(g.Placement),
		Rollout:         spec.Rollout{MaxSurge: g.Rollout.MaxSurge, MaxUnavailable: g.Rollout.MaxUnavailable},
		HostGracePeriod: c.Autoscale.HostGracePeriod.Duration,
		WarmPool:        warmPoolSpec(g.WarmPool),
	}, nil
}

// GroupSpecs converts every group of the config, ordered by name.
func (c *Config) GroupSpecs() ([]spec.Group, error) {
	groups := c.Controller.Autoscale.Groups
	out := make([]spec.Group, 0, len(groups))
	for _, name := range sortedKeys(groups) {
		s, err := c.Controller.GroupSpec(name, groups[name])
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func networkSpec(n Networking) (spec.Network, []netip.Addr, error) {
	out := spec.Network{Type: spec.NetworkType(n.Type)}
	if out.Type != spec.NetworkStatic {
		return out, nil, nil
	}
	subnet, err := netip.ParsePrefix(n.Subnet)
	if err != nil {
		return out, nil, fmt.Errorf("subnet: %w", err)
	}
	out.Subnet = subnet.Masked()
	if n.Gateway != "" {
		if out.Gateway, err = netip.ParseAddr(n.Gateway); err != nil {
			return out, nil, fmt.Errorf("gateway: %w", err)
		}
	}
	for i, s := range n.Nameservers {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return out, nil, fmt.Errorf("nameservers[%d]: %w", i, err)
		}
		out.Nameservers = append(out.Nameservers, a)
	}
	pool, err := ExpandAddresses(n.Addresses)
	if err != nil {
		return out, nil, err
	}
	return out, pool, nil
}
