package libvirt

import (
	"context"
	"errors"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/premiscale/premiscale/internal/spec"
)

// TestWarmPoolCycle parks a pool member in every state and resumes it, on the test driver and
// on QEMU (a small domain with nothing to boot: managed save and restore of a real process).
func TestWarmPoolCycle(t *testing.T) {
	for _, tc := range []struct{ uri, pool string }{{testURI, testPool}, {qemuURI, qemuPool}} {
		t.Run(tc.uri, func(t *testing.T) {
			c := dialTest(t, tc.uri)
			if tc.uri == qemuURI {
				ensureQEMUPool(t, c)
			}
			ctx := testCtx(t)
			group := uniqueName(t, "g")
			name := group + "-1"
			base, overlay := name+"-base.qcow2", name+".qcow2"
			t.Cleanup(func() {
				bg := context.Background()
				_, _ = c.RemoveDomain(bg, name, 0)
				for _, v := range []string{overlay, base} {
					_, _ = c.DeleteVolume(bg, tc.pool, v)
				}
			})
			if _, err := c.EnsureVolume(ctx, tc.pool, base, 16<<20, "qcow2"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.EnsureOverlayVolume(ctx, tc.pool, overlay, tc.pool, base); err != nil {
				t.Fatal(err)
			}
			ds := DomainSpec{Name: name, Group: group, Pool: true, Disks: []DiskSpec{{Pool: tc.pool, Volume: overlay}},
				Domain: spec.Domain{VCPUs: 1, Memory: 64}}
			if _, err := c.EnsureDomainRunning(ctx, ds); err != nil {
				t.Fatal(err)
			}
			expect := func(step string, state DomainState, pool bool) {
				t.Helper()
				d, found, err := c.LookupDomain(ctx, name)
				if err != nil || !found || d.State != state || d.Pool != pool || d.Group != group {
					t.Fatalf("%s: domain %+v (found %v, %v); want %s, pool %v, group %s", step, d, found, err, state, pool, group)
				}
				managed, err := c.ListManagedDomains(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range managed {
					if m.Name == name && m.Pool != pool {
						t.Fatalf("%s: ListManagedDomains says pool %v, want %v", step, m.Pool, pool)
					}
				}
			}
			expect("defined as a pool member", StateRunning, true)

			steps := []struct {
				park     spec.PoolState
				parked   DomainState
				resumed  Resumed
				hasImage bool
			}{
				{spec.PoolSaved, StateShutoff, ResumedRestored, true},
				{spec.PoolStopped, StateShutoff, ResumedBooted, false},
				{spec.PoolRunning, StateRunning, ResumedRunning, false},
			}
			for _, s := range steps {
				// Twice: a retried park finds its work done.
				for i := range 2 {
					got, err := c.ParkDomain(ctx, name, s.park, 0)
					if err != nil || got != s.park {
						t.Fatalf("park %s #%d = %q, %v", s.park, i+1, got, err)
					}
				}
				expect("parked "+string(s.park), s.parked, true)
				dom, _, _ := c.lookupDomain(ctx, name)
				if has, err := c.hasManagedSave(ctx, dom); err != nil || has != s.hasImage {
					t.Errorf("parked %s: managed save image %v (%v), want %v", s.park, has, err, s.hasImage)
				}
				how, err := c.ResumeDomain(ctx, name)
				if err != nil || how != s.resumed {
					t.Fatalf("resume from %s = %q, %v; want %q", s.park, how, err, s.resumed)
				}
				expect("resumed from "+string(s.park), StateRunning, false)
				// A retried resume finds it running.
				if how, err := c.ResumeDomain(ctx, name); err != nil || how != ResumedRunning {
					t.Fatalf("resume again = %q, %v; want running", how, err)
				}
			}

			// A saved member that is retired goes with its saved image.
			if _, err := c.ParkDomain(ctx, name, spec.PoolSaved, 0); err != nil {
				t.Fatal(err)
			}
			if existed, err := c.RemoveDomain(ctx, name, time.Second); err != nil || !existed {
				t.Fatalf("remove a saved member = %v, %v", existed, err)
			}
			if _, err := c.ResumeDomain(ctx, name); !errors.Is(err, ErrDomainGone) {
				t.Errorf("resume of a removed member: %v, want ErrDomainGone", err)
			}
			if _, err := c.ParkDomain(ctx, name, spec.PoolStopped, 0); !errors.Is(err, ErrDomainGone) {
				t.Errorf("park of a removed member: %v, want ErrDomainGone", err)
			}
		})
	}
}

// TestParkSavedFindsAStoppedDomain: a member to be saved that powered off (no image) is
// reported stopped, so that its resume is known to boot it.
func TestParkSavedFindsAStoppedDomain(t *testing.T) {
	c := dialTest(t, testURI)
	ctx := testCtx(t)
	group := uniqueName(t, "g")
	name := group + "-1"
	ds := DomainSpec{Name: name, Group: group, Domain: spec.Domain{VCPUs: 1, Memory: 64}}
	if _, err := c.EnsureDomainRunning(ctx, ds); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.RemoveDomain(context.Background(), name, 0) })
	if err := do(ctx, c, "destroy", func(l *golibvirt.Libvirt) error {
		dom, err := l.DomainLookupByName(name)
		if err != nil {
			return err
		}
		return l.DomainDestroy(dom)
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.ParkDomain(ctx, name, spec.PoolSaved, 0); err != nil || got != spec.PoolStopped {
		t.Fatalf("park saved of a shut-off domain = %q, %v; want stopped", got, err)
	}
	if d, _, _ := c.LookupDomain(ctx, name); !d.Pool {
		t.Errorf("domain %+v not marked a pool member", d)
	}
}
