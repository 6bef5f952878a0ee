package checkin_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/premiscale/premiscale/internal/checkin"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"

	"github.com/premiscale/premiscale/internal/spec"
)

// waitWorkflowName is registered only by this test, on its own task queue.
const waitWorkflowName = "checkin-test-wait"

// waitForCheckin stands in for InstanceWorkflow: it ends with the first check-in it is sent.
func waitForCheckin(ctx workflow.Context) (spec.CheckinSignal, error) {
	var sig spec.CheckinSignal
	workflow.GetSignalChannel(ctx, spec.SignalCheckin).Receive(ctx, &sig)
	return sig, nil
}

// countingSignaler passes signals to Temporal and counts the attempts, so the test can tell
// "not signalled" from "signalled and rejected".
type countingSignaler struct {
	client.Client
	mu       sync.Mutex
	attempts map[string]int
}

func (c *countingSignaler) SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error {
	c.mu.Lock()
	c.attempts[workflowID]++
	c.mu.Unlock()
	return c.Client.SignalWorkflow(ctx, workflowID, runID, signalName, arg)
}

func (c *countingSignaler) count(workflowID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.attempts[workflowID]
}

type harness struct {
	t        *testing.T
	ctx      context.Context
	store    *state.Store
	temporal client.Client
	signaler *countingSignaler
	url      string
	secret   []byte
	queue    string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	addr := testservices.TemporalAddress(t)
	dbCfg := testservices.MySQL(t)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)

	store, err := state.Open(ctx, dbCfg)
	if err != nil {
		t.Fatalf("state.Open: %v", err)
	}
	t.Cleanup(func() { store.Close() })

	quiet := tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	tc, err := client.DialContext(ctx, client.Options{HostPort: addr, Namespace: "default", Logger: quiet})
	if err != nil {
		t.Fatalf("dial Temporal at %s: %v", addr, err)
	}
	t.Cleanup(tc.Close)

	queue := testservices.UniqueName(t, "checkin-test")
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(waitForCheckin, workflow.RegisterOptions{Name: waitWorkflowName})
	if err := w.Start(); err != nil {
		t.Fatalf("start worker on %s: %v", queue, err)
	}
	t.Cleanup(w.Stop)

	secret, err := store.Secret(ctx, checkin.SecretSetting, func() ([]byte, error) {
		return []byte(testservices.UniqueName(t, "s") + "-0123456789abcdef0123456789abcdef"), nil
	})
	if err != nil {
		t.Fatalf("Secret: %v", err)
	}

	signaler := &countingSignaler{Client: tc, attempts: map[string]int{}}
	srv := &checkin.Server{Secret: secret, Instances: store, Signaler: signaler,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)

	return &harness{t: t, ctx: ctx, store: store, temporal: tc, signaler: signaler, url: hs.URL, secret: secret, queue: queue}
}

// instance records a new booting instance with a unique name.
func (h *harness) instance(prefix string) string {
	h.t.Helper()
	name := testservices.UniqueName(h.t, prefix)
	if err := h.store.UpsertInstance(h.ctx, state.Instance{Name: name, Group: "checkin-test", State: spec.StateBooting}); err != nil {
		h.t.Fatalf("UpsertInstance %s: %v", name, err)
	}
	return name
}

// startWorkflow starts the stand-in workflow under the instance's workflow ID.
func (h *harness) startWorkflow(name string) client.WorkflowRun {
	h.t.Helper()
	run, err := h.temporal.ExecuteWorkflow(h.ctx, client.StartWorkflowOptions{
		ID:                       spec.InstanceWorkflowID(name),
		TaskQueue:                h.queue,
		WorkflowExecutionTimeout: 2 * time.Minute,
	}, waitWorkflowName)
	if err != nil {
		h.t.Fatalf("start workflow for %s: %v", name, err)
	}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Ends a workflow a failed test left waiting; a completed one answers NotFound.
		_ = h.temporal.TerminateWorkflow(ctx, run.GetID(), run.GetRunID(), "test over")
	})
	return run
}

// post sends a check-in over real HTTP and returns the status and the decoded JSON body.
func (h *harness) post(url, contentType, body string) (int, map[string]string) {
	h.t.Helper()
	req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(data, &m); err != nil {
		h.t.Fatalf("POST %s: %d with non-JSON body %q", url, resp.StatusCode, data)
	}
	return resp.StatusCode, m
}

func (h *harness) signalsIn(run client.WorkflowRun) int {
	h.t.Helper()
	it := h.temporal.GetWorkflowHistory(h.ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			h.t.Fatalf("history of %s: %v", run.GetID(), err)
		}
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED {
			n++
		}
	}
	return n
}

const formType, jsonType = "application/x-www-form-urlencoded", "application/json"

func TestCheckinAgainstTemporalAndMariaDB(t *testing.T) {
	h := newHarness(t)

	name := h.instance("web")
	run := h.startWorkflow(name)
	url := checkin.URL(h.url, h.secret, name)
	wfID := spec.InstanceWorkflowID(name)

	// A forged token reaches neither the database nor the workflow.
	forged := h.url + "/checkin/" + name + "/" + strings.Repeat("0", 64)
	if status, body := h.post(forged, formType, "hostname=evil"); status != http.StatusUnauthorized || body["error"] != "invalid token for instance "+name {
		t.Errorf("forged token: %d %v, want 401 invalid token", status, body)
	}
	if n := h.signaler.count(wfID); n != 0 {
		t.Errorf("forged token: %d signal attempts, want 0", n)
	}
	if n := h.signalsIn(run); n != 0 {
		t.Errorf("forged token: workflow history has %d signals, want 0", n)
	}
	if in, _, _ := h.store.GetInstance(h.ctx, name); in.LastSeenAt != nil {
		t.Errorf("forged token: instance last seen %v, want never", in.LastSeenAt)
	}

	// Oversized and malformed bodies are refused before anything is recorded.
	if status, _ := h.post(url, formType, "hostname="+strings.Repeat("a", checkin.DefaultMaxBodyBytes)); status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized: status %d, want 413", status)
	}
	if status, body := h.post(url, jsonType, `{"heartbeat":`); status != http.StatusBadRequest || !strings.HasPrefix(body["error"], "invalid JSON body") {
		t.Errorf("malformed JSON: %d %v, want 400 invalid JSON body", status, body)
	}
	if status, _ := h.post(url, formType, "hostname=%zz"); status != http.StatusBadRequest {
		t.Errorf("malformed form: status %d, want 400", status)
	}
	if in, _, _ := h.store.GetInstance(h.ctx, name); in.LastSeenAt != nil || in.CheckedInAt != nil {
		t.Errorf("refused bodies recorded a check-in: %+v", in)
	}

	// What cloud-init's phone_home sends.
	phoneHome := "instance_id=iid-" + name + "&hostname=" + name + "&fqdn=" + name + ".example.com&pub_key_ed25519=ssh-ed25519+AAAA"
	if status, body := h.post(url, formType, phoneHome); status != http.StatusOK || body["status"] != "checked-in" {
		t.Fatalf("first check-in: %d %v, want 200 checked-in", status, body)
	}
	var got spec.CheckinSignal
	wctx, cancel := context.WithTimeout(h.ctx, 60*time.Second)
	defer cancel()
	if err := run.Get(wctx, &got); err != nil {
		t.Fatalf("workflow did not complete with the check-in: %v", err)
	}
	if got.Address != "127.0.0.1" || got.Hostname != name || got.At.IsZero() {
		t.Errorf("workflow got %+v, want address 127.0.0.1, hostname %s and a time", got, name)
	}
	in, _, err := h.store.GetInstance(h.ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if in.CheckedInAt == nil || !in.CheckedInAt.Equal(got.At) || in.Address != "127.0.0.1" {
		t.Errorf("stored instance %+v: want checked in at %v from 127.0.0.1", in, got.At)
	}

	// The guest's heartbeat: recorded, not signalled.
	if status, body := h.post(url, jsonType, `{"heartbeat":true}`); status != http.StatusOK || body["status"] != "heartbeat" {
		t.Errorf("heartbeat: %d %v, want 200 heartbeat", status, body)
	}
	if n := h.signaler.count(wfID); n != 1 {
		t.Errorf("%d signal attempts after a check-in and a heartbeat, want 1", n)
	}
	if n := h.signalsIn(run); n != 1 {
		t.Errorf("workflow history has %d signals, want 1", n)
	}
	after, _, _ := h.store.GetInstance(h.ctx, name)
	if after.LastSeenAt == nil || !after.LastSeenAt.After(*in.LastSeenAt) || !after.CheckedInAt.Equal(*in.CheckedInAt) {
		t.Errorf("heartbeat: last seen %v → %v, checked in %v → %v; want last seen later, checked in unchanged",
			in.LastSeenAt, after.LastSeenAt, in.CheckedInAt, after.CheckedInAt)
	}

	// A check-in replayed after the instance is retired.
	if err := h.store.UpsertInstance(h.ctx, state.Instance{Name: name, Group: "checkin-test", State: spec.StateTerminated, TerminatedAt: ptr(time.Now())}); err != nil {
		t.Fatal(err)
	}
	if status, body := h.post(url, formType, phoneHome); status != http.StatusGone || body["error"] != "instance "+name+" is retired" {
		t.Errorf("retired: %d %v, want 410", status, body)
	}
	if n := h.signaler.count(wfID); n != 1 {
		t.Errorf("retired check-in attempted a signal (%d attempts)", n)
	}
}

func TestCheckinUnknownInstance(t *testing.T) {
	h := newHarness(t)
	name := testservices.UniqueName(t, "ghost")
	status, body := h.post(checkin.URL(h.url, h.secret, name), formType, "hostname="+name)
	if status != http.StatusNotFound || body["error"] != "unknown instance "+name {
		t.Errorf("unknown instance: %d %v, want 404 unknown instance", status, body)
	}
	if n := h.signaler.count(spec.InstanceWorkflowID(name)); n != 0 {
		t.Errorf("%d signal attempts for an unknown instance", n)
	}
}

// TestCheckinWithoutWorkflow checks what the real Temporal answers for a workflow that does not
// run, and that the check-in is then forgotten so the next one is first again.
func TestCheckinWithoutWorkflow(t *testing.T) {
	h := newHarness(t)
	name := h.instance("orphan")
	url := checkin.URL(h.url, h.secret, name)
	want := "instance " + name + " has no running workflow"
	for i := range 2 {
		status, body := h.post(url, jsonType, `{"address":"10.9.8.7"}`)
		if status != http.StatusNotFound || body["error"] != want {
			t.Errorf("check-in %d: %d %v, want 404 %q", i, status, body, want)
		}
	}
	if n := h.signaler.count(spec.InstanceWorkflowID(name)); n != 2 {
		t.Errorf("%d signal attempts, want 2 (the first check-in was undone, so the second is first too)", n)
	}
	in, _, err := h.store.GetInstance(h.ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if in.CheckedInAt != nil || in.Address != "10.9.8.7" || in.LastSeenAt == nil {
		t.Errorf("stored %+v: want not checked in, but seen at 10.9.8.7", in)
	}
}

// TestCheckinAfterWorkflowEnded: an instance whose workflow has closed (here: terminated) gets
// the same 404 as one that never had a workflow, since Temporal answers NotFound for both.
func TestCheckinAfterWorkflowEnded(t *testing.T) {
	h := newHarness(t)
	name := h.instance("ended")
	run := h.startWorkflow(name)
	if err := h.temporal.TerminateWorkflow(h.ctx, run.GetID(), run.GetRunID(), "ended before the guest called"); err != nil {
		t.Fatal(err)
	}
	status, body := h.post(checkin.URL(h.url, h.secret, name), formType, "hostname="+name)
	if want := "instance " + name + " has no running workflow"; status != http.StatusNotFound || body["error"] != want {
		t.Errorf("check-in after the workflow ended: %d %v, want 404 %q", status, body, want)
	}
}

// TestCheckinNamesMatchExactly: MariaDB compares names with PAD SPACE, so without care a path
// naming "web-1 " (with a token for that name, which needs the secret) would check in web-1.
func TestCheckinNamesMatchExactly(t *testing.T) {
	h := newHarness(t)
	name := h.instance("exact")
	run := h.startWorkflow(name)
	for _, other := range []string{name + " ", name + "\t", name + "  "} {
		status, body := h.post(checkin.URL(h.url, h.secret, other), formType, "hostname=x")
		if status != http.StatusNotFound || body["error"] != "unknown instance "+other {
			t.Errorf("check-in as %q: %d %v, want 404 unknown instance", other, status, body)
		}
		if n := h.signaler.count(spec.InstanceWorkflowID(other)) + h.signaler.count(spec.InstanceWorkflowID(name)); n != 0 {
			t.Errorf("check-in as %q: %d signal attempts, want 0", other, n)
		}
	}
	if in, _, err := h.store.GetInstance(h.ctx, name); err != nil || in.CheckedInAt != nil || in.LastSeenAt != nil {
		t.Errorf("instance %s after check-ins under other names: %+v (%v); want never seen", name, in, err)
	}
	if n := h.signalsIn(run); n != 0 {
		t.Errorf("workflow of %s got %d signals, want 0", name, n)
	}
	// Its own name still works.
	if status, body := h.post(checkin.URL(h.url, h.secret, name), formType, "hostname="+name); status != http.StatusOK || body["status"] != "checked-in" {
		t.Errorf("check-in as %s: %d %v, want 200 checked-in", name, status, body)
	}
}

func ptr[T any](v T) *T { return &v }

// testWriter sends the server's log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
