package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/state"
)

// ErrTokenRejected is returned (wrapped) when the platform refuses the registration token.
var ErrTokenRejected = errors.New("the platform refused the registration token")

// ErrNoToken is returned (wrapped) when a registration is needed and there is no token.
var ErrNoToken = errors.New("no registration token")

// maxRateLimitWait bounds a wait the platform asks for with x-rate-limit-reset.
const maxRateLimitWait = time.Hour

// maxAnswer bounds the registration answer read.
const maxAnswer = 1 << 20

// Registrar registers the installation with the platform once and keeps the answer in MySQL,
// where every agent of the installation, and a restarted one, finds it.
type Registrar struct {
	URLs    config.PlatformURLs
	Token   string
	Version string
	HTTP    *http.Client
	Store   *state.Store
	Logger  *slog.Logger
	// Backoff bounds the waits between attempts after 5xx answers, 429s without a reset
	// header, and network errors.
	BackoffMin, BackoffMax time.Duration
	// Warn is called before every request (the insecure-TLS warning).
	Warn func()
}

// Ensure returns the kept registration for URLs.Base, registering with the token when none is
// kept or the kept one came from another host. It retries rate limits, server errors and
// network errors until ctx ends; a refused token or a certificate that does not verify is
// returned at once.
func (r *Registrar) Ensure(ctx context.Context) (state.Registration, error) {
	reg, ok, err := r.Store.Registration(ctx)
	if err != nil {
		return state.Registration{}, err
	}
	if ok && reg.Host == r.URLs.Base {
		return reg, nil
	}
	if r.Token == "" {
		if ok {
			return state.Registration{}, permanent(fmt.Errorf("the kept registration is for %s, not %s, and %w to register again (give --token or controller.platform.token)", reg.Host, r.URLs.Base, ErrNoToken))
		}
		return state.Registration{}, permanent(fmt.Errorf("%w: give --token or controller.platform.token to register with %s", ErrNoToken, r.URLs.Base))
	}
	if ok {
		r.Logger.Info("the kept platform registration is for another host: registering again", "kept_host", reg.Host, "host", r.URLs.Base)
	}
	bo := newBackoff(r.BackoffMin, r.BackoffMax)
	for attempt := 1; ; attempt++ {
		reg, wait, err := r.register(ctx)
		if err == nil {
			if err := r.Store.SaveRegistration(ctx, reg); err != nil {
				return state.Registration{}, err
			}
			r.Logger.Info("registered with the platform", "host", r.URLs.Base, "agent_id", reg.AgentID, "attempts", attempt)
			return reg, nil
		}
		if IsPermanent(err) || ctx.Err() != nil {
			return state.Registration{}, err
		}
		if wait == 0 {
			wait = bo.next()
		}
		r.Logger.Warn("platform registration failed; trying again", "url", r.URLs.Registration, "error", err, "attempt", attempt, "wait", wait.String())
		if !sleep(ctx, wait) {
			return state.Registration{}, fmt.Errorf("register with the platform at %s: %w (last error: %v)", r.URLs.Registration, ctx.Err(), err)
		}
	}
}

// registrationRequest is what the platform expects.
type registrationRequest struct {
	Version         string `json:"version"`
	Type            string `json:"type"`
	RegistrationKey string `json:"registration_key"`
}

// register makes one attempt. A retryable failure may come with the wait the platform asked for.
func (r *Registrar) register(ctx context.Context) (state.Registration, time.Duration, error) {
	body, err := json.Marshal(registrationRequest{Version: r.Version, Type: "agent", RegistrationKey: r.Token})
	if err != nil {
		return state.Registration{}, 0, permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URLs.Registration, bytes.NewReader(body))
	if err != nil {
		return state.Registration{}, 0, permanent(fmt.Errorf("registration request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "premiscale/"+r.Version)
	if r.Warn != nil {
		r.Warn()
	}
	resp, err := r.HTTP.Do(req)
	if err != nil {
		if certificateProblem(err) {
			return state.Registration{}, 0, certificateError(r.URLs.Registration, err)
		}
		return state.Registration{}, 0, fmt.Errorf("POST %s: %w", r.URLs.Registration, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return state.Registration{}, 0, fmt.Errorf("POST %s: read the answer: %w", r.URLs.Registration, err)
	}
	switch code := resp.StatusCode; {
	case code == http.StatusOK || code == http.StatusCreated:
	case code == http.StatusTooManyRequests:
		return state.Registration{}, rateLimitWait(resp.Header.Get("x-rate-limit-reset")), fmt.Errorf("POST %s: rate limited (%s)", r.URLs.Registration, resp.Status)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return state.Registration{}, 0, permanent(fmt.Errorf("%w (POST %s: %s%s): check --token or controller.platform.token",
			ErrTokenRejected, r.URLs.Registration, resp.Status, snippet(answer)))
	case code >= 500:
		return state.Registration{}, 0, fmt.Errorf("POST %s: %s%s", r.URLs.Registration, resp.Status, snippet(answer))
	default:
		return state.Registration{}, 0, permanent(fmt.Errorf("the platform refused the registration (POST %s: %s%s)", r.URLs.Registration, resp.Status, snippet(answer)))
	}
	if len(answer) > maxAnswer {
		return state.Registration{}, 0, permanent(fmt.Errorf("the registration answer from %s is larger than %d bytes", r.URLs.Registration, maxAnswer))
	}
	var got struct {
		AgentID    string `json:"agent_id"`
		Credential string `json:"credential"`
	}
	if err := json.Unmarshal(answer, &got); err != nil || got.AgentID == "" || got.Credential == "" {
		return state.Registration{}, 0, permanent(fmt.Errorf("the registration answer from %s lacks agent_id or credential%s", r.URLs.Registration, snippet(answer)))
	}
	return state.Registration{Host: r.URLs.Base, AgentID: got.AgentID, Credential: got.Credential, Response: answer, RegisteredAt: time.Now()}, 0, nil
}

// rateLimitWait reads x-rate-limit-reset, the milliseconds to wait; 0 when absent or unreadable.
func rateLimitWait(h string) time.Duration {
	ms, err := strconv.ParseFloat(strings.TrimSpace(h), 64)
	if err != nil || ms <= 0 {
		return 0
	}
	return min(time.Duration(ms*float64(time.Millisecond)), maxRateLimitWait)
}

// snippet quotes the start of an answer for an error message.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return ": " + s
}
