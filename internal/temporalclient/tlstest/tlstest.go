// Package tlstest puts TLS in front of the Temporal dev server for tests: a CA of the test's own,
// server and client certificates signed by it, and proxies that terminate TLS (requiring a
// client certificate, or an API key) and pass the connection on to the plain-text dev server.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// PKI is a test's CA with a server certificate (for 127.0.0.1 and localhost) and a client
// certificate it signed, and a second CA that signed nothing the proxies present, all written
// as PEM files in a temporary folder.
type PKI struct {
	// CAFile is the CA's certificate; ClientCert and ClientKey are the client's pair.
	CAFile, ClientCert, ClientKey string
	// OtherCAFile is a CA certificate that signed neither the server's nor the client's.
	OtherCAFile string
	// OtherClientCert and OtherClientKey are a client pair signed by the other CA.
	OtherClientCert, OtherClientKey string
	// ServerName is a DNS name the server certificate holds besides localhost and 127.0.0.1.
	ServerName string

	ca     *x509.CertPool
	server tls.Certificate
}

// New makes the certificates and writes them under t.TempDir().
func New(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	ca := newCA(t, "premiscale test CA")
	other := newCA(t, "some other CA")
	p := &PKI{ServerName: "temporal.test", ca: x509.NewCertPool()}
	p.ca.AddCert(ca.cert)
	p.CAFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.cert.Raw)
	p.OtherCAFile = writePEM(t, dir, "other-ca.pem", "CERTIFICATE", other.cert.Raw)

	serverDER, serverKey := ca.issue(t, "temporal server", true, "localhost", "127.0.0.1", p.ServerName)
	p.server = tls.Certificate{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}

	clientDER, clientKey := ca.issue(t, "premiscale client", false)
	p.ClientCert = writePEM(t, dir, "client.pem", "CERTIFICATE", clientDER)
	p.ClientKey = writePEM(t, dir, "client-key.pem", "PRIVATE KEY", marshalKey(t, clientKey))
	otherDER, otherKey := other.issue(t, "stranger", false)
	p.OtherClientCert = writePEM(t, dir, "other-client.pem", "CERTIFICATE", otherDER)
	p.OtherClientKey = writePEM(t, dir, "other-client-key.pem", "PRIVATE KEY", marshalKey(t, otherKey))
	return p
}

type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t testing.TB, name string) ca {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("tlstest: create CA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("tlstest: parse CA: %v", err)
	}
	return ca{cert: cert, key: key}
}

// issue signs a server certificate for hosts, or a client certificate.
func (c ca) issue(t testing.TB, name string, server bool, hosts ...string) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatalf("tlstest: issue %s: %v", name, err)
	}
	return der, key
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("tlstest: generate key: %v", err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func marshalKey(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("tlstest: marshal key: %v", err)
	}
	return der
}

func writePEM(t testing.TB, dir, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// MTLSProxy listens on 127.0.0.1, terminates TLS with the server certificate, requires a client
// certificate signed by the test's CA, and copies bytes to and from backend (the plain-text
// Temporal frontend). It returns the proxy's host:port and stops at the test's end.
func (p *PKI) MTLSProxy(t testing.TB, backend string) string {
	t.Helper()
	cfg := &tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientCAs:    p.ca,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		// gRPC insists on h2 being negotiated.
		NextProtos: []string{"h2"},
		MinVersion: tls.VersionTLS12,
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatalf("tlstest: listen: %v", err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { pipe(conn.(*tls.Conn), backend) })
		}
	})
	return ln.Addr().String()
}

// pipe completes the handshake (a client without a valid certificate ends here) and joins the
// connection to a new one to backend until either side closes.
func pipe(client *tls.Conn, backend string) {
	defer client.Close()
	if err := client.Handshake(); err != nil {
		return
	}
	server, err := net.DialTimeout("tcp", backend, 5*time.Second)
	if err != nil {
		return
	}
	defer server.Close()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Wake the other direction up: one side closing ends the whole connection.
		_ = dst.SetDeadline(time.Now())
		_ = src.SetDeadline(time.Now())
		done <- struct{}{}
	}
	go cp(server, client)
	go cp(client, server)
	<-done
	<-done
}

// APIKeyProxy listens on 127.0.0.1 with TLS (no client certificate) and forwards gRPC calls to
// backend only when they carry "authorization: Bearer <apiKey>"; others get HTTP 401, which
// gRPC clients see as Unauthenticated. It returns the proxy's host:port.
func (p *PKI) APIKeyProxy(t testing.TB, backend, apiKey string) string {
	t.Helper()
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: "http", Host: backend})
		},
		Transport:     &http.Transport{Protocols: &protocols},
		FlushInterval: -1,
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+apiKey {
				http.Error(w, "bad API key", http.StatusUnauthorized)
				return
			}
			rp.ServeHTTP(w, r)
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{p.server}, NextProtos: []string{"h2"}},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nil,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("tlstest: listen: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("tlstest: API key proxy: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}
