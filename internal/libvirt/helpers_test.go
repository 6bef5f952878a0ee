package libvirt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"
)

// The URIs integration tests use, and the socket libvirtd serves them on.
const (
	testURI       = "test:///default"
	qemuURI       = "qemu:///system"
	daemonSocket  = "/var/run/libvirt/libvirt-sock"
	testPool      = "default-pool" // exists in the test driver's default state
	qemuPool      = "default"
	qemuPoolPath  = "/var/lib/libvirt/images"
	testTimeout   = 20 * time.Second
	notReachedFmt = "libvirtd is not reachable at %s: %v\n(start the test services with testenv/up, or by hand: virtlogd -d; libvirtd -d)"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// dialTest connects to uri or fails the test loudly; the Conn is closed at cleanup.
func dialTest(t *testing.T, uri string) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := Dial(ctx, uri, Options{CallTimeout: 10 * time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf(notReachedFmt, uri, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close %s: %v", uri, err)
		}
	})
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// uniqueName makes a libvirt-safe name unique to this test run: the test
// driver's state is shared by every connection to it.
func uniqueName(t *testing.T, prefix string) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	base := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		default:
			return '-'
		}
	}, strings.TrimPrefix(t.Name(), "Test"))
	if len(base) > 24 {
		base = base[:24]
	}
	return prefix + base + "-" + hex.EncodeToString(b[:])
}

// currentClient is the go-libvirt connection c uses right now (nil if none).
func currentClient(c *Conn) *golibvirt.Libvirt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lv
}

// ensureQEMUPool makes the qemu:///system dir pool the tests use, if missing.
func ensureQEMUPool(t *testing.T, c *Conn) {
	t.Helper()
	ctx := testCtx(t)
	_, err := c.lookupPool(ctx, qemuPool)
	if hasCode(err, golibvirt.ErrNoStoragePool) {
		def := libvirtxml.StoragePool{
			Type:   "dir",
			Name:   qemuPool,
			Target: &libvirtxml.StoragePoolTarget{Path: qemuPoolPath},
		}
		doc, merr := def.Marshal()
		if merr != nil {
			t.Fatal(merr)
		}
		err = do(ctx, c, "define pool", func(l *golibvirt.Libvirt) error {
			p, err := l.StoragePoolDefineXML(doc, 0)
			if err != nil {
				return err
			}
			if err := l.StoragePoolBuild(p, 0); err != nil {
				return err
			}
			return l.StoragePoolSetAutostart(p, 1)
		})
	}
	if err != nil {
		t.Fatalf("storage pool %s on %s: %v", qemuPool, qemuURI, err)
	}
	err = do(ctx, c, "start pool", func(l *golibvirt.Libvirt) error {
		p, err := l.StoragePoolLookupByName(qemuPool)
		if err != nil {
			return err
		}
		if active, err := l.StoragePoolIsActive(p); err != nil || active == 1 {
			return err
		}
		return l.StoragePoolCreate(p, 0)
	})
	if err != nil {
		t.Fatalf("start storage pool %s on %s: %v", qemuPool, qemuURI, err)
	}
}

// defineForeignDomain defines a domain without PremiScale metadata, as a user would.
func defineForeignDomain(t *testing.T, c *Conn, name string) {
	t.Helper()
	ctx := testCtx(t)
	doc := `<domain type='test'><name>` + name + `</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>` +
		`<os><type arch='x86_64'>hvm</type></os></domain>`
	if err := do(ctx, c, "define foreign domain", func(l *golibvirt.Libvirt) error {
		_, err := l.DomainDefineXML(doc)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = do(context.Background(), c, "undefine foreign domain", func(l *golibvirt.Libvirt) error {
			d, err := l.DomainLookupByName(name)
			if err != nil {
				return err
			}
			return l.DomainUndefine(d)
		})
	})
}

// proxy is a unix-socket relay in front of libvirtd that a test can freeze
// (bytes stop flowing, as with a hung daemon) or stop (as with a dead one).
type proxy struct {
	t      *testing.T
	path   string
	mu     sync.Mutex
	cond   *sync.Cond
	frozen bool
	ln     net.Listener
	conns  []net.Conn
}

func startProxy(t *testing.T) *proxy {
	t.Helper()
	p := &proxy{t: t, path: filepath.Join(t.TempDir(), "libvirt.sock")}
	p.cond = sync.NewCond(&p.mu)
	p.listen()
	t.Cleanup(p.stop)
	return p
}

// uri is a test:///default URI that reaches libvirtd through the proxy.
func (p *proxy) uri() string { return "test+unix:///default?socket=" + p.path }

func (p *proxy) listen() {
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		p.t.Fatalf("proxy listen: %v", err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", daemonSocket)
			if err != nil {
				down.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, down, up)
			p.mu.Unlock()
			go p.pipe(up, down)
			go p.pipe(down, up)
		}
	}()
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.frozen {
				p.cond.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) setFrozen(f bool) {
	p.mu.Lock()
	p.frozen = f
	p.cond.Broadcast()
	p.mu.Unlock()
}

// stop closes the listener and every relayed connection.
func (p *proxy) stop() {
	p.mu.Lock()
	ln, conns := p.ln, p.conns
	p.ln, p.conns = nil, nil
	p.frozen = false
	p.cond.Broadcast()
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for _, c := range conns {
		c.Close()
	}
	_ = os.Remove(p.path)
}
