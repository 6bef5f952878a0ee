package state_test

import (
	"errors"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
)

// MariaDB compares utf8mb4_bin strings with PAD SPACE: "web-1 " = "web-1" in plain SQL. A
// check-in path or a CLI argument with trailing blanks must not reach the instance or group
// without them.
func TestNamesMatchByteForByte(t *testing.T) {
	s, _ := openStore(t)
	c := ctx(t)
	if err := s.UpsertGroup(c, state.GroupRecord{Name: "web", UpdatedAt: ts(0)}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertInstance(c, state.Instance{Name: "web-1", Group: "web", State: spec.StateBooting, CreatedAt: ts(0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordScalingEvent(c, state.ScalingEvent{Key: "asg/web/run1/1", Group: "web", At: ts(1), From: 0, To: 1}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web-1 ", "web-1\t", "web-1  ", " web-1", "WEB-1"} {
		if first, err := s.RecordCheckin(c, name, "10.0.0.9", ts(1)); !errors.Is(err, state.ErrNotFound) || first {
			t.Errorf("RecordCheckin(%q) = %v, %v; want ErrNotFound", name, first, err)
		}
		if _, found, err := s.GetInstance(c, name); err != nil || found {
			t.Errorf("GetInstance(%q) found=%v err=%v; want not found", name, found, err)
		}
		if err := s.UndoFirstCheckin(c, name, ts(1)); err != nil {
			t.Errorf("UndoFirstCheckin(%q): %v", name, err)
		}
	}
	in, found, err := s.GetInstance(c, "web-1")
	if err != nil || !found || in.CheckedInAt != nil || in.Address != "" {
		t.Fatalf("web-1 after check-ins under other names: %+v (found %v, %v); want untouched", in, found, err)
	}
	if first, err := s.RecordCheckin(c, "web-1", "10.0.0.5", ts(2)); err != nil || !first {
		t.Errorf("RecordCheckin(web-1) = %v, %v; want its first check-in", first, err)
	}

	for _, group := range []string{"web ", "web\t"} {
		if list, err := s.ListInstances(c, group, true); err != nil || len(list) != 0 {
			t.Errorf("ListInstances(%q) = %v, %v; want none", group, list, err)
		}
		if evs, err := s.ListScalingEvents(c, group, time.Time{}); err != nil || len(evs) != 0 {
			t.Errorf("ListScalingEvents(%q) = %v, %v; want none", group, evs, err)
		}
		if err := s.MarkGroupDeleted(c, group, ts(3)); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("MarkGroupDeleted(%q) = %v; want ErrNotFound", group, err)
		}
	}
	if list, err := s.ListInstances(c, "web", true); err != nil || len(list) != 1 {
		t.Errorf("ListInstances(web) = %v, %v; want web-1", list, err)
	}
	if evs, err := s.ListScalingEvents(c, "web", time.Time{}); err != nil || len(evs) != 1 {
		t.Errorf("ListScalingEvents(web) = %v, %v; want its one event", evs, err)
	}

	// A name with a trailing space would be stored over the one without it.
	if err := s.UpsertInstance(c, state.Instance{Name: "web-1 ", Group: "web", State: spec.StateTerminated}); err == nil {
		t.Error("UpsertInstance accepted a name ending in a space")
	}
	if err := s.UpsertGroup(c, state.GroupRecord{Name: "web "}); err == nil {
		t.Error("UpsertGroup accepted a name ending in a space")
	}
	if in, _, _ := s.GetInstance(c, "web-1"); in.State != spec.StateBooting {
		t.Errorf("web-1 is %s after the refused write, want booting", in.State)
	}
}
