package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPlatformURLs(t *testing.T) {
	cases := []struct {
		host               string
		base, reg, ws, bad string
	}{
		{host: "wss://app.premiscale.com", base: "wss://app.premiscale.com",
			reg: "https://app.premiscale.com/agent/registration", ws: "wss://app.premiscale.com/agent/websocket"},
		{host: "https://h.example:8443/", base: "wss://h.example:8443",
			reg: "https://h.example:8443/agent/registration", ws: "wss://h.example:8443/agent/websocket"},
		{host: "h.example", base: "wss://h.example",
			reg: "https://h.example/agent/registration", ws: "wss://h.example/agent/websocket"},
		{host: "ws://127.0.0.1:9000/premiscale", base: "ws://127.0.0.1:9000/premiscale",
			reg: "http://127.0.0.1:9000/premiscale/agent/registration", ws: "ws://127.0.0.1:9000/premiscale/agent/websocket"},
		{host: "", bad: "empty"},
		{host: "ftp://h", bad: "scheme must be wss://"},
		{host: "wss://", bad: "host name is missing"},
		{host: "wss://h:99999", bad: "port"},
		{host: "wss://u@h", bad: "must not carry"},
		{host: "wss://h/?x=1", bad: "must not carry"},
		{host: "wss://bad host", bad: "invalid platform host"},
	}
	for _, c := range cases {
		t.Run(c.host, func(t *testing.T) {
			u, err := Platform{Host: c.host}.URLs()
			if c.bad != "" {
				if err == nil || !strings.Contains(err.Error(), c.bad) {
					t.Fatalf("URLs(%q) = %+v, %v; want an error with %q", c.host, u, err, c.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Base != c.base || u.Registration != c.reg || u.Websocket != c.ws {
				t.Errorf("URLs(%q) = %+v", c.host, u)
			}
		})
	}
}

func TestPlatformConfig(t *testing.T) {
	dir := t.TempDir()
	// A real certificate, generated here, so that the CA file check parses what it reads.
	ca := writeTestCA(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "not-pem.txt"), []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("default host, no token", func(t *testing.T) {
		cfg, err := Parse([]byte(base), filepath.Join(dir, "c.yaml"), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		p := cfg.Controller.Platform
		if p.Host != DefaultPlatformHost || p.Token != "" || p.InsecureSkipVerify {
			t.Errorf("platform defaults: %+v", p)
		}
		if s := cfg.Summary(); !strings.Contains(s, "platform:       wss://app.premiscale.com (registration https://app.premiscale.com/agent/registration, no token") {
			t.Errorf("summary lacks the platform:\n%s", s)
		}
	})

	t.Run("every key", func(t *testing.T) {
		doc := base + "  platform:\n    host: wss://platform.example:8443\n    token: $TOKEN\n    cacert: " + filepath.Base(ca) + "\n    insecureSkipVerify: true\n"
		cfg, err := Parse([]byte(doc), filepath.Join(dir, "c.yaml"), env(map[string]string{"TOKEN": "t0ps3cret"}))
		if err != nil {
			t.Fatal(err)
		}
		p := cfg.Controller.Platform
		if p.Host != "wss://platform.example:8443" || p.Token != "t0ps3cret" || !p.InsecureSkipVerify || len(p.CACertPEM) == 0 {
			t.Errorf("platform: %+v", p)
		}
		s := cfg.Summary()
		if !strings.Contains(s, "token set") || !strings.Contains(s, "certificate verification off") || !strings.Contains(s, "CA "+filepath.Base(ca)) {
			t.Errorf("summary:\n%s", s)
		}
		if strings.Contains(s, "t0ps3cret") {
			t.Errorf("the summary shows the token:\n%s", s)
		}
	})

	for _, c := range []struct{ name, yaml, want string }{
		{"bad host", "    host: ftp://x\n", "controller.platform.host: invalid platform host"},
		{"unset token variable", "    token: $NOPE\n", "controller.platform.token: variable $NOPE is not set"},
		{"missing CA file", "    cacert: nowhere.pem\n", "controller.platform.cacert: cannot read the CA file"},
		{"CA file without PEM", "    cacert: not-pem.txt\n", "controller.platform.cacert: " + filepath.Join(dir, "not-pem.txt") + " holds no PEM certificate"},
		{"bad bool", "    insecureSkipVerify: maybe\n", "controller.platform.insecureSkipVerify: expected true or false"},
		{"unknown key", "    tokn: x\n", "controller.platform.tokn: unknown key (did you mean token?)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(base+"  platform:\n"+c.yaml), filepath.Join(dir, "c.yaml"), env(nil))
			if err == nil {
				t.Fatal("accepted")
			}
			if got := strings.Join(problems(t, err), "\n"); !strings.Contains(got, c.want) {
				t.Errorf("problems:\n%s\nwant one with %q", got, c.want)
			}
		})
	}
}

// writeTestCA writes a self-signed CA certificate as PEM into dir and returns its path.
func writeTestCA(t *testing.T, dir string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
