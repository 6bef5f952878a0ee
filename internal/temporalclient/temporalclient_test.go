package temporalclient

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/temporalclient/tlstest"
	"github.com/premiscale/premiscale/internal/testservices"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func fromFile() config.Temporal {
	return config.Temporal{Address: "file:7233", Namespace: "file-ns", TaskQueue: "premiscale"}
}

func TestResolvePrecedence(t *testing.T) {
	on, off := true, false
	tests := []struct {
		name    string
		env     map[string]string
		flags   Flags
		want    config.Temporal
		wantErr string
	}{
		{name: "file only", want: fromFile()},
		{
			name: "environment over file",
			env: map[string]string{
				"TEMPORAL_ADDRESS": "env:7233", "TEMPORAL_NAMESPACE": "env-ns", "TEMPORAL_API_KEY": "k",
				"TEMPORAL_TLS_SERVER_CA_CERT_PATH": "/ca", "TEMPORAL_TLS_CLIENT_CERT_PATH": "/cert",
				"TEMPORAL_TLS_CLIENT_KEY_PATH": "/key", "TEMPORAL_TLS_SERVER_NAME": "temporal.example", "TEMPORAL_TLS": "true",
			},
			want: config.Temporal{
				Address: "env:7233", Namespace: "env-ns", TaskQueue: "premiscale", APIKey: "k",
				TLS: config.TemporalTLS{Enabled: &on, CA: "/ca", Cert: "/cert", Key: "/key", ServerName: "temporal.example"},
				Sources: map[string]string{
					"address": "TEMPORAL_ADDRESS", "namespace": "TEMPORAL_NAMESPACE", "apiKey": "TEMPORAL_API_KEY", "tls.enabled": "TEMPORAL_TLS",
					"tls.ca": "TEMPORAL_TLS_SERVER_CA_CERT_PATH", "tls.cert": "TEMPORAL_TLS_CLIENT_CERT_PATH",
					"tls.key": "TEMPORAL_TLS_CLIENT_KEY_PATH", "tls.serverName": "TEMPORAL_TLS_SERVER_NAME",
				},
			},
		},
		{
			name: "older variable names",
			env:  map[string]string{"TEMPORAL_TLS_CA": "/ca", "TEMPORAL_TLS_CERT": "/cert", "TEMPORAL_TLS_KEY": "/key", "TEMPORAL_TLS": "false"},
			want: config.Temporal{
				Address: "file:7233", Namespace: "file-ns", TaskQueue: "premiscale",
				TLS:     config.TemporalTLS{Enabled: &off, CA: "/ca", Cert: "/cert", Key: "/key"},
				Sources: map[string]string{"tls.enabled": "TEMPORAL_TLS", "tls.ca": "TEMPORAL_TLS_CA", "tls.cert": "TEMPORAL_TLS_CERT", "tls.key": "TEMPORAL_TLS_KEY"},
			},
		},
		{
			name: "both names, same value",
			env:  map[string]string{"TEMPORAL_TLS_CA": "/ca", "TEMPORAL_TLS_SERVER_CA_CERT_PATH": "/ca"},
			want: config.Temporal{
				Address: "file:7233", Namespace: "file-ns", TaskQueue: "premiscale", TLS: config.TemporalTLS{CA: "/ca"},
				Sources: map[string]string{"tls.ca": "TEMPORAL_TLS_SERVER_CA_CERT_PATH"},
			},
		},
		{
			name:    "both names, different values",
			env:     map[string]string{"TEMPORAL_TLS_CA": "/a", "TEMPORAL_TLS_SERVER_CA_CERT_PATH": "/b"},
			wantErr: `TEMPORAL_TLS_SERVER_CA_CERT_PATH="/b" and TEMPORAL_TLS_CA="/a" disagree: set only TEMPORAL_TLS_SERVER_CA_CERT_PATH`,
		},
		{
			name:    "TEMPORAL_TLS not a boolean",
			env:     map[string]string{"TEMPORAL_TLS": "yes please"},
			wantErr: `TEMPORAL_TLS="yes please": must be true or false`,
		},
		{
			name: "empty variables are unset",
			env:  map[string]string{"TEMPORAL_ADDRESS": "", "TEMPORAL_API_KEY": ""},
			want: fromFile(),
		},
		{
			name:  "flags over environment",
			env:   map[string]string{"TEMPORAL_ADDRESS": "env:7233", "TEMPORAL_NAMESPACE": "env-ns"},
			flags: Flags{Address: "flag:7233", AddressFlag: "--temporal-address", Namespace: "flag-ns", NamespaceFlag: "--temporal-namespace"},
			want: config.Temporal{
				Address: "flag:7233", Namespace: "flag-ns", TaskQueue: "premiscale",
				Sources: map[string]string{"address": "--temporal-address", "namespace": "--temporal-namespace"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(fromFile(), env(tt.env), tt.flags)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Resolve error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Resolve =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	pki := tlstest.New(t)
	off := false
	tests := []struct {
		name         string
		t            config.Temporal
		wantTLS      bool
		wantTLSOff   bool
		wantCreds    bool
		wantClient   bool
		wantErr      string
		wantRootCAs  bool
		wantSNI      string
		checkMessage func(error) bool
	}{
		{name: "plain", t: config.Temporal{Address: "a:1", Namespace: "n"}},
		{name: "API key turns TLS on", t: config.Temporal{Address: "a:1", Namespace: "n", APIKey: "k"}, wantTLS: true, wantCreds: true},
		{name: "API key with TLS off", t: config.Temporal{Address: "a:1", Namespace: "n", APIKey: "k", TLS: config.TemporalTLS{Enabled: &off}}, wantCreds: true, wantTLSOff: true},
		{
			name: "mTLS", t: config.Temporal{Address: "a:1", Namespace: "n", TLS: config.TemporalTLS{CA: pki.CAFile, Cert: pki.ClientCert, Key: pki.ClientKey, ServerName: "s"}},
			wantTLS: true, wantClient: true, wantRootCAs: true, wantSNI: "s",
		},
		{
			name:    "cert without key",
			t:       config.Temporal{Address: "a:1", TLS: config.TemporalTLS{Cert: pki.ClientCert}, Sources: map[string]string{"tls.cert": "TEMPORAL_TLS_CLIENT_CERT_PATH"}},
			wantErr: "Temporal client certificate " + pki.ClientCert + " (TEMPORAL_TLS_CLIENT_CERT_PATH) has no key: set controller.temporal.tls.key (or TEMPORAL_TLS_CLIENT_KEY_PATH) too",
		},
		{
			name:    "CA file missing",
			t:       config.Temporal{Address: "a:1", TLS: config.TemporalTLS{CA: "/nonexistent/ca.pem"}, Sources: map[string]string{"tls.ca": "TEMPORAL_TLS_CA"}},
			wantErr: "Temporal CA (TEMPORAL_TLS_CA): cannot read /nonexistent/ca.pem: file does not exist",
		},
		{
			name:    "key of another certificate",
			t:       config.Temporal{Address: "a:1", TLS: config.TemporalTLS{Cert: pki.ClientCert, Key: pki.OtherClientKey}},
			wantErr: "Temporal client certificate (controller.temporal.tls.cert, controller.temporal.tls.key): client certificate " + pki.ClientCert + " with key " + pki.OtherClientKey + ": tls: private key does not match public key",
		},
		{
			name:    "address without port",
			t:       config.Temporal{Address: "temporal.example.com", Sources: map[string]string{"address": "--temporal-address"}},
			wantErr: `Temporal address "temporal.example.com" (--temporal-address) must be host:port`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, err := Options(tt.t, nil)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Options error:\n%v\nwant\n%s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc := opts.ConnectionOptions.TLS
			if (tc != nil) != tt.wantTLS {
				t.Errorf("TLS config %v, want TLS %v", tc, tt.wantTLS)
			}
			if opts.ConnectionOptions.TLSDisabled != tt.wantTLSOff {
				t.Errorf("TLSDisabled = %v, want %v", opts.ConnectionOptions.TLSDisabled, tt.wantTLSOff)
			}
			if (opts.Credentials != nil) != tt.wantCreds {
				t.Errorf("credentials %v, want %v", opts.Credentials, tt.wantCreds)
			}
			if tc != nil {
				if (len(tc.Certificates) == 1) != tt.wantClient || (tc.RootCAs != nil) != tt.wantRootCAs || tc.ServerName != tt.wantSNI {
					t.Errorf("TLS config: %d client certificates, root CAs %v, server name %q", len(tc.Certificates), tc.RootCAs != nil, tc.ServerName)
				}
			}
			if opts.HostPort != tt.t.Address || opts.Namespace != tt.t.Namespace || opts.Logger == nil {
				t.Errorf("options %+v", opts)
			}
		})
	}
}

// dialAndCheck dials through Dial and checks the server answers a health check.
func dialAndCheck(t *testing.T, tc config.Temporal) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, tc, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
	return err
}

// TestDialThroughMTLSProxy talks to the real dev server through a proxy that terminates TLS
// and requires a client certificate from the test's CA.
func TestDialThroughMTLSProxy(t *testing.T) {
	backend := testservices.TemporalAddress(t)
	pki := tlstest.New(t)
	proxy := pki.MTLSProxy(t, backend)
	_, port, _ := strings.Cut(proxy, ":")
	good := config.Temporal{Address: proxy, Namespace: "default", TLS: config.TemporalTLS{CA: pki.CAFile, Cert: pki.ClientCert, Key: pki.ClientKey}}

	if err := dialAndCheck(t, good); err != nil {
		t.Fatalf("mTLS through the proxy: %v", err)
	}
	byName := good
	byName.Address = "localhost:" + port
	if err := dialAndCheck(t, byName); err != nil {
		t.Errorf("mTLS by host name: %v", err)
	}
	withServerName := good
	withServerName.TLS.ServerName = pki.ServerName
	if err := dialAndCheck(t, withServerName); err != nil {
		t.Errorf("mTLS with serverName %s: %v", pki.ServerName, err)
	}

	wrongCA := good
	wrongCA.TLS.CA = pki.OtherCAFile
	fromEnv := wrongCA
	fromEnv.Sources = map[string]string{"tls.ca": "TEMPORAL_TLS_SERVER_CA_CERT_PATH"}
	noCert := good
	noCert.TLS.Cert, noCert.TLS.Key = "", ""
	strangerCert := good
	strangerCert.TLS.Cert, strangerCert.TLS.Key = pki.OtherClientCert, pki.OtherClientKey
	wrongName := good
	wrongName.TLS.ServerName = "elsewhere.test"
	plain := config.Temporal{Address: proxy, Namespace: "default"}
	tlsToPlain := good
	tlsToPlain.Address = backend

	for _, c := range []struct {
		name string
		t    config.Temporal
		want string
	}{
		{"wrong CA", wrongCA, "Temporal at " + proxy + ": certificate signed by unknown authority (controller.temporal.tls.ca = " + pki.OtherCAFile + ")"},
		{"wrong CA from the environment", fromEnv, "Temporal at " + proxy + ": certificate signed by unknown authority (TEMPORAL_TLS_SERVER_CA_CERT_PATH = " + pki.OtherCAFile + ")"},
		{"no client certificate", noCert, "Temporal at " + proxy + ": the server requires a client certificate (mTLS) and none is configured: set controller.temporal.tls.cert (or TEMPORAL_TLS_CLIENT_CERT_PATH) and controller.temporal.tls.key (or TEMPORAL_TLS_CLIENT_KEY_PATH)"},
		{"client certificate from another CA", strangerCert, "Temporal at " + proxy + ": the server requires a client certificate signed by a CA it trusts, and " + pki.OtherClientCert + " (controller.temporal.tls.cert) is not, so none was sent"},
		{"server name mismatch", wrongName, "Temporal at " + proxy + ": the server's certificate is valid for localhost, temporal.test, not elsewhere.test: connect by a name it holds, or set controller.temporal.tls.serverName (or TEMPORAL_TLS_SERVER_NAME)"},
		{"plain text to a TLS server", plain, "Temporal at " + proxy + ": the connection was closed at once; if the server uses TLS, set controller.temporal.tls.enabled (or TEMPORAL_TLS) to true"},
		{"TLS to a plain-text server", tlsToPlain, "Temporal at " + backend + ": TLS is on but the server does not speak TLS (because controller.temporal.tls.ca is set)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := dialAndCheck(t, c.t)
			t.Log(err)
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("got error\n%v\nwant one starting\n%s", err, c.want)
			}
		})
	}
}

// TestDialWithAPIKey sends the API key through a TLS proxy that forwards only calls that carry it.
func TestDialWithAPIKey(t *testing.T) {
	backend := testservices.TemporalAddress(t)
	pki := tlstest.New(t)
	proxy := pki.APIKeyProxy(t, backend, "s3cret-key")
	good := config.Temporal{Address: proxy, Namespace: "default", APIKey: "s3cret-key", TLS: config.TemporalTLS{CA: pki.CAFile},
		Sources: map[string]string{"apiKey": "TEMPORAL_API_KEY"}}
	if err := dialAndCheck(t, good); err != nil {
		t.Fatalf("API key through the proxy: %v", err)
	}
	bad := good
	bad.APIKey = "wrong"
	want := "Temporal at " + proxy + ": the server rejected the API key (TEMPORAL_API_KEY)"
	if err := dialAndCheck(t, bad); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("wrong API key: got\n%v\nwant an error starting\n%s", err, want)
	}
	none := good
	none.APIKey = ""
	want = "Temporal at " + proxy + ": the server wants credentials"
	if err := dialAndCheck(t, none); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("no API key: got\n%v\nwant an error starting\n%s", err, want)
	}
}

// TestDialWithMetrics checks that the SDK reports its calls to the handler WithMetrics gives.
func TestDialWithMetrics(t *testing.T) {
	h := &countingHandler{counts: map[string]int64{}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, config.Temporal{Address: testservices.TemporalAddress(t), Namespace: "default"}, nil, WithMetrics(h))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counts["temporal_request"] == 0 {
		t.Errorf("no temporal_request counted through the handler; counted %v", h.counts)
	}
}

// countingHandler counts what the SDK adds to each counter, whatever the tags.
type countingHandler struct {
	mu     sync.Mutex
	counts map[string]int64
}

func (h *countingHandler) WithTags(map[string]string) client.MetricsHandler { return h }
func (h *countingHandler) Counter(name string) client.MetricsCounter {
	return counterFunc(func(n int64) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.counts[name] += n
	})
}

type counterFunc func(int64)

func (f counterFunc) Inc(n int64) { f(n) }
func (h *countingHandler) Gauge(string) client.MetricsGauge {
	return client.MetricsNopHandler.Gauge("")
}
func (h *countingHandler) Timer(string) client.MetricsTimer {
	return client.MetricsNopHandler.Timer("")
}
