// Package placement decides where a group's new instance goes (which host, which static
// address) and which instances a scale-in retires first. It is pure: the group workflow calls
// it with what it knows, so the same inputs always give the same answer, on replay too.
package placement

import (
	"net/netip"
	"slices"

	"github.com/premiscale/premiscale/internal/spec"
)

// Host is a host a group may place instances on, with the group's load on it.
type Host struct {
	Name string
	// Instances counts the group's instances on the host that are not retiring.
	Instances int
}

// Pick returns the host a new instance goes to: the one with the fewest of the group's
// instances, ties to the host listed first (the group's hosts are in preference order). It
// reports false when there is no host at all.
func Pick(hosts []Host) (string, bool) {
	best := -1
	for i, h := range hosts {
		if best < 0 || h.Instances < hosts[best].Instances {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	return hosts[best].Name, true
}

// Load counts the live instances per host of the group's hosts, in the group's order.
func Load(hosts []string, instances []spec.InstanceRef) []Host {
	out := make([]Host, len(hosts))
	for i, name := range hosts {
		out[i].Name = name
		for _, ref := range instances {
			if ref.Host == name && ref.State != spec.StateRetiring {
				out[i].Instances++
			}
		}
	}
	return out
}

// FreeAddress returns the first address of the pool that no instance holds. Retiring
// instances still hold theirs: an address is free only once its VM is gone.
func FreeAddress(pool []netip.Addr, instances []spec.InstanceRef) (netip.Addr, bool) {
	for _, addr := range pool {
		used := slices.ContainsFunc(instances, func(ref spec.InstanceRef) bool {
			a, err := netip.ParseAddr(ref.Address)
			return err == nil && a.Unmap() == addr.Unmap()
		})
		if !used {
			return addr, true
		}
	}
	return netip.Addr{}, false
}

// RetireOrder returns the candidates in the order a scale-in under policy retires them:
// newest-first (highest sequence first, the default), oldest-first, or unhealthy-first
// (instances not yet running first, then newest-first). The input is not modified.
func RetireOrder(policy spec.TerminationPolicy, candidates []spec.InstanceRef) []spec.InstanceRef {
	out := slices.Clone(candidates)
	slices.SortStableFunc(out, func(x, y spec.InstanceRef) int {
		if policy == spec.TerminateUnhealthyFirst {
			// Not yet running is the nearest thing to unhealthy the group can see: a VM that
			// went bad is replaced by its own workflow.
			if xr, yr := x.State == spec.StateRunning, y.State == spec.StateRunning; xr != yr {
				if xr {
					return 1
				}
				return -1
			}
		}
		if policy == spec.TerminateOldestFirst {
			return x.Seq - y.Seq
		}
		return y.Seq - x.Seq
	})
	return out
}
