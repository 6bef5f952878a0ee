package checkin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// clock is the fixed time the server stamps check-ins with; the nanoseconds show they are
// truncated to what the database keeps.
var clock = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

// fakeInstances is an in-memory instances table.
type fakeInstances struct {
	mu      sync.Mutex
	known   map[string]bool // name → retired
	checked map[string]time.Time
	err     error // returned by RecordCheckin when set
	records []string
	undos   []string
}

func newFakeInstances(names ...string) *fakeInstances {
	f := &fakeInstances{known: map[string]bool{}, checked: map[string]time.Time{}}
	for _, n := range names {
		f.known[n] = false
	}
	return f
}

func (f *fakeInstances) RecordCheckin(_ context.Context, name, address string, at time.Time) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.records = append(f.records, name+" "+address)
	if f.err != nil {
		return false, f.err
	}
	retired, ok := f.known[name]
	switch {
	case !ok:
		return false, fmt.Errorf("record check-in of %s: %w", name, state.ErrNotFound)
	case retired:
		return false, fmt.Errorf("record check-in of %s: %w", name, state.ErrRetired)
	}
	if _, done := f.checked[name]; done {
		return false, nil
	}
	f.checked[name] = at
	return true, nil
}

func (f *fakeInstances) UndoFirstCheckin(_ context.Context, name string, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.undos = append(f.undos, name)
	if f.checked[name].Equal(at) {
		delete(f.checked, name)
	}
	return nil
}

type signal struct {
	WorkflowID, RunID, Name string
	Arg                     any
}

type fakeSignaler struct {
	mu   sync.Mutex
	err  error
	sent []signal
}

func (f *fakeSignaler) SignalWorkflow(_ context.Context, workflowID, runID, signalName string, arg any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.sent = append(f.sent, signal{workflowID, runID, signalName, arg})
	return nil
}

type request struct {
	method      string
	instance    string
	token       string // "" means the instance's valid token
	contentType string
	body        string
}

func formBody(v url.Values) string { return v.Encode() }

// phoneHome is what cloud-init's phone_home posts.
var phoneHome = formBody(url.Values{
	"instance_id":     {"iid-web-1"},
	"hostname":        {"web-1"},
	"fqdn":            {"web-1.example.com"},
	"pub_key_ed25519": {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG example"},
})

const form, jsonType = "application/x-www-form-urlencoded", "application/json"

func TestServer(t *testing.T) {
	notFound := serviceerror.NewNotFound("workflow execution already completed")
	tests := []struct {
		name string
		req  request
		// setup changes the fakes before the request.
		setup      func(*fakeInstances, *fakeSignaler)
		wantStatus int
		wantBody   map[string]string
		// wantSignal is the check-in signal sent, if any.
		wantSignal *spec.CheckinSignal
		// wantDB says whether the instances table may be touched at all.
		wantDB   bool
		wantUndo bool
	}{
		{
			name:       "GET is not allowed",
			req:        request{method: http.MethodGet, instance: "web-1"},
			wantStatus: http.StatusMethodNotAllowed,
			wantBody:   map[string]string{"error": "method GET is not allowed (use POST)"},
		},
		{
			name:       "forged token",
			req:        request{instance: "web-1", token: strings.Repeat("0", 64), contentType: form, body: phoneHome},
			wantStatus: http.StatusUnauthorized,
			wantBody:   map[string]string{"error": "invalid token for instance web-1"},
		},
		{
			name:       "another instance's token",
			req:        request{instance: "web-1", token: Token(testSecret, "web-2"), contentType: form, body: phoneHome},
			wantStatus: http.StatusUnauthorized,
			wantBody:   map[string]string{"error": "invalid token for instance web-1"},
		},
		{
			name:       "forged token for an unknown instance is 401, not 404",
			req:        request{instance: "nope-1", token: "abc", contentType: form, body: phoneHome},
			wantStatus: http.StatusUnauthorized,
			wantBody:   map[string]string{"error": "invalid token for instance nope-1"},
		},
		{
			name:       "oversized form",
			req:        request{instance: "web-1", contentType: form, body: "hostname=" + strings.Repeat("a", DefaultMaxBodyBytes)},
			wantStatus: http.StatusRequestEntityTooLarge,
			wantBody:   map[string]string{"error": fmt.Sprintf("body is larger than %d bytes", DefaultMaxBodyBytes)},
		},
		{
			name:       "oversized JSON",
			req:        request{instance: "web-1", contentType: jsonType, body: `{"hostname":"` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}`},
			wantStatus: http.StatusRequestEntityTooLarge,
			wantBody:   map[string]string{"error": fmt.Sprintf("body is larger than %d bytes", DefaultMaxBodyBytes)},
		},
		{
			name:       "bad form encoding",
			req:        request{instance: "web-1", contentType: form, body: "hostname=%zz"},
			wantStatus: http.StatusBadRequest,
			wantBody:   map[string]string{"error": `invalid form body: invalid URL escape "%zz"`},
		},
		{
			name:       "bad JSON",
			req:        request{instance: "web-1", contentType: jsonType, body: `{"heartbeat":tru}`},
			wantStatus: http.StatusBadRequest,
			wantBody:   map[string]string{"error": "invalid JSON body: invalid character '}' in literal true (expecting 'e')"},
		},
		{
			name:       "JSON of the wrong shape",
			req:        request{instance: "web-1", contentType: jsonType, body: `["heartbeat"]`},
			wantStatus: http.StatusBadRequest,
			wantBody:   map[string]string{"error": "invalid JSON body: json: cannot unmarshal array into Go value of type checkin.body"},
		},
		{
			name:       "empty JSON",
			req:        request{instance: "web-1", contentType: jsonType},
			wantStatus: http.StatusBadRequest,
			wantBody:   map[string]string{"error": "invalid JSON body: unexpected end of JSON input"},
		},
		{
			name:       "unknown content type",
			req:        request{instance: "web-1", contentType: "text/plain", body: "hello"},
			wantStatus: http.StatusBadRequest,
			wantBody:   map[string]string{"error": `unsupported Content-Type "text/plain" (send application/x-www-form-urlencoded or application/json)`},
		},
		{
			name:       "malformed content type",
			req:        request{instance: "web-1", contentType: "application/json; =", body: "{}"},
			wantStatus: http.StatusBadRequest,
			wantBody:   map[string]string{"error": `invalid Content-Type "application/json; =": mime: invalid media parameter`},
		},
		{
			name:       "body without a content type",
			req:        request{instance: "web-1", body: "hostname=web-1"},
			wantStatus: http.StatusBadRequest,
			wantBody:   map[string]string{"error": "Content-Type is missing (send application/x-www-form-urlencoded or application/json)"},
		},
		{
			name:       "reported address is not an IP",
			req:        request{instance: "web-1", contentType: jsonType, body: `{"address":"web-1.example.com"}`},
			wantStatus: http.StatusBadRequest,
			wantBody:   map[string]string{"error": `address "web-1.example.com" is not an IP address`},
		},
		{
			name:       "hostname too long",
			req:        request{instance: "web-1", contentType: form, body: "hostname=" + strings.Repeat("h", 254)},
			wantStatus: http.StatusBadRequest,
			wantBody:   map[string]string{"error": "hostname is 254 characters long, at most 253 are allowed"},
		},
		{
			name:       "unknown instance",
			req:        request{instance: "nope-1", contentType: form, body: phoneHome},
			wantStatus: http.StatusNotFound,
			wantBody:   map[string]string{"error": "unknown instance nope-1"},
			wantDB:     true,
		},
		{
			name:       "retired instance",
			req:        request{instance: "web-1", contentType: form, body: phoneHome},
			setup:      func(i *fakeInstances, _ *fakeSignaler) { i.known["web-1"] = true },
			wantStatus: http.StatusGone,
			wantBody:   map[string]string{"error": "instance web-1 is retired"},
			wantDB:     true,
		},
		{
			name:       "state database failing",
			req:        request{instance: "web-1", contentType: form, body: phoneHome},
			setup:      func(i *fakeInstances, _ *fakeSignaler) { i.err = errors.New("connection refused") },
			wantStatus: http.StatusServiceUnavailable,
			wantBody:   map[string]string{"error": "cannot record the check-in now, retry later"},
			wantDB:     true,
		},
		{
			name:       "phone_home first check-in",
			req:        request{instance: "web-1", contentType: form, body: phoneHome},
			wantStatus: http.StatusOK,
			wantBody:   map[string]string{"status": "checked-in"},
			wantSignal: &spec.CheckinSignal{Address: "192.0.2.1", Hostname: "web-1", At: clock.Truncate(time.Microsecond)},
			wantDB:     true,
		},
		{
			name:       "form with an address and only fqdn",
			req:        request{instance: "web-1", contentType: form + "; charset=utf-8", body: "address=10.0.0.7&fqdn=web-1.example.com"},
			wantStatus: http.StatusOK,
			wantBody:   map[string]string{"status": "checked-in"},
			wantSignal: &spec.CheckinSignal{Address: "10.0.0.7", Hostname: "web-1.example.com", At: clock.Truncate(time.Microsecond)},
			wantDB:     true,
		},
		{
			name:       "JSON first check-in with an address",
			req:        request{instance: "web-1", contentType: jsonType, body: `{"heartbeat":true,"address":"::ffff:10.0.0.8","hostname":"web-1","extra":1}`},
			wantStatus: http.StatusOK,
			wantBody:   map[string]string{"status": "checked-in"},
			wantSignal: &spec.CheckinSignal{Address: "10.0.0.8", Hostname: "web-1", At: clock.Truncate(time.Microsecond)},
			wantDB:     true,
		},
		{
			name:       "bare POST",
			req:        request{instance: "web-1"},
			wantStatus: http.StatusOK,
			wantBody:   map[string]string{"status": "checked-in"},
			wantSignal: &spec.CheckinSignal{Address: "192.0.2.1", At: clock.Truncate(time.Microsecond)},
			wantDB:     true,
		},
		{
			name:       "heartbeat",
			req:        request{instance: "web-1", contentType: jsonType, body: `{"heartbeat":true}`},
			setup:      func(i *fakeInstances, _ *fakeSignaler) { i.checked["web-1"] = clock.Add(-time.Hour) },
			wantStatus: http.StatusOK,
			wantBody:   map[string]string{"status": "heartbeat"},
			wantDB:     true,
		},
		{
			name:       "workflow not found",
			req:        request{instance: "web-1", contentType: form, body: phoneHome},
			setup:      func(_ *fakeInstances, s *fakeSignaler) { s.err = fmt.Errorf("signal: %w", notFound) },
			wantStatus: http.StatusNotFound,
			wantBody:   map[string]string{"error": "instance web-1 has no running workflow"},
			wantDB:     true,
			wantUndo:   true,
		},
		{
			name:       "Temporal unavailable",
			req:        request{instance: "web-1", contentType: form, body: phoneHome},
			setup:      func(_ *fakeInstances, s *fakeSignaler) { s.err = serviceerror.NewUnavailable("connection refused") },
			wantStatus: http.StatusServiceUnavailable,
			wantBody:   map[string]string{"error": "cannot pass the check-in of instance web-1 to its workflow now, retry later"},
			wantDB:     true,
			wantUndo:   true,
		},
		{
			name:       "signal timing out",
			req:        request{instance: "web-1", contentType: form, body: phoneHome},
			setup:      func(_ *fakeInstances, s *fakeSignaler) { s.err = context.DeadlineExceeded },
			wantStatus: http.StatusServiceUnavailable,
			wantBody:   map[string]string{"error": "cannot pass the check-in of instance web-1 to its workflow now, retry later"},
			wantDB:     true,
			wantUndo:   true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			instances := newFakeInstances("web-1")
			signaler := &fakeSignaler{}
			if tt.setup != nil {
				tt.setup(instances, signaler)
			}
			var logs bytes.Buffer
			srv := &Server{Secret: testSecret, Instances: instances, Signaler: signaler,
				Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Now: func() time.Time { return clock }}

			resp := serve(t, srv.Handler(), tt.req)

			if resp.Code != tt.wantStatus {
				t.Errorf("status %d, want %d (body %s)", resp.Code, tt.wantStatus, resp.Body)
			}
			if got := decode(t, resp); !reflect.DeepEqual(got, tt.wantBody) {
				t.Errorf("body %v, want %v", got, tt.wantBody)
			}
			if ct := resp.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if touched := len(instances.records) > 0; touched != tt.wantDB {
				t.Errorf("instances table touched: %v, want %v (%v)", touched, tt.wantDB, instances.records)
			}
			if undone := len(instances.undos) > 0; undone != tt.wantUndo {
				t.Errorf("first check-in undone: %v, want %v", undone, tt.wantUndo)
			}
			if tt.wantUndo {
				if _, still := instances.checked[tt.req.instance]; still {
					t.Errorf("instance %s is still checked in after the signal failed", tt.req.instance)
				}
			}
			checkSignals(t, signaler.sent, tt.req.instance, tt.wantSignal)
			checkLog(t, logs.String(), tt.req.instance, tt.wantStatus, tt.wantBody["error"])
		})
	}
}

// TestSignalFailureIsRetried shows why a failed signal undoes the first check-in: the guest's
// retry is then a first check-in again, not a heartbeat the workflow never hears of.
func TestSignalFailureIsRetried(t *testing.T) {
	instances := newFakeInstances("web-1")
	signaler := &fakeSignaler{err: serviceerror.NewUnavailable("down")}
	srv := &Server{Secret: testSecret, Instances: instances, Signaler: signaler, Logger: discard()}
	h := srv.Handler()
	req := request{instance: "web-1", contentType: form, body: phoneHome}

	if resp := serve(t, h, req); resp.Code != http.StatusServiceUnavailable {
		t.Fatalf("with Temporal down: status %d, want 503", resp.Code)
	}
	signaler.err = nil
	if resp := serve(t, h, req); resp.Code != http.StatusOK || decode(t, resp)["status"] != "checked-in" {
		t.Fatalf("retry: status %d %s, want 200 checked-in", resp.Code, resp.Body)
	}
	if resp := serve(t, h, req); resp.Code != http.StatusOK || decode(t, resp)["status"] != "heartbeat" {
		t.Fatalf("third: status %d %s, want 200 heartbeat", resp.Code, resp.Body)
	}
	if len(signaler.sent) != 1 {
		t.Errorf("%d signals delivered, want 1", len(signaler.sent))
	}
}

func TestServerWithoutSecretRejectsEverything(t *testing.T) {
	instances := newFakeInstances("web-1")
	srv := &Server{Instances: instances, Signaler: &fakeSignaler{}, Logger: discard()}
	resp := serve(t, srv.Handler(), request{instance: "web-1", token: Token(nil, "web-1")})
	if resp.Code != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", resp.Code)
	}
	if len(instances.records) > 0 {
		t.Error("instances table touched without a secret")
	}
}

func TestMaxBodyBytes(t *testing.T) {
	srv := &Server{Secret: testSecret, Instances: newFakeInstances("web-1"), Signaler: &fakeSignaler{}, Logger: discard(), MaxBodyBytes: 16}
	h := srv.Handler()
	if resp := serve(t, h, request{instance: "web-1", contentType: form, body: "hostname=1234567"}); resp.Code != http.StatusOK {
		t.Errorf("16-byte body: status %d, want 200 (%s)", resp.Code, resp.Body)
	}
	if resp := serve(t, h, request{instance: "web-1", contentType: form, body: "hostname=12345678"}); resp.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("17-byte body: status %d, want 413", resp.Code)
	}
}

func TestEscapedInstanceNames(t *testing.T) {
	// Names PremiScale makes never need escaping, but the URL and the router must agree on
	// the name the token covers when one does.
	const name = "odd name/1"
	instances := newFakeInstances(name)
	signaler := &fakeSignaler{}
	srv := &Server{Secret: testSecret, Instances: instances, Signaler: signaler, Logger: discard()}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	resp, err := http.Post(URL(ts.URL+"/", testSecret, name), form, strings.NewReader("hostname=h"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d %s, want 200", resp.StatusCode, b)
	}
	checkSignals(t, signaler.sent, name, &spec.CheckinSignal{Address: "127.0.0.1", Hostname: "h"})
}

func TestOtherPaths(t *testing.T) {
	instances := newFakeInstances("web-1")
	var logs bytes.Buffer
	srv := &Server{Secret: testSecret, Instances: instances, Signaler: &fakeSignaler{}, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	for _, path := range []string{"/", "/checkin", "/checkin/web-1", "/checkin/web-1/" + Token(testSecret, "web-1") + "/extra"} {
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("POST %s: status %d, want 404", path, rec.Code)
		}
	}
	// Four rejections with one result within LogEvery: one line.
	if n := strings.Count(logs.String(), "\n"); n != 1 {
		t.Errorf("%d log lines for 4 rejections in a row, want 1:\n%s", n, logs.String())
	}
	if len(instances.records) > 0 {
		t.Error("instances table touched")
	}
}

func serve(t *testing.T, h http.Handler, r request) *httptest.ResponseRecorder {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	if r.token == "" {
		r.token = Token(testSecret, r.instance)
	}
	req := httptest.NewRequest(r.method, "/checkin/"+url.PathEscape(r.instance)+"/"+url.PathEscape(r.token), strings.NewReader(r.body))
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decode(t *testing.T, rec *httptest.ResponseRecorder) map[string]string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("response body %q is not a JSON object of strings: %v", rec.Body, err)
	}
	return m
}

func checkSignals(t *testing.T, sent []signal, instance string, want *spec.CheckinSignal) {
	t.Helper()
	if want == nil {
		if len(sent) > 0 {
			t.Errorf("signalled %+v, want nothing", sent)
		}
		return
	}
	if len(sent) != 1 {
		t.Fatalf("sent %d signals (%+v), want 1", len(sent), sent)
	}
	s := sent[0]
	if s.WorkflowID != spec.InstanceWorkflowID(instance) || s.RunID != "" || s.Name != spec.SignalCheckin {
		t.Errorf("signal to %q run %q named %q, want %q run \"\" named %q",
			s.WorkflowID, s.RunID, s.Name, spec.InstanceWorkflowID(instance), spec.SignalCheckin)
	}
	got, ok := s.Arg.(spec.CheckinSignal)
	if !ok {
		t.Fatalf("signal argument is a %T, want spec.CheckinSignal", s.Arg)
	}
	if want.At.IsZero() {
		// The caller does not control the clock; it must still be stamped.
		if got.At.IsZero() {
			t.Error("signal carries no time")
		}
		got.At = time.Time{}
	}
	if !reflect.DeepEqual(got, *want) {
		t.Errorf("signal argument %+v, want %+v", got, *want)
	}
}

// checkLog asserts a rejection logged exactly one line naming the instance, status, reason and
// peer, and that an accepted check-in logged no warning.
func checkLog(t *testing.T, logs, instance string, status int, reason string) {
	t.Helper()
	var rejections []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "check-in rejected" {
			rejections = append(rejections, m)
		}
	}
	if status < 300 {
		if len(rejections) > 0 {
			t.Errorf("accepted check-in logged rejections: %v", rejections)
		}
		return
	}
	if len(rejections) != 1 {
		t.Fatalf("%d rejection log lines, want 1:\n%s", len(rejections), logs)
	}
	m := rejections[0]
	if m["instance"] != instance || m["status"] != float64(status) || m["reason"] != reason || m["remote"] != "192.0.2.1:1234" {
		t.Errorf("log line %v: want instance %q, status %d, reason %q, remote 192.0.2.1:1234", m, instance, status, reason)
	}
	if (status >= 500) != (m["level"] == "ERROR") {
		t.Errorf("status %d logged at %v", status, m["level"])
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestRejectionsAreCountedAndLoggedAtABoundedRate: whoever can reach the port must not be able
// to flood the log, and every request still shows in the counts.
func TestRejectionsAreCountedAndLoggedAtABoundedRate(t *testing.T) {
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	var logs bytes.Buffer
	counts := map[string]int{}
	srv := &Server{Secret: testSecret, Instances: newFakeInstances("web-1"), Signaler: &fakeSignaler{},
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Now: func() time.Time { return now },
		// The handler runs on this goroutine: no lock needed in the test.
		Observe: func(result string) { counts[result]++ }}
	h := srv.Handler()
	forged := request{instance: "web-1", token: strings.Repeat("0", 64)}
	for range 100 {
		serve(t, h, forged)
	}
	serve(t, h, request{instance: "web-9"}) // unknown instance: a result of its own
	serve(t, h, request{instance: "web-1", contentType: form, body: phoneHome})
	serve(t, h, request{instance: "web-1", contentType: form, body: phoneHome})
	now = now.Add(9 * time.Second)
	serve(t, h, forged)
	if lines := rejectionLines(t, logs.String()); len(lines) != 2 ||
		lines[0]["result"] != ResultUnauthorized || lines[0]["suppressed"] != nil ||
		lines[1]["result"] != ResultNotFound || lines[1]["instance"] != "web-9" {
		t.Fatalf("log after 101 forged tokens and an unknown instance within 9 s: want one line each, got\n%s", logs.String())
	}
	now = now.Add(time.Second)
	serve(t, h, forged)
	lines := rejectionLines(t, logs.String())
	if len(lines) != 3 || lines[2]["result"] != ResultUnauthorized || lines[2]["suppressed"] != float64(100) {
		t.Fatalf("10 s after the first line the next one must say how many were not logged (100):\n%s", logs.String())
	}
	want := map[string]int{ResultUnauthorized: 102, ResultNotFound: 1, ResultOK: 1, ResultHeartbeat: 1}
	if !reflect.DeepEqual(counts, want) {
		t.Errorf("observed %v, want %v", counts, want)
	}

	// Every status a check-in can get has its result.
	for status, result := range map[int]string{400: ResultBadRequest, 401: ResultUnauthorized, 404: ResultNotFound, 405: ResultBadRequest,
		410: ResultGone, 413: ResultTooLarge, 500: ResultUnavailable, 503: ResultUnavailable} {
		if got := resultOf(status); got != result || !slices.Contains(Results(), got) {
			t.Errorf("status %d is result %q, want %q (one of %v)", status, got, result, Results())
		}
	}
}

func TestEveryRejectionLoggedWhenLogEveryIsNegative(t *testing.T) {
	var logs bytes.Buffer
	srv := &Server{Secret: testSecret, Instances: newFakeInstances("web-1"), Signaler: &fakeSignaler{},
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)), LogEvery: -1}
	for range 3 {
		serve(t, srv.Handler(), request{instance: "web-1", token: "x"})
	}
	if n := len(rejectionLines(t, logs.String())); n != 3 {
		t.Errorf("%d lines for 3 rejections with LogEvery < 0, want 3", n)
	}
}

func rejectionLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "check-in rejected" {
			out = append(out, m)
		}
	}
	return out
}
