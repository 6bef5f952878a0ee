package activities

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"
)

// TestWarmPoolActivitiesOnTheTestDriver: a pool member created marked, parked with managed
// save, resumed (restored) and unmarked, and a member whose domain is gone failing for good.
func TestWarmPoolActivitiesOnTheTestDriver(t *testing.T) {
	ctx := context.Background()
	conn, err := libvirt.Dial(ctx, "test:///default", libvirt.Options{CallTimeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("connect to libvirt's test driver: %v (run testenv/up)", err)
	}
	defer conn.Close()
	group := testservices.UniqueName(t, "wp")
	name := group + "-1"
	const pool = "default-pool"
	if _, err := conn.EnsureVolume(ctx, pool, group+"-base.qcow2", 1<<20, "qcow2"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = conn.RemoveDomain(context.Background(), name, 0)
		for _, v := range []string{OverlayVolumeName(name), group + "-base.qcow2"} {
			_, _ = conn.DeleteVolume(context.Background(), pool, v)
		}
	})
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	// The test driver is shared with every other test: room enough for all of their domains.
	h := &HostActivities{Host: "local", Hyper: conn, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Allowance: spec.Allowance{CPUOvercommit: 100, MemoryOvercommit: 100}}
	env.RegisterActivity(h)

	l := spec.Launch{ImagePool: pool, ImageVolume: group + "-base.qcow2", Domain: spec.Domain{VCPUs: 1, Memory: 64},
		Networking: spec.Network{Type: spec.NetworkIgnore}}
	if _, err := env.ExecuteActivity(h.CreateInstance, CreateInstanceParams{Name: name, Group: group, Index: 1, InstanceID: "x", Launch: l, Pool: true}); err != nil {
		t.Fatal(err)
	}
	if d, _, err := conn.LookupDomain(ctx, name); err != nil || !d.Pool || d.State != libvirt.StateRunning {
		t.Fatalf("created pool member %+v (%v); want running and marked", d, err)
	}
	v, err := env.ExecuteActivity(h.ParkInstance, ParkInstanceParams{Name: name, State: spec.PoolSaved})
	var parked spec.PoolState
	if err != nil || v.Get(&parked) != nil || parked != spec.PoolSaved {
		t.Fatalf("park = %q, %v", parked, err)
	}
	if d, _, _ := conn.LookupDomain(ctx, name); d.State != libvirt.StateShutoff {
		t.Fatalf("saved member is %s, want shutoff", d.State)
	}
	v, err = env.ExecuteActivity(h.ResumeInstance, name)
	var how libvirt.Resumed
	if err != nil || v.Get(&how) != nil || how != libvirt.ResumedRestored {
		t.Fatalf("resume = %q, %v; want restored", how, err)
	}
	if d, _, _ := conn.LookupDomain(ctx, name); d.Pool || d.State != libvirt.StateRunning {
		t.Fatalf("resumed member %+v; want running, unmarked", d)
	}

	if _, err := conn.RemoveDomain(ctx, name, 0); err != nil {
		t.Fatal(err)
	}
	for _, call := range []func() error{
		func() error { _, err := env.ExecuteActivity(h.ResumeInstance, name); return err },
		func() error {
			_, err := env.ExecuteActivity(h.ParkInstance, ParkInstanceParams{Name: name, State: spec.PoolStopped})
			return err
		},
	} {
		var appErr *temporal.ApplicationError
		if err := call(); !errors.As(err, &appErr) || appErr.Type() != ErrTypeDomainGone || !appErr.NonRetryable() {
			t.Errorf("on a gone domain: %v; want a non-retryable %s", err, ErrTypeDomainGone)
		}
	}
}

// TestAwaitHeartbeat waits on a real state database for a guest booted from the pool.
func TestAwaitHeartbeat(t *testing.T) {
	ctx := context.Background()
	store, err := state.Open(ctx, testservices.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	a := &Activities{Store: store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	since := time.Now().UTC().Truncate(time.Microsecond)
	// Checked in once, long ago, when it first booted.
	before := since.Add(-time.Hour)
	if err := store.UpsertInstance(ctx, state.Instance{Name: "web-1", Group: "web", State: spec.StateWarm, CreatedAt: before, LastSeenAt: &before}); err != nil {
		t.Fatal(err)
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)

	_, err = env.ExecuteActivity(a.AwaitHeartbeat, AwaitHeartbeatParams{Name: "web-1", Since: since, Timeout: time.Second, Poll: 50 * time.Millisecond})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != ErrTypeNoHeartbeat || !appErr.NonRetryable() {
		t.Fatalf("without a heartbeat: %v; want a non-retryable %s", err, ErrTypeNoHeartbeat)
	}

	since = time.Now().UTC()
	beat := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		_, err := store.RecordCheckin(ctx, "web-1", "", time.Time{})
		beat <- err
	}()
	v, err := env.ExecuteActivity(a.AwaitHeartbeat, AwaitHeartbeatParams{Name: "web-1", Since: since, Timeout: time.Minute, Poll: 50 * time.Millisecond})
	if berr := <-beat; berr != nil {
		t.Fatal(berr)
	}
	var seen time.Time
	if err != nil || v.Get(&seen) != nil || !seen.After(since) || time.Since(since) > 10*time.Second {
		t.Fatalf("with a heartbeat: %s, %v; want its time, after %s", seen, err, since)
	}
}
