package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// listen opens a datagram socket like systemd's, at a path or (with '@') an abstract name.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen on %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read notification: %v", err)
	}
	return string(buf[:n])
}

func TestNotifySendsEachStateAsOneDatagram(t *testing.T) {
	for _, tc := range []struct {
		name, socket string
	}{
		{"path", filepath.Join(t.TempDir(), "notify.sock")},
		{"abstract", fmt.Sprintf("@premiscale-sdnotify-test-%d", os.Getpid())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := listen(t, tc.socket)
			t.Setenv(SocketEnv, tc.socket)
			n := FromEnv()
			if n == nil {
				t.Fatal("FromEnv returned nil with NOTIFY_SOCKET set")
			}
			for _, state := range []string{"STATUS=waiting for MySQL at 127.0.0.1:3306", "READY=1", "STOPPING=1"} {
				if err := n.Notify(state); err != nil {
					t.Fatalf("Notify(%q): %v", state, err)
				}
				if got := receive(t, conn); got != state {
					t.Errorf("socket received %q, want %q", got, state)
				}
			}
		})
	}
}

func TestWithoutSocketNothingIsSent(t *testing.T) {
	t.Setenv(SocketEnv, "")
	n := FromEnv()
	if n != nil {
		t.Fatalf("FromEnv = %v with NOTIFY_SOCKET empty, want nil", n)
	}
	if err := n.Notify("READY=1"); err != nil {
		t.Errorf("a nil Notifier reported %v", err)
	}
}

func TestMissingSocketIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.sock")
	if err := New(path).Notify("READY=1"); err == nil {
		t.Errorf("notify to %s, where nothing listens, reported no error", path)
	}
}
