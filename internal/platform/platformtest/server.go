// Package platformtest is a PremiScale platform for tests: a TLS server with its own CA that
// answers registrations and holds agents' websockets (gorilla on its side too), records
// every message, acknowledges events, and can refuse, drop and misbehave on demand.
package platformtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Default registration answer.
const (
	AgentID    = "agent-test-1"
	Credential = "cred-test-1"
)

// Envelope is a message as the platform sees it.
type Envelope struct {
	V       int             `json:"v"`
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	At      time.Time       `json:"at"`
	Agent   string          `json:"agent,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Message is one message received, with the number of the connection it came on (from 1).
type Message struct {
	Conn int
	// Size is the message's size in bytes.
	Size int
	Envelope
}

// ConnPolicy says how the server treats one websocket connection.
type ConnPolicy struct {
	// NoAck: acknowledge nothing.
	NoAck bool
	// DropAfter > 0: cut the TCP connection (no close frame) after that many messages.
	DropAfter int
	// Stall: after the first message, read nothing more (so answer no ping) until the agent
	// gives the connection up.
	Stall bool
}

// Server is the fake platform.
type Server struct {
	t   testing.TB
	srv *httptest.Server
	// URL is the platform host for the agent: wss://127.0.0.1:<port>.
	URL string
	// CAFile is the PEM file of the CA that signed the server's certificate.
	CAFile string
	CAPEM  []byte

	mu            sync.Mutex
	registrations int
	bodies        [][]byte
	register      func(n int, w http.ResponseWriter)
	creds         map[string]bool
	away          bool
	policy        func(conn int) ConnPolicy
	conns         []*conn
	auth          []string
	closeCodes    []int
	log           []Message
	keepPayloads  int
	pings         int
	stopped       chan struct{}
	stopOnce      sync.Once
	// next is where Next looks from.
	next    int
	arrived chan struct{}
}

type conn struct {
	ws *websocket.Conn
	mu sync.Mutex // one writer at a time
}

// New starts a fake platform with a fresh CA; it stops with the test.
func New(t testing.TB) *Server {
	t.Helper()
	caPEM, leaf := newCertificates(t)
	s := &Server{t: t, CAPEM: caPEM, keepPayloads: 1 << 20, stopped: make(chan struct{}), arrived: make(chan struct{}, 1), creds: map[string]bool{Credential: true},
		policy: func(int) ConnPolicy { return ConnPolicy{} }}
	s.register = func(_ int, w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"agent_id": %q, "credential": %q, "region": "test", "features": ["x"]}`, AgentID, Credential)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /agent/registration", s.serveRegistration)
	mux.HandleFunc("GET /agent/websocket", s.serveWebsocket)
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
	s.srv.StartTLS()
	t.Cleanup(s.Close)
	s.URL = "wss://" + s.srv.Listener.Addr().String()
	s.CAFile = filepath.Join(t.TempDir(), "platform-ca.pem")
	if err := os.WriteFile(s.CAFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// Close stops the server and cuts every connection.
func (s *Server) Close() {
	s.stopOnce.Do(func() { close(s.stopped) })
	s.DropAll()
	s.srv.Close()
}

// OnRegister replaces the registration handler; n counts requests from 1.
func (s *Server) OnRegister(f func(n int, w http.ResponseWriter)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.register = f
}

// Registrations returns the number of registration requests and their bodies.
func (s *Server) Registrations() (int, [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.registrations, append([][]byte(nil), s.bodies...)
}

// Accept sets the credentials the websocket accepts.
func (s *Server) Accept(creds ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creds = map[string]bool{}
	for _, c := range creds {
		s.creds[c] = true
	}
}

// SetAway makes the websocket refuse connections (503) while away is true.
func (s *Server) SetAway(away bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.away = away
}

// SetPolicy sets how each new connection (numbered from 1) is treated.
func (s *Server) SetPolicy(f func(conn int) ConnPolicy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policy = f
}

// SetKeepPayloads bounds the payloads kept in the log: larger ones are dropped (Message.Size
// says how large the message was), so a burst does not fill the test's memory.
func (s *Server) SetKeepPayloads(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keepPayloads = n
}

// Conns returns the number of websocket connections so far.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Pings returns how many pings the agents sent.
func (s *Server) Pings() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pings
}

// Authorizations returns the Authorization headers of every websocket request.
func (s *Server) Authorizations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auth...)
}

// CloseCodes returns the close codes agents sent.
func (s *Server) CloseCodes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.closeCodes...)
}

// DropAll cuts every open connection without a close frame.
func (s *Server) DropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.ws.UnderlyingConn().Close()
	}
}

// Send writes a text message on the newest connection.
func (s *Server) Send(data []byte) error { return s.write(websocket.TextMessage, data) }

// SendBinary writes a binary message on the newest connection.
func (s *Server) SendBinary(data []byte) error { return s.write(websocket.BinaryMessage, data) }

// SendJSON writes v as a message on the newest connection.
func (s *Server) SendJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.Send(b)
}

func (s *Server) write(typ int, data []byte) error {
	s.mu.Lock()
	if len(s.conns) == 0 {
		s.mu.Unlock()
		return fmt.Errorf("no connection")
	}
	c := s.conns[len(s.conns)-1]
	s.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteMessage(typ, data)
}

// Command sends a command envelope on the newest connection.
func (s *Server) Command(id string, payload any) error {
	p, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	return s.SendJSON(Envelope{V: 1, Type: "command", ID: id, At: time.Now(), Payload: p})
}

// Next waits for the first message after the one Next returned last that match accepts.
// Messages it passes over stay in the log for Seen and WaitFor.
func (s *Server) Next(t testing.TB, timeout time.Duration, what string, match func(Message) bool) Message {
	t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		for i := s.next; i < len(s.log); i++ {
			if match(s.log[i]) {
				s.next = i + 1
				m := s.log[i]
				s.mu.Unlock()
				return m
			}
		}
		s.mu.Unlock()
		select {
		case <-s.arrived:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("platform: no %s within %s", what, timeout)
			return Message{}
		}
	}
}

// Seen counts how many times each message id arrived.
func (s *Server) Seen() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, m := range s.log {
		out[m.ID]++
	}
	return out
}

// WaitFor waits until every id in ids has arrived, and returns how many times each did.
func (s *Server) WaitFor(t testing.TB, timeout time.Duration, ids []string) map[string]int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		seen := s.Seen()
		missing := 0
		for _, id := range ids {
			if seen[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return seen
		}
		if time.Now().After(deadline) {
			t.Fatalf("platform: %d of %d messages never arrived within %s", missing, len(ids), timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// OfType matches messages of a type.
func OfType(typ string) func(Message) bool {
	return func(m Message) bool { return m.Type == typ }
}

func (s *Server) serveRegistration(w http.ResponseWriter, r *http.Request) {
	body := make([]byte, 0, 256)
	buf := make([]byte, 4096)
	for {
		n, err := r.Body.Read(buf)
		body = append(body, buf[:n]...)
		if err != nil {
			break
		}
	}
	s.mu.Lock()
	s.registrations++
	n := s.registrations
	s.bodies = append(s.bodies, body)
	f := s.register
	s.mu.Unlock()
	f(n, w)
}

var upgrader = websocket.Upgrader{ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10}

func (s *Server) serveWebsocket(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	auth := r.Header.Get("Authorization")
	s.auth = append(s.auth, auth)
	away := s.away
	ok := s.creds[strings.TrimPrefix(auth, "Bearer ")] && strings.HasPrefix(auth, "Bearer ")
	s.mu.Unlock()
	switch {
	case away:
		http.Error(w, "platform away", http.StatusServiceUnavailable)
		return
	case !ok:
		http.Error(w, "bad credential", http.StatusUnauthorized)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &conn{ws: ws}
	s.mu.Lock()
	s.conns = append(s.conns, c)
	num := len(s.conns)
	policy := s.policy(num)
	s.mu.Unlock()
	ws.SetCloseHandler(func(code int, text string) error {
		s.mu.Lock()
		s.closeCodes = append(s.closeCodes, code)
		s.mu.Unlock()
		c.mu.Lock()
		defer c.mu.Unlock()
		return ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(time.Second))
	})
	ws.SetPingHandler(func(data string) error {
		s.mu.Lock()
		s.pings++
		s.mu.Unlock()
		c.mu.Lock()
		defer c.mu.Unlock()
		return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	defer ws.Close()
	for count := 1; ; count++ {
		if policy.Stall && count > 1 {
			// Wait for the agent to hang up: the connection's reads end with an error then, but
			// nobody reads, so watch the TCP connection instead.
			_ = ws.UnderlyingConn().SetReadDeadline(time.Time{})
			buf := make([]byte, 1)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					if _, err := ws.UnderlyingConn().Read(buf); err != nil {
						return
					}
				}
			}()
			select {
			case <-done:
			case <-s.stopped:
			}
			return
		}
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var env Envelope
		if err := json.Unmarshal(data, &env); err != nil {
			s.t.Errorf("platform: the agent sent a message that is not an envelope: %q", data)
			continue
		}
		s.mu.Lock()
		if len(env.Payload) > s.keepPayloads {
			env.Payload = nil
		}
		s.log = append(s.log, Message{Conn: num, Size: len(data), Envelope: env})
		s.mu.Unlock()
		select {
		case s.arrived <- struct{}{}:
		default:
		}
		if policy.DropAfter > 0 && count >= policy.DropAfter {
			ws.UnderlyingConn().Close()
			return
		}
		if !policy.NoAck && env.Type != "hello" && env.Type != "error" {
			ack, _ := json.Marshal(map[string]any{"v": 1, "type": "ack", "id": "ack-" + env.ID, "payload": map[string]any{"ids": []string{env.ID}}})
			c.mu.Lock()
			_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
			err := ws.WriteMessage(websocket.TextMessage, ack)
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

// newCertificates makes a CA and a server certificate it signs for 127.0.0.1 and localhost.
func newCertificates(t testing.TB) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "platformtest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "platformtest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
