package activities

import (
	"context"
	"fmt"

	"github.com/premiscale/premiscale/internal/outage"
	"github.com/premiscale/premiscale/internal/policy"
	"github.com/premiscale/premiscale/internal/spec"
)

// HostStates returns the named hosts as the fleet sees them, in the order given: up or down
// (by their last proof of life and HostDownAfter), their capacity and what PremiScale's domains
// hold on them. A host no worker ever reached is down.
func (a *Activities) HostStates(ctx context.Context, names []string) ([]spec.Host, error) {
	recs, err := a.Store.ListHosts(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("read the state of hosts %v: %w", names, err)
	}
	out := make([]spec.Host, len(names))
	for i, name := range names {
		out[i] = spec.Host{Name: name, Down: "no worker has reached it yet"}
		for _, r := range recs {
			if r.Name == name {
				out[i] = r.Spec(a.HostDownAfter)
			}
		}
	}
	return out, nil
}

// ObserveParams asks for what a group's evaluation needs to know: its checks' readings and its
// hosts' state.
type ObserveParams struct {
	Checks ReadChecksParams
	// Hosts are the group's hosts and those its instances are on.
	Hosts []string
}

// Observation is what an evaluation knows of the world.
type Observation struct {
	Readings map[string]policy.Reading
	// Hosts are in the order asked; nil when they could not be read (HostsErr says why).
	Hosts    []spec.Host
	HostsErr string `json:",omitempty"`
	// HostsUnreachable says HostsErr is MySQL being unreachable: the worker's watch reports
	// that outage, once.
	HostsUnreachable bool `json:",omitempty"`
}

// Observe reads a group's checks and its hosts' state in one activity: one round trip per
// evaluation. Failing to read the hosts is not failing the activity: the checks still count.
func (a *Activities) Observe(ctx context.Context, p ObserveParams) (Observation, error) {
	var out Observation
	if len(p.Checks.Checks) > 0 {
		readings, err := a.ReadChecks(ctx, p.Checks)
		if err != nil {
			return out, err
		}
		out.Readings = readings
	}
	hosts, err := a.HostStates(ctx, p.Hosts)
	if err != nil {
		out.HostsErr, out.HostsUnreachable = err.Error(), outage.IsUnreachable(err)
		return out, nil
	}
	out.Hosts = hosts
	return out, nil
}
