package checkin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzHandler sends the check-in handler any method, path, content type and body. Bad input
// gets a 4xx whose JSON body gives the reason; only a POST to /checkin/<instance>/<its token>
// with a readable body is a check-in (200). Nothing is ever a 5xx (the fakes never fail) or a
// panic. testdata/fuzz/FuzzHandler holds the inputs that found bugs.
func FuzzHandler(f *testing.F) {
	valid := "/checkin/web-1/" + Token(testSecret, "web-1")
	f.Add("POST", valid, form, []byte(phoneHome))
	f.Add("POST", valid, jsonType, []byte(`{"heartbeat": true, "address": "10.0.2.15"}`))
	f.Add("POST", valid, "", []byte(nil))
	f.Add("POST", valid, jsonType, []byte(`{"address": "not an ip"}`))
	f.Add("POST", valid, "text/plain; charset=\x00", []byte("x"))
	f.Add("POST", valid, form, bytes.Repeat([]byte("a=b&"), 400))
	f.Add("GET", valid, "", []byte(nil))
	f.Add("POST", "/checkin/web-1/"+strings.Repeat("0", 64), form, []byte(phoneHome))
	f.Add("POST", "/checkin/web-2/"+Token(testSecret, "web-2"), form, []byte(phoneHome)) // retired
	f.Add("POST", "/checkin/web-9/"+Token(testSecret, "web-9"), form, []byte(phoneHome)) // unknown
	f.Add("POST", "/checkin/web%2F1/"+Token(testSecret, "web/1"), form, []byte(phoneHome))
	f.Add("PUT", "/", "", []byte(nil))
	f.Fuzz(func(t *testing.T, method, path, contentType string, body []byte) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest(method, "http://worker"+path, bytes.NewReader(body))
		if err != nil {
			// Not a request an HTTP server would pass to a handler.
			t.Skip()
		}
		req.RemoteAddr = "10.0.2.15:41000"
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		instances := newFakeInstances("web-1", "web-2", "web/1")
		instances.known["web-2"] = true // retired
		signals := &fakeSignaler{}
		srv := &Server{Secret: testSecret, Instances: instances, Signaler: signals, Logger: discard(), MaxBodyBytes: 1 << 10}
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)

		var answer map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
			t.Fatalf("%s %s → %d with a body that is not JSON: %q", method, path, rec.Code, rec.Body.String())
		}
		switch {
		case rec.Code == http.StatusOK:
			if method != http.MethodPost || (answer["status"] != "checked-in" && answer["status"] != "heartbeat") {
				t.Fatalf("%s %s → 200 %v: want a POST and a check-in or heartbeat status", method, path, answer)
			}
			if len(instances.records) != 1 {
				t.Fatalf("%s %s → 200 with %d check-ins recorded", method, path, len(instances.records))
			}
			name, _, _ := strings.Cut(instances.records[0], " ")
			if !strings.Contains(req.URL.EscapedPath(), Token(testSecret, name)) {
				t.Fatalf("%s %s → 200 for instance %q without its token", method, path, name)
			}
			if len(signals.sent) != 1 {
				t.Fatalf("a first check-in sent %d signals, want 1", len(signals.sent))
			}
		case rec.Code >= 400 && rec.Code < 500:
			if strings.TrimSpace(answer["error"]) == "" {
				t.Fatalf("%s %s → %d without a reason: %q", method, path, rec.Code, rec.Body.String())
			}
			if len(signals.sent) != 0 {
				t.Fatalf("%s %s → %d but a signal was sent", method, path, rec.Code)
			}
		default:
			t.Fatalf("%s %s (%s, %d bytes) → %d %q: want a 4xx with a reason or a check-in", method, path, contentType, len(body), rec.Code, rec.Body.String())
		}
	})
}
