package placement

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/premiscale/premiscale/internal/spec"
)

func TestPick(t *testing.T) {
	tests := []struct {
		name  string
		hosts []Host
		want  string
		ok    bool
	}{
		{"no host", nil, "", false},
		{"one", []Host{{"a", 5}}, "a", true},
		{"fewest", []Host{{"a", 2}, {"b", 1}, {"c", 3}}, "b", true},
		{"tie goes to the first listed", []Host{{"a", 1}, {"b", 1}}, "a", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Pick(tt.hosts)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Pick = %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestLoadSkipsRetiringAndOtherHosts(t *testing.T) {
	refs := []spec.InstanceRef{
		{Name: "g-1", Host: "a", State: spec.StateRunning},
		{Name: "g-2", Host: "a", State: spec.StateRetiring},
		{Name: "g-3", Host: "b", State: spec.StateBooting},
		{Name: "g-4", Host: "gone", State: spec.StateRunning},
	}
	got := Load([]string{"b", "a", "c"}, refs)
	want := []Host{{"b", 1}, {"a", 1}, {"c", 0}}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Load = %v, want %v", got, want)
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
