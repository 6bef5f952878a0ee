package activities

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
)

// The room ledger: a scale-out lists the host's domains once, not once per launch, yet counts
// every launch it let in; a refusal is checked against a fresh listing; a retirement gives the
// room back.
func TestRoomLedgerCountsLaunchesWithoutListingEachTime(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	hv := &fakeHypervisor{uploads: map[string][]byte{}}
	// 16 CPUs, none reserved, no overcommit: room for 4 instances of 4 vCPUs.
	h := &HostActivities{Host: "kvm1", Hyper: hv, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Allowance: spec.Allowance{CPUOvercommit: 1, MemoryOvercommit: 1}}
	env.RegisterActivity(h)
	launch := func(name string) error {
		l := spec.Launch{ImagePool: "images", ImageVolume: "base.qcow2", Domain: spec.Domain{VCPUs: 4, Memory: 1024}, Networking: spec.Network{Type: spec.NetworkIgnore}}
		_, err := env.ExecuteActivity(h.CreateInstance, CreateInstanceParams{Name: name, Group: "web", InstanceID: name + "-run", Launch: l})
		return err
	}
	refused := func(err error) bool {
		var appErr *temporal.ApplicationError
		return errors.As(err, &appErr) && appErr.Type() == ErrTypeNoCapacity
	}
	for i := 1; i <= 4; i++ {
		if err := launch(fmt.Sprintf("web-%d", i)); err != nil {
			t.Fatalf("launch %d: %v", i, err)
		}
	}
	if hv.listings != 1 {
		t.Errorf("4 launches listed the domains %d times, want once", hv.listings)
	}
	time.Sleep(1100 * time.Millisecond) // refusals trust a listing up to a second old
	if err := launch("web-5"); !refused(err) {
		t.Fatalf("a fifth launch on a full host: %v, want it refused for room", err)
	}
	if hv.listings != 2 {
		t.Errorf("the refusal listed the domains %d times in all, want a fresh listing before refusing (2)", hv.listings)
	}

	// An operator removes a domain behind the worker's back: the next refusal's fresh listing
	// finds the room.
	hv.domains = slices.DeleteFunc(hv.domains, func(d libvirt.Domain) bool { return d.Name == "web-1" })
	time.Sleep(1100 * time.Millisecond) // the last listing is more than a second old
	if err := launch("web-6"); err != nil {
		t.Fatalf("launch after a domain was removed by hand: %v", err)
	}

	// A retirement gives its room back at once.
	listings := hv.listings
	if _, err := env.ExecuteActivity(h.DestroyInstance, DestroyInstanceParams{Name: "web-2", Pool: "images", Grace: time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := launch("web-7"); err != nil {
		t.Fatalf("launch after a retirement: %v", err)
	}
	if hv.listings != listings {
		t.Errorf("the launch after a retirement listed the domains again (%d, was %d)", hv.listings, listings)
	}
	// A retried launch of a domain that exists passes whatever the room.
	if err := launch("web-7"); err != nil {
		t.Errorf("a retried launch of an existing domain: %v", err)
	}
}
