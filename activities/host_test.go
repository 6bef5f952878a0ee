package activities

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/premiscale/premiscale/internal/cloudinit"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
)

// fakeHypervisor records what the host activities asked of libvirt.
type fakeHypervisor struct {
	calls   []string
	uploads map[string][]byte
	spec    libvirt.DomainSpec
	domains []libvirt.Domain
	// listings counts ListManagedDomains calls.
	listings int
}

func (f *fakeHypervisor) EnsureOverlayVolume(_ context.Context, pool, name, _, _ string) (bool, error) {
	f.calls = append(f.calls, "overlay "+pool+"/"+name)
	return true, nil
}

func (f *fakeHypervisor) UploadVolume(_ context.Context, pool, name string, data []byte) error {
	f.calls = append(f.calls, "upload "+pool+"/"+name)
	f.uploads[name] = data
	return nil
}

func (f *fakeHypervisor) VolumeExists(context.Context, string, string) (bool, error) {
	return false, nil
}

func (f *fakeHypervisor) EnsureDomainRunning(_ context.Context, spec libvirt.DomainSpec) (bool, error) {
	f.calls = append(f.calls, "domain "+spec.Name)
	f.spec = spec
	f.domains = append(f.domains, libvirt.Domain{Name: spec.Name, VCPUs: spec.Domain.VCPUs, MemoryMiB: spec.Domain.Memory})
	return true, nil
}

func (f *fakeHypervisor) ParkDomain(_ context.Context, name string, state spec.PoolState, _ time.Duration) (spec.PoolState, error) {
	f.calls = append(f.calls, "park "+name+" "+string(state))
	return state, nil
}

func (f *fakeHypervisor) ResumeDomain(_ context.Context, name string) (libvirt.Resumed, error) {
	f.calls = append(f.calls, "resume "+name)
	return libvirt.ResumedRestored, nil
}

func (f *fakeHypervisor) LookupDomain(_ context.Context, name string) (libvirt.Domain, bool, error) {
	for _, d := range f.domains {
		if d.Name == name {
			return d, true, nil
		}
	}
	return libvirt.Domain{}, false, nil
}

// The fake host has 16 CPUs and 32 GiB, and holds what the test put in domains.
func (f *fakeHypervisor) HostInfo(context.Context) (libvirt.HostInfo, error) {
	return libvirt.HostInfo{CPUs: 16, MemoryKiB: 32 << 20}, nil
}

func (f *fakeHypervisor) ListManagedDomains(context.Context) ([]libvirt.Domain, error) {
	f.listings++
	return slices.Clone(f.domains), nil
}

func (f *fakeHypervisor) TemplateShape(context.Context, string) (int, int, error) {
	return 2, 2048, nil
}

func (f *fakeHypervisor) UploadVolumeFrom(_ context.Context, pool, name string, _ int64, r io.Reader) error {
	b, err := io.ReadAll(r)
	f.calls = append(f.calls, "upload "+pool+"/"+name)
	f.uploads[name] = b
	return err
}

func (f *fakeHypervisor) DownloadVolume(context.Context, string, string, io.Writer) (int64, error) {
	return 0, errors.New("not in the fake")
}

func (f *fakeHypervisor) VolumeFileSize(context.Context, string, string) (int64, error) {
	return 0, nil
}

func (f *fakeHypervisor) RemoveDomain(_ context.Context, name string, _ time.Duration) (bool, error) {
	f.calls = append(f.calls, "remove "+name)
	f.domains = slices.DeleteFunc(f.domains, func(d libvirt.Domain) bool { return d.Name == name })
	return true, nil
}

func (f *fakeHypervisor) DeleteVolume(_ context.Context, pool, name string) (bool, error) {
	f.calls = append(f.calls, "delete "+pool+"/"+name)
	return true, nil
}

func TestCreateInstance(t *testing.T) {
	launch := spec.Launch{
		ImagePool: "images", ImageVolume: "base.qcow2",
		Domain:     spec.Domain{VCPUs: 1, Memory: 512, Network: "user"},
		CloudInit:  "#cloud-config\nruncmd:\n  - [echo, \"{{.Name}} {{.Index}}\"]\n",
		Networking: spec.Network{Type: spec.NetworkDynamic},
		Health:     spec.Health{Checkin: true, HeartbeatInterval: 30 * time.Second},
	}
	tests := []struct {
		name      string
		cloudInit string
		wantErr   string
		wantCalls []string
	}{
		{"seed, disk and domain", launch.CloudInit, "", []string{"overlay images/web-3.qcow2", "upload images/web-3-seed.iso", "domain web-3"}},
		{"template error creates nothing", "#cloud-config\nruncmd: [[echo, \"{{.Nmae}}\"]]\n", "groups.web.cloud-init: line 2", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			hv := &fakeHypervisor{uploads: map[string][]byte{}}
			h := &HostActivities{
				Host: "kvm1", Hyper: hv, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				CheckinURL: func(instance string) string { return "http://10.0.2.2:8090/checkin/" + instance + "/token" },
			}
			env.RegisterActivity(h)
			l := launch
			l.CloudInit = tt.cloudInit
			_, err := env.ExecuteActivity(h.CreateInstance, CreateInstanceParams{Name: "web-3", Group: "web", Index: 3, InstanceID: "web-3-run", Launch: l})
			if tt.wantErr != "" {
				var appErr *temporal.ApplicationError
				if !errors.As(err, &appErr) || appErr.Type() != ErrTypeBadLaunchSpec || !appErr.NonRetryable() || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v; want a non-retryable %s naming %q", err, ErrTypeBadLaunchSpec, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if strings.Join(hv.calls, "; ") != strings.Join(tt.wantCalls, "; ") {
				t.Fatalf("calls %q, want %q", hv.calls, tt.wantCalls)
			}
			if tt.wantErr != "" {
				return
			}
			_, files, err := cloudinit.ReadISO(hv.uploads["web-3-seed.iso"])
			if err != nil {
				t.Fatal(err)
			}
			ud := string(files["user-data"])
			for _, want := range []string{"echo, \"web-3 3\"", "http://10.0.2.2:8090/checkin/web-3/token", "premiscale-heartbeat.timer"} {
				if !strings.Contains(ud, want) {
					t.Errorf("user-data lacks %q:\n%s", want, ud)
				}
			}
			if hv.spec.MAC != libvirt.InstanceMAC("web-3") || !strings.Contains(string(files["network-config"]), hv.spec.MAC) {
				t.Errorf("domain MAC %q does not match the seed's network-config:\n%s", hv.spec.MAC, files["network-config"])
			}
			if len(hv.spec.Disks) != 2 || hv.spec.Disks[1].Volume != "web-3-seed.iso" || !hv.spec.Disks[1].ReadOnly {
				t.Errorf("disks %+v, want the overlay and the read-only seed", hv.spec.Disks)
			}
		})
	}
}

func TestDestroyInstanceRemovesDomainAndVolumes(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	hv := &fakeHypervisor{}
	h := &HostActivities{Host: "kvm1", Hyper: hv, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	env.RegisterActivity(h)
	if _, err := env.ExecuteActivity(h.DestroyInstance, DestroyInstanceParams{Name: "web-3", Pool: "images", Grace: time.Second}); err != nil {
		t.Fatal(err)
	}
	want := "remove web-3; delete images/web-3.qcow2; delete images/web-3-seed.iso"
	if got := strings.Join(hv.calls, "; "); got != want {
		t.Errorf("calls %q, want %q", got, want)
	}
}

// TestCreateInstanceRefusesAFullHost: the host's worker checks room against what is defined on
// the host when it defines the domain, whatever placement saw a moment earlier.
func TestCreateInstanceRefusesAFullHost(t *testing.T) {
	tests := []struct {
		name     string
		domain   spec.Domain
		template string
		used     []libvirt.Domain
		wantErr  string
	}{
		{name: "room", domain: spec.Domain{VCPUs: 2, Memory: 2048}, used: []libvirt.Domain{{VCPUs: 8, MemoryMiB: 8192}}},
		{name: "memory full", domain: spec.Domain{VCPUs: 2, Memory: 2048}, used: []libvirt.Domain{{VCPUs: 1, MemoryMiB: 31744}},
			wantErr: "no capacity: kvm1 needs 2048 MiB of memory (1024 free)"},
		// 16 CPUs less 1 reserved, ×2: 30 vCPUs.
		{name: "cpus full", domain: spec.Domain{VCPUs: 2, Memory: 512}, used: []libvirt.Domain{{VCPUs: 29, MemoryMiB: 512}},
			wantErr: "no capacity: kvm1 needs 2 vCPUs (1 free)"},
		{name: "a template's shape counts", template: "golden", used: []libvirt.Domain{{VCPUs: 29}},
			wantErr: "no capacity: kvm1 needs 2 vCPUs (1 free)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			hv := &fakeHypervisor{uploads: map[string][]byte{}, domains: tt.used}
			h := &HostActivities{Host: "kvm1", Hyper: hv, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Allowance: spec.Allowance{CPUOvercommit: 2, MemoryOvercommit: 1, ReservedCPUs: 1}}
			env.RegisterActivity(h)
			l := spec.Launch{ImagePool: "images", ImageVolume: "base.qcow2", Domain: tt.domain, Template: tt.template, Networking: spec.Network{Type: spec.NetworkIgnore}}
			_, err := env.ExecuteActivity(h.CreateInstance, CreateInstanceParams{Name: "web-3", Group: "web", Index: 3, InstanceID: "web-3-run", Launch: l})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) || appErr.Type() != ErrTypeNoCapacity || !appErr.NonRetryable() || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v; want a non-retryable %s saying %q", err, ErrTypeNoCapacity, tt.wantErr)
			}
			if slices.Contains(hv.calls, "domain web-3") {
				t.Error("the domain was defined on a full host")
			}
		})
	}
}
