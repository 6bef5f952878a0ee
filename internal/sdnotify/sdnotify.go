// Package sdnotify speaks systemd's notify protocol: datagrams of "KEY=value" lines sent to
// the unix socket named by $NOTIFY_SOCKET, which systemd sets for a Type=notify service.
package sdnotify

import (
	"fmt"
	"net"
	"os"
)

// SocketEnv names the socket's path; a leading '@' means Linux's abstract namespace.
const SocketEnv = "NOTIFY_SOCKET"

// Notifier sends states to one notify socket. A nil *Notifier sends nothing, so a process
// not started by systemd needs no special case.
type Notifier struct {
	addr *net.UnixAddr
}

// FromEnv returns a Notifier for $NOTIFY_SOCKET, or nil when it is not set.
func FromEnv() *Notifier {
	path := os.Getenv(SocketEnv)
	if path == "" {
		return nil
	}
	return New(path)
}

// New returns a Notifier for the socket at path. Go's net package maps a leading '@' to the
// abstract namespace's leading NUL byte, as systemd means it.
func New(path string) *Notifier {
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// Notify sends one state, such as "READY=1", "STOPPING=1" or "STATUS=waiting for MySQL";
// several may be joined with newlines.
func (n *Notifier) Notify(state string) error {
	if n == nil {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("notify systemd at %s: %w", n.addr.Name, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify systemd at %s: %w", n.addr.Name, err)
	}
	return nil
}
