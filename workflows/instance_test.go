package workflows

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/spec"
)

func findInstance(s spec.GroupStatus, name string) (spec.InstanceRef, bool) {
	for _, in := range s.Instances {
		if in.Name == name {
			return in, true
		}
	}
	return spec.InstanceRef{}, false
}

func TestInstanceBootsThenRunsOnCheckin(t *testing.T) {
	f := newFakeFleet()
	env := newEnv(t, f)
	gs := testSpec()
	gs.Launch.Health = spec.Health{Checkin: true, BootTimeout: 5 * time.Minute, HeartbeatInterval: time.Minute}
	seen := sizesAt(t, env, minutes(0.5, 1.5))
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflowByID(spec.InstanceWorkflowID("web-1"), spec.SignalCheckin, spec.CheckinSignal{Address: "10.0.2.15", Hostname: "web-1"})
	}, time.Minute)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 2*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	if in, _ := findInstance(seen[0], "web-1"); in.State != spec.StateBooting || seen[0].Current != 1 {
		t.Errorf("before check-in: %+v (current %d), want web-1 booting and counted", in, seen[0].Current)
	}
	if in, _ := findInstance(seen[1], "web-1"); in.State != spec.StateRunning || in.Address != "10.0.2.15" {
		t.Errorf("after check-in: %+v, want web-1 running at 10.0.2.15", in)
	}
	if len(f.created) != 1 || f.destroyed["web-1"] != 1 {
		t.Errorf("created %v destroyed %v, want web-1 made once and removed at delete", f.created, f.destroyed)
	}
}

func TestInstanceWithoutCheckinIsReplaced(t *testing.T) {
	f := newFakeFleet()
	env := newEnv(t, f)
	gs := testSpec()
	gs.Launch.Health = spec.Health{Checkin: true, BootTimeout: 3 * time.Minute}
	seen := sizesAt(t, env, minutes(3.5))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 4*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	if _, ok := findInstance(seen[0], "web-1"); ok {
		t.Errorf("web-1 never checked in but is still in the group: %+v", seen[0].Instances)
	}
	if in, ok := findInstance(seen[0], "web-2"); !ok || in.State != spec.StateBooting {
		t.Errorf("no replacement booting after the boot timeout: %+v", seen[0].Instances)
	}
	if f.destroyed["web-1"] != 1 {
		t.Errorf("web-1 was destroyed %d times, want once", f.destroyed["web-1"])
	}
}

func TestUnhealthyInstancesAreReplaced(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(f *fakeFleet)
		// heartbeats keeps web-1's last-seen fresh (every other instance's always is).
		heartbeats bool
		wantGone   bool
	}{
		{"crashed domain", func(f *fakeFleet) { f.crashed["web-1"] = true }, true, true},
		{"domain vanished", func(f *fakeFleet) { f.destroyed["web-1"]++ }, true, true},
		{"name taken by a foreign domain", func(f *fakeFleet) { f.foreign["web-1"] = true }, true, true},
		{"heartbeats stopped", func(*fakeFleet) {}, false, true},
		{"healthy", func(*fakeFleet) {}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeFleet()
			env := newEnv(t, f)
			gs := testSpec()
			gs.Launch.Health = spec.Health{HeartbeatInterval: time.Minute, HeartbeatTimeout: 3 * time.Minute}
			for m := 1; m <= 9; m++ {
				env.RegisterDelayedCallback(func() {
					f.mu.Lock()
					defer f.mu.Unlock()
					for name := range f.created {
						if name != "web-1" || tt.heartbeats {
							f.lastSeen[name] = env.Now()
						}
					}
				}, time.Duration(m)*time.Minute-time.Second)
			}
			env.RegisterDelayedCallback(func() { tt.spoil(f) }, 90*time.Second)
			seen := sizesAt(t, env, minutes(9.5))
			env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 10*time.Minute)
			env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
			if err := env.GetWorkflowError(); err != nil {
				t.Fatalf("group workflow failed: %v", err)
			}
			_, present := findInstance(seen[0], "web-1")
			if present == tt.wantGone {
				t.Fatalf("web-1 present=%v at 9.5m, want gone=%v: %+v", present, tt.wantGone, seen[0].Instances)
			}
			if tt.wantGone {
				if in, ok := findInstance(seen[0], "web-2"); !ok || in.State != spec.StateRunning {
					t.Errorf("no running replacement: %+v", seen[0].Instances)
				}
			} else if len(f.created) != 1 {
				t.Errorf("a healthy instance was replaced: created %v", f.created)
			}
		})
	}
}

func TestStaticAddressesAreNeverShared(t *testing.T) {
	f := newFakeFleet()
	env := newEnv(t, f)
	gs := testSpec()
	gs.Policy.Min, gs.Policy.Max, gs.Policy.Increment = 3, 3, 3
	gs.Launch.Networking = spec.Network{Type: spec.NetworkStatic, Subnet: netip.MustParsePrefix("10.0.0.0/24"), Gateway: netip.MustParseAddr("10.0.0.1")}
	for _, a := range []string{"10.0.0.10", "10.0.0.11", "10.0.0.12"} {
		gs.StaticAddresses = append(gs.StaticAddresses, netip.MustParseAddr(a))
	}
	gs.Launch.Health = spec.Health{HeartbeatInterval: time.Minute}
	env.RegisterDelayedCallback(func() { f.mu.Lock(); f.crashed["web-2"] = true; f.mu.Unlock() }, 90*time.Second)
	seen := sizesAt(t, env, minutes(0.5, 1.2, 2.5, 3.5))
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 4*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}
	for i, s := range seen {
		used := map[string]string{}
		for _, in := range s.Instances {
			if in.Address == "" {
				t.Errorf("check %d: %s has no address", i, in.Name)
			}
			if other, dup := used[in.Address]; dup {
				t.Errorf("check %d: %s and %s share %s", i, other, in.Name, in.Address)
			}
			used[in.Address] = in.Name
		}
	}
	if in, ok := findInstance(seen[3], "web-4"); !ok || in.Address != "10.0.0.11" {
		t.Errorf("the replacement of web-2 should reuse its freed address 10.0.0.11: %+v", seen[3].Instances)
	}
}

// An instance a group started through the client (Rules set) reports each state change to its
// group through ReportStatus, with the group's workflow ID, and none as a signal command. A
// report that cannot go as a local activity (Temporal away) goes as a regular activity after a
// few seconds, so the workflow task is not held open through an outage; the group hears it.
func TestClientStartedInstanceReportsThroughTheClient(t *testing.T) {
	for _, tc := range []struct {
		name        string
		failLocally bool
	}{
		{name: "as a local activity"},
		{name: "as a regular activity when the local one fails", failLocally: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeFleet()
			f.reportsFailLocally = tc.failLocally
			env := newEnv(t, f)
			params := InstanceParams{Name: "web-1", Group: "web", Host: "h1", Index: 1, GroupWorkflowID: spec.GroupWorkflowID("web"),
				Launch: testSpec().Launch, Rules: rulesClientReports}
			env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalRetire, nil) }, time.Minute)
			env.ExecuteWorkflow(InstanceWorkflow, params)
			if err := env.GetWorkflowError(); err != nil {
				t.Fatalf("instance workflow failed: %v", err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			var states []string
			for _, r := range f.reports {
				if r.GroupWorkflowID != spec.GroupWorkflowID("web") || r.Status.Name != "web-1" {
					t.Errorf("report %+v, want web-1's to its group", r)
				}
				states = append(states, r.Status.State)
			}
			if want := []string{spec.StateRunning, spec.StateTerminated}; !slices.Equal(states, want) {
				t.Errorf("delivered %v, want %v", states, want)
			}
			if f.created["web-1"] != 1 || f.destroyed["web-1"] != 1 {
				t.Errorf("created %v destroyed %v, want web-1 made and removed once", f.created, f.destroyed)
			}
			if tc.failLocally && f.localReportFailures < 2 {
				t.Errorf("%d local attempts failed, want each report tried locally first", f.localReportFailures)
			}
		})
	}
}
