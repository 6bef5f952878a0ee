package checkin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"sync"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
)

// DefaultMaxBodyBytes bounds a check-in's body when Server.MaxBodyBytes is 0. phone_home sends
// a few host keys, well under this.
const DefaultMaxBodyBytes = 64 << 10

// callTimeout bounds each call a check-in makes to the state database and to Temporal, so a
// stuck dependency turns into a 503 the guest retries rather than a hung connection.
const callTimeout = 10 * time.Second

// maxHostname is the longest DNS name.
const maxHostname = 253

// DefaultLogEvery is how often, at most, the server logs rejected check-ins of one result
// when Server.LogEvery is 0.
const DefaultLogEvery = 10 * time.Second

// The result of a check-in, as Server.Observe receives it.
const (
	// ResultOK is a first check-in, passed to the instance's workflow.
	ResultOK = "ok"
	// ResultHeartbeat is a later check-in, recorded as last-seen.
	ResultHeartbeat    = "heartbeat"
	ResultUnauthorized = "unauthorized" // 401: bad token
	ResultNotFound     = "not_found"    // 404: unknown instance, no workflow, no such endpoint
	ResultGone         = "gone"         // 410: retired instance
	ResultBadRequest   = "bad_request"  // 400, 405: malformed request
	ResultTooLarge     = "too_large"    // 413: body over the limit
	ResultUnavailable  = "unavailable"  // 500, 503: the agent cannot take it now
)

// Results lists every result, in the order above: the label values of a check-in counter.
func Results() []string {
	return []string{ResultOK, ResultHeartbeat, ResultUnauthorized, ResultNotFound, ResultGone,
		ResultBadRequest, ResultTooLarge, ResultUnavailable}
}

// resultOf names a rejection's result by its status.
func resultOf(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return ResultUnauthorized
	case http.StatusNotFound:
		return ResultNotFound
	case http.StatusGone:
		return ResultGone
	case http.StatusRequestEntityTooLarge:
		return ResultTooLarge
	}
	if status >= 500 {
		return ResultUnavailable
	}
	return ResultBadRequest
}

// Instances records check-ins; *state.Store implements it. RecordCheckin returns errors
// wrapping state.ErrNotFound and state.ErrRetired for unknown and terminated instances.
type Instances interface {
	RecordCheckin(ctx context.Context, name, address string, at time.Time) (first bool, err error)
	// UndoFirstCheckin forgets the first check-in recorded at `at` when its signal could not be
	// delivered, so the guest's retry is a first check-in again rather than a heartbeat.
	UndoFirstCheckin(ctx context.Context, name string, at time.Time) error
}

// Signaler delivers signals to workflows; go.temporal.io/sdk/client.Client implements it.
type Signaler interface {
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
}

// Server serves check-ins. Secret, Instances and Signaler are required. Use it through a
// pointer: it keeps the state of its rate-limited log.
type Server struct {
	// Secret keys the check-in tokens (see Token).
	Secret    []byte
	Instances Instances
	Signaler  Signaler
	// Logger gets the lines about rejected check-ins, at most one per result per LogEvery (see
	// reject); nil means slog.Default().
	Logger *slog.Logger
	// LogEvery bounds the rejection log lines, so whoever can reach the port cannot flood the
	// log: at most one line per result per LogEvery, and that line counts the rejections not
	// logged since the previous one. 0 means DefaultLogEvery; negative logs every rejection.
	LogEvery time.Duration
	// Observe, when set, is called once per request with its result (ResultOK, ResultHeartbeat,
	// ...), for a counter such as premiscale_checkins_total{result}. It must be quick and safe
	// for concurrent use.
	Observe func(result string)
	// MaxBodyBytes bounds a request body; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Now is the clock check-ins are stamped with and the log is paced by; nil means time.Now.
	Now func() time.Time

	mu sync.Mutex
	// logged is, per result, when a rejection was last logged and how many were not since.
	logged map[string]*logPace
}

type logPace struct {
	last       time.Time
	suppressed int
}

// Handler routes POST /checkin/{instance}/{token}; every other path is a 404.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// No method in the pattern: the mux's own 405 is plain text and unlogged, ours is neither.
	mux.HandleFunc("/checkin/{instance}/{token}", s.serveCheckin)
	notFound := func(w http.ResponseWriter, r *http.Request) {
		s.reject(w, r, "", http.StatusNotFound, "no such endpoint (check-ins are POST /checkin/<instance>/<token>)", nil)
	}
	mux.HandleFunc("/", notFound)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The mux answers a path with "//", "." or ".." in it with a redirect to the clean one,
		// without a reason and unlogged; a guest's POST does not follow it anyway.
		if p := r.URL.Path; p == "" || path.Clean(p) != p && path.Clean(p)+"/" != p {
			notFound(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// body is what a check-in may say, from either content type. phone_home also sends
// instance_id, fqdn and pub_key_* fields, of which only fqdn is used (when hostname is absent).
type body struct {
	Heartbeat bool   `json:"heartbeat"`
	Address   string `json:"address"`
	Hostname  string `json:"hostname"`
	FQDN      string `json:"fqdn"`
}

func (s *Server) serveCheckin(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("instance")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.reject(w, r, name, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed (use POST)", r.Method), nil)
		return
	}
	if len(s.Secret) == 0 {
		s.reject(w, r, name, http.StatusInternalServerError, "the check-in server has no secret", nil)
		return
	}
	// Before anything touches the database, so an unauthenticated caller cannot learn which
	// instances exist.
	if !ValidToken(s.Secret, name, r.PathValue("token")) {
		s.reject(w, r, name, http.StatusUnauthorized, "invalid token for instance "+name, nil)
		return
	}

	b, status, err := s.readBody(w, r)
	if err != nil {
		s.reject(w, r, name, status, err.Error(), nil)
		return
	}
	address, err := checkinAddress(b.Address, r.RemoteAddr)
	if err != nil {
		s.reject(w, r, name, http.StatusBadRequest, err.Error(), nil)
		return
	}
	hostname := b.Hostname
	if hostname == "" {
		hostname = b.FQDN
	}
	if len(hostname) > maxHostname {
		s.reject(w, r, name, http.StatusBadRequest, fmt.Sprintf("hostname is %d characters long, at most %d are allowed", len(hostname), maxHostname), nil)
		return
	}

	// Microseconds are what the state database keeps; the signal carries the same time.
	at := s.now().UTC().Truncate(time.Microsecond)
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	first, err := s.Instances.RecordCheckin(ctx, name, address, at)
	cancel()
	switch {
	case errors.Is(err, state.ErrNotFound):
		s.reject(w, r, name, http.StatusNotFound, "unknown instance "+name, nil)
		return
	case errors.Is(err, state.ErrRetired):
		s.reject(w, r, name, http.StatusGone, fmt.Sprintf("instance %s is retired", name), nil)
		return
	case err != nil:
		// The cause stays in the log: the guest needs only to know to retry.
		s.reject(w, r, name, http.StatusServiceUnavailable, "cannot record the check-in now, retry later", err)
		return
	}

	if !first {
		s.logger().Debug("check-in heartbeat", "instance", name, "address", address, "heartbeat", b.Heartbeat)
		s.observe(ResultHeartbeat)
		writeJSON(w, http.StatusOK, map[string]string{"status": "heartbeat"})
		return
	}

	sig := spec.CheckinSignal{Address: address, Hostname: hostname, At: at}
	ctx, cancel = context.WithTimeout(r.Context(), callTimeout)
	err = s.Signaler.SignalWorkflow(ctx, spec.InstanceWorkflowID(name), "", spec.SignalCheckin, sig)
	cancel()
	if err != nil {
		s.undoFirst(r.Context(), name, at)
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			s.reject(w, r, name, http.StatusNotFound, fmt.Sprintf("instance %s has no running workflow", name), err)
			return
		}
		s.reject(w, r, name, http.StatusServiceUnavailable, fmt.Sprintf("cannot pass the check-in of instance %s to its workflow now, retry later", name), err)
		return
	}
	s.logger().Info("instance checked in", "instance", name, "address", address, "hostname", hostname)
	s.observe(ResultOK)
	writeJSON(w, http.StatusOK, map[string]string{"status": "checked-in"})
}

// undoFirst makes the guest's next check-in count as first again, since this one never reached
// the workflow. It runs even when the guest hung up, which is one way the signal fails.
func (s *Server) undoFirst(ctx context.Context, name string, at time.Time) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	if err := s.Instances.UndoFirstCheckin(ctx, name, at); err != nil {
		// The instance stays checked in without its workflow knowing; the workflow's own
		// check-in timeout has to catch it.
		s.logger().Error("check-in not delivered and not undone: the workflow will not hear of it from this guest",
			"instance", name, "error", err)
	}
}

// readBody decodes a check-in's body by its Content-Type. On failure it returns the status to
// answer with.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (body, int, error) {
	limit := s.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return body{}, http.StatusRequestEntityTooLarge, fmt.Errorf("body is larger than %d bytes", limit)
		}
		return body{}, http.StatusBadRequest, fmt.Errorf("read body: %v", err)
	}

	ct := r.Header.Get("Content-Type")
	if ct == "" {
		if len(data) == 0 {
			// A bare POST (curl -X POST <url>) is a check-in that says nothing.
			return body{}, 0, nil
		}
		return body{}, http.StatusBadRequest, errors.New("Content-Type is missing (send application/x-www-form-urlencoded or application/json)")
	}
	mediaType, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return body{}, http.StatusBadRequest, fmt.Errorf("invalid Content-Type %q: %v", ct, err)
	}

	var b body
	switch mediaType {
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(data))
		if err != nil {
			return body{}, http.StatusBadRequest, fmt.Errorf("invalid form body: %v", err)
		}
		b = body{Address: form.Get("address"), Hostname: form.Get("hostname"), FQDN: form.Get("fqdn")}
		b.Heartbeat = form.Get("heartbeat") == "true"
	case "application/json":
		if err := json.Unmarshal(data, &b); err != nil {
			return body{}, http.StatusBadRequest, fmt.Errorf("invalid JSON body: %v", err)
		}
	default:
		return body{}, http.StatusBadRequest, fmt.Errorf("unsupported Content-Type %q (send application/x-www-form-urlencoded or application/json)", mediaType)
	}
	return b, 0, nil
}

// checkinAddress is the address a guest reports, or else the one it called from.
func checkinAddress(reported, remote string) (string, error) {
	if reported != "" {
		a, err := netip.ParseAddr(reported)
		if err != nil {
			return "", fmt.Errorf("address %q is not an IP address", reported)
		}
		return a.Unmap().String(), nil
	}
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		// Not a TCP peer (e.g. a unix socket listener): no address rather than a wrong one.
		return "", nil
	}
	return ap.Addr().Unmap().WithZone("").String(), nil
}

// reject answers with an error, counts it, and logs it unless a rejection with the same result
// was logged less than LogEvery ago; the next line logged for that result says how many were
// not ("suppressed"). cause, when set, is logged but not sent, as it may describe the worker's
// internals.
func (s *Server) reject(w http.ResponseWriter, r *http.Request, instance string, status int, reason string, cause error) {
	result := resultOf(status)
	s.observe(result)
	if suppressed, ok := s.mayLog(result); ok {
		attrs := []any{"instance", instance, "status", status, "result", result, "reason", reason, "remote", r.RemoteAddr}
		if cause != nil {
			attrs = append(attrs, "error", cause)
		}
		if suppressed > 0 {
			attrs = append(attrs, "suppressed", suppressed)
		}
		level := slog.LevelWarn
		if status >= 500 {
			level = slog.LevelError
		}
		s.logger().Log(r.Context(), level, "check-in rejected", attrs...)
	}
	writeJSON(w, status, map[string]string{"error": reason})
}

// mayLog says whether a rejection with this result may be logged now, and how many with the
// same result were not logged since the last line.
func (s *Server) mayLog(result string) (suppressed int, ok bool) {
	every := s.LogEvery
	if every == 0 {
		every = DefaultLogEvery
	}
	if every < 0 {
		return 0, true
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logged == nil {
		s.logged = map[string]*logPace{}
	}
	p := s.logged[result]
	if p == nil {
		p = &logPace{}
		s.logged[result] = p
	}
	if !p.last.IsZero() && now.Sub(p.last) < every && now.Sub(p.last) >= 0 {
		p.suppressed++
		return 0, false
	}
	suppressed, p.suppressed, p.last = p.suppressed, 0, now
	return suppressed, true
}

func (s *Server) observe(result string) {
	if s.Observe != nil {
		s.Observe(result)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}
