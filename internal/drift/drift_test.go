package drift

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"
)

// ownedBy is a fake of the group workflows: group → the instances its workflow owns.
type ownedBy map[string][]string

func (o ownedBy) Instances(_ context.Context, group string) ([]string, bool, error) {
	names, ok := o[group]
	return names, ok, nil
}

// TestSweepOnTheTestDriver sweeps a real libvirt (the test driver) against a real MySQL.
func TestSweepOnTheTestDriver(t *testing.T) {
	ctx := context.Background()
	store, err := state.Open(ctx, testservices.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	conn, err := libvirt.Dial(ctx, "test:///default", libvirt.Options{CallTimeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("connect to the libvirt test driver: %v (run testenv/up)", err)
	}
	defer conn.Close()
	group := testservices.UniqueName(t, "g")
	host := testservices.UniqueName(t, "h")
	pool := testservices.TestPool
	js, _ := json.Marshal(spec.Group{Name: group, Hosts: []string{host}, Launch: spec.Launch{ImagePool: pool, ImageVolume: "base.qcow2"}})
	if err := store.UpsertGroup(ctx, state.GroupRecord{Name: group, Spec: js}); err != nil {
		t.Fatal(err)
	}
	name := func(n int) string { return fmt.Sprintf("%s-%d", group, n) }
	domain := func(n int) {
		t.Helper()
		if _, err := conn.EnsureDomainRunning(ctx, libvirt.DomainSpec{Name: name(n), Group: group, Domain: spec.Domain{VCPUs: 1, Memory: 64}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = conn.RemoveDomain(context.Background(), name(n), 0) })
	}
	volume := func(v string) {
		t.Helper()
		if _, err := conn.EnsureVolume(ctx, pool, v, 1<<20, "qcow2"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = conn.DeleteVolume(context.Background(), pool, v) })
	}
	record := func(n int, st string) {
		t.Helper()
		if err := store.UpsertInstance(ctx, state.Instance{Name: name(n), Group: group, Host: host, State: st}); err != nil {
			t.Fatal(err)
		}
	}

	domain(1) // live: kept
	record(1, spec.StateRunning)
	volume(name(1) + ".qcow2")
	domain(2) // ours, never recorded: an orphan
	domain(3) // its instance was terminated: an orphan
	record(3, spec.StateTerminated)
	volume(name(4) + ".qcow2") // leftovers of an instance that is gone
	volume(name(4) + "-seed.iso")
	record(4, spec.StateFailed)
	domain(6) // not in MySQL, but its group's workflow owns it (a launch under way): kept
	record(5, spec.StateRunning)
	// A domain named like live instance 5 that is somebody else's: no metadata.
	xml := fmt.Sprintf(`<domain type="test"><name>%s</name><memory unit="MiB">64</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`, name(5))
	if out, err := exec.Command("sh", "-c", "virsh -c test+unix:///default define /dev/stdin <<'EOF'\n"+xml+"\nEOF").CombinedOutput(); err != nil {
		t.Fatalf("define a foreign domain: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("virsh", "-c", "test+unix:///default", "undefine", name(5)).Run() })

	clock := time.Now()
	s := &Sweeper{Host: host, Hyper: conn, Store: store, Workflows: ownedBy{group: {name(6)}}, Grace: time.Hour, Mode: Remove,
		Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return clock }}

	// Within the grace period nothing is removed; the foreign domain is reported at once.
	findings, err := s.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(findings); got != "domain "+name(2)+": ; domain "+name(3)+": ; volume "+name(4)+"-seed.iso: ; volume "+name(4)+".qcow2: ; foreign domain "+name(5)+": reported" {
		t.Fatalf("first sweep: %s", got)
	}
	// After it, the orphans go; the live and the owned stay; the foreign one is not reported again.
	clock = clock.Add(time.Hour)
	findings, err = s.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(findings); got != "domain "+name(2)+": removed; domain "+name(3)+": removed; volume "+name(4)+"-seed.iso: removed; volume "+name(4)+".qcow2: removed; foreign domain "+name(5)+": " {
		t.Fatalf("second sweep: %s", got)
	}
	for n, want := range map[int]bool{1: true, 2: false, 3: false, 5: true, 6: true} {
		if _, found, err := conn.LookupDomain(ctx, name(n)); err != nil || found != want {
			t.Errorf("domain %s: found %v (%v), want %v", name(n), found, err, want)
		}
	}
	if ok, _ := conn.VolumeExists(ctx, pool, name(1)+".qcow2"); !ok {
		t.Error("the live instance's volume was removed")
	}
	if ok, _ := conn.VolumeExists(ctx, pool, name(4)+".qcow2"); ok {
		t.Error("the orphan volume is still there")
	}
	events, err := store.ListScalingEvents(ctx, group, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, e := range events {
		if e.Action != "drift" {
			t.Errorf("event %+v: want action drift", e)
		}
		reasons = append(reasons, e.Outcome+": "+e.Reason)
	}
	joined := strings.Join(reasons, "\n")
	for _, want := range []string{
		"removed: drift on host " + host + ": orphan domain " + name(2) + " removed: no instance of that name is recorded (found 1h0m0s ago)",
		"removed: drift on host " + host + ": orphan domain " + name(3) + " removed: instance " + name(3) + " is terminated",
		"removed: drift on host " + host + ": orphan volume " + pool + "/" + name(4) + ".qcow2 removed: instance " + name(4) + " is failed",
		"reported: drift on host " + host + ": foreign domain " + name(5) + " reported: a domain with the name of live instance " + name(5) + " has no PremiScale metadata",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("decision log lacks %q:\n%s", want, joined)
		}
	}
	if len(events) != 5 {
		t.Errorf("%d decision-log rows, want 5 (each correction once):\n%s", len(events), joined)
	}

	// In report mode an orphan is reported once and left where it is.
	domain(7)
	r := &Sweeper{Host: host, Hyper: conn, Store: store, Grace: 0, Mode: Report, Logger: slog.New(slog.DiscardHandler)}
	for i := range 2 {
		findings, err := r.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := "domain " + name(7) + ": reported"
		if i == 1 {
			want = "domain " + name(7) + ": "
		}
		if got := summary(findings); !strings.Contains(got, want) {
			t.Errorf("report sweep %d: %s; want %q", i+1, got, want)
		}
	}
	if _, found, _ := conn.LookupDomain(ctx, name(7)); !found {
		t.Error("report mode removed an orphan")
	}
}

func summary(fs []Finding) string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Kind+" "+f.Name+": "+f.Action)
	}
	return strings.Join(out, "; ")
}

func TestGroupOf(t *testing.T) {
	groups := []string{"web", "web-api", "db"}
	for in, want := range map[string]string{"web-1": "web", "web-api-12": "web-api", "db-3": "db", "web-x": "", "cache-1": "", "web-": ""} {
		if got := groupOf(in, groups); got != want {
			t.Errorf("groupOf(%q) = %q, want %q", in, got, want)
		}
	}
}
