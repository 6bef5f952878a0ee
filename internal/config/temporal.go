package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TLSEnabled says whether the connection to Temporal uses TLS: as tls.enabled says, or else
// when any TLS file, the server name or an API key is set (an API key over plain text would
// be readable by anyone on the path).
func (t Temporal) TLSEnabled() bool {
	if t.TLS.Enabled != nil {
		return *t.TLS.Enabled
	}
	return t.TLS.CA != "" || t.TLS.Cert != "" || t.TLS.Key != "" || t.TLS.ServerName != "" || t.APIKey != ""
}

// Source names where the value of key (below controller.temporal, e.g. "tls.ca") came from:
// the environment variable or flag that set it, else its key in the config file.
func (t Temporal) Source(key string) string {
	if s, ok := t.Sources[key]; ok {
		return s
	}
	return "controller.temporal." + key
}

// LoadCertPool reads a PEM file of CA certificates. A file without any certificate is an error,
// so that a key or an empty file given by mistake is not taken for "trust nothing".
func LoadCertPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, readError(path, err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", path, n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path)
	}
	return pool, nil
}

// LoadKeyPair reads a PEM client certificate and its private key, and checks that they belong
// together.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	for _, p := range []string{certFile, keyFile} {
		if _, err := os.Stat(p); err != nil {
			return tls.Certificate{}, readError(p, err)
		}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("client certificate %s with key %s: %w", certFile, keyFile, err)
	}
	return pair, nil
}

func readError(path string, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return missingFileError(path)
	}
	return fmt.Errorf("cannot read %w", err)
}

// missingFileError says a file does not exist in fewer words than *fs.PathError, and is still
// os.ErrNotExist to errors.Is.
type missingFileError string

func (e missingFileError) Error() string        { return "cannot read " + string(e) + ": file does not exist" }
func (e missingFileError) Is(target error) bool { return target == os.ErrNotExist }

// validateTemporalTLS checks controller.temporal's TLS keys and API key, and makes relative
// file paths absolute (from baseDir, the config file's folder) so that later readers of the
// config need not know where it was.
func validateTemporalTLS(r *report, t *Temporal, baseDir string) {
	const p = "controller.temporal.tls"
	files := []struct {
		key  string
		path *string
	}{{"ca", &t.TLS.CA}, {"cert", &t.TLS.Cert}, {"key", &t.TLS.Key}}
	for _, f := range files {
		if *f.path != "" && !filepath.IsAbs(*f.path) {
			*f.path = filepath.Join(baseDir, *f.path)
		}
	}
	if t.TLS.Enabled != nil && !*t.TLS.Enabled {
		for _, f := range []struct{ key, value string }{{"ca", t.TLS.CA}, {"cert", t.TLS.Cert}, {"key", t.TLS.Key}, {"serverName", t.TLS.ServerName}} {
			if f.value != "" {
				r.add(p+"."+f.key, "is set, but tls.enabled is false")
			}
		}
		return
	}
	const relative = " (relative paths start at the config file's folder)"
	if t.TLS.CA != "" {
		if _, err := LoadCertPool(t.TLS.CA); err != nil {
			r.add(p+".ca", "%v%s", err, relativeNote(err, relative))
		}
	}
	switch {
	case t.TLS.Cert != "" && t.TLS.Key == "":
		r.add(p+".cert", "is set without tls.key: a client certificate needs its private key%s", r.emptyNote(p+".key"))
	case t.TLS.Key != "" && t.TLS.Cert == "":
		r.add(p+".key", "is set without tls.cert: a private key needs its client certificate%s", r.emptyNote(p+".cert"))
	case t.TLS.Cert != "":
		if _, err := LoadKeyPair(t.TLS.Cert, t.TLS.Key); err != nil {
			r.add(p+".cert", "%v%s", err, relativeNote(err, relative))
		}
	}
}

// relativeNote adds note to a missing file's message only.
func relativeNote(err error, note string) string {
	if errors.Is(err, os.ErrNotExist) {
		return note
	}
	return ""
}

// temporalAuth describes how the connection to Temporal is secured, for Summary; the API key
// itself is never shown.
func temporalAuth(t Temporal) string {
	var parts []string
	if t.TLSEnabled() {
		ca := "the system's CAs"
		if t.TLS.CA != "" {
			ca = "CA " + t.TLS.CA
		}
		parts = append(parts, "TLS ("+ca+")")
		if t.TLS.ServerName != "" {
			parts = append(parts, "server name "+t.TLS.ServerName)
		}
		if t.TLS.Cert != "" {
			parts = append(parts, "client certificate "+t.TLS.Cert)
		}
	} else {
		parts = append(parts, "no TLS")
	}
	if t.APIKey != "" {
		parts = append(parts, "API key set")
	}
	return strings.Join(parts, ", ")
}
