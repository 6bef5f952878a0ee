package libvirt

import (
	"context"
	"slices"
	"strings"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// DomainStats is one sample of a running domain's counters, for the metrics
// collector. A counter the driver does not report is zero (the test driver
// reports only the state).
type DomainStats struct {
	Name  string
	State DomainState
	// VCPUs is the current vCPU count.
	VCPUs int
	// CPUTimeNs is the cumulative CPU time of the domain, in nanoseconds;
	// utilisation is its delta over elapsed time and VCPUs.
	CPUTimeNs uint64
	// Balloon figures in KiB. Usable and Available need the guest's balloon
	// driver and a stats period (DomainXML sets one).
	BalloonCurrentKiB   uint64
	BalloonMaximumKiB   uint64
	BalloonRSSKiB       uint64
	BalloonAvailableKiB uint64
	BalloonUsableKiB    uint64
	BalloonUnusedKiB    uint64
}

// AllDomainStats samples every active domain in one call.
func (c *Conn) AllDomainStats(ctx context.Context) ([]DomainStats, error) {
	const groups = golibvirt.DomainStatsState | golibvirt.DomainStatsCPUTotal |
		golibvirt.DomainStatsBalloon | golibvirt.DomainStatsVCPU
	recs, err := call(ctx, c, "get domain stats", func(l *golibvirt.Libvirt) ([]golibvirt.DomainStatsRecord, error) {
		return l.ConnectGetAllDomainStats(nil, uint32(groups), uint32(golibvirt.ConnectGetAllDomainsStatsActive))
	})
	if err != nil {
		return nil, err
	}
	out := make([]DomainStats, 0, len(recs))
	for _, r := range recs {
		s := DomainStats{Name: r.Dom.Name}
		for _, p := range r.Params {
			v, ok := paramUint(p.Value)
			if !ok {
				continue
			}
			switch p.Field {
			case "state.state":
				s.State = stateFromLibvirt(int32(v))
			case "cpu.time":
				s.CPUTimeNs = v
			case "vcpu.current":
				s.VCPUs = int(v)
			case "balloon.current":
				s.BalloonCurrentKiB = v
			case "balloon.maximum":
				s.BalloonMaximumKiB = v
			case "balloon.rss":
				s.BalloonRSSKiB = v
			case "balloon.available":
				s.BalloonAvailableKiB = v
			case "balloon.usable":
				s.BalloonUsableKiB = v
			case "balloon.unused":
				s.BalloonUnusedKiB = v
			}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b DomainStats) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// paramUint reads a numeric typed parameter.
func paramUint(v golibvirt.TypedParamValue) (uint64, bool) {
	switch x := v.I.(type) {
	case int32:
		return uint64(max(x, 0)), true
	case uint32:
		return uint64(x), true
	case int64:
		return uint64(max(x, 0)), true
	case uint64:
		return x, true
	case float64:
		return uint64(max(x, 0)), true
	default:
		return 0, false
	}
}

// HostInfo is a hypervisor's capacity.
type HostInfo struct {
	Model     string
	MemoryKiB uint64
	CPUs      int
	MHz       int
	NUMANodes int
	Sockets   int
	Cores     int
	Threads   int
}

// HostInfo reports the host's CPUs and memory (NodeGetInfo).
func (c *Conn) HostInfo(ctx context.Context) (HostInfo, error) {
	return call(ctx, c, "get host info", func(l *golibvirt.Libvirt) (HostInfo, error) {
		model, mem, cpus, mhz, nodes, sockets, cores, threads, err := l.NodeGetInfo()
		if err != nil {
			return HostInfo{}, err
		}
		var b strings.Builder
		for _, ch := range model {
			if ch == 0 {
				break
			}
			b.WriteByte(byte(ch))
		}
		return HostInfo{
			Model: b.String(), MemoryKiB: mem, CPUs: int(cpus), MHz: int(mhz),
			NUMANodes: int(nodes), Sockets: int(sockets), Cores: int(cores), Threads: int(threads),
		}, nil
	})
}

// FreeMemoryBytes reports the host's free memory.
func (c *Conn) FreeMemoryBytes(ctx context.Context) (uint64, error) {
	return call(ctx, c, "get free memory", func(l *golibvirt.Libvirt) (uint64, error) {
		return l.NodeGetFreeMemory()
	})
}
