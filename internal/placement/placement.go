// Package placement decides where a group's new instance goes (which host, which static
// address) and which instances a scale-in retires first. It is pure: the group workflow calls
// it with what it knows, so the same inputs always give the same answer, on replay too.
package placement

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"

	"github.com/premiscale/premiscale/internal/spec"
)

// Shape is what one instance takes from a host.
type Shape struct {
	VCPUs     int   `json:"vcpus"`
	MemoryMiB int64 `json:"memoryMiB"`
}

// Host is a host a group may place instances on: the host as the fleet sees it, and the
// group's own load on it.
type Host struct {
	spec.Host
	// GroupInstances counts the group's own live instances on the host.
	GroupInstances int
}

// Allocatable is what placement may hand out on the host: (capacity − reserve) × overcommit.
func (h Host) Allocatable() Shape {
	cpus := float64(max(h.CPUs-h.ReservedCPUs, 0)) * overcommit(h.CPUOvercommit)
	mem := float64(max(h.MemoryMiB-h.ReservedMemoryMiB, 0)) * overcommit(h.MemoryOvercommit)
	// A ratio such as 1.1 must not lose an instance to float error.
	return Shape{VCPUs: int(math.Floor(cpus + 1e-9)), MemoryMiB: int64(math.Floor(mem + 1e-9))}
}

func overcommit(r float64) float64 {
	if r <= 0 {
		return 1
	}
	return r
}

// Free is what is left to hand out; negative when the host is overcommitted beyond its ratios.
func (h Host) Free() Shape {
	a := h.Allocatable()
	return Shape{VCPUs: a.VCPUs - h.UsedCPUs, MemoryMiB: a.MemoryMiB - h.UsedMemoryMiB}
}

// fits says what the host lacks for shape, "" when it has room.
func (h Host) fits(s Shape) string {
	if !h.Up {
		return fmt.Sprintf("%s is down (%s)", h.Name, h.Down)
	}
	free := h.Free()
	var missing []string
	if s.VCPUs > free.VCPUs {
		missing = append(missing, fmt.Sprintf("%d vCPUs (%d free)", s.VCPUs, max(free.VCPUs, 0)))
	}
	if s.MemoryMiB > free.MemoryMiB {
		missing = append(missing, fmt.Sprintf("%d MiB of memory (%d free)", s.MemoryMiB, max(free.MemoryMiB, 0)))
	}
	if len(missing) == 0 {
		return ""
	}
	return h.Name + " needs " + strings.Join(missing, " and ")
}

// load is the fraction of the host's allocatable capacity in use after adding s: the larger of
// CPU and memory, so the scarcer resource decides.
func (h Host) load(s Shape) float64 {
	a := h.Allocatable()
	var l float64
	if a.VCPUs > 0 {
		l = float64(h.UsedCPUs+s.VCPUs) / float64(a.VCPUs)
	}
	if a.MemoryMiB > 0 {
		l = max(l, float64(h.UsedMemoryMiB+s.MemoryMiB)/float64(a.MemoryMiB))
	}
	return l
}

// NoCapacity is why no host can take an instance; its message starts "no capacity: ".
type NoCapacity struct {
	// Hosts says, host by host, what is missing.
	Hosts []string
}

func (e *NoCapacity) Error() string {
	if len(e.Hosts) == 0 {
		return "no capacity: the group has no hosts"
	}
	return "no capacity: " + strings.Join(e.Hosts, "; ")
}

// Pick returns the host a new instance of shape goes to, among the hosts that are up and have
// room for it, or a *NoCapacity saying what each host lacks.
//
//   - spread (the default) balances the group: the host with the fewest of its instances, then
//     the least loaded, then the one listed first;
//   - pack fills hosts: the most loaded host that still fits, then the one listed first.
func Pick(policy spec.Placement, hosts []Host, s Shape) (string, error) {
	best := -1
	var bestLoad float64
	var refusals []string
	for i, h := range hosts {
		if why := h.fits(s); why != "" {
			refusals = append(refusals, why)
			continue
		}
		l := h.load(s)
		if best < 0 || better(policy, h, l, hosts[best], bestLoad) {
			best, bestLoad = i, l
		}
	}
	if best < 0 {
		return "", &NoCapacity{Hosts: refusals}
	}
	return hosts[best].Name, nil
}

// better says whether candidate h (at load l) beats the best so far; ties keep the earlier.
func better(policy spec.Placement, h Host, l float64, b Host, bl float64) bool {
	if policy == spec.PlacementPack {
		return l > bl+1e-12
	}
	if h.GroupInstances != b.GroupInstances {
		return h.GroupInstances < b.GroupInstances
	}
	return l < bl-1e-12
}

// Load adds the group's own instances to its hosts, in place: each host's count of the group's
// live instances and warm-pool members, and the shape of those the host's capacity report
// cannot know of yet (launches still creating their domain). A pool member's domain, once
// defined, holds its whole shape in that report whether it runs, is stopped or saved: it must
// be able to resume where it is without asking placement again.
func Load(hosts []Host, instances []spec.InstanceRef, s Shape) {
	index := make(map[string]int, len(hosts))
	for i := range hosts {
		index[hosts[i].Name] = i
		hosts[i].GroupInstances = 0
	}
	for _, ref := range instances {
		i, ok := index[ref.Host]
		if !ok || !spec.IsLive(ref.State) && !spec.InPool(ref.State) {
			continue
		}
		hosts[i].GroupInstances++
		if ref.State == spec.StateLaunching || ref.State == spec.StateWarming && !ref.Defined {
			hosts[i].UsedCPUs += s.VCPUs
			hosts[i].UsedMemoryMiB += s.MemoryMiB
		}
	}
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
