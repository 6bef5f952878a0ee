package testservices

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// DefaultHostUser is the user StartLibvirtd runs libvirtd as when the test runs as root;
// testenv/hosts creates it and premiscale-h2 … premiscale-h4.
const DefaultHostUser = "premiscale-h1"

// Libvirtd is a private, session-mode libvirtd: a libvirt host of its own, with an
// independent test:///default driver (TestURI) and qemu:///session (SessionURI).
//
// Its test driver keeps its state in the daemon's memory, and forgets it when the daemon
// stops or its last connection closes: Stop and Start make a host that lost everything (a
// reinstalled host), Pause and Resume a hung one that comes back as it was.
type Libvirtd struct {
	*Service
	user string
}

// LibvirtdOptions shape StartLibvirtd.
type LibvirtdOptions struct {
	// User runs the daemon when the test runs as root; empty means DefaultHostUser. Several
	// daemons may run as one user: each has its own folders.
	User string
}

// StartLibvirtd starts a session-mode libvirtd (/usr/sbin/libvirtd --timeout 0) as an
// unprivileged user, with its own HOME and XDG folders, so that its socket, configuration and
// state are its own.
func StartLibvirtd(t testing.TB, opts LibvirtdOptions) *Libvirtd {
	t.Helper()
	svc := newLibvirtd(t, opts)
	svc.Start()
	return svc
}

// newLibvirtd prepares what StartLibvirtd starts.
func newLibvirtd(t testing.TB, opts LibvirtdOptions) *Libvirtd {
	t.Helper()
	bin := "/usr/sbin/libvirtd"
	if _, err := os.Stat(bin); err != nil {
		bin = lookTool(t, "libvirtd")
	}
	s := newService(t, "libvirtd", "")
	var cred *syscall.Credential
	name := ""
	if os.Geteuid() == 0 {
		// As root, libvirtd would be the system daemon.
		name = opts.User
		if name == "" {
			name = DefaultHostUser
		}
		u, err := user.Lookup(name)
		if err != nil {
			t.Fatalf("testservices: libvirtd user %s: %v (testenv/hosts creates it; %s)", name, err, hint)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
		// The daemon's user must reach its folders: through the service's folder (root's, 0700
		// from MkdirTemp) and into home and run, which are its own.
		if err := os.Chmod(s.dir, 0o711); err != nil {
			t.Fatalf("testservices: %v", err)
		}
		for _, d := range []string{"home", "run"} {
			p := filepath.Join(s.dir, d)
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatalf("testservices: %v", err)
			}
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatalf("testservices: %v", err)
			}
		}
	} else {
		for _, d := range []string{"home", "run"} {
			if err := os.Mkdir(filepath.Join(s.dir, d), 0o700); err != nil {
				t.Fatalf("testservices: %v", err)
			}
		}
	}
	home, run := filepath.Join(s.dir, "home"), filepath.Join(s.dir, "run")
	s.addr = filepath.Join(run, "libvirt", "libvirt-sock")
	s.name = "session libvirtd at " + s.addr
	if name != "" {
		s.name += " (user " + name + ")"
	}
	s.command = func() *exec.Cmd {
		cmd := exec.Command(bin, "--timeout", "0")
		cmd.Env = []string{
			"HOME=" + home, "XDG_RUNTIME_DIR=" + run,
			"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
			"XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
			"XDG_DATA_HOME=" + filepath.Join(home, ".local", "share"),
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			// Warnings and errors only: it logs harmless D-Bus and /dev/kvm errors at start.
			"LIBVIRT_LOG_OUTPUTS=3:stderr",
		}
		cmd.Dir = home
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return cmd
	}
	l := &Libvirtd{Service: s, user: name}
	s.ready = func(ctx context.Context) error { return libvirtAnswers(ctx, l.TestURI()) }
	return l
}

// Socket is the daemon's unix socket.
func (l *Libvirtd) Socket() string { return l.addr }

// User is the user the daemon runs as; empty when it runs as the test's own user.
func (l *Libvirtd) User() string { return l.user }

// TestURI is the daemon's test driver: test+unix:///default?socket=….
func (l *Libvirtd) TestURI() string { return l.uri("test") }

// SessionURI runs real QEMU guests as the daemon's user: qemu+unix:///session?socket=….
func (l *Libvirtd) SessionURI() string { return l.uri("qemu") }

func (l *Libvirtd) uri(driver string) string {
	path := "/default"
	if driver == "qemu" {
		path = "/session"
	}
	// Written out rather than query-escaped: the path has no character that needs it, and
	// people read these URIs in configs and logs.
	return driver + "+unix://" + path + "?socket=" + l.addr
}

// libvirtAnswers opens uri and asks for the library version once.
func libvirtAnswers(ctx context.Context, uri string) error {
	u, err := url.Parse(uri)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		lv, err := golibvirt.ConnectToURI(u)
		if err != nil {
			done <- err
			return
		}
		_, err = lv.ConnectGetLibVersion()
		_ = lv.Disconnect()
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("libvirt at %s: %w", uri, ctx.Err())
	}
}
