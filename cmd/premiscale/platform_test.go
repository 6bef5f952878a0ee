package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/premiscale/premiscale/internal/platform/platformtest"
	"github.com/premiscale/premiscale/internal/testservices"
)

func TestPlatformFlags(t *testing.T) {
	t.Setenv("PREMISCALE_MYSQL_USER", "premiscale")
	t.Setenv("PREMISCALE_MYSQL_PASSWORD", "secret")
	local := filepath.Join("..", "..", "deploy", "examples", "local.yaml")

	r := run(t, 20*time.Second, "--validate", "-c", local)
	if r.code != 0 || !strings.Contains(r.stdout, "platform:       wss://app.premiscale.com (registration https://app.premiscale.com/agent/registration, no token") {
		t.Errorf("--validate without flags: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, 20*time.Second, "--validate", "-c", local, "--host", "wss://platform.example:8443/base", "--token", "s3cr3t-token")
	if r.code != 0 || !strings.Contains(r.stdout, "platform:       wss://platform.example:8443/base (registration https://platform.example:8443/base/agent/registration, token set)") {
		t.Errorf("--validate with --host and --token: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, "s3cr3t-token") {
		t.Errorf("the summary shows the token:\n%s", r.stdout)
	}
	r = run(t, 20*time.Second, "--validate", "-c", local, "--host", "ftp://platform.example")
	if r.code == 0 || !strings.Contains(r.stderr, "--host: invalid platform host") {
		t.Errorf("--validate with a bad --host: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{{"--help"}, {"worker", "--help"}} {
		r := run(t, 20*time.Second, args...)
		for _, want := range []string{"--host string", "WSS URL of the PremiScale platform", "--token string", "token for registering the agent"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("premiscale %s lacks %q:\n%s", strings.Join(args, " "), want, r.stdout)
			}
		}
	}
}

// TestWorkerLinksWithHostAndToken runs the built agent with --host and --token against a fake
// platform (its CA in controller.platform.cacert): it registers with the token, says hello,
// and closes the websocket cleanly on SIGTERM.
func TestWorkerLinksWithHostAndToken(t *testing.T) {
	plat := platformtest.New(t)
	ac := testservices.WriteAgentConfig(t, "", testservices.UniqueName(t, "h"), "")
	doc, err := os.ReadFile(ac.Path)
	if err != nil {
		t.Fatal(err)
	}
	doc = append(doc, []byte("  platform:\n    host: wss://not-this-one.example\n    cacert: "+plat.CAFile+"\n")...)
	if err := os.WriteFile(ac.Path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "worker.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	worker := exec.Command(binary, "worker", "-c", ac.Path, "--log-stdout", "--host", plat.URL, "--token", "cli-token")
	worker.Stdout, worker.Stderr = logFile, logFile
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- worker.Wait() }()
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("worker log:\n%s", b)
		}
	}()

	m := plat.Next(t, time.Minute, "hello", platformtest.OfType("hello"))
	var h struct {
		Version string `json:"version"`
		Hosts   []struct {
			Name string `json:"name"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal(m.Payload, &h); err != nil || h.Version != "dev" || len(h.Hosts) != 1 || h.Hosts[0].Name != ac.Host {
		t.Errorf("hello %s (%v)", m.Payload, err)
	}
	n, bodies := plat.Registrations()
	if n != 1 || !strings.Contains(string(bodies[0]), `"registration_key":"cli-token"`) {
		t.Errorf("%d registrations: %s", n, bodies)
	}
	_ = worker.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("worker exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		worker.Process.Kill()
		t.Fatal("worker did not stop within 30s of SIGTERM")
	}
	if codes := plat.CloseCodes(); len(codes) != 1 || codes[0] != websocket.CloseNormalClosure {
		t.Errorf("close codes %v, want one 1000", codes)
	}
}
