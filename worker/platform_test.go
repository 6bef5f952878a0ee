package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/platform"
	"github.com/premiscale/premiscale/internal/platform/platformtest"
	"github.com/premiscale/premiscale/internal/spec"
)

// TestPlatformScalesARealGroup is the platform link end to end: an agent on the real services
// and libvirt's test driver links to a fake platform, which grows the agent's group with a
// scale command and sees it happen (status, decisions, instances), and deletes it.
func TestPlatformScalesARealGroup(t *testing.T) {
	f := newFixture(t, "{minNodes: 1, maxNodes: 4, cooldown: 0, resourceTarget: {cpu: 50}}")
	plat := platformtest.New(t)
	f.cfg.Controller.Platform = config.Platform{Host: plat.URL, Token: "test-token", CACertPEM: plat.CAPEM}
	a := f.runWorker(Options{StartGroups: true, Version: "test",
		Platform: platform.Options{StatusInterval: 300 * time.Millisecond, PollInterval: 50 * time.Millisecond, ElectionInterval: 200 * time.Millisecond}})
	defer a.stop(t)
	ctl := a.Groups()
	f.waitFor(ctl, "the minimum of 1 running instance", time.Minute, running(1))
	plat.Next(t, time.Minute, "hello", platformtest.OfType(platform.TypeHello))

	send := func(id string, payload map[string]any) platform.Result {
		t.Helper()
		if err := plat.Command(id, payload); err != nil {
			t.Fatal(err)
		}
		m := plat.Next(t, 3*time.Minute, "the result of "+id, func(m platformtest.Message) bool {
			return m.Type == platform.TypeCommandResult && strings.Contains(string(m.Payload), `"command":"`+id+`"`)
		})
		var r platform.Result
		if err := json.Unmarshal(m.Payload, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := send("scale-to-3", map[string]any{"op": "scale", "group": f.group, "desired": 3})
	if !r.OK || !strings.Contains(string(r.Result), `"Desired":3`) {
		t.Fatalf("scale result %+v %s", r, r.Result)
	}
	f.waitFor(ctl, "3 running instances after the platform's scale command", 2*time.Minute, running(3))
	if r := send("scale-to-3", map[string]any{"op": "scale", "group": f.group, "desired": 3}); !r.OK || !r.Duplicate {
		t.Errorf("the same command id again = %+v, want its stored result, marked duplicate", r)
	}
	if r := send("scale-too-big", map[string]any{"op": "scale", "group": f.group, "desired": 40}); r.OK || r.Error == nil || !strings.Contains(r.Error.Message, "4") {
		t.Errorf("an out-of-range scale = %+v, want the group's rejection", r)
	}

	// What the platform saw: a status at size 3, the decision, every new instance running.
	plat.Next(t, time.Minute, "a group status at size 3", func(m platformtest.Message) bool {
		var s spec.GroupStatus
		return m.Type == platform.TypeGroupStatus && json.Unmarshal(m.Payload, &s) == nil && s.Group == f.group && s.Current == 3
	})
	seen := plat.Seen()
	for _, id := range []string{f.group + "-2", f.group + "-3"} {
		if seen["instance/"+id+"/running"] == 0 {
			t.Errorf("no running event for %s; saw %v", id, keys(seen))
		}
	}
	decisions := 0
	for id := range seen {
		if strings.HasPrefix(id, "decision/") {
			decisions++
		}
	}
	if decisions == 0 {
		t.Errorf("no decision event; saw %v", keys(seen))
	}
	// Temporal applied the scale update once.
	if n := scaleUpdates(t, a, f.group); n != 1 {
		t.Errorf("the group accepted %d scale updates, want 1", n)
	}

	if r := send("delete-it", map[string]any{"op": "delete", "group": f.group, "timeout": "2m"}); !r.OK {
		t.Fatalf("delete = %+v", r)
	}
	plat.Next(t, time.Minute, "the group's removal", func(m platformtest.Message) bool {
		return m.Type == platform.TypeGroupRemoved && strings.Contains(string(m.Payload), f.group)
	})
	if names := f.domainNames(); len(names) != 0 {
		t.Errorf("after the platform's delete libvirt still has %v", names)
	}
	if _, err := ctl.Status(context.Background(), f.group); err == nil || !strings.Contains(err.Error(), groupctl.ErrNotRunning.Error()) {
		t.Errorf("status after delete: %v", err)
	}
}

func scaleUpdates(t *testing.T, a *runningWorker, group string) int {
	t.Helper()
	it := a.Temporal().GetWorkflowHistory(context.Background(), spec.GroupWorkflowID(group), "", false, 0)
	n := 0
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if u := e.GetWorkflowExecutionUpdateAcceptedEventAttributes(); u != nil && u.GetAcceptedRequest().GetInput().GetName() == spec.UpdateScale {
			n++
		}
	}
	return n
}

func keys(m map[string]int) string {
	var b strings.Builder
	for k := range m {
		fmt.Fprintf(&b, "%s ", k)
	}
	return b.String()
}
