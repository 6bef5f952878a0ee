package platform

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/premiscale/premiscale/internal/config"
)

// tlsConfig is the TLS client configuration for both the registration and the websocket:
// the system's roots plus controller.platform.cacert, or no verification at all when
// insecureSkipVerify says so.
func tlsConfig(p config.Platform) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if p.InsecureSkipVerify {
		c.InsecureSkipVerify = true
		return c, nil
	}
	pem := p.CACertPEM
	if len(pem) == 0 && p.CACert != "" {
		var err error
		if pem, err = os.ReadFile(p.CACert); err != nil {
			return nil, fmt.Errorf("read the platform CA file (controller.platform.cacert): %w", err)
		}
	}
	if len(pem) == 0 {
		return c, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("the platform CA file %s holds no PEM certificate (controller.platform.cacert)", p.CACert)
	}
	c.RootCAs = pool
	return c, nil
}

// warnInsecure is logged at every connect that does not verify the platform's certificate,
// or does not encrypt at all.
func warnInsecure(log *slog.Logger, p config.Platform, u config.PlatformURLs, what string) {
	switch {
	case !u.Encrypted():
		log.Warn("the platform link is not encrypted (ws://): the credential and every message travel in clear text", "connect", what, "host", u.Base)
	case p.InsecureSkipVerify:
		log.Warn("TLS certificate verification is OFF for the platform link (controller.platform.insecureSkipVerify): anyone on the path can read and change what the agent sends and receives",
			"connect", what, "host", u.Base)
	}
}

// certificateProblem says whether err is a certificate that did not verify.
func certificateProblem(err error) bool {
	var verify *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid)
}

// certificateError explains a certificate that did not verify; it is never retried or skipped.
func certificateError(url string, err error) error {
	return permanent(fmt.Errorf("the certificate of the platform at %s does not verify: %w "+
		"(a platform behind a private CA needs controller.platform.cacert set to that CA's certificate)", url, err))
}

// permanentError is a failure retrying cannot fix: a refused token, a certificate that does
// not verify, an answer that makes no sense. The link stops and says why.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err: err} }

// IsPermanent says whether err ended the link for good (until the agent is restarted with a
// better token or certificate).
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}
