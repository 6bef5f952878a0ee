package platform_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/platform"
	"github.com/premiscale/premiscale/internal/platform/platformtest"
	"github.com/premiscale/premiscale/internal/state"
)

// hello waits for the hello of a new connection.
func hello(t *testing.T, p *platformtest.Server) platform.Hello {
	t.Helper()
	m := p.Next(t, 20*time.Second, "hello", platformtest.OfType(platform.TypeHello))
	var h platform.Hello
	if err := json.Unmarshal(m.Payload, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestFreshRegistrationIsKeptAndReused(t *testing.T) {
	f := newFixture(t)
	r := f.start(f.linkConfig(f.store))
	h := hello(t, f.plat)
	if h.AgentID != platformtest.AgentID || h.Version != "test-version" || h.Protocol != 1 {
		t.Errorf("hello = %+v", h)
	}
	n, bodies := f.plat.Registrations()
	if n != 1 {
		t.Fatalf("%d registration requests, want 1", n)
	}
	var body map[string]any
	if err := json.Unmarshal(bodies[0], &body); err != nil {
		t.Fatal(err)
	}
	if body["version"] != "test-version" || body["type"] != "agent" || body["registration_key"] != "registration-token" || len(body) != 3 {
		t.Errorf("registration body = %s", bodies[0])
	}
	if got := f.plat.Authorizations(); len(got) != 1 || got[0] != "Bearer "+platformtest.Credential {
		t.Errorf("websocket Authorization headers = %q", got)
	}
	reg, ok, err := f.store.Registration(context.Background())
	if err != nil || !ok || reg.Host != f.plat.URL || reg.AgentID != platformtest.AgentID || reg.Credential != platformtest.Credential || !strings.Contains(string(reg.Response), `"region": "test"`) {
		t.Fatalf("kept registration = %+v, %v, %v", reg, ok, err)
	}
	r.stop(t)

	// A restarted agent, and any other agent of the installation, reuses it: no second
	// request, even without a token.
	cfg := f.linkConfig(f.openStore())
	cfg.Platform.Token = ""
	r = f.start(cfg)
	hello(t, f.plat)
	if n, _ := f.plat.Registrations(); n != 1 {
		t.Errorf("%d registration requests after a restart, want still 1", n)
	}
	r.stop(t)
}

func TestAnotherHostRegistersAgain(t *testing.T) {
	f := newFixture(t)
	if err := f.store.SaveRegistration(context.Background(), state.Registration{Host: "wss://elsewhere.example", AgentID: "old", Credential: "old-cred"}); err != nil {
		t.Fatal(err)
	}
	f.start(f.linkConfig(f.store))
	if h := hello(t, f.plat); h.AgentID != platformtest.AgentID {
		t.Errorf("hello from agent %q, want the new registration's", h.AgentID)
	}
	if n, _ := f.plat.Registrations(); n != 1 {
		t.Errorf("%d registration requests, want 1", n)
	}
}

func TestRegistrationWaitsOutRateLimitsAndServerErrors(t *testing.T) {
	for _, c := range []struct {
		name     string
		failures int
		fail     func(w http.ResponseWriter)
		minWait  time.Duration
	}{
		{"429 with x-rate-limit-reset", 1, func(w http.ResponseWriter) {
			w.Header().Set("x-rate-limit-reset", "700")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		}, 700 * time.Millisecond},
		{"500s", 3, func(w http.ResponseWriter) { http.Error(w, "oops", http.StatusInternalServerError) }, 0},
		{"503 then 502", 2, func(w http.ResponseWriter) { http.Error(w, "later", http.StatusBadGateway) }, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			var mu sync.Mutex
			var times []time.Time
			f.plat.OnRegister(func(n int, w http.ResponseWriter) {
				mu.Lock()
				times = append(times, time.Now())
				mu.Unlock()
				if n <= c.failures {
					c.fail(w)
					return
				}
				fmt.Fprintf(w, `{"agent_id": %q, "credential": %q}`, platformtest.AgentID, platformtest.Credential)
			})
			f.start(f.linkConfig(f.store))
			hello(t, f.plat)
			mu.Lock()
			defer mu.Unlock()
			if len(times) != c.failures+1 {
				t.Fatalf("%d requests, want %d", len(times), c.failures+1)
			}
			if waited := times[1].Sub(times[0]); waited < c.minWait {
				t.Errorf("retried after %s, want at least %s", waited, c.minWait)
			}
			if got := f.logs.count("platform registration failed; trying again"); got != c.failures {
				t.Errorf("%d retry log lines, want %d", got, c.failures)
			}
		})
	}
}

func TestRefusedTokenIsAClearError(t *testing.T) {
	for _, code := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			f := newFixture(t)
			f.plat.OnRegister(func(_ int, w http.ResponseWriter) { http.Error(w, "unknown registration key", code) })
			err := f.start(f.linkConfig(f.store)).wait(t, 20*time.Second)
			if !errors.Is(err, platform.ErrTokenRejected) || !platform.IsPermanent(err) {
				t.Fatalf("Run = %v; want a permanent ErrTokenRejected", err)
			}
			for _, want := range []string{"refused the registration token", "--token", "controller.platform.token", fmt.Sprint(code)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "registration-token") {
				t.Errorf("the error shows the token: %v", err)
			}
			if n, _ := f.plat.Registrations(); n != 1 {
				t.Errorf("%d registration requests, want 1 (a refused token is not retried)", n)
			}
		})
	}
}

func TestCertificatesAreVerified(t *testing.T) {
	t.Run("unknown CA", func(t *testing.T) {
		f := newFixture(t)
		cfg := f.linkConfig(f.store)
		cfg.Platform.CACert = "" // the system's roots do not know the test CA
		err := f.start(cfg).wait(t, 20*time.Second)
		if !platform.IsPermanent(err) || !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), "controller.platform.cacert") {
			t.Fatalf("Run = %v; want a permanent certificate error naming cacert", err)
		}
		if n, _ := f.plat.Registrations(); n != 0 {
			t.Errorf("%d registration requests reached the server", n)
		}
	})
	t.Run("private CA from the config", func(t *testing.T) {
		f := newFixture(t)
		cfg := f.linkConfig(f.store)
		cfg.Platform.CACert = ""
		cfg.Platform.CACertPEM = f.plat.CAPEM // as validation reads controller.platform.cacert
		f.start(cfg)
		hello(t, f.plat)
	})
	t.Run("insecureSkipVerify warns at every connect", func(t *testing.T) {
		f := newFixture(t)
		cfg := f.linkConfig(f.store)
		cfg.Platform = config.Platform{Host: f.plat.URL, Token: "registration-token", InsecureSkipVerify: true}
		f.start(cfg)
		hello(t, f.plat)
		f.plat.DropAll()
		hello(t, f.plat)
		// registration + two websocket connects
		if got := f.logs.count("TLS certificate verification is OFF"); got < 3 {
			t.Errorf("%d warnings, want one per connect (3)", got)
		}
	})
}

func TestStandaloneWithoutTokenOrRegistration(t *testing.T) {
	f := newFixture(t)
	cfg := f.linkConfig(f.store)
	cfg.Platform.Token = ""
	r := f.start(cfg)
	time.Sleep(time.Second) // five election intervals
	if got := f.logs.count("running standalone"); got != 1 {
		t.Errorf("said standalone %d times, want once:\n%s", got, f.logs)
	}
	if n, _ := f.plat.Registrations(); n != 0 || f.plat.Conns() != 0 {
		t.Errorf("a standalone agent contacted the platform (%d registrations, %d connections)", n, f.plat.Conns())
	}
	// The outbox stays empty for a standalone installation.
	if _, err := f.store.RecordScalingEvent(context.Background(), state.ScalingEvent{Key: "k", Group: "g", Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	if n := pendingCount(t, f.store); n != 0 {
		t.Errorf("standalone outbox has %d events", n)
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Run = %v", err)
	}
}

func TestRefusedCredentialRegistersAgain(t *testing.T) {
	f := newFixture(t)
	if err := f.store.SaveRegistration(context.Background(), state.Registration{Host: f.plat.URL, AgentID: "revoked", Credential: "revoked-cred"}); err != nil {
		t.Fatal(err)
	}
	f.start(f.linkConfig(f.store))
	if h := hello(t, f.plat); h.AgentID != platformtest.AgentID {
		t.Errorf("hello from %q", h.AgentID)
	}
	if got := f.plat.Authorizations(); len(got) != 2 || got[0] != "Bearer revoked-cred" || got[1] != "Bearer "+platformtest.Credential {
		t.Errorf("Authorization headers %q", got)
	}
}
