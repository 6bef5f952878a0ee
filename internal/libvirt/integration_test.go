package libvirt

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/premiscale/premiscale/internal/spec"
)

// TestLifecycleOnTestDriver walks one instance through everything an
// instance workflow does, twice per step to prove each step idempotent.
func TestLifecycleOnTestDriver(t *testing.T) {
	c := dialTest(t, testURI)
	ctx := testCtx(t)
	group := uniqueName(t, "g")
	name := group + "-1"
	base, overlay := name+"-base.qcow2", name+".qcow2"

	created, err := c.EnsureVolume(ctx, testPool, base, 1<<20, "qcow2")
	if err != nil || !created {
		t.Fatalf("EnsureVolume base = %v, %v; want created", created, err)
	}
	if created, err = c.EnsureVolume(ctx, testPool, base, 1<<20, "qcow2"); err != nil || created {
		t.Fatalf("EnsureVolume base again = %v, %v; want not created", created, err)
	}
	for i, want := range []bool{true, false} {
		created, err := c.EnsureOverlayVolume(ctx, testPool, overlay, testPool, base)
		if err != nil || created != want {
			t.Fatalf("EnsureOverlayVolume #%d = %v, %v; want created=%v", i+1, created, err, want)
		}
	}
	baseInfo, err := c.volumeInfo(ctx, testPool, base)
	if err != nil {
		t.Fatal(err)
	}
	assertBackingStore(t, c, testPool, overlay, baseInfo.path, baseInfo.capacity)

	ds := DomainSpec{
		Name:   name,
		Group:  group,
		Disks:  []DiskSpec{{Pool: testPool, Volume: overlay}},
		Domain: spec.Domain{VCPUs: 2, Memory: 128, Network: "user"},
	}
	for i, want := range []bool{true, false} {
		created, err := c.EnsureDomainRunning(ctx, ds)
		if err != nil || created != want {
			t.Fatalf("EnsureDomainRunning #%d = %v, %v; want created=%v", i+1, created, err, want)
		}
	}
	t.Cleanup(func() { _, _ = c.RemoveDomain(context.Background(), name, 0) })

	d, found, err := c.LookupDomain(ctx, name)
	if err != nil || !found {
		t.Fatalf("LookupDomain = %v, %v", found, err)
	}
	want := Domain{Name: name, Group: group, State: StateRunning, VCPUs: 2, MemoryMiB: 128}
	if d != want {
		t.Errorf("LookupDomain = %+v, want %+v", d, want)
	}
	// The disk went in with the overlay's path and format read from the pool.
	xmlDoc, err := call(ctx, c, "get xml", func(l *golibvirt.Libvirt) (string, error) {
		dom, err := l.DomainLookupByName(name)
		if err != nil {
			return "", err
		}
		return l.DomainGetXMLDesc(dom, 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(xmlDoc); err != nil {
		t.Fatal(err)
	}
	if def.Type != "test" {
		t.Errorf("domain type = %q, want test (picked for test:// URIs)", def.Type)
	}
	if got := def.Devices.Disks[0]; got.Source.File.File != "/"+testPool+"/"+overlay || got.Driver.Type != "qcow2" {
		t.Errorf("disk = file %q format %q, want /%s/%s qcow2", got.Source.File.File, got.Driver.Type, testPool, overlay)
	}

	// A domain named like an instance but made by somebody else is neither
	// listed, adopted nor removed.
	foreign := group + "-99"
	defineForeignDomain(t, c, foreign)
	if _, err := c.EnsureDomainRunning(ctx, DomainSpec{Name: foreign, Group: group, Domain: spec.Domain{VCPUs: 1, Memory: 64}}); !errors.Is(err, ErrForeignDomain) {
		t.Errorf("EnsureDomainRunning on a foreign domain: err = %v, want ErrForeignDomain", err)
	}
	if _, err := c.RemoveDomain(ctx, foreign, 0); !errors.Is(err, ErrForeignDomain) {
		t.Errorf("RemoveDomain on a foreign domain: err = %v, want ErrForeignDomain", err)
	}
	if _, err := c.EnsureDomainRunning(ctx, DomainSpec{Name: name, Group: "other", Domain: spec.Domain{VCPUs: 1, Memory: 64}}); !errors.Is(err, ErrForeignDomain) {
		t.Errorf("EnsureDomainRunning for another group: err = %v, want ErrForeignDomain", err)
	}

	list, err := c.ListGroupDomains(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0] != want {
		t.Errorf("ListGroupDomains = %+v, want [%+v]", list, want)
	}

	stats, err := c.AllDomainStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s := findStats(stats, name); s == nil || s.State != StateRunning {
		t.Errorf("AllDomainStats: %s = %+v, want running", name, s)
	}

	for i, want := range []bool{true, false} {
		existed, err := c.RemoveDomain(ctx, name, 5*time.Second)
		if err != nil || existed != want {
			t.Fatalf("RemoveDomain #%d = %v, %v; want existed=%v", i+1, existed, err, want)
		}
	}
	if _, found, err := c.LookupDomain(ctx, name); err != nil || found {
		t.Errorf("LookupDomain after remove = %v, %v; want absent", found, err)
	}
	if list, err := c.ListGroupDomains(ctx, group); err != nil || len(list) != 0 {
		t.Errorf("ListGroupDomains after remove = %+v, %v; want none", list, err)
	}

	for _, vol := range []string{overlay, base} {
		for i, want := range []bool{true, false} {
			existed, err := c.DeleteVolume(ctx, testPool, vol)
			if err != nil || existed != want {
				t.Fatalf("DeleteVolume %s #%d = %v, %v; want existed=%v", vol, i+1, existed, err, want)
			}
		}
		if ok, err := c.VolumeExists(ctx, testPool, vol); err != nil || ok {
			t.Errorf("VolumeExists %s after delete = %v, %v", vol, ok, err)
		}
	}
}

func assertBackingStore(t *testing.T, c *Conn, pool, name, wantPath string, wantCapacity uint64) {
	t.Helper()
	ctx := testCtx(t)
	doc, err := call(ctx, c, "vol xml", func(l *golibvirt.Libvirt) (string, error) {
		p, err := l.StoragePoolLookupByName(pool)
		if err != nil {
			return "", err
		}
		v, err := l.StorageVolLookupByName(p, name)
		if err != nil {
			return "", err
		}
		return l.StorageVolGetXMLDesc(v, 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	var vol libvirtxml.StorageVolume
	if err := vol.Unmarshal(doc); err != nil {
		t.Fatal(err)
	}
	if vol.BackingStore == nil || vol.BackingStore.Path != wantPath {
		t.Errorf("overlay %s backing store = %+v, want path %s\n%s", name, vol.BackingStore, wantPath, doc)
	}
	if vol.Target == nil || vol.Target.Format == nil || vol.Target.Format.Type != "qcow2" {
		t.Errorf("overlay %s is not qcow2:\n%s", name, doc)
	}
	if vol.Capacity == nil || scaleSize(vol.Capacity.Value, vol.Capacity.Unit) != wantCapacity {
		t.Errorf("overlay %s capacity = %+v, want %d bytes", name, vol.Capacity, wantCapacity)
	}
}

func findStats(stats []DomainStats, name string) *DomainStats {
	for i := range stats {
		if stats[i].Name == name {
			return &stats[i]
		}
	}
	return nil
}

// TestConcurrentEnsureDomainRunning races 20 goroutines over 10 names and
// expects exactly 10 domains, each reported created once: on one connection
// (the per-name lock decides) and on two (libvirt's refusal of a second
// define with the same name decides).
func TestConcurrentEnsureDomainRunning(t *testing.T) {
	for _, nconns := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d connections", nconns), func(t *testing.T) {
			var conns []*Conn
			for range nconns {
				conns = append(conns, dialTest(t, testURI))
			}
			ctx := testCtx(t)
			group := uniqueName(t, "g")
			const names = 10
			t.Cleanup(func() {
				for i := 1; i <= names; i++ {
					_, _ = conns[0].RemoveDomain(context.Background(), fmt.Sprintf("%s-%d", group, i), 0)
				}
			})

			var createdCount atomic.Int32
			var wg sync.WaitGroup
			errs := make(chan error, 2*names)
			for g := range 2 * names {
				wg.Go(func() {
					c := conns[g%nconns]
					name := fmt.Sprintf("%s-%d", group, g/2+1) // goroutines 2k and 2k+1 share a name
					created, err := c.EnsureDomainRunning(ctx, DomainSpec{Name: name, Group: group, Domain: spec.Domain{VCPUs: 1, Memory: 64}})
					if err != nil {
						errs <- err
						return
					}
					if created {
						createdCount.Add(1)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("EnsureDomainRunning: %v", err)
			}
			if got := createdCount.Load(); got != names {
				t.Errorf("%d calls reported created, want %d", got, names)
			}
			list, err := conns[0].ListGroupDomains(ctx, group)
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != names {
				t.Fatalf("ListGroupDomains found %d domains, want %d: %+v", len(list), names, list)
			}
			for _, d := range list {
				if d.State != StateRunning {
					t.Errorf("%s is %s, want running", d.Name, d.State)
				}
			}
		})
	}
}

// TestReconnectAfterDisconnect closes the connection under a Conn and shows
// the next call dials again. A second Conn stays open throughout because the
// test driver forgets its state when its last connection closes.
func TestReconnectAfterDisconnect(t *testing.T) {
	keeper := dialTest(t, testURI)
	c := dialTest(t, testURI)
	ctx := testCtx(t)
	group := uniqueName(t, "g")
	name := group + "-1"
	if _, err := keeper.EnsureDomainRunning(ctx, DomainSpec{Name: name, Group: group, Domain: spec.Domain{VCPUs: 1, Memory: 64}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = keeper.RemoveDomain(context.Background(), name, 0) })

	old := currentClient(c)
	if old == nil {
		t.Fatal("Dial left no connection")
	}
	if err := old.Disconnect(); err != nil {
		t.Fatalf("disconnect underlying connection: %v", err)
	}
	select {
	case <-old.Disconnected():
	case <-time.After(5 * time.Second):
		t.Fatal("go-libvirt did not report the disconnect")
	}

	d, found, err := c.LookupDomain(ctx, name)
	if err != nil || !found || d.State != StateRunning {
		t.Fatalf("LookupDomain after disconnect = %+v, %v, %v; want running", d, found, err)
	}
	if now := currentClient(c); now == nil || now == old {
		t.Errorf("Conn did not dial a new connection (old %p, now %p)", old, now)
	}
}

// TestCallTimeoutAndRecovery puts a relay in front of libvirtd and freezes
// it, as a hung daemon would be: the call must fail with a timeout naming the
// call, and once the relay thaws the next call must reconnect.
func TestCallTimeoutAndRecovery(t *testing.T) {
	dialTest(t, testURI) // keeps the test driver's state while the relayed connection comes and goes
	p := startProxy(t)
	ctx := testCtx(t)
	const timeout = 500 * time.Millisecond
	c, err := Dial(ctx, p.uri(), Options{CallTimeout: timeout, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf(notReachedFmt, p.uri(), err)
	}
	defer c.Close()

	if _, _, err := c.LookupDomain(ctx, "absent-domain"); err != nil {
		t.Fatalf("LookupDomain through relay: %v", err)
	}
	old := currentClient(c)

	p.setFrozen(true)
	start := time.Now()
	_, _, err = c.LookupDomain(ctx, "absent-domain")
	elapsed := time.Since(start)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("LookupDomain on a frozen daemon: err = %v, want ErrTimeout", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "look up domain absent-domain") || !strings.Contains(msg, "after 500ms") {
		t.Errorf("timeout error %q should name the call and the timeout", msg)
	}
	if elapsed > 3*timeout {
		t.Errorf("timed out after %s, want about %s", elapsed, timeout)
	}

	p.setFrozen(false)
	if _, _, err := c.LookupDomain(ctx, "absent-domain"); err != nil {
		t.Fatalf("LookupDomain after the daemon recovered: %v", err)
	}
	if now := currentClient(c); now == old {
		t.Error("Conn kept using the connection that timed out")
	}
}

// TestReconnectBackoff kills the relay (a dead daemon): calls fail, a call
// during the backoff is refused without dialling, and once the daemon is back
// calls succeed again.
func TestReconnectBackoff(t *testing.T) {
	dialTest(t, testURI) // keeps the test driver's state while the relayed connection comes and goes
	p := startProxy(t)
	ctx := testCtx(t)
	c, err := Dial(ctx, p.uri(), Options{CallTimeout: 2 * time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf(notReachedFmt, p.uri(), err)
	}
	defer c.Close()

	p.stop()
	deadline := time.Now().Add(5 * time.Second)
	for currentClient(c) != nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.HostInfo(ctx); err == nil || !strings.Contains(err.Error(), "connect to "+p.uri()) {
		t.Fatalf("HostInfo with the daemon gone: err = %v, want a connect error naming the URI", err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.HostInfo(short); err == nil || !strings.Contains(err.Error(), "backing off") {
		t.Fatalf("HostInfo during backoff: err = %v, want a backoff error", err)
	}

	p.listen()
	info, err := c.HostInfo(ctx) // waits out the backoff, then dials
	if err != nil {
		t.Fatalf("HostInfo after the daemon came back: %v", err)
	}
	if info.CPUs <= 0 || info.MemoryKiB == 0 {
		t.Errorf("HostInfo = %+v, want CPUs and memory", info)
	}
}

func TestDialTimeout(t *testing.T) {
	p := startProxy(t)
	p.setFrozen(true)
	ctx := testCtx(t)
	start := time.Now()
	_, err := Dial(ctx, p.uri(), Options{CallTimeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "connect to "+p.uri()) {
		t.Fatalf("Dial to a frozen daemon: err = %v, want a connect timeout naming the URI", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("Dial took %s despite a 300ms timeout", time.Since(start))
	}
}

func TestClosedConnRefusesCalls(t *testing.T) {
	c := dialTest(t, testURI)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.LookupDomain(testCtx(t), "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close: err = %v, want ErrClosed", err)
	}
}

func TestErrorsNameTheObjectAndURI(t *testing.T) {
	c := dialTest(t, testURI)
	ctx := testCtx(t)
	_, err := c.EnsureOverlayVolume(ctx, testPool, uniqueName(t, "v"), "no-such-pool", "base")
	if err == nil || !strings.Contains(err.Error(), "no-such-pool") || !strings.Contains(err.Error(), testURI) {
		t.Errorf("overlay on a missing base pool: err = %v, want one naming the pool and URI", err)
	}
	name := uniqueName(t, "g") + "-1"
	_, err = c.EnsureDomainRunning(ctx, DomainSpec{
		Name:   name,
		Group:  "g",
		Disks:  []DiskSpec{{Pool: testPool, Volume: "no-such-volume"}},
		Domain: spec.Domain{VCPUs: 1, Memory: 64},
	})
	if err == nil || !strings.Contains(err.Error(), "define domain "+name) || !strings.Contains(err.Error(), "no-such-volume") {
		t.Errorf("domain with a missing disk: err = %v, want one naming the domain and volume", err)
	}
}

// TestUploadVolumeOnQEMU covers what the test driver lacks (StorageVolUpload)
// on qemu:///system's directory pool, reading the file back from disk.
func TestUploadVolumeOnQEMU(t *testing.T) {
	c := dialTest(t, qemuURI)
	ensureQEMUPool(t, c)
	ctx := testCtx(t)
	name := uniqueName(t, "u") + ".img"
	t.Cleanup(func() { _, _ = c.DeleteVolume(context.Background(), qemuPool, name) })

	for _, size := range []int{4 << 10, 6<<10 + 123} { // the second replaces the first
		data := make([]byte, size)
		if _, err := rand.Read(data); err != nil {
			t.Fatal(err)
		}
		if err := c.UploadVolume(ctx, qemuPool, name, data); err != nil {
			t.Fatalf("UploadVolume %d bytes: %v", size, err)
		}
		info, err := c.volumeInfo(ctx, qemuPool, name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(info.path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%s holds %d bytes that differ from the %d uploaded", info.path, len(got), len(data))
		}
	}
	if existed, err := c.DeleteVolume(ctx, qemuPool, name); err != nil || !existed {
		t.Fatalf("DeleteVolume = %v, %v", existed, err)
	}
	if ok, err := c.VolumeExists(ctx, qemuPool, name); err != nil || ok {
		t.Errorf("VolumeExists after delete = %v, %v", ok, err)
	}
}

// TestRealDomainOnQEMU starts a tiny diskless-boot VM on qemu:///system with
// everything DomainXML emits (overlay disk, seed cdrom on virtio-scsi, user
// networking, serial console, balloon, rng) and the type picked from the
// host's capabilities: libvirt and QEMU must accept it, stats must flow, and
// removal must destroy a guest that ignores ACPI (there is no OS to answer).
func TestRealDomainOnQEMU(t *testing.T) {
	c := dialTest(t, qemuURI)
	ensureQEMUPool(t, c)
	ctx := testCtx(t)
	group := uniqueName(t, "g")
	name := group + "-1"
	base, overlay, seed := name+"-base.qcow2", name+".qcow2", name+"-seed.iso"
	t.Cleanup(func() {
		bg := context.Background()
		_, _ = c.RemoveDomain(bg, name, 0)
		for _, v := range []string{overlay, seed, base} {
			_, _ = c.DeleteVolume(bg, qemuPool, v)
		}
	})
	if _, err := c.EnsureVolume(ctx, qemuPool, base, 16<<20, "qcow2"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EnsureOverlayVolume(ctx, qemuPool, overlay, qemuPool, base); err != nil {
		t.Fatal(err)
	}
	baseInfo, err := c.volumeInfo(ctx, qemuPool, base)
	if err != nil {
		t.Fatal(err)
	}
	assertBackingStore(t, c, qemuPool, overlay, baseInfo.path, 16<<20)
	if err := c.UploadVolume(ctx, qemuPool, seed, bytes.Repeat([]byte{0}, 64<<10)); err != nil {
		t.Fatal(err)
	}

	ds := DomainSpec{
		Name:  name,
		Group: group,
		Disks: []DiskSpec{
			{Pool: qemuPool, Volume: overlay},
			{Pool: qemuPool, Volume: seed, Device: "cdrom"},
		},
		Domain: spec.Domain{VCPUs: 1, Memory: 64, Network: "user"},
	}
	if created, err := c.EnsureDomainRunning(ctx, ds); err != nil || !created {
		t.Fatalf("EnsureDomainRunning = %v, %v", created, err)
	}
	d, found, err := c.LookupDomain(ctx, name)
	if err != nil || !found || d.State != StateRunning || d.Group != group {
		t.Fatalf("LookupDomain = %+v, %v, %v; want running in %s", d, found, err, group)
	}

	var s *DomainStats
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		stats, err := c.AllDomainStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s = findStats(stats, name); s != nil && s.CPUTimeNs > 0 {
			break
		}
	}
	if s == nil || s.CPUTimeNs == 0 || s.VCPUs != 1 || s.BalloonMaximumKiB != 64<<10 {
		t.Errorf("AllDomainStats for %s = %+v, want cpu time, 1 vCPU and a 65536 KiB balloon", name, s)
	}

	start := time.Now()
	existed, err := c.RemoveDomain(ctx, name, 2*time.Second)
	if err != nil || !existed {
		t.Fatalf("RemoveDomain = %v, %v", existed, err)
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("RemoveDomain took %s: it should have waited out the 2s grace for a guest that ignores ACPI", took)
	}
	if _, found, err := c.LookupDomain(ctx, name); err != nil || found {
		t.Errorf("LookupDomain after remove = %v, %v", found, err)
	}
}
