package hostwatch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"
)

// flakyHost answers unless down is set.
type flakyHost struct {
	mu   sync.Mutex
	down bool
}

func (f *flakyHost) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errors.New("dial unix /run/libvirt/libvirt-sock: connection refused")
	}
	return nil
}

func (f *flakyHost) HostInfo(context.Context) (libvirt.HostInfo, error) {
	return libvirt.HostInfo{CPUs: 8, MemoryKiB: 16 << 20}, f.err()
}
func (f *flakyHost) FreeMemoryBytes(context.Context) (uint64, error) { return 8 << 30, f.err() }
func (f *flakyHost) VolumeExists(context.Context, string, string) (bool, error) {
	return true, f.err()
}
func (f *flakyHost) ListManagedDomains(context.Context) ([]libvirt.Domain, error) {
	return []libvirt.Domain{{Name: "g-1", VCPUs: 2, MemoryMiB: 1024}, {Name: "g-2", VCPUs: 1, MemoryMiB: 512}}, f.err()
}

type memRecorder struct {
	mu     sync.Mutex
	proofs []state.HostProof
	errs   []string
	// fail, when set, is what every record returns.
	fail error
}

func (m *memRecorder) RecordHostProof(_ context.Context, p state.HostProof) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.proofs = append(m.proofs, p)
	return m.fail
}

func (m *memRecorder) ListGroups(context.Context) ([]state.GroupRecord, error) { return nil, nil }
func (m *memRecorder) NoteHostImage(context.Context, string, string, string, bool) error {
	return nil
}

func (m *memRecorder) RecordHostError(_ context.Context, _, _ string, cause error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.errs = append(m.errs, cause.Error())
	return m.fail
}

// lockedBuffer is a log sink the prober's goroutine and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func TestOutageIsLoggedOnceAndRecoveryOnce(t *testing.T) {
	host := &flakyHost{down: true}
	rec := &memRecorder{}
	var logs lockedBuffer
	p := &Prober{Host: "kvm1", Hyper: host, Store: rec, Worker: "w", Period: 10 * time.Millisecond,
		Allowance: spec.Allowance{CPUOvercommit: 4, MemoryOvercommit: 1, ReservedCPUs: 1, ReservedMemoryMiB: 1024},
		Logger:    slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	time.Sleep(150 * time.Millisecond)
	host.mu.Lock()
	host.down = false
	host.mu.Unlock()
	time.Sleep(150 * time.Millisecond)
	cancel()
	<-done

	out := logs.String()
	if n := strings.Count(out, "host unreachable"); n != 1 {
		t.Errorf("outage logged %d times, want once:\n%s", n, out)
	}
	if n := strings.Count(out, "host reachable again"); n != 1 {
		t.Errorf("recovery logged %d times, want once:\n%s", n, out)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.errs) < 5 || len(rec.proofs) < 5 {
		t.Fatalf("recorded %d errors and %d proofs; want one per probe", len(rec.errs), len(rec.proofs))
	}
	want := state.HostProof{Name: "kvm1", Worker: "w", CPUs: 8, MemoryMiB: 16384, FreeMemoryMiB: 8192,
		Allowance: spec.Allowance{CPUOvercommit: 4, MemoryOvercommit: 1, ReservedCPUs: 1, ReservedMemoryMiB: 1024},
		UsedCPUs:  3, UsedMemoryMiB: 1536, Domains: 2}
	if got := rec.proofs[len(rec.proofs)-1]; got != want {
		t.Errorf("proof = %+v, want %+v", got, want)
	}
}

// TestHooks checks what a probe tells the worker's metrics: the proof it measured, or which
// dependency failed it.
func TestHooks(t *testing.T) {
	dbDown := errors.New("dial tcp 127.0.0.1:3306: connection refused")
	tests := []struct {
		name       string
		hostDown   bool
		storeFail  error
		wantProofs int
		wantErrors []string
	}{
		{"all up", false, nil, 1, nil},
		{"host down", true, nil, 0, []string{"libvirt/kvm1"}},
		{"database down", false, dbDown, 1, []string{"mysql"}},
		{"both down", true, dbDown, 0, []string{"libvirt/kvm1", "mysql"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var proofs []state.HostProof
			var errs []string
			p := &Prober{Host: "kvm1", Hyper: &flakyHost{down: tt.hostDown}, Store: &memRecorder{fail: tt.storeFail}, Worker: "w",
				Logger:  slog.New(slog.DiscardHandler),
				OnProof: func(p state.HostProof) { proofs = append(proofs, p) },
				OnError: func(d string) { errs = append(errs, d) }}
			if err := p.Probe(context.Background()); (err != nil) != (tt.hostDown || tt.storeFail != nil) {
				t.Errorf("Probe: %v", err)
			}
			if len(proofs) != tt.wantProofs || len(errs) != len(tt.wantErrors) || strings.Join(errs, ",") != strings.Join(tt.wantErrors, ",") {
				t.Errorf("proofs %+v, errors %q; want %d proofs, errors %q", proofs, errs, tt.wantProofs, tt.wantErrors)
			}
			if len(proofs) == 1 && (proofs[0].CPUs != 8 || proofs[0].UsedCPUs != 3 || proofs[0].UsedMemoryMiB != 1536) {
				t.Errorf("proof %+v, want the host's capacity and its domains' use", proofs[0])
			}
		})
	}
	// A probe cut short by the worker stopping is no dependency's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var errs []string
	p := &Prober{Host: "kvm1", Hyper: &flakyHost{down: true}, Store: &memRecorder{fail: context.Canceled}, Worker: "w",
		Logger: slog.New(slog.DiscardHandler), OnError: func(d string) { errs = append(errs, d) }}
	_ = p.Probe(ctx)
	if len(errs) != 0 {
		t.Errorf("a cancelled probe counted errors %q", errs)
	}
}

// TestProbeOnTheTestDriver proves a real libvirt host alive in a real MySQL, with a domain of
// PremiScale's on it, and the host is up by the database's clock.
func TestProbeOnTheTestDriver(t *testing.T) {
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
	name := testservices.UniqueName(t, "g") + "-1"
	ds := libvirt.DomainSpec{Name: name, Group: strings.TrimSuffix(name, "-1"), Domain: spec.Domain{VCPUs: 3, Memory: 256}}
	if _, err := conn.EnsureDomainRunning(ctx, ds); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.RemoveDomain(context.Background(), name, 0) })
	host := testservices.UniqueName(t, "h")
	// Two groups on the host: one whose image is in the pool, one whose image is not.
	present := testservices.UniqueName(t, "img") + ".qcow2"
	if _, err := conn.EnsureVolume(ctx, testservices.TestPool, present, 1<<20, "qcow2"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.DeleteVolume(context.Background(), testservices.TestPool, present) })
	for _, g := range []struct{ name, volume string }{{"has", present}, {"lacks", "no-such-image.qcow2"}} {
		js, _ := json.Marshal(spec.Group{Name: g.name, Hosts: []string{host}, Launch: spec.Launch{ImagePool: testservices.TestPool, ImageVolume: g.volume}})
		if err := store.UpsertGroup(ctx, state.GroupRecord{Name: host + "-" + g.name, Spec: js}); err != nil {
			t.Fatal(err)
		}
	}
	p := &Prober{Host: host, Hyper: conn, Store: store, Worker: "test", Period: time.Second,
		Allowance: spec.Allowance{CPUOvercommit: 2, MemoryOvercommit: 1}, Logger: slog.New(slog.DiscardHandler)}
	if err := p.Probe(ctx); err != nil {
		t.Fatal(err)
	}
	hosts, err := store.ListHosts(ctx, host)
	if err != nil || len(hosts) != 1 {
		t.Fatalf("hosts = %+v, %v", hosts, err)
	}
	h := hosts[0].Spec(time.Minute)
	if !h.Up || h.CPUs == 0 || h.MemoryMiB == 0 || h.UsedCPUs < 3 || h.UsedMemoryMiB < 256 || h.Domains < 1 || h.CPUOvercommit != 2 {
		t.Errorf("host = %+v; want up, with the test driver's capacity and at least our domain", h)
	}
	if down := hosts[0].Spec(0); down.Up || !strings.HasPrefix(down.Down, "no proof of life for") {
		t.Errorf("with downAfter 0 the host = %+v; want down", down)
	}
	if imgs, err := store.ListHostImages(ctx, testservices.TestPool, present); err != nil || len(imgs) != 1 || imgs[0].Host != host || imgs[0].State != state.ImageReady {
		t.Errorf("images of %s = %+v, %v; want it found on %s", present, imgs, err, host)
	}
	if imgs, err := store.ListHostImages(ctx, testservices.TestPool, "no-such-image.qcow2"); err != nil || len(imgs) != 0 {
		t.Errorf("a missing image is recorded: %+v, %v", imgs, err)
	}
}
