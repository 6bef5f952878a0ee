package testservices

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Service is a server process that belongs to one test: a Temporal dev server, an InfluxDB, a
// MariaDB or a libvirtd started on free ports in a folder of its own (see StartTemporal,
// StartInfluxDB, StartMariaDB, StartLibvirtd). The test may stop it, start it again on the
// same ports with the same data, kill it, or freeze it, to see what the code under test does
// through an outage, without touching the shared services other tests use.
//
// Its process ends with the test (and, through the parent-death signal, with the test binary
// if that dies first); its folder is then removed. Its methods fail the test on error, so call
// them from the test's goroutine.
type Service struct {
	t    testing.TB
	name string
	addr string
	dir  string
	log  string
	// command builds the server's command line for each start; ready says whether it serves.
	command func() *exec.Cmd
	ready   func(ctx context.Context) error
	// readyTimeout bounds a start; stopTimeout bounds a graceful stop before SIGKILL.
	readyTimeout, stopTimeout time.Duration

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has exited
	paused bool
	starts int
}

// Name says what the service is, for messages: "Temporal dev server".
func (s *Service) Name() string { return s.name }

// Addr is where the service listens: host:port, or a unix socket's path.
func (s *Service) Addr() string { return s.addr }

// Dir is the service's folder: its data, configuration and log.
func (s *Service) Dir() string { return s.dir }

// LogPath is the file the process's output goes to, across restarts.
func (s *Service) LogPath() string { return s.log }

// Running reports whether the process runs (it may be paused).
func (s *Service) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Pid is the process's id, or 0 when it does not run.
func (s *Service) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Start starts the process and waits until it serves. It fails the test when the process exits
// or does not serve in time, showing the end of its log.
func (s *Service) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("testservices: %v", err)
	}
}

// start is Start, returning its error instead: StartStack starts services side by side.
func (s *Service) start() error {
	if s.Running() {
		return fmt.Errorf("start %s: it runs already", s.name)
	}
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", s.name, err)
	}
	cmd := s.command()
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Its own process group, so a terminal's signals reach the test only; killed with the test
	// binary, so a test that times out leaves no server behind.
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	s.mu.Lock()
	n := s.starts + 1
	s.mu.Unlock()
	fmt.Fprintf(logf, "\n--- testservices: start %d of %s: %s\n", n, s.name, cmd.String())
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s (%s): %w", s.name, cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited, s.paused = cmd, exited, false
	s.starts = n
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), s.readyTimeout)
	defer cancel()
	for {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		last := s.ready(rctx)
		rcancel()
		if last == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited during start (%v)\n%s", s.name, cmd.ProcessState, s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("%s did not serve at %s within %s: %v\n%s", s.name, s.addr, s.readyTimeout, last, s.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop stops the process gracefully (SIGTERM, after SIGCONT if paused) and waits until it has
// exited, killing it after a bound. Its data stays for the next Start.
func (s *Service) Stop() {
	s.t.Helper()
	if err := s.signalAndWait(syscall.SIGTERM, s.stopTimeout); err != nil {
		s.t.Fatalf("testservices: stop %s: %v", s.name, err)
	}
}

// Kill kills the process (SIGKILL), as a crash would, and waits until it has exited.
func (s *Service) Kill() {
	s.t.Helper()
	if err := s.signalAndWait(syscall.SIGKILL, 0); err != nil {
		s.t.Fatalf("testservices: kill %s: %v", s.name, err)
	}
}

// Restart stops the process gracefully and starts it again.
func (s *Service) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

// Pause freezes the process (SIGSTOP): connections stay open and nothing answers, as with a
// hung server or a network partition. Resume undoes it.
func (s *Service) Pause() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("testservices: pause %s: not running", s.name)
	}
	if err := syscall.Kill(s.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		s.t.Fatalf("testservices: pause %s: %v", s.name, err)
	}
	s.paused = true
}

// Resume lets a paused process run again (SIGCONT).
func (s *Service) Resume() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("testservices: resume %s: not running", s.name)
	}
	if err := syscall.Kill(s.cmd.Process.Pid, syscall.SIGCONT); err != nil {
		s.t.Fatalf("testservices: resume %s: %v", s.name, err)
	}
	s.paused = false
}

// signalAndWait sends sig and waits for the process to exit; after timeout (0: none) it sends
// SIGKILL. A process that does not run is not an error.
func (s *Service) signalAndWait(sig syscall.Signal, timeout time.Duration) error {
	s.mu.Lock()
	cmd, exited, paused := s.cmd, s.exited, s.paused
	s.paused = false
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	default:
	}
	pid := cmd.Process.Pid
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	if paused && sig != syscall.SIGKILL {
		// A stopped process handles SIGTERM only once it runs again.
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	if timeout > 0 {
		select {
		case <-exited:
			return nil
		case <-time.After(timeout):
			s.t.Logf("testservices: %s did not stop within %s of %s; killing it", s.name, timeout, sig)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	select {
	case <-exited:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("process %d did not exit within 30 s of SIGKILL", pid)
	}
}

// logTail is the end of the service's log, for failure messages.
func (s *Service) logTail() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const keep = 2000
	if len(b) > keep {
		b = b[len(b)-keep:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return fmt.Sprintf("last lines of %s:\n%s", s.log, b)
}

// newService prepares a Service in a fresh folder named after kind. The folder is under the
// system's temporary folder rather than t.TempDir, whose parent is private to root: some
// servers run as another user, and unix socket paths must stay short. The process is stopped
// and the folder removed when the test ends.
func newService(t testing.TB, kind, name string) *Service {
	t.Helper()
	dir, err := os.MkdirTemp("", "premiscale-"+kind+"-")
	if err != nil {
		t.Fatalf("testservices: folder for %s: %v", name, err)
	}
	s := &Service{
		t: t, name: name, dir: dir, log: filepath.Join(dir, kind+".log"),
		readyTimeout: 2 * time.Minute, stopTimeout: 30 * time.Second,
	}
	t.Cleanup(func() {
		if err := s.signalAndWait(syscall.SIGTERM, s.stopTimeout); err != nil {
			t.Errorf("testservices: stop %s at the end of the test: %v", name, err)
		}
		if t.Failed() {
			t.Logf("testservices: %s", s.logTail())
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testservices: remove %s: %v", dir, err)
		}
	})
	return s
}

// lookTool finds a server binary on PATH or in Go's bin folder (where testenv/up installs
// temporal and influxd), failing the test with how to get it.
func lookTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range goBinDirs() {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatalf("testservices: %s not found on PATH or in Go's bin folder (%s)", name, hint)
	return ""
}

func goBinDirs() []string {
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if d := os.Getenv("GOPATH"); d != "" {
		dirs = append(dirs, filepath.Join(d, "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	return dirs
}
