package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/platform"
	"github.com/premiscale/premiscale/internal/platform/platformtest"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"
)

// collect waits until every id in want has arrived, and returns how many times each came.
func collect(t *testing.T, p *platformtest.Server, timeout time.Duration, want []string) map[string]int {
	t.Helper()
	return p.WaitFor(t, timeout, want)
}

func TestHelloFirstThenEventsThenCleanClose(t *testing.T) {
	f := newFixture(t)
	conn, err := libvirt.Dial(context.Background(), "test:///default", libvirt.Options{CallTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("connect to libvirt's test driver: %v (run testenv/up)", err)
	}
	defer conn.Close()
	cfg := f.linkConfig(f.store)
	host := f.cfg.Controller.Autoscale.Hosts[0].Name
	cfg.Hosts = map[string]platform.Host{host: conn}
	r := f.start(cfg)

	first := f.plat.Next(t, 20*time.Second, "a first message", func(platformtest.Message) bool { return true })
	if first.Type != platform.TypeHello || first.V != 1 || first.Agent != platformtest.AgentID || first.ID == "" || first.At.IsZero() {
		t.Fatalf("first message = %+v, want hello", first.Envelope)
	}
	var h platform.Hello
	if err := json.Unmarshal(first.Payload, &h); err != nil {
		t.Fatal(err)
	}
	if len(h.Hosts) != 1 || h.Hosts[0].Name != host || h.Groups != nil || h.GroupsError != "" || h.Limits.MaxMessageBytes != 1<<20 {
		t.Errorf("hello = %+v", h)
	}

	// Every agent reports its hosts' capacity; the store adds decisions and instance changes.
	m := f.plat.Next(t, 10*time.Second, "host capacity", platformtest.OfType(platform.TypeHostCapacity))
	var c platform.HostCapacity
	if err := json.Unmarshal(m.Payload, &c); err != nil || c.Host != host || c.CPUs == 0 || c.MemoryBytes == 0 {
		t.Errorf("host capacity %s (%v)", m.Payload, err)
	}
	ctx := context.Background()
	if _, err := f.store.RecordScalingEvent(ctx, state.ScalingEvent{Key: "asg/web/r/1", Group: "web", From: 1, To: 2, Reason: "cpu 90% > 50%", Action: "scale-out", Outcome: "acted"}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.UpsertInstance(ctx, state.Instance{Name: "web-2", Group: "web", Host: host, State: spec.StateLaunching}); err != nil {
		t.Fatal(err)
	}
	m = f.plat.Next(t, 10*time.Second, "the decision", platformtest.OfType(platform.TypeDecision))
	var d state.DecisionEvent
	if err := json.Unmarshal(m.Payload, &d); err != nil || m.ID != "decision/asg/web/r/1" || d.Reason != "cpu 90% > 50%" || d.To != 2 {
		t.Errorf("decision %s %s (%v)", m.ID, m.Payload, err)
	}
	m = f.plat.Next(t, 10*time.Second, "the instance change", platformtest.OfType(platform.TypeInstance))
	if m.ID != "instance/web-2/launching" {
		t.Errorf("instance event %s %s", m.ID, m.Payload)
	}
	eventually(t, 10*time.Second, "the outbox to drain", func() bool { return pendingCount(t, f.store) == 0 })

	// A clean close on shutdown.
	if err := r.stop(t); err != nil {
		t.Errorf("Run = %v", err)
	}
	eventually(t, 5*time.Second, "the close frame", func() bool { return len(f.plat.CloseCodes()) == 1 })
	if codes := f.plat.CloseCodes(); codes[0] != websocket.CloseNormalClosure {
		t.Errorf("close code %v, want 1000", codes)
	}
}

func TestDroppedConnectionResumesWithNothingLost(t *testing.T) {
	f := newFixture(t)
	// The first connection acknowledges nothing and is cut after hello and 30 events.
	f.plat.SetPolicy(func(conn int) platformtest.ConnPolicy {
		if conn == 1 {
			return platformtest.ConnPolicy{NoAck: true, DropAfter: 31}
		}
		return platformtest.ConnPolicy{}
	})
	// Registered before: the outbox fills only for a registered installation.
	if err := f.store.SaveRegistration(context.Background(), state.Registration{Host: f.plat.URL, AgentID: platformtest.AgentID, Credential: platformtest.Credential}); err != nil {
		t.Fatal(err)
	}
	want := enqueue(t, f.store, "before", 100, json.RawMessage(`{"n":1}`))
	f.start(f.linkConfig(f.store))
	hello(t, f.plat)
	want = append(want, enqueue(t, f.store, "during", 100, json.RawMessage(`{"n":2}`))...)
	seen := collect(t, f.plat, 30*time.Second, want)
	if f.plat.Conns() < 2 {
		t.Errorf("%d connections, want a reconnect", f.plat.Conns())
	}
	resent := 0
	for _, n := range seen {
		if n > 1 {
			resent++
		}
	}
	t.Logf("%d events delivered, %d of them twice (sent on the cut connection, never acknowledged)", len(seen), resent)
	if resent == 0 || resent > 30 {
		t.Errorf("%d events came twice; want those of the cut connection (1 to 30)", resent)
	}
	eventually(t, 10*time.Second, "the outbox to drain", func() bool { return pendingCount(t, f.store) == 0 })
}

func TestRestartWhilePlatformAwayDeliversMissedEvents(t *testing.T) {
	f := newFixture(t)
	first := f.start(f.linkConfig(f.store))
	hello(t, f.plat)
	f.plat.SetAway(true)
	f.plat.DropAll()
	eventually(t, 10*time.Second, "the agent to find the platform away", func() bool { return f.logs.count("cannot connect to the platform") > 0 })

	// Events while the platform is away, then the agent restarts (a new process: new
	// connections to MySQL), still without the platform.
	want := enqueue(t, f.store, "away", 50, json.RawMessage(`{}`))
	if _, err := f.store.RecordScalingEvent(context.Background(), state.ScalingEvent{Key: "missed-decision", Group: "web", Reason: "while away"}); err != nil {
		t.Fatal(err)
	}
	want = append(want, "decision/missed-decision")
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}
	store := f.openStore()
	f.start(f.linkConfig(store))
	want = append(want, enqueue(t, store, "restarted", 50, json.RawMessage(`{}`))...)
	time.Sleep(500 * time.Millisecond)
	f.plat.SetAway(false)
	hello(t, f.plat)
	collect(t, f.plat, 30*time.Second, want)
	eventually(t, 10*time.Second, "the outbox to drain", func() bool { return pendingCount(t, store) == 0 })
}

func TestBadMessagesGetErrorRepliesAndKeepTheConnection(t *testing.T) {
	f := newFixture(t)
	cfg := f.linkConfig(f.store)
	cfg.Options.MaxMessageBytes = 4096
	f.start(cfg)
	hello(t, f.plat)
	cmd := func(id, payload string) string {
		return fmt.Sprintf(`{"v":1,"type":"command","id":%q,"at":"2026-01-01T00:00:00Z","payload":%s}`, id, payload)
	}
	for _, c := range []struct {
		name, send string
		binary     bool
		typ, code  string
	}{
		{name: "not JSON", send: "hello?", typ: platform.TypeError, code: platform.CodeMalformed},
		{name: "JSON, not an envelope", send: `[1,2]`, typ: platform.TypeError, code: platform.CodeMalformed},
		{name: "no type", send: `{"v":1,"id":"m1"}`, typ: platform.TypeError, code: platform.CodeMalformed},
		{name: "no id", send: `{"v":1,"type":"command"}`, typ: platform.TypeError, code: platform.CodeMalformed},
		{name: "other version", send: `{"v":7,"type":"ack","id":"m2"}`, typ: platform.TypeError, code: platform.CodeVersion},
		{name: "unknown type", send: `{"v":1,"type":"reboot-everything","id":"m3"}`, typ: platform.TypeError, code: platform.CodeUnknownType},
		{name: "binary", send: `{"v":1,"type":"ack","id":"m4","payload":{"ids":[]}}`, binary: true, typ: platform.TypeError, code: platform.CodeMalformed},
		{name: "oversized", send: cmd("big", `{"op":"list","pad":"`+strings.Repeat("x", 20000)+`"}`), typ: platform.TypeError, code: platform.CodeTooLarge},
		{name: "ack with a bad payload", send: `{"v":1,"type":"ack","id":"m5","payload":{"ids":"all"}}`, typ: platform.TypeError, code: platform.CodeMalformed},
		{name: "unknown op", send: cmd("c1", `{"op":"format-disks"}`), typ: platform.TypeCommandResult, code: platform.CodeUnknownOp},
		{name: "no op", send: cmd("c2", `{}`), typ: platform.TypeCommandResult, code: platform.CodeInvalid},
		{name: "unknown field", send: cmd("c3", `{"op":"pause","group":"web","force":true}`), typ: platform.TypeCommandResult, code: platform.CodeInvalid},
		{name: "scale without a size", send: cmd("c4", `{"op":"scale","group":"web"}`), typ: platform.TypeCommandResult, code: platform.CodeInvalid},
		{name: "scale without a group", send: cmd("c5", `{"op":"scale","desired":3}`), typ: platform.TypeCommandResult, code: platform.CodeInvalid},
		{name: "events with a bad since", send: cmd("c6", `{"op":"events","group":"web","since":"-1h"}`), typ: platform.TypeCommandResult, code: platform.CodeInvalid},
		{name: "update without a file", send: cmd("c7", `{"op":"update","group":"web"}`), typ: platform.TypeCommandResult, code: platform.CodeInvalid},
		{name: "create with an invalid group file", send: cmd("c8", `{"op":"create","group":"web","file":"version: v1alpha1\ngroups:\n  web:\n    image: nopool\n"}`), typ: platform.TypeCommandResult, code: platform.CodeInvalid},
		{name: "status of a group that does not run", send: cmd("c9", `{"op":"status","group":"nope"}`), typ: platform.TypeCommandResult, code: platform.CodeNotRunning},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			if c.binary {
				err = f.plat.SendBinary([]byte(c.send))
			} else {
				err = f.plat.Send([]byte(c.send))
			}
			if err != nil {
				t.Fatal(err)
			}
			m := f.plat.Next(t, 10*time.Second, "a reply", func(m platformtest.Message) bool {
				return m.Type == platform.TypeError || m.Type == platform.TypeCommandResult
			})
			if m.Type != c.typ {
				t.Fatalf("reply %s %s, want a %s", m.Type, m.Payload, c.typ)
			}
			var code, message string
			if m.Type == platform.TypeError {
				var p platform.Problem
				_ = json.Unmarshal(m.Payload, &p)
				code, message = p.Code, p.Message
			} else {
				var r platform.Result
				_ = json.Unmarshal(m.Payload, &r)
				if r.OK || r.Error == nil {
					t.Fatalf("result %s, want an error", m.Payload)
				}
				code, message = r.Error.Code, r.Error.Message
			}
			if code != c.code || message == "" {
				t.Errorf("reply %s: code %q, want %q", m.Payload, code, c.code)
			}
			t.Logf("%s → %s: %s", c.name, code, message)
		})
	}
	// The connection survived all of it, and still works.
	if err := f.plat.Send([]byte(cmd("list-1", `{"op":"list"}`))); err != nil {
		t.Fatal(err)
	}
	m := f.plat.Next(t, 10*time.Second, "the list result", platformtest.OfType(platform.TypeCommandResult))
	var r platform.Result
	if err := json.Unmarshal(m.Payload, &r); err != nil || !r.OK || r.Command != "list-1" || string(r.Result) != "[]" {
		t.Errorf("list result %s (%v)", m.Payload, err)
	}
	if n := f.plat.Conns(); n != 1 {
		t.Errorf("%d connections, want the first one still up", n)
	}
	if got := f.logs.count("refused a message from the platform") + f.logs.count("refused a command from the platform"); got < 17 {
		t.Errorf("%d log lines about refused messages, want one each", got)
	}
}

// Two agents of one installation: one link at a time, the other takes over, and a command
// id is applied once whichever agent gets it.
func TestOneLinkPerInstallationAndCommandsAppliedOnce(t *testing.T) {
	f := newFixture(t)
	// A group file as the platform sends it: JSON with the same shape as the YAML file.
	host := f.cfg.Controller.Autoscale.Hosts[0].Name
	group := testGroupName(t)
	file := map[string]any{"version": "v1alpha1", "groups": map[string]any{group: map[string]any{
		"image": "default-pool/base.qcow2", "domain": map[string]any{"vcpus": 1, "memory": 128}, "hosts": []string{host},
		"networking": map[string]any{"type": "ignore"}, "health": map[string]any{"checkin": false},
		"scaling": map[string]any{"minNodes": 0, "maxNodes": 2, "resourceTarget": map[string]any{"cpu": 50}},
	}}}
	t.Cleanup(func() {
		_ = f.tc.TerminateWorkflow(context.Background(), spec.GroupWorkflowID(group), "", "test over")
	})

	a := f.start(f.linkConfig(f.store))
	hello(t, f.plat)
	b := f.start(f.linkConfig(f.openStore()))
	time.Sleep(time.Second) // five election intervals: b stands by
	if n := f.plat.Conns(); n != 1 {
		t.Fatalf("%d connections with two agents up, want 1", n)
	}

	send := func(id string, payload any) platform.Result {
		t.Helper()
		if err := f.plat.Command(id, payload); err != nil {
			t.Fatal(err)
		}
		m := f.plat.Next(t, 20*time.Second, "the result of "+id, func(m platformtest.Message) bool {
			return m.Type == platform.TypeCommandResult && strings.Contains(string(m.Payload), `"command":"`+id+`"`)
		})
		var r platform.Result
		if err := json.Unmarshal(m.Payload, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := send("create-1", map[string]any{"op": "create", "group": group, "file": file})
	if !r.OK || !strings.Contains(string(r.Result), `"started":true`) {
		t.Fatalf("create = %+v %s", r, r.Result)
	}
	r = send("pause-1", map[string]any{"op": "pause", "group": group})
	if !r.OK {
		t.Fatalf("pause = %+v", r)
	}
	if r = send("pause-1", map[string]any{"op": "pause", "group": group}); !r.OK || !r.Duplicate {
		t.Errorf("pause again = %+v, want the stored result marked duplicate", r)
	}

	// The link's holder stops; the other agent takes over and gets the same ids again.
	want := enqueue(t, f.store, "handover", 20, json.RawMessage(`{}`))
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	h := hello(t, f.plat)
	if h.AgentID != platformtest.AgentID {
		t.Errorf("the second agent links as %q", h.AgentID)
	}
	collect(t, f.plat, 20*time.Second, want)
	if r = send("pause-1", map[string]any{"op": "pause", "group": group}); !r.OK || !r.Duplicate {
		t.Errorf("pause on the other agent = %+v, want the stored result marked duplicate", r)
	}
	if r = send("create-1", map[string]any{"op": "create", "group": group, "file": file}); !r.OK || !r.Duplicate || !strings.Contains(string(r.Result), `"started":true`) {
		t.Errorf("create again = %+v %s", r, r.Result)
	}
	if r = send("pause-2", map[string]any{"op": "pause", "group": group}); !r.OK || r.Duplicate {
		t.Errorf("a new pause = %+v", r)
	}
	// Temporal saw each command id once: one spec (the start), two pauses (pause-1, pause-2).
	if got := signals(t, f, spec.GroupWorkflowID(group)); !slices.Equal(got, []string{spec.SignalSpec, spec.SignalPause, spec.SignalPause}) {
		t.Errorf("the group's workflow got signals %v, want [spec pause pause]", got)
	}
	if err := b.stop(t); err != nil {
		t.Fatal(err)
	}
}

func testGroupName(t *testing.T) string {
	return testservices.UniqueName(t, "p")
}

// signals lists the signals a workflow received, in order.
func signals(t *testing.T, f *fixture, id string) []string {
	t.Helper()
	it := f.tc.GetWorkflowHistory(context.Background(), id, "", false, 0)
	var out []string
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := e.GetWorkflowExecutionSignaledEventAttributes(); a != nil {
			out = append(out, a.GetSignalName())
		}
	}
	return out
}

func TestOutboxLimitDropsOldestAndSaysSo(t *testing.T) {
	f := newFixture(t)
	f.plat.SetAway(true)
	cfg := f.linkConfig(f.store)
	cfg.Options.MaxOutboxEvents = 10
	if err := f.store.SaveRegistration(context.Background(), state.Registration{Host: f.plat.URL, AgentID: platformtest.AgentID, Credential: platformtest.Credential}); err != nil {
		t.Fatal(err)
	}
	ids := enqueueWith(t, f.store, 1, "old", 25, json.RawMessage(`{}`))
	f.start(cfg)
	eventually(t, 10*time.Second, "the trim", func() bool { return f.logs.count("the platform outbox was over its limit") == 1 })
	f.plat.SetAway(false)
	h := hello(t, f.plat)
	if h.Outbox.Dropped != 15 {
		t.Errorf("hello says %d dropped, want 15", h.Outbox.Dropped)
	}
	m := f.plat.Next(t, 10*time.Second, "the overflow event", platformtest.OfType(platform.TypeOutboxOverflow))
	var o platform.Overflow
	if err := json.Unmarshal(m.Payload, &o); err != nil || o.Dropped != 15 || o.Total != 15 || o.Limit != 10 {
		t.Errorf("overflow %s (%v)", m.Payload, err)
	}
	collect(t, f.plat, 10*time.Second, ids[15:])
}

// TestBurstOf10000EventsInBoundedMemory streams 10,000 events of 4 KiB (40 MB) through the
// link while the heap is watched: the sender holds at most a window of them.
func TestBurstOf10000EventsInBoundedMemory(t *testing.T) {
	f := newFixture(t)
	f.start(f.linkConfig(f.store))
	hello(t, f.plat)
	f.plat.SetKeepPayloads(64)

	var peak atomic.Uint64
	stop := make(chan struct{})
	watched := make(chan struct{})
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	payload := json.RawMessage(`{"pad":"` + strings.Repeat("x", 4096) + `"}`)
	start := time.Now()
	want := enqueue(t, f.store, "burst", 10000, payload)
	collect(t, f.plat, 3*time.Minute, want)
	elapsed := time.Since(start)
	eventually(t, 30*time.Second, "the outbox to drain", func() bool { return pendingCount(t, f.store) == 0 })
	close(stop)
	<-watched
	growth := int64(peak.Load()) - int64(base)
	t.Logf("10000 events of 4 KiB written and delivered in %s (%.0f events/s); heap in use grew by at most %.1f MiB",
		elapsed.Round(time.Millisecond), 10000/elapsed.Seconds(), float64(growth)/(1<<20))
	if growth > 32<<20 {
		t.Errorf("the heap grew by %.1f MiB while 40 MB of events went through; want less than 32 MiB", float64(growth)/(1<<20))
	}
}

// TestKeepaliveNoticesASilentPlatform: the agent pings, and a platform that stops answering
// (no pong, no message) is given up after PongWait and connected to again.
func TestKeepaliveNoticesASilentPlatform(t *testing.T) {
	f := newFixture(t)
	f.plat.SetPolicy(func(conn int) platformtest.ConnPolicy { return platformtest.ConnPolicy{Stall: conn == 1} })
	cfg := f.linkConfig(f.store)
	cfg.Options.PingInterval = 100 * time.Millisecond
	cfg.Options.PongWait = time.Second
	f.start(cfg)
	hello(t, f.plat)
	start := time.Now()
	f.plat.Next(t, 10*time.Second, "a second connection", func(m platformtest.Message) bool { return m.Type == platform.TypeHello && m.Conn == 2 })
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Errorf("reconnected after %s, before the pong wait of 1s", waited)
	}
	if n := f.logs.count("the platform connection ended; reconnecting"); n != 1 {
		t.Errorf("%d reconnect log lines, want 1", n)
	}
	eventually(t, 5*time.Second, "pings on the live connection", func() bool { return f.plat.Pings() >= 3 })
}
