// Package temporalclient connects to Temporal the one way every PremiScale command does: the
// address, namespace, TLS and API key from controller.temporal, overridden by the standard
// TEMPORAL_* environment variables and then by command-line flags, with errors that say what
// is wrong and which setting to change.
package temporalclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/premiscale/premiscale/internal/config"
)

// The environment variables the temporal CLI (v1.5.1, through the SDK's envconfig) reads; the
// same names work here. Each key is below controller.temporal.
var envVars = []struct {
	key   string
	names []string // the first is the current name; the others are older names still read
}{
	{"address", []string{"TEMPORAL_ADDRESS"}},
	{"namespace", []string{"TEMPORAL_NAMESPACE"}},
	{"apiKey", []string{"TEMPORAL_API_KEY"}},
	{"tls.enabled", []string{"TEMPORAL_TLS"}},
	{"tls.ca", []string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_TLS_CA"}},
	{"tls.cert", []string{"TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CERT"}},
	{"tls.key", []string{"TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_KEY"}},
	{"tls.serverName", []string{"TEMPORAL_TLS_SERVER_NAME"}},
}

// EnvNames lists the environment variables Resolve reads, for help texts.
func EnvNames() []string {
	var out []string
	for _, v := range envVars {
		out = append(out, v.names...)
	}
	return out
}

// Flags are values given on the command line; empty ones are not set. They win over the
// environment, which wins over the config file.
type Flags struct {
	// Address and Namespace, with the name of the flag that set each (for messages).
	Address, Namespace         string
	AddressFlag, NamespaceFlag string
}

// Resolve returns t with the environment (read through lookupEnv; nil means no environment)
// and then flags applied, each value it changes recorded in Sources. A variable set to the
// empty string counts as unset, as ${VAR:-} does in the file.
func Resolve(t config.Temporal, lookupEnv func(string) (string, bool), flags Flags) (config.Temporal, error) {
	sources := map[string]string{}
	for k, v := range t.Sources {
		sources[k] = v
	}
	set := func(key, value, source string) error {
		switch key {
		case "address":
			t.Address = value
		case "namespace":
			t.Namespace = value
		case "apiKey":
			t.APIKey = value
		case "tls.enabled":
			on, err := strconv.ParseBool(value)
			if err != nil {
				return fmt.Errorf("%s=%q: must be true or false", source, value)
			}
			t.TLS.Enabled = &on
		case "tls.ca":
			t.TLS.CA = value
		case "tls.cert":
			t.TLS.Cert = value
		case "tls.key":
			t.TLS.Key = value
		case "tls.serverName":
			t.TLS.ServerName = value
		}
		sources[key] = source
		return nil
	}
	if lookupEnv != nil {
		for _, v := range envVars {
			var value, from string
			for _, name := range v.names {
				got, ok := lookupEnv(name)
				if !ok || got == "" {
					continue
				}
				if from != "" && got != value {
					return t, fmt.Errorf("%s=%q and %s=%q disagree: set only %s", from, value, name, got, v.names[0])
				}
				if from == "" {
					value, from = got, name
				}
			}
			if from != "" {
				if err := set(v.key, value, from); err != nil {
					return t, err
				}
			}
		}
	}
	if flags.Address != "" {
		_ = set("address", flags.Address, flags.AddressFlag)
	}
	if flags.Namespace != "" {
		_ = set("namespace", flags.Namespace, flags.NamespaceFlag)
	}
	if len(sources) > 0 {
		t.Sources = sources
	}
	return t, nil
}

// Options builds the SDK's client options from t: host and namespace, TLS from the PEM files,
// the API key as credentials, and logger (nil discards the SDK's logs).
func Options(t config.Temporal, logger *slog.Logger) (client.Options, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := client.Options{
		HostPort:  t.Address,
		Namespace: t.Namespace,
		Logger:    tlog.NewStructuredLogger(logger),
	}
	if _, _, err := net.SplitHostPort(t.Address); err != nil {
		return opts, fmt.Errorf("Temporal address %q (%s) must be host:port", t.Address, t.Source("address"))
	}
	if t.APIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(t.APIKey)
	}
	if !t.TLSEnabled() {
		// The SDK turns TLS on by itself when there is an API key; tls.enabled: false says no.
		opts.ConnectionOptions.TLSDisabled = t.APIKey != ""
		return opts, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.TLS.ServerName}
	if t.TLS.CA != "" {
		pool, err := config.LoadCertPool(t.TLS.CA)
		if err != nil {
			return opts, fmt.Errorf("Temporal CA (%s): %w", t.Source("tls.ca"), err)
		}
		cfg.RootCAs = pool
	}
	switch {
	case t.TLS.Cert != "" && t.TLS.Key != "":
		pair, err := config.LoadKeyPair(t.TLS.Cert, t.TLS.Key)
		if err != nil {
			return opts, fmt.Errorf("Temporal client certificate (%s, %s): %w", t.Source("tls.cert"), t.Source("tls.key"), err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	case t.TLS.Cert != "":
		return opts, fmt.Errorf("Temporal client certificate %s (%s) has no key: set %s too", t.TLS.Cert, t.Source("tls.cert"), hint(t, "tls.key"))
	case t.TLS.Key != "":
		return opts, fmt.Errorf("Temporal client key %s (%s) has no certificate: set %s too", t.TLS.Key, t.Source("tls.key"), hint(t, "tls.cert"))
	}
	opts.ConnectionOptions.TLS = cfg
	return opts, nil
}

// A DialOption adds to the client options Dial builds from the config.
type DialOption func(*client.Options)

// WithMetrics sends the SDK's metrics, and those workflows emit through
// workflow.GetMetricsHandler, to h; nil keeps the SDK's default, which drops them.
func WithMetrics(h client.MetricsHandler) DialOption {
	return func(o *client.Options) { o.MetricsHandler = h }
}

// Dial connects to Temporal and checks that it answers. Its errors name the address and,
// for TLS and authentication failures, the cause and the setting to look at.
func Dial(ctx context.Context, t config.Temporal, logger *slog.Logger, options ...DialOption) (client.Client, error) {
	opts, err := Options(t, logger)
	if err != nil {
		return nil, err
	}
	for _, o := range options {
		o(&opts)
	}
	if t.APIKey != "" && !t.TLSEnabled() && logger != nil {
		logger.Warn("sending the Temporal API key without TLS: anyone on the network path can read it",
			"address", t.Address, "tls_enabled", t.Source("tls.enabled"))
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		if opts.ConnectionOptions.TLS != nil {
			if perr := probeTLS(ctx, t.Address, opts.ConnectionOptions.TLS); perr != nil {
				err = fmt.Errorf("%w (TLS handshake: %v)", err, perr)
			}
		}
		return nil, Explain(t, err)
	}
	return c, nil
}

// probeTLS makes a TLS connection of its own to find out why gRPC's failed. Under TLS 1.3 a
// server rejects the client's certificate only after the client considers the handshake done,
// so gRPC often sees just a reset or a broken pipe; the probe waits for the server's alert.
// It returns nil when it learns nothing.
func probeTLS(ctx context.Context, addr string, cfg *tls.Config) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c := cfg.Clone()
	c.NextProtos = []string{"h2"}
	conn, err := (&tls.Dialer{Config: c}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	if err != nil && strings.Contains(err.Error(), "tls:") {
		return err
	}
	return nil
}

// Explain turns an error from talking to Temporal into one that says what went wrong in the
// operator's terms: "Temporal at X: certificate signed by unknown authority
// (controller.temporal.tls.ca = /path)". Errors it does not recognise keep their text, prefixed
// with the address and namespace.
func Explain(t config.Temporal, err error) error {
	at := "Temporal at " + t.Address
	msg := err.Error()
	var why string
	switch {
	case strings.Contains(msg, "certificate signed by unknown authority"):
		if t.TLS.CA != "" {
			why = fmt.Sprintf("certificate signed by unknown authority (%s = %s)", t.Source("tls.ca"), t.TLS.CA)
		} else {
			why = fmt.Sprintf("certificate signed by unknown authority (no CA configured, so the system's trusted CAs were used: set %s)", hint(t, "tls.ca"))
		}
	case nameMismatch.MatchString(msg):
		why = fmt.Sprintf("the server's %s: connect by a name it holds, or set %s", nameMismatch.FindStringSubmatch(msg)[1], hint(t, "tls.serverName"))
	case clientCertAlert.MatchString(msg):
		if t.TLS.Cert == "" {
			why = fmt.Sprintf("the server requires a client certificate (mTLS) and none is configured: set %s and %s", hint(t, "tls.cert"), hint(t, "tls.key"))
		} else {
			alert := clientCertAlert.FindString(msg)
			why = fmt.Sprintf("the server rejected the client certificate (%s = %s): %s", t.Source("tls.cert"), t.TLS.Cert, alert)
			if strings.HasSuffix(alert, "certificate required") {
				// Go sends a client certificate only if a CA the server named signed it.
				why = fmt.Sprintf("the server requires a client certificate signed by a CA it trusts, and %s (%s) is not, so none was sent", t.TLS.Cert, t.Source("tls.cert"))
			}
		}
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		why = fmt.Sprintf("TLS is on but the server does not speak TLS (%s): turn TLS off or use the server's TLS port", tlsOnBecause(t))
	case !t.TLSEnabled() && (strings.Contains(msg, "error reading server preface") || strings.Contains(msg, "connection reset by peer")):
		why = fmt.Sprintf("the connection was closed at once; if the server uses TLS, set %s (and the CA, client certificate and key it needs): %v",
			hint(t, "tls.enabled")+" to true", err)
	}
	st, _ := status.FromError(err)
	switch {
	case why != "":
	case st.Code() == codes.Unauthenticated:
		if t.APIKey != "" {
			why = fmt.Sprintf("the server rejected the API key (%s): %s", t.Source("apiKey"), st.Message())
		} else {
			why = fmt.Sprintf("the server wants credentials (%s): set %s or a client certificate", st.Message(), hint(t, "apiKey"))
		}
	case st.Code() == codes.PermissionDenied:
		why = fmt.Sprintf("permission denied in namespace %s (%s): %s", t.Namespace, t.Source("namespace"), st.Message())
	default:
		return fmt.Errorf("connect to %s (%s, namespace %s): %w", at, t.Source("address"), t.Namespace, err)
	}
	return &Error{Address: t.Address, Hint: why, Err: err}
}

// Error is a failure to talk to Temporal that Explain understood.
type Error struct {
	Address string
	Hint    string
	Err     error
}

func (e *Error) Error() string { return "Temporal at " + e.Address + ": " + e.Hint }
func (e *Error) Unwrap() error { return e.Err }

var (
	// nameMismatch is crypto/x509's HostnameError.
	nameMismatch = regexp.MustCompile(`x509: (certificate is (?:not )?valid for [^"]*)`)
	// clientCertAlert is a TLS alert a server sends about the client's certificate (or its absence).
	clientCertAlert = regexp.MustCompile(`remote error: tls: (?:certificate required|bad certificate|unknown certificate authority|certificate expired|unsupported certificate|certificate revoked)`)
)

// hint names the setting to change for key (below controller.temporal): the flag or variable
// that set it, or else the key in the file and the environment variable that would.
func hint(t config.Temporal, key string) string {
	if s, ok := t.Sources[key]; ok {
		return s
	}
	for _, v := range envVars {
		if v.key == key {
			return "controller.temporal." + key + " (or " + v.names[0] + ")"
		}
	}
	return "controller.temporal." + key
}

// tlsOnBecause says which setting turned TLS on.
func tlsOnBecause(t config.Temporal) string {
	if t.TLS.Enabled != nil {
		return t.Source("tls.enabled") + " is true"
	}
	for _, k := range []struct{ key, value string }{{"tls.ca", t.TLS.CA}, {"tls.cert", t.TLS.Cert}, {"tls.serverName", t.TLS.ServerName}, {"apiKey", t.APIKey}} {
		if k.value != "" {
			return "because " + t.Source(k.key) + " is set"
		}
	}
	return "TLS is on"
}
