package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/operatorservice/v1"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/temporalclient"
	"github.com/premiscale/premiscale/internal/temporalclient/tlstest"
	"github.com/premiscale/premiscale/internal/testservices"
)

// withTemporal writes a copy of the config at path whose controller.temporal.address is
// replaced by temporal (e.g. `address: "host:port", tls: {...}`), and returns its path.
func withTemporal(t *testing.T, path, temporal string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old := fmt.Sprintf("address: %q", testservices.TemporalAddress(t))
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s has no %s", path, old)
	}
	out := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(out, []byte(strings.Replace(string(data), old, temporal, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// withHealthPort writes a copy of the config at path whose health endpoint listens on port.
func withHealthPort(t *testing.T, path string, port int) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`healthcheck: \{host: 127\.0\.0\.1, port: [0-9]+\}`)
	if !re.Match(data) {
		t.Fatalf("%s has no healthcheck line", path)
	}
	out := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(out, re.ReplaceAll(data, []byte(fmt.Sprintf("healthcheck: {host: 127.0.0.1, port: %d}", port))), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestWorkerAndGroupsThroughMTLS runs the worker and the group commands against the dev server
// behind a proxy that terminates TLS and requires a client certificate from the test's CA:
// they work with the CA and the client certificate, and fail clearly without them.
func TestWorkerAndGroupsThroughMTLS(t *testing.T) {
	pki := tlstest.New(t)
	proxy := pki.MTLSProxy(t, testservices.TemporalAddress(t))
	group := testservices.UniqueName(t, "tls")
	ac := testservices.WriteAgentConfig(t, group, testservices.UniqueName(t, "h"), "{minNodes: 1, maxNodes: 2, resourceTarget: {cpu: 50}}")
	keepTestDriver(t, group)
	path := withTemporal(t, ac.Path, fmt.Sprintf("address: %q, tls: {ca: %q, cert: %q, key: %q}", proxy, pki.CAFile, pki.ClientCert, pki.ClientKey))

	r := run(t, 20*time.Second, "--validate", "-c", path)
	if want := "temporal auth:  TLS (CA " + pki.CAFile + "), client certificate " + pki.ClientCert; r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("--validate: exit %d, want %q in\n%s%s", r.code, want, r.stdout, r.stderr)
	}

	stop := startWorker(t, path)
	defer stop()
	waitStatus(t, path, group, func(s statusJSON) bool { return len(s.Instances) == 1 && s.Instances[0].State == "running" })

	other := group + "x"
	keepTestDriver(t, other)
	otherFile := writeGroupFile(t, other, ac.Host, "{minNodes: 1, maxNodes: 1, resourceTarget: {cpu: 50}}")
	if r := run(t, 2*time.Minute, "group", "create", other, "-f", otherFile, "--wait", "--timeout", "90s", "-c", path); r.code != 0 || !strings.Contains(r.stdout, "is ready") {
		t.Errorf("group create --wait through mTLS: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, 30*time.Second, "group", "list", "-o", "json", "-c", path)
	var list []statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 0 || len(list) != 2 || list[0].Group != group || list[1].Group != other {
		t.Errorf("group list through mTLS: exit %d, %v: %+v\n%s", r.code, err, list, r.stderr)
	}
	if r := run(t, 30*time.Second, "group", "status", group, "-c", path); r.code != 0 || !strings.Contains(r.stdout, group+"-1") {
		t.Errorf("group status through mTLS: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Flags win over the environment, which wins over the file.
	r = runEnv(t, 30*time.Second, []string{"TEMPORAL_ADDRESS=127.0.0.1:1"}, "group", "list", "--temporal-address", proxy, "-c", path)
	if r.code != 0 || !strings.Contains(r.stdout, other) {
		t.Errorf("--temporal-address over TEMPORAL_ADDRESS: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A CA that did not sign the server's certificate, from the environment.
	wrongCA := []string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH=" + pki.OtherCAFile}
	want := "premiscale: Temporal at " + proxy + ": certificate signed by unknown authority (TEMPORAL_TLS_SERVER_CA_CERT_PATH = " + pki.OtherCAFile + ")\n"
	if r := runEnv(t, 30*time.Second, wrongCA, "group", "list", "-c", path); r.code == 0 || r.stderr != want {
		t.Errorf("group list with the wrong CA: exit %d, stderr\n%s\nwant\n%s", r.code, r.stderr, want)
	}
	// A second worker beside the first: a health port of its own, and failing at once rather than
	// waiting for a Temporal it cannot trust.
	second := withHealthPort(t, path, testservices.FreePort(t))
	r = runEnv(t, 60*time.Second, wrongCA, "worker", "-c", second, "--log-stdout", "--wait-for-dependencies=false", "--pid-file", filepath.Join(t.TempDir(), "p.pid"))
	if r.code == 0 || r.stderr != want {
		t.Errorf("worker with the wrong CA: exit %d, stderr\n%s\nwant\n%s", r.code, r.stderr, want)
	}
	// No client certificate.
	noCert := withTemporal(t, ac.Path, fmt.Sprintf("address: %q, tls: {ca: %q}", proxy, pki.CAFile))
	want = "premiscale: Temporal at " + proxy + ": the server requires a client certificate (mTLS) and none is configured: " +
		"set controller.temporal.tls.cert (or TEMPORAL_TLS_CLIENT_CERT_PATH) and controller.temporal.tls.key (or TEMPORAL_TLS_CLIENT_KEY_PATH)\n"
	if r := run(t, 30*time.Second, "group", "status", group, "-c", noCert); r.code == 0 || r.stderr != want {
		t.Errorf("group status without a client certificate: exit %d, stderr\n%s\nwant\n%s", r.code, r.stderr, want)
	}

	for _, g := range []string{other, group} {
		if r := run(t, 3*time.Minute, "group", "delete", g, "-c", path); r.code != 0 {
			t.Errorf("delete %s through mTLS: exit %d\n%s%s", g, r.code, r.stdout, r.stderr)
		}
	}
	stop()
}

// TestTemporalSetup registers the search attributes on a new namespace of the dev server,
// then again (nothing to do), then on the default namespace (registered by testenv).
func TestTemporalSetup(t *testing.T) {
	ac := testservices.WriteAgentConfig(t, "", testservices.UniqueName(t, "h"), "")
	ns := testservices.UniqueName(t, "ns")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := temporalclient.Dial(ctx, config.Temporal{Address: testservices.TemporalAddress(t), Namespace: "default"}, nil)
		if err != nil {
			t.Errorf("clean up namespace %s: %v", ns, err)
			return
		}
		defer c.Close()
		if _, err := c.OperatorService().DeleteNamespace(ctx, &operatorservice.DeleteNamespaceRequest{Namespace: ns}); err != nil {
			t.Errorf("delete namespace %s: %v", ns, err)
		}
	})

	r := run(t, 30*time.Second, "temporal", "setup", "--temporal-namespace", ns, "-c", ac.Path)
	if want := "namespace " + ns + " does not exist: create it with --create-namespace"; r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("setup of a missing namespace: exit %d, stderr %q; want %q", r.code, r.stderr, want)
	}

	r = run(t, 2*time.Minute, "temporal", "setup", "--temporal-namespace", ns, "--create-namespace", "--retention", "24h", "-c", ac.Path)
	if r.code != 0 || !strings.Contains(r.stdout, "namespace "+ns+" created on "+testservices.TemporalAddress(t)+" (retention 24h0m0s)") {
		t.Fatalf("first setup: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, a := range spec.SearchAttributes {
		if want := regexp.MustCompile(fmt.Sprintf(`(?m)^%s +%s +added$`, a.GetName(), a.GetValueType())); !want.MatchString(r.stdout) {
			t.Errorf("first setup does not show %s added:\n%s", a.GetName(), r.stdout)
		}
	}
	t.Logf("first setup:\n%s", r.stdout)

	for _, namespace := range []string{ns, "default"} {
		r = run(t, time.Minute, "temporal", "setup", "--temporal-namespace", namespace, "--create-namespace", "-o", "json", "-c", ac.Path)
		var res temporalclient.SetupResult
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 0 {
			t.Fatalf("setup of %s again: exit %d, %v\n%s%s", namespace, r.code, err, r.stdout, r.stderr)
		}
		if res.NamespaceCreated || len(res.Attributes) != len(spec.SearchAttributes) {
			t.Errorf("setup of %s again: %+v, want nothing created", namespace, res)
		}
		for _, a := range res.Attributes {
			if a.Added {
				t.Errorf("setup of %s again added %s", namespace, a.Name)
			}
		}
	}
}
