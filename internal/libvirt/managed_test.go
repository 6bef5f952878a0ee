package libvirt

import (
	"context"
	"strings"
	"testing"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/premiscale/premiscale/internal/spec"
)

// TestListManagedDomains defines PremiScale domains of two groups (one of
// them shut off) and a foreign domain next to them: only the PremiScale ones
// are listed, each with its own group.
func TestListManagedDomains(t *testing.T) {
	c := dialTest(t, testURI)
	ctx := testCtx(t)
	groupA, groupB := uniqueName(t, "ga"), uniqueName(t, "gb")
	running, stopped := groupA+"-1", groupB+"-1"
	foreign := groupA + "-99"

	for _, ds := range []DomainSpec{
		{Name: running, Group: groupA, Domain: spec.Domain{VCPUs: 2, Memory: 128}},
		{Name: stopped, Group: groupB, Domain: spec.Domain{VCPUs: 1, Memory: 64}},
	} {
		if _, err := c.EnsureDomainRunning(ctx, ds); err != nil {
			t.Fatalf("EnsureDomainRunning %s: %v", ds.Name, err)
		}
		t.Cleanup(func() { _, _ = c.RemoveDomain(context.Background(), ds.Name, 0) })
	}
	if err := do(ctx, c, "destroy "+stopped, func(l *golibvirt.Libvirt) error {
		d, err := l.DomainLookupByName(stopped)
		if err != nil {
			return err
		}
		return l.DomainDestroy(d)
	}); err != nil {
		t.Fatal(err)
	}
	defineForeignDomain(t, c, foreign)

	list, err := c.ListManagedDomains(ctx)
	if err != nil {
		t.Fatalf("ListManagedDomains: %v", err)
	}
	// The test driver's state is shared with other tests: look only at ours,
	// but check every listed domain carries a group.
	got := map[string]Domain{}
	for i, d := range list {
		if d.Group == "" {
			t.Errorf("ListManagedDomains listed %s without a group", d.Name)
		}
		if i > 0 && list[i-1].Name >= d.Name {
			t.Errorf("ListManagedDomains not sorted by name: %s before %s", list[i-1].Name, d.Name)
		}
		if d.Name == "test" {
			t.Errorf("ListManagedDomains listed the test driver's own domain %q, which has no PremiScale metadata", d.Name)
		}
		if strings.HasPrefix(d.Name, groupA) || strings.HasPrefix(d.Name, groupB) {
			got[d.Name] = d
		}
	}
	want := map[string]Domain{
		running: {Name: running, Group: groupA, State: StateRunning, VCPUs: 2, MemoryMiB: 128},
		stopped: {Name: stopped, Group: groupB, State: StateShutoff, VCPUs: 1, MemoryMiB: 64},
	}
	if len(got) != len(want) {
		t.Errorf("ListManagedDomains (ours) = %+v, want %+v", got, want)
	}
	for name, w := range want {
		if g, ok := got[name]; !ok || g != w {
			t.Errorf("ListManagedDomains: %s = %+v (listed %v), want %+v", name, g, ok, w)
		}
	}
	if _, ok := got[foreign]; ok {
		t.Errorf("ListManagedDomains listed foreign domain %s", foreign)
	}
}
