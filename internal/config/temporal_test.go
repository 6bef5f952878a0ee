package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/premiscale/premiscale/internal/temporalclient/tlstest"
)

// writeTLSConfig writes base with a controller.temporal block into a folder with copies of the
// test PKI's files (ca.pem, client.pem, client-key.pem, other-key.pem), and returns its path.
func writeTLSConfig(t *testing.T, temporal string) (path, dir string) {
	t.Helper()
	pki := tlstest.New(t)
	dir = t.TempDir()
	for name, src := range map[string]string{"ca.pem": pki.CAFile, "client.pem": pki.ClientCert, "client-key.pem": pki.ClientKey, "other-key.pem": pki.OtherClientKey} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(edit(t, "controller:\n", "controller:\n"+temporal)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, dir
}

func TestTemporalTLS(t *testing.T) {
	path, dir := writeTLSConfig(t, `  temporal:
    address: temporal.example.com:7233
    apiKey: $TEMPORAL_API_KEY
    tls:
      ca: ca.pem
      cert: client.pem
      key: `+"%s"+`
      serverName: temporal.internal
`)
	// The key is given by absolute path, the others relative to the config's folder.
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), "%s", filepath.Join(dir, "client-key.pem"), 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(path)
	cfg, err := Parse(data, path, env(map[string]string{"TEMPORAL_API_KEY": "very-secret-key"}))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	got := cfg.Controller.Temporal
	want := TemporalTLS{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "client.pem"), Key: filepath.Join(dir, "client-key.pem"), ServerName: "temporal.internal"}
	if !reflect.DeepEqual(got.TLS, want) || got.APIKey != "very-secret-key" || !got.TLSEnabled() {
		t.Errorf("temporal = %+v, want TLS %+v with the API key", got, want)
	}
	s := cfg.Summary()
	wantLine := "temporal auth:  TLS (CA " + want.CA + "), server name temporal.internal, client certificate " + want.Cert + ", API key set"
	if !strings.Contains(s, wantLine) || strings.Contains(s, "very-secret-key") {
		t.Errorf("Summary lacks %q or shows the API key:\n%s", wantLine, s)
	}
}

func TestTemporalTLSInvalid(t *testing.T) {
	const p = "controller.temporal.tls"
	tests := []struct {
		name     string
		temporal string
		env      map[string]string
		want     func(dir string) []string
	}{
		{
			name:     "certificate without key",
			temporal: "  temporal:\n    tls: {cert: client.pem}\n",
			want: func(string) []string {
				return []string{p + ".cert: is set without tls.key: a client certificate needs its private key"}
			},
		},
		{
			name:     "key from an empty variable, without certificate",
			temporal: "  temporal:\n    tls:\n      cert: $CERT\n      key: client-key.pem\n",
			env:      map[string]string{"CERT": ""},
			want: func(string) []string {
				return []string{p + ".key: is set without tls.cert: a private key needs its client certificate, but variable $CERT is empty"}
			},
		},
		{
			name:     "missing CA file",
			temporal: "  temporal:\n    tls: {ca: nope.pem}\n",
			want: func(dir string) []string {
				return []string{p + ".ca: cannot read " + filepath.Join(dir, "nope.pem") + ": file does not exist (relative paths start at the config file's folder)"}
			},
		},
		{
			name:     "CA file that is a key",
			temporal: "  temporal:\n    tls: {ca: client-key.pem}\n",
			want: func(dir string) []string {
				return []string{p + ".ca: " + filepath.Join(dir, "client-key.pem") + " holds no PEM certificate (-----BEGIN CERTIFICATE-----)"}
			},
		},
		{
			name:     "key of another certificate",
			temporal: "  temporal:\n    tls: {cert: client.pem, key: other-key.pem}\n",
			want: func(dir string) []string {
				return []string{p + ".cert: client certificate " + filepath.Join(dir, "client.pem") + " with key " + filepath.Join(dir, "other-key.pem") + ": tls: private key does not match public key"}
			},
		},
		{
			name:     "files with TLS off",
			temporal: "  temporal:\n    tls: {enabled: false, ca: ca.pem, serverName: x}\n",
			want: func(string) []string {
				return []string{p + ".ca: is set, but tls.enabled is false", p + ".serverName: is set, but tls.enabled is false"}
			},
		},
		{
			name:     "API key from an unset variable",
			temporal: "  temporal:\n    apiKey: $TEMPORAL_API_KEY\n",
			want: func(string) []string {
				return []string{"controller.temporal.apiKey: variable $TEMPORAL_API_KEY is not set"}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, dir := writeTLSConfig(t, tt.temporal)
			data, _ := os.ReadFile(path)
			_, err := Parse(data, path, env(tt.env))
			got := problems(t, err)
			if want := tt.want(dir); !reflect.DeepEqual(got, want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestTemporalTLSEnabled(t *testing.T) {
	on, off := true, false
	for _, c := range []struct {
		t    Temporal
		want bool
	}{
		{Temporal{}, false},
		{Temporal{APIKey: "k"}, true},
		{Temporal{TLS: TemporalTLS{ServerName: "x"}}, true},
		{Temporal{TLS: TemporalTLS{CA: "/ca"}}, true},
		{Temporal{TLS: TemporalTLS{Enabled: &on}}, true},
		{Temporal{APIKey: "k", TLS: TemporalTLS{Enabled: &off}}, false},
	} {
		if got := c.t.TLSEnabled(); got != c.want {
			t.Errorf("%+v: TLSEnabled = %v, want %v", c.t, got, c.want)
		}
	}
}
