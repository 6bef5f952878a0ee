package placement

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/premiscale/premiscale/internal/spec"
)

// host is an up host with 16 CPUs and 32 GiB, no reserve, ratios 1.
func host(name string, used Shape, group int) Host {
	return Host{Host: spec.Host{Name: name, Up: true, CPUs: 16, MemoryMiB: 32768, Allowance: spec.Allowance{CPUOvercommit: 1, MemoryOvercommit: 1},
		UsedCPUs: used.VCPUs, UsedMemoryMiB: used.MemoryMiB}, GroupInstances: group}
}

// capacity is a host with only its capacity set.
func capacity(cpus int, mem int64, resCPUs int, resMem int64, cpuRatio, memRatio float64) Host {
	return Host{Host: spec.Host{CPUs: cpus, MemoryMiB: mem,
		Allowance: spec.Allowance{ReservedCPUs: resCPUs, ReservedMemoryMiB: resMem, CPUOvercommit: cpuRatio, MemoryOvercommit: memRatio}}}
}

func TestAllocatable(t *testing.T) {
	tests := []struct {
		name string
		h    Host
		want Shape
	}{
		{"ratios 1", host("a", Shape{}, 0), Shape{16, 32768}},
		{"reserve then overcommit", capacity(16, 32768, 2, 2048, 4, 1.5), Shape{56, 46080}},
		{"a ratio of 1.1 keeps its last instance", capacity(10, 1000, 0, 0, 1.1, 1.1), Shape{11, 1100}},
		{"reserve above capacity", capacity(2, 512, 4, 1024, 4, 1), Shape{0, 0}},
		{"unset ratios count as 1", capacity(4, 4096, 0, 0, 0, 0), Shape{4, 4096}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.h.Allocatable(); got != tt.want {
				t.Errorf("Allocatable = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPick(t *testing.T) {
	small := Shape{VCPUs: 2, MemoryMiB: 2048}
	down := Host{Host: spec.Host{Name: "d", Down: "no proof of life for 2m0s", CPUs: 64, MemoryMiB: 1 << 20}}
	tests := []struct {
		name    string
		policy  spec.Placement
		hosts   []Host
		shape   Shape
		want    string
		wantErr string
	}{
		{name: "no host", hosts: nil, wantErr: "no capacity: the group has no hosts"},
		{name: "spread: fewest of the group's instances", policy: spec.PlacementSpread,
			hosts: []Host{host("a", Shape{}, 2), host("b", Shape{8, 16384}, 1), host("c", Shape{}, 2)}, shape: small, want: "b"},
		{name: "spread: then the least loaded", policy: spec.PlacementSpread,
			hosts: []Host{host("a", Shape{8, 1024}, 1), host("b", Shape{2, 1024}, 1)}, shape: small, want: "b"},
		{name: "spread: memory decides when it is scarcer", policy: spec.PlacementSpread,
			hosts: []Host{host("a", Shape{0, 30000}, 0), host("b", Shape{12, 0}, 0)}, shape: small, want: "b"},
		{name: "spread: ties go to the host listed first", policy: spec.PlacementSpread,
			hosts: []Host{host("a", Shape{}, 0), host("b", Shape{}, 0)}, shape: small, want: "a"},
		{name: "spread is the default", policy: "",
			hosts: []Host{host("a", Shape{}, 3), host("b", Shape{}, 0)}, shape: small, want: "b"},
		{name: "pack: the fullest that fits", policy: spec.PlacementPack,
			hosts: []Host{host("a", Shape{4, 4096}, 0), host("b", Shape{12, 8192}, 5), host("c", Shape{15, 0}, 0)}, shape: small, want: "b"},
		{name: "pack: ties go to the host listed first", policy: spec.PlacementPack,
			hosts: []Host{host("a", Shape{}, 0), host("b", Shape{}, 0)}, shape: small, want: "a"},
		{name: "a down host is skipped however empty", policy: spec.PlacementSpread,
			hosts: []Host{down, host("a", Shape{10, 0}, 4)}, shape: small, want: "a"},
		{name: "exactly full fits", policy: spec.PlacementSpread,
			hosts: []Host{host("a", Shape{14, 30720}, 0)}, shape: small, want: "a"},
		{name: "no room anywhere says what is missing where", policy: spec.PlacementSpread,
			hosts: []Host{down, host("a", Shape{15, 0}, 0), host("b", Shape{16, 31744}, 0)}, shape: small,
			wantErr: "no capacity: d is down (no proof of life for 2m0s); a needs 2 vCPUs (1 free); b needs 2 vCPUs (0 free) and 2048 MiB of memory (1024 free)"},
		{name: "an unknown shape (a template not seen yet) fits any up host", policy: spec.PlacementSpread,
			hosts: []Host{down, host("a", Shape{16, 32768}, 0)}, shape: Shape{}, want: "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Pick(tt.policy, tt.hosts, tt.shape)
			if tt.wantErr != "" {
				var nc *NoCapacity
				if !errors.As(err, &nc) || err.Error() != tt.wantErr {
					t.Fatalf("Pick = %q, %v; want a NoCapacity %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Pick = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestLoadCountsTheGroupAndItsLaunchesInFlight(t *testing.T) {
	refs := []spec.InstanceRef{
		{Name: "g-1", Host: "a", State: spec.StateRunning},
		{Name: "g-2", Host: "a", State: spec.StateRetiring},
		{Name: "g-3", Host: "b", State: spec.StateLaunching},
		{Name: "g-4", Host: "b", State: spec.StateBooting},
		{Name: "g-5", Host: "gone", State: spec.StateRunning},
	}
	hosts := []Host{host("b", Shape{1, 100}, 9), host("a", Shape{}, 9), host("c", Shape{}, 9)}
	Load(hosts, refs, Shape{VCPUs: 2, MemoryMiB: 512})
	want := []Host{host("b", Shape{3, 612}, 2), host("a", Shape{}, 1), host("c", Shape{}, 0)}
	for i := range want {
		if hosts[i] != want[i] {
			t.Errorf("host %d = %+v, want %+v", i, hosts[i], want[i])
		}
	}
}

// TestLoadCountsWarmPoolMembers: a pool member counts where it is; its shape is added only until
// its domain is defined (the host's report holds it from then on, stopped or saved alike).
func TestLoadCountsWarmPoolMembers(t *testing.T) {
	refs := []spec.InstanceRef{
		{Name: "g-1", Host: "a", State: spec.StateWarming},
		{Name: "g-2", Host: "a", State: spec.StateWarming, Defined: true},
		{Name: "g-3", Host: "b", State: spec.StateWarm, Defined: true},
		{Name: "g-4", Host: "b", State: spec.StateResuming, Defined: true},
	}
	hosts := []Host{host("a", Shape{}, 9), host("b", Shape{}, 9)}
	Load(hosts, refs, Shape{VCPUs: 2, MemoryMiB: 512})
	want := []Host{host("a", Shape{2, 512}, 2), host("b", Shape{}, 2)}
	for i := range want {
		if hosts[i] != want[i] {
			t.Errorf("host %d = %+v, want %+v", i, hosts[i], want[i])
		}
	}
}

// BenchmarkPick places one instance among 1,000 hosts carrying 10,000 of the group's instances:
// the cost of one placement decision in a large fleet, Load included.
func BenchmarkPick(b *testing.B) {
	const nHosts, nInstances = 1000, 10000
	hosts := make([]Host, nHosts)
	for i := range hosts {
		hosts[i] = host(fmt.Sprintf("kvm%04d", i), Shape{VCPUs: i % 16, MemoryMiB: int64(i%32) * 1024}, 0)
	}
	refs := make([]spec.InstanceRef, nInstances)
	for i := range refs {
		refs[i] = spec.InstanceRef{Name: fmt.Sprintf("g-%d", i), Host: hosts[(i*7)%nHosts].Name, State: spec.StateRunning}
	}
	shape := Shape{VCPUs: 2, MemoryMiB: 2048}
	b.ReportAllocs()
	for b.Loop() {
		hs := slices.Clone(hosts)
		Load(hs, refs, shape)
		if _, err := Pick(spec.PlacementSpread, hs, shape); err != nil {
			b.Fatal(err)
		}
	}
}

func TestFreeAddress(t *testing.T) {
	pool := []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("10.0.0.6"), netip.MustParseAddr("10.0.0.7")}
	refs := func(addrs ...string) []spec.InstanceRef {
		var out []spec.InstanceRef
		for _, a := range addrs {
			out = append(out, spec.InstanceRef{Address: a, State: spec.StateRetiring})
		}
		return out
	}
	tests := []struct {
		name  string
		inUse []spec.InstanceRef
		want  string
	}{
		{"first", nil, "10.0.0.5"},
		{"a retiring instance still holds its address", refs("10.0.0.5"), "10.0.0.6"},
		{"hole", refs("10.0.0.7", "10.0.0.5"), "10.0.0.6"},
		{"foreign and blank ignored", refs("", "192.168.1.1", "x"), "10.0.0.5"},
		{"IPv4-mapped counts", refs("::ffff:10.0.0.5"), "10.0.0.6"},
		{"exhausted", refs("10.0.0.5", "10.0.0.6", "10.0.0.7"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := FreeAddress(pool, tt.inUse)
			if tt.want == "" {
				if ok {
					t.Fatalf("FreeAddress = %s, want none", got)
				}
				return
			}
			if !ok || got.String() != tt.want {
				t.Fatalf("FreeAddress = %s, %v; want %s", got, ok, tt.want)
			}
		})
	}
}

func TestRetireOrder(t *testing.T) {
	in := []spec.InstanceRef{
		{Name: "g-1", Seq: 1, State: spec.StateRunning},
		{Name: "g-4", Seq: 4, State: spec.StateRunning},
		{Name: "g-2", Seq: 2, State: spec.StateBooting},
		{Name: "g-3", Seq: 3, State: spec.StateRunning},
	}
	tests := []struct {
		policy spec.TerminationPolicy
		want   string
	}{
		{spec.TerminateNewestFirst, "g-4 g-3 g-2 g-1"},
		{spec.TerminateOldestFirst, "g-1 g-2 g-3 g-4"},
		{spec.TerminateUnhealthyFirst, "g-2 g-4 g-3 g-1"},
		{"", "g-4 g-3 g-2 g-1"},
	}
	for _, tt := range tests {
		t.Run(string(tt.policy), func(t *testing.T) {
			var names []string
			for _, r := range RetireOrder(tt.policy, in) {
				names = append(names, r.Name)
			}
			if got := strings.Join(names, " "); got != tt.want {
				t.Errorf("RetireOrder = %s, want %s", got, tt.want)
			}
		})
	}
	if in[0].Name != "g-1" || in[1].Name != "g-4" {
		t.Error("RetireOrder modified its input")
	}
}
