package config

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// DefaultPlatformHost is the PremiScale platform an agent links to unless told otherwise.
const DefaultPlatformHost = "wss://app.premiscale.com"

// Platform is the link to the PremiScale platform (controller.platform, or --host and --token).
type Platform struct {
	// Host is the platform's websocket URL (wss://host[:port][/path]); the registration URL is
	// derived from it. https:// means the same as wss://, and a bare host name means wss://.
	Host string `yaml:"host" json:"host"`
	// Token registers the agent on its first start; afterwards the kept registration is used.
	Token string `yaml:"token,omitempty" json:"-"`
	// CACert is a PEM file of the CA(s) that sign the platform's certificate, for a platform
	// behind a private CA; relative to the config file's folder.
	CACert string `yaml:"cacert,omitempty" json:"cacert,omitempty"`
	// InsecureSkipVerify turns certificate verification off (a warning is logged at every
	// connect). For tests against a platform with a throwaway certificate only.
	InsecureSkipVerify bool `yaml:"insecureSkipVerify,omitempty" json:"insecureSkipVerify,omitempty"`
	// CACertPEM is CACert's content, read and checked by validation.
	CACertPEM []byte `yaml:"-" json:"-"`
}

// PlatformURLs are the two endpoints derived from Platform.Host.
type PlatformURLs struct {
	// Base is the normalised host (ws:// or wss://, no trailing slash): what a kept
	// registration is compared with.
	Base string
	// Registration is http(s)://<host>/agent/registration.
	Registration string
	// Websocket is ws(s)://<host>/agent/websocket.
	Websocket string
}

// URLs derives the registration and websocket URLs from Host: wss://h (or https://h, or h)
// gives https://h/agent/registration and wss://h/agent/websocket; ws://h (or http://h) the
// unencrypted pair, for a platform on the same machine.
func (p Platform) URLs() (PlatformURLs, error) {
	s := strings.TrimSpace(p.Host)
	if s == "" {
		return PlatformURLs{}, fmt.Errorf("the platform host is empty (want wss://host[:port])")
	}
	if !strings.Contains(s, "://") {
		s = "wss://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return PlatformURLs{}, fmt.Errorf("invalid platform host %q: must look like wss://host[:port]", p.Host)
	}
	var ws, web string
	switch strings.ToLower(u.Scheme) {
	case "wss", "https":
		ws, web = "wss", "https"
	case "ws", "http":
		ws, web = "ws", "http"
	default:
		return PlatformURLs{}, fmt.Errorf("invalid platform host %q: the scheme must be wss:// (or ws:// for an unencrypted local platform)", p.Host)
	}
	if u.Hostname() == "" {
		return PlatformURLs{}, fmt.Errorf("invalid platform host %q: the host name is missing", p.Host)
	}
	if err := checkHost(u.Hostname()); err != nil {
		return PlatformURLs{}, fmt.Errorf("invalid platform host %q: %v", p.Host, err)
	}
	if port := u.Port(); port != "" {
		if err := checkPort(p.Host, port); err != nil {
			return PlatformURLs{}, fmt.Errorf("invalid platform host %q: port must be a number between 1 and 65535", p.Host)
		}
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return PlatformURLs{}, fmt.Errorf("invalid platform host %q: must not carry a user, query or fragment", p.Host)
	}
	path := strings.TrimRight(u.EscapedPath(), "/")
	base := ws + "://" + u.Host + path
	return PlatformURLs{
		Base:         base,
		Registration: web + "://" + u.Host + path + "/agent/registration",
		Websocket:    base + "/agent/websocket",
	}, nil
}

// Encrypted says whether the link uses TLS.
func (u PlatformURLs) Encrypted() bool { return strings.HasPrefix(u.Base, "wss://") }

// validatePlatform checks controller.platform and reads its CA file.
func validatePlatform(r *report, p *Platform, baseDir string) {
	const path = "controller.platform"
	if r.required(path+".host", p.Host, "wss://host of the PremiScale platform") {
		if _, err := p.URLs(); err != nil {
			r.add(path+".host", "%v", err)
		}
	}
	if strings.TrimSpace(p.Token) != p.Token {
		r.add(path+".token", "has leading or trailing white space")
	}
	if p.CACert != "" {
		file := p.CACert
		if !filepath.IsAbs(file) {
			file = filepath.Join(baseDir, file)
		}
		pem, err := os.ReadFile(file)
		switch {
		case err != nil:
			r.add(path+".cacert", "cannot read the CA file: %v", err)
		case !x509.NewCertPool().AppendCertsFromPEM(pem):
			r.add(path+".cacert", "%s holds no PEM certificate", file)
		default:
			p.CACertPEM = pem
		}
	}
}

// platformSummary is the platform line of Summary.
func platformSummary(p Platform) string {
	u, err := p.URLs()
	if err != nil {
		return "invalid: " + err.Error()
	}
	parts := []string{"registration " + u.Registration}
	if p.Token != "" {
		parts = append(parts, "token set")
	} else {
		parts = append(parts, "no token (standalone unless a registration is kept in MySQL)")
	}
	if p.CACert != "" {
		parts = append(parts, "CA "+p.CACert)
	}
	if p.InsecureSkipVerify {
		parts = append(parts, "WARNING: certificate verification off")
	}
	if !u.Encrypted() {
		parts = append(parts, "WARNING: unencrypted")
	}
	return u.Base + " (" + strings.Join(parts, ", ") + ")"
}
