package state_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
)

func register(t *testing.T, s *state.Store) state.Registration {
	t.Helper()
	r := state.Registration{Host: "wss://platform.test", AgentID: "agent-1", Credential: "cred-1", Response: json.RawMessage(`{"agent_id":"agent-1","credential":"cred-1","extra":1}`)}
	if err := s.SaveRegistration(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

func pending(t *testing.T, s *state.Store) []state.OutboxEvent {
	t.Helper()
	evs, err := s.PendingEvents(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func ids(evs []state.OutboxEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func TestRegistrationKept(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	if _, ok, err := s.Registration(ctx); err != nil || ok {
		t.Fatalf("fresh database has a registration (%v, %v)", ok, err)
	}
	want := register(t, s)
	got, ok, err := s.Registration(ctx)
	if err != nil || !ok || got.Host != want.Host || got.AgentID != want.AgentID || got.Credential != want.Credential || string(got.Response) != string(want.Response) {
		t.Fatalf("Registration = %+v, %v, %v; want %+v", got, ok, err, want)
	}
	// Forgetting a credential that was renewed meanwhile keeps the new one.
	if err := s.ForgetRegistration(ctx, "old-credential"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Registration(ctx); !ok {
		t.Fatal("ForgetRegistration removed a registration with another credential")
	}
	if err := s.ForgetRegistration(ctx, want.Credential); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Registration(ctx); ok {
		t.Fatal("ForgetRegistration kept the refused credential")
	}
}

// The store adds decisions and instance state changes to the outbox in the writes that make
// them, only while the installation is registered, and never twice.
func TestOutboxFilledByWrites(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	ev := state.ScalingEvent{Key: "asg/web/run/1", Group: "web", From: 1, To: 2, Metrics: map[string]float64{"cpu": 91}, Reason: "cpu high", Action: "scale-out", Outcome: "acted", Checks: json.RawMessage(`[{"name":"cpu"}]`)}
	if _, err := s.RecordScalingEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertInstance(ctx, state.Instance{Name: "web-1", Group: "web", Host: "h", State: spec.StateLaunching}); err != nil {
		t.Fatal(err)
	}
	if got := pending(t, s); len(got) != 0 {
		t.Fatalf("a standalone installation filled the outbox: %v", ids(got))
	}

	register(t, s)
	ev.Key = "asg/web/run/2"
	for range 2 { // a retried activity writes the same event again
		if _, err := s.RecordScalingEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range []string{spec.StateLaunching, spec.StateBooting, spec.StateBooting, spec.StateRunning, spec.StateRunning, spec.StateRetiring, spec.StateTerminated, spec.StateRunning} {
		if err := s.UpsertInstance(ctx, state.Instance{Name: "web-1", Group: "web", Host: "h", State: st, Address: "10.0.0.5"}); err != nil {
			t.Fatal(err)
		}
	}
	got := pending(t, s)
	want := []string{"decision/asg/web/run/2", "instance/web-1/booting", "instance/web-1/running", "instance/web-1/retiring", "instance/web-1/terminated"}
	if !slices.Equal(ids(got), want) {
		t.Fatalf("outbox = %v, want %v", ids(got), want)
	}
	var d state.DecisionEvent
	if err := json.Unmarshal(got[0].Payload, &d); err != nil || d.Group != "web" || d.From != 1 || d.To != 2 || d.Metrics["cpu"] != 91 || string(d.Checks) != `[{"name":"cpu"}]` || got[0].Type != state.OutboxDecision {
		t.Errorf("decision payload %s (%v)", got[0].Payload, err)
	}
	var in state.InstanceEvent
	if err := json.Unmarshal(got[4].Payload, &in); err != nil || in.State != spec.StateTerminated || in.Previous != spec.StateRetiring || in.Address != "10.0.0.5" || got[4].Type != state.OutboxInstance {
		t.Errorf("instance payload %s (%v)", got[4].Payload, err)
	}

	n, err := s.AckEvents(ctx, []string{got[0].ID, got[1].ID, "unknown"})
	if err != nil || n != 2 {
		t.Fatalf("AckEvents = %d, %v", n, err)
	}
	if rest := ids(pending(t, s)); !slices.Equal(rest, want[2:]) {
		t.Errorf("after the ack the outbox holds %v, want %v", rest, want[2:])
	}
}

func TestOutboxSnapshotsCoalesce(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	register(t, s)
	for i := range 3 {
		if _, err := s.EnqueueSnapshot(ctx, state.OutboxEvent{ID: fmt.Sprintf("status-%d", i), Type: "group.status", Key: "group/web", Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Enqueue(ctx, state.OutboxEvent{ID: fmt.Sprintf("event-%d", i), Type: "x", Payload: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	got := ids(pending(t, s))
	if want := []string{"event-0", "event-1", "status-2", "event-2"}; !slices.Equal(got, want) {
		t.Errorf("outbox = %v, want %v", got, want)
	}
	if _, err := s.Enqueue(ctx, state.OutboxEvent{ID: "k", Type: "x", Key: "k", Payload: json.RawMessage(`{}`)}); err == nil {
		t.Error("Enqueue accepted a keyed event")
	}
	if _, err := s.Enqueue(ctx, state.OutboxEvent{ID: "bad", Type: "x", Payload: json.RawMessage(`{`)}); err == nil {
		t.Error("Enqueue accepted invalid JSON")
	}
}

func TestOutboxTrimDropsOldestEventsAndCounts(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	register(t, s)
	if _, err := s.EnqueueSnapshot(ctx, state.OutboxEvent{ID: "snap", Type: "group.status", Key: "group/web", Payload: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := s.Enqueue(ctx, state.OutboxEvent{ID: fmt.Sprintf("e%d", i), Type: "x", Payload: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	dropped, total, err := s.TrimOutbox(ctx, 4)
	if err != nil || dropped != 6 || total != 6 {
		t.Fatalf("TrimOutbox = %d, %d, %v; want 6, 6", dropped, total, err)
	}
	if got, want := ids(pending(t, s)), []string{"snap", "e6", "e7", "e8", "e9"}; !slices.Equal(got, want) {
		t.Errorf("after trimming: %v, want %v", got, want)
	}
	if dropped, total, err = s.TrimOutbox(ctx, 4); err != nil || dropped != 0 || total != 0 {
		t.Errorf("second TrimOutbox = %d, %d, %v; want nothing dropped", dropped, total, err)
	}
	for i := 10; i < 13; i++ {
		if _, err := s.Enqueue(ctx, state.OutboxEvent{ID: fmt.Sprintf("e%d", i), Type: "x", Payload: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if dropped, total, err = s.TrimOutbox(ctx, 4); err != nil || dropped != 3 || total != 9 {
		t.Errorf("third TrimOutbox = %d, %d, %v; want 3 now, 9 in total", dropped, total, err)
	}
	p, d, err := s.OutboxCounts(ctx)
	if err != nil || p != 5 || d != 9 {
		t.Errorf("OutboxCounts = %d pending, %d dropped, %v", p, d, err)
	}
}

func TestCommandClaimedOnce(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	register(t, s)
	c, claimed, err := s.ClaimCommand(ctx, "cmd-1", "scale", "term-a")
	if err != nil || !claimed || c.State != state.CommandApplying {
		t.Fatalf("first claim = %+v, %v, %v", c, claimed, err)
	}
	if _, claimed, _ := s.ClaimCommand(ctx, "cmd-1", "scale", "term-a"); claimed {
		t.Error("the same term claimed a command it is applying twice")
	}
	// A link that stopped while applying it: the next one takes it over, once.
	if c, claimed, err := s.ClaimCommand(ctx, "cmd-1", "scale", "term-b"); err != nil || !claimed || c.Term != "term-b" {
		t.Fatalf("take-over = %+v, %v, %v", c, claimed, err)
	}
	if err := s.FinishCommand(ctx, "cmd-1", "term-a", state.OutboxEvent{ID: "result/cmd-1", Type: "command.result", Payload: json.RawMessage(`{"ok":true}`)}); !errors.Is(err, state.ErrNotClaimed) {
		t.Errorf("the old term finished a command taken over: %v", err)
	}
	if err := s.FinishCommand(ctx, "cmd-1", "term-b", state.OutboxEvent{ID: "result/cmd-1", Type: "command.result", Payload: json.RawMessage(`{"ok":true}`)}); err != nil {
		t.Fatal(err)
	}
	c, claimed, err = s.ClaimCommand(ctx, "cmd-1", "scale", "term-c")
	if err != nil || claimed || c.State != state.CommandDone || string(c.Result) != `{"ok":true}` {
		t.Fatalf("claim of a done command = %+v, %v, %v", c, claimed, err)
	}
	if got := ids(pending(t, s)); !slices.Equal(got, []string{"result/cmd-1"}) {
		t.Errorf("outbox = %v, want the result", got)
	}
	if n, err := s.PruneCommands(ctx, time.Now().Add(time.Minute)); err != nil || n != 1 {
		t.Errorf("PruneCommands = %d, %v", n, err)
	}
}

func TestLockHeldByOneSession(t *testing.T) {
	s1, cfg := openStore(t)
	s2, err := state.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	ctx := context.Background()
	l1, err := s1.TryLock(ctx, "platform-link")
	if err != nil || l1 == nil {
		t.Fatalf("first TryLock = %v, %v", l1, err)
	}
	if err := l1.Held(ctx); err != nil {
		t.Fatal(err)
	}
	if l2, err := s2.TryLock(ctx, "platform-link"); err != nil || l2 != nil {
		t.Fatalf("a second agent took a held lock (%v, %v)", l2, err)
	}
	l1.Release()
	l2, err := s2.TryLock(ctx, "platform-link")
	if err != nil || l2 == nil {
		t.Fatalf("TryLock after release = %v, %v", l2, err)
	}
	// An agent that dies, or whose connection breaks, loses the lock with its session.
	var holder int64
	db := rawDB(t, cfg)
	if err := db.QueryRow("SELECT IS_USED_LOCK(?)", "premiscale.platform-link."+cfg.Connection.Database).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf("KILL CONNECTION %d", holder)); err != nil {
		t.Fatal(err)
	}
	if err := l2.Held(ctx); err == nil {
		t.Error("Held says yes after the session was killed")
	}
	l2.Release()
	l3, err := s1.TryLock(ctx, "platform-link")
	if err != nil || l3 == nil {
		t.Fatalf("TryLock after the holder died = %v, %v", l3, err)
	}
	l3.Release()
}
