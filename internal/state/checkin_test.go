package state_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/state"

	"github.com/premiscale/premiscale/internal/spec"
)

func TestRecordCheckin(t *testing.T) {
	type checkin struct {
		address   string
		minute    int
		wantFirst bool
		wantErr   error
	}
	tests := []struct {
		name     string
		initial  *state.Instance // nil: no such instance
		checkins []checkin
		want     state.Instance
	}{
		{
			name:    "first then heartbeats",
			initial: &state.Instance{State: spec.StateBooting, Host: "h1", CreatedAt: ts(0)},
			checkins: []checkin{
				{address: "10.0.0.5", minute: 2, wantFirst: true},
				{minute: 3},
				{minute: 4},
			},
			want: state.Instance{State: spec.StateBooting, Host: "h1", Address: "10.0.0.5", CreatedAt: us(ts(0)),
				CheckedInAt: ptr(us(ts(2))), LastSeenAt: ptr(us(ts(4)))},
		},
		{
			name:    "a late request does not move last-seen back",
			initial: &state.Instance{State: spec.StateRunning, CreatedAt: ts(0)},
			checkins: []checkin{
				{minute: 5, wantFirst: true},
				{minute: 3},
			},
			want: state.Instance{State: spec.StateRunning, CreatedAt: us(ts(0)),
				CheckedInAt: ptr(us(ts(5))), LastSeenAt: ptr(us(ts(5)))},
		},
		{
			name:    "a new address replaces the old, an empty one does not",
			initial: &state.Instance{State: spec.StateRunning, Address: "10.0.0.1", CreatedAt: ts(0)},
			checkins: []checkin{
				{address: "10.0.0.2", minute: 1, wantFirst: true},
				{minute: 2},
			},
			want: state.Instance{State: spec.StateRunning, Address: "10.0.0.2", CreatedAt: us(ts(0)),
				CheckedInAt: ptr(us(ts(1))), LastSeenAt: ptr(us(ts(2)))},
		},
		{
			name:    "already checked in through UpsertInstance",
			initial: &state.Instance{State: spec.StateRunning, CreatedAt: ts(0), CheckedInAt: ptr(ts(1)), LastSeenAt: ptr(ts(1))},
			checkins: []checkin{
				{minute: 2},
			},
			want: state.Instance{State: spec.StateRunning, CreatedAt: us(ts(0)),
				CheckedInAt: ptr(us(ts(1))), LastSeenAt: ptr(us(ts(2)))},
		},
		{
			name: "retired instance is left alone",
			initial: &state.Instance{State: spec.StateTerminated, Address: "10.0.0.5", CreatedAt: ts(0),
				CheckedInAt: ptr(ts(1)), LastSeenAt: ptr(ts(1)), TerminatedAt: ptr(ts(2))},
			checkins: []checkin{
				{address: "10.0.0.9", minute: 3, wantErr: state.ErrRetired},
			},
			want: state.Instance{State: spec.StateTerminated, Address: "10.0.0.5", CreatedAt: us(ts(0)),
				CheckedInAt: ptr(us(ts(1))), LastSeenAt: ptr(us(ts(1))), TerminatedAt: ptr(us(ts(2)))},
		},
		{
			name:     "unknown instance",
			checkins: []checkin{{address: "10.0.0.9", minute: 1, wantErr: state.ErrNotFound}},
		},
	}
	s, _ := openStore(t)
	c := ctx(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("ci%d-1", i)
			if tt.initial != nil {
				in := *tt.initial
				in.Name, in.Group = name, "ci"
				if err := s.UpsertInstance(c, in); err != nil {
					t.Fatalf("UpsertInstance: %v", err)
				}
			}
			for j, ci := range tt.checkins {
				first, err := s.RecordCheckin(c, name, ci.address, ts(ci.minute))
				if !errors.Is(err, ci.wantErr) {
					t.Fatalf("check-in %d: error %v, want %v", j, err, ci.wantErr)
				}
				if first != ci.wantFirst {
					t.Errorf("check-in %d: first = %v, want %v", j, first, ci.wantFirst)
				}
			}
			got, ok, err := s.GetInstance(c, name)
			if err != nil {
				t.Fatal(err)
			}
			if tt.initial == nil {
				if ok {
					t.Errorf("check-in of an unknown instance created it: %s", show(got))
				}
				return
			}
			want := tt.want
			want.Name, want.Group = name, "ci"
			if !reflect.DeepEqual(got, want) {
				t.Errorf("stored\n %s\nwant\n %s", show(got), show(want))
			}
		})
	}
}

func TestRecordCheckinConcurrentlyHasOneFirst(t *testing.T) {
	s, _ := openStore(t)
	c := ctx(t)
	if err := s.UpsertInstance(c, state.Instance{Name: "race-1", Group: "race", State: spec.StateBooting}); err != nil {
		t.Fatal(err)
	}
	const callers = 8
	var firsts atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first, err := s.RecordCheckin(c, "race-1", fmt.Sprintf("10.0.0.%d", i+1), ts(i))
			if err != nil {
				errs <- err
				return
			}
			if first {
				firsts.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("RecordCheckin: %v", err)
	}
	if n := firsts.Load(); n != 1 {
		t.Errorf("%d concurrent check-ins said they were first, want exactly 1", n)
	}
	got, _, err := s.GetInstance(c, "race-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.LastSeenAt == nil || !got.LastSeenAt.Equal(us(ts(callers-1))) {
		t.Errorf("last seen = %v, want the latest check-in %v", got.LastSeenAt, us(ts(callers-1)))
	}
}

func TestUndoFirstCheckin(t *testing.T) {
	s, _ := openStore(t)
	c := ctx(t)
	for _, in := range []state.Instance{
		{Name: "undo-1", Group: "undo", State: spec.StateBooting, CreatedAt: ts(0)},
		{Name: "undo-2", Group: "undo", State: spec.StateBooting, CreatedAt: ts(0)},
	} {
		if err := s.UpsertInstance(c, in); err != nil {
			t.Fatal(err)
		}
	}
	checkedIn := func(name string) *time.Time {
		t.Helper()
		in, _, err := s.GetInstance(c, name)
		if err != nil {
			t.Fatal(err)
		}
		return in.CheckedInAt
	}

	// ts(1) has nanoseconds the database drops: the undo must still match what was stored.
	if first, err := s.RecordCheckin(c, "undo-1", "10.0.0.5", ts(1)); err != nil || !first {
		t.Fatalf("RecordCheckin = %v, %v", first, err)
	}
	if err := s.UndoFirstCheckin(c, "undo-1", ts(2)); err != nil {
		t.Fatal(err)
	}
	if checkedIn("undo-1") == nil {
		t.Error("undo of a check-in at another time cleared the one at ts(1)")
	}
	if err := s.UndoFirstCheckin(c, "undo-1", ts(1)); err != nil {
		t.Fatal(err)
	}
	if got := checkedIn("undo-1"); got != nil {
		t.Errorf("after undo, checked in at %v, want nil", got)
	}
	if first, err := s.RecordCheckin(c, "undo-1", "", ts(3)); err != nil || !first {
		t.Errorf("check-in after the undo: first = %v, %v; want true", first, err)
	}

	// A terminated instance's record is history; an undo does not rewrite it.
	if _, err := s.RecordCheckin(c, "undo-2", "", ts(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertInstance(c, state.Instance{Name: "undo-2", Group: "undo", State: spec.StateTerminated, TerminatedAt: ptr(ts(2))}); err != nil {
		t.Fatal(err)
	}
	if err := s.UndoFirstCheckin(c, "undo-2", ts(1)); err != nil {
		t.Fatal(err)
	}
	if checkedIn("undo-2") == nil {
		t.Error("undo cleared a terminated instance's check-in")
	}

	if err := s.UndoFirstCheckin(c, "undo-1", time.Time{}); err == nil {
		t.Error("undo with a zero time succeeded")
	}
}

func TestSecret(t *testing.T) {
	s, _ := openStore(t)
	c := ctx(t)

	calls := 0
	gen := func(v string) func() ([]byte, error) {
		return func() ([]byte, error) { calls++; return []byte(v), nil }
	}
	first, err := s.Secret(c, "checkin", gen("\x00first\xff"))
	if err != nil {
		t.Fatalf("Secret: %v", err)
	}
	if string(first) != "\x00first\xff" {
		t.Errorf("Secret = %q, want the generated value, byte for byte", first)
	}
	again, err := s.Secret(c, "checkin", gen("second"))
	if err != nil {
		t.Fatalf("Secret again: %v", err)
	}
	if !bytes.Equal(again, first) {
		t.Errorf("second Secret = %q, want the stored %q", again, first)
	}
	if calls != 1 {
		t.Errorf("generate called %d times, want once (not when the setting exists)", calls)
	}

	other, err := s.Secret(c, "other", gen("other value"))
	if err != nil || string(other) != "other value" {
		t.Errorf("Secret(other) = %q, %v; settings must be independent", other, err)
	}

	boom := errors.New("no entropy")
	if _, err := s.Secret(c, "broken", func() ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("Secret with a failing generator: error %v, want it wrapped", err)
	}
	for _, bad := range [][]byte{{}, bytes.Repeat([]byte("x"), 1025)} {
		if _, err := s.Secret(c, "bad", func() ([]byte, error) { return bad, nil }); err == nil {
			t.Errorf("Secret accepted a %d-byte value", len(bad))
		}
	}
	if v, err := s.Secret(c, "max", func() ([]byte, error) { return bytes.Repeat([]byte("y"), 1024), nil }); err != nil || len(v) != 1024 {
		t.Errorf("Secret with a 1024-byte value = %d bytes, %v; want it stored whole", len(v), err)
	}
}

func TestSecretConcurrentCallersAgree(t *testing.T) {
	s, cfg := openStore(t)
	// A second store stands for a second agent with its own connections.
	s2, err := state.Open(ctx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	c := ctx(t)

	const callers = 12
	got := make([][]byte, callers)
	errs := make([]error, callers)
	var start sync.WaitGroup
	start.Add(1)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			store := s
			if i%2 == 1 {
				store = s2
			}
			start.Wait()
			got[i], errs[i] = store.Secret(c, "checkin", func() ([]byte, error) {
				return []byte(fmt.Sprintf("secret-of-caller-%d", i)), nil
			})
		}()
	}
	start.Done()
	wg.Wait()
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if !bytes.Equal(got[i], got[0]) {
			t.Errorf("caller %d got %q, caller 0 got %q: agents disagree on the secret", i, got[i], got[0])
		}
	}
}
