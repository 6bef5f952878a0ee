package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/testservices"
)

// libvirtSocket is libvirtd's read-write socket, which the libvirt case's proxy forwards to.
const libvirtSocket = "/var/run/libvirt/libvirt-sock"

// missingDependency is one dependency pointed at a port nothing listens on.
type missingDependency struct {
	// check is its name in /readyz; key the config key that names it.
	check, key string
	// point rewrites the config to use addr (127.0.0.1:port) instead of the real service, and
	// returns where the real one is (network and address), for the proxy that makes it appear.
	point func(t *testing.T, ac testservices.AgentConfig, addr string) (network, upstream string)
	// failure is what --wait-for-dependencies=false must print.
	failure func(ac testservices.AgentConfig, addr string) string
}

var missingDependencies = map[string]missingDependency{
	"temporal": {
		check: "temporal", key: "controller.temporal.address",
		point: func(t *testing.T, ac testservices.AgentConfig, addr string) (string, string) {
			real := ac.Config.Controller.Temporal.Address
			rewriteConfig(t, ac.Path, "address: "+strconv.Quote(real), "address: "+strconv.Quote(addr))
			return "tcp", real
		},
		failure: func(_ testservices.AgentConfig, addr string) string {
			return fmt.Sprintf("connect to Temporal at %s (controller.temporal.address, namespace default): ", addr)
		},
	},
	"mysql": {
		check: "mysql", key: "controller.databases.state.connection.url",
		point: func(t *testing.T, ac testservices.AgentConfig, addr string) (string, string) {
			real := ac.Config.Controller.Databases.State.Connection.URL
			rewriteConfig(t, ac.Path, "url: "+strconv.Quote(real), "url: "+strconv.Quote(addr))
			return "tcp", real
		},
		failure: func(_ testservices.AgentConfig, addr string) string {
			return fmt.Sprintf("open the state database (controller.databases.state.connection.url): connect to MySQL at %s ", addr)
		},
	},
	"influxdb": {
		check: "influxdb", key: "controller.databases.timeseries.connection.url",
		point: func(t *testing.T, ac testservices.AgentConfig, addr string) (string, string) {
			real := ac.Config.Controller.Databases.Timeseries.Connection.URL
			rewriteConfig(t, ac.Path, "url: "+strconv.Quote(real), "url: "+strconv.Quote("http://"+addr))
			return "tcp", strings.TrimPrefix(real, "http://")
		},
		failure: func(ac testservices.AgentConfig, addr string) string {
			return fmt.Sprintf("prepare the time-series database (controller.databases.timeseries.connection.url): create InfluxDB database %s at http://%s: ",
				ac.Config.Controller.Databases.Timeseries.Connection.Database, addr)
		},
	},
	"libvirt": {
		check: "libvirt/", key: "controller.autoscale.hosts[0].uri",
		point: func(t *testing.T, ac testservices.AgentConfig, addr string) (string, string) {
			// libvirt's remote protocol over TCP, carried to the local daemon by the proxy.
			rewriteConfig(t, ac.Path, `uri: "test:///default"`, `uri: "test+tcp://`+addr+`/default"`)
			return "unix", libvirtSocket
		},
		failure: func(ac testservices.AgentConfig, addr string) string {
			return fmt.Sprintf("connect to host %s (controller.autoscale.hosts[0].uri): connect to test+tcp://%s/default: ", ac.Host, addr)
		},
	},
}

func rewriteConfig(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), old); n != 1 {
		t.Fatalf("config %s has %q %d times, want once:\n%s", path, old, n, b)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// workerEnv is the test's environment for a worker, without TEMPORAL_ADDRESS (it would
// override the config's address) and with extra.
func workerEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TEMPORAL_ADDRESS=") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func TestWorkerWithoutWaitingFailsFastNamingTheMissingDependency(t *testing.T) {
	for name, dep := range missingDependencies {
		t.Run(name, func(t *testing.T) {
			ac := testservices.WriteAgentConfig(t, "", testservices.UniqueName(t, "h"), "")
			addr := fmt.Sprintf("127.0.0.1:%d", testservices.FreePort(t))
			dep.point(t, ac, addr)
			want := dep.failure(ac, addr)

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, "worker", "-c", ac.Path, "--log-stdout", "--wait-for-dependencies=false")
			cmd.Env = workerEnv()
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			began := time.Now()
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 || ctx.Err() != nil {
				t.Fatalf("worker with %s missing: %v after %s (want a non-zero exit)\n%s", name, err, time.Since(began), out.String())
			}
			t.Logf("exit %d after %s", exit.ExitCode(), time.Since(began).Round(time.Millisecond))
			if !strings.Contains(out.String(), "premiscale: "+want) {
				t.Errorf("output lacks %q:\n%s", "premiscale: "+want, out.String())
			}
			for _, bad := range []string{"panic", "goroutine "} {
				if strings.Contains(out.String(), bad) {
					t.Errorf("output contains %q:\n%s", bad, out.String())
				}
			}
		})
	}
}

func TestWorkerWaitsForAMissingDependencyUntilItAppears(t *testing.T) {
	for name, dep := range missingDependencies {
		t.Run(name, func(t *testing.T) {
			ac := testservices.WriteAgentConfig(t, "", testservices.UniqueName(t, "h"), "")
			port := testservices.FreePort(t)
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			network, upstream := dep.point(t, ac, addr)
			check := dep.check
			if name == "libvirt" {
				check += ac.Host
			}
			notes := listenNotify(t)
			w := startWaitingWorker(t, ac.Path, "NOTIFY_SOCKET="+notes.path)
			health := fmt.Sprintf("http://127.0.0.1:%d", ac.Config.Controller.Healthcheck.Port)

			// The health endpoint answers while the worker waits, and says for what.
			waitHTTP(t, health+"/livez", http.StatusOK, 30*time.Second)
			if !waitUntil(60*time.Second, func() bool { return len(w.waitingLines(t, check)) >= 2 }) {
				t.Fatalf("the worker did not log two attempts to reach %s within a minute", check)
			}
			code, rd := readyz(t, health+"/readyz")
			c := rd.Checks[check]
			if code != http.StatusServiceUnavailable || rd.Ready || c.OK || c.Error == "" || c.ConfigKey != dep.key || c.CheckedAt == nil {
				t.Errorf("/readyz while %s is missing: %d %+v; want 503 naming %s, its error and key %s", name, code, rd, check, dep.key)
			}
			if rd.Checks["workers"].OK {
				t.Errorf("/readyz says the workers run before %s is there: %+v", check, rd.Checks["workers"])
			}
			if pid := readPid(t, ac.Config.Controller.PidFile); pid != w.cmd.Process.Pid {
				t.Errorf("pid file holds %d while waiting, want the worker's %d", pid, w.cmd.Process.Pid)
			}
			if !notes.has(t, "STATUS=waiting for ") {
				t.Errorf("no STATUS=waiting for … notification; got %q", notes.all())
			}

			// The dependency appears: the worker connects and becomes ready.
			appeared := time.Now()
			startProxy(t, addr, network, upstream)
			waitHTTP(t, health+"/readyz", http.StatusOK, 90*time.Second)
			t.Logf("ready %s after %s appeared", time.Since(appeared).Round(time.Millisecond), check)
			waitHTTP(t, health+"/healthz", http.StatusOK, 10*time.Second)
			if !notes.has(t, "READY=1") {
				t.Errorf("no READY=1 notification; got %q", notes.all())
			}

			// One line per attempt, numbered 1, 2, …, no more than the back-off allows.
			lines := w.waitingLines(t, check)
			waited := time.Since(w.started)
			for i, l := range lines {
				if l.Attempt != i+1 || l.ConfigKey != dep.key || l.Error == "" {
					t.Errorf("waiting line %d: %+v; want attempt %d naming %s and its error", i, l, i+1, dep.key)
				}
			}
			if max := int(waited/(500*time.Millisecond)) + 1; len(lines) > max {
				t.Errorf("%d waiting lines in %s, more than one per attempt could give (%d)", len(lines), waited, max)
			}
			for other := range missingDependencies {
				if other != name && len(w.waitingLines(t, missingDependencies[other].check)) > 0 {
					t.Errorf("the worker waited for %s too", other)
				}
			}

			w.stop(t)
			if !notes.has(t, "STOPPING=1") {
				t.Errorf("no STOPPING=1 notification; got %q", notes.all())
			}
		})
	}
}

func TestWorkerGivesUpAfterTheWaitTimeout(t *testing.T) {
	ac := testservices.WriteAgentConfig(t, "", testservices.UniqueName(t, "h"), "")
	addr := fmt.Sprintf("127.0.0.1:%d", testservices.FreePort(t))
	missingDependencies["mysql"].point(t, ac, addr)
	began := time.Now()
	r := runWith(t, time.Minute, workerEnv(), "-c", ac.Path, "--log-stdout", "--wait-timeout", "4s")
	took := time.Since(began)
	want := "gave up waiting after 4s (--wait-timeout): open the state database (controller.databases.state.connection.url)"
	if r.code == 0 || !strings.Contains(r.stderr, want) || took > 30*time.Second {
		t.Errorf("exit %d after %s; want a failure within 30s saying %q:\n%s%s", r.code, took, want, r.stdout, r.stderr)
	}
	if n := strings.Count(r.stdout, `"msg":"waiting for dependency"`); n < 1 {
		t.Errorf("no waiting line before giving up:\n%s", r.stdout)
	}
}

func TestWorkerConfigErrorExitsAtOnce(t *testing.T) {
	ac := testservices.WriteAgentConfig(t, "", testservices.UniqueName(t, "h"), "")
	rewriteConfig(t, ac.Path, "reconciliation: {interval: 2s}", "reconciliation: {intervall: 2s}")
	began := time.Now()
	r := runWith(t, 30*time.Second, workerEnv(), "worker", "-c", ac.Path, "--log-stdout")
	if r.code == 0 || !strings.Contains(r.stderr, "controller.reconciliation.intervall: unknown key") || time.Since(began) > 10*time.Second {
		t.Errorf("exit %d after %s; want an immediate failure naming the key:\n%s%s", r.code, time.Since(began), r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "waiting for") {
		t.Errorf("a config error made the worker wait:\n%s", r.stdout)
	}
}

func runWith(t *testing.T, timeout time.Duration, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("premiscale %s did not finish within %s", strings.Join(args, " "), timeout)
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("premiscale %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// waitingWorker is `premiscale worker` run in the background with its JSON log in a file.
type waitingWorker struct {
	cmd     *exec.Cmd
	log     string
	started time.Time
	exited  chan error
	once    sync.Once
}

func startWaitingWorker(t *testing.T, configPath string, env ...string) *waitingWorker {
	t.Helper()
	w := &waitingWorker{log: filepath.Join(t.TempDir(), "worker.log"), exited: make(chan error, 1)}
	f, err := os.Create(w.log)
	if err != nil {
		t.Fatal(err)
	}
	w.cmd = exec.Command(binary, "worker", "-c", configPath, "--log-stdout")
	w.cmd.Env = workerEnv(env...)
	w.cmd.Stdout, w.cmd.Stderr = f, f
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	w.started = time.Now()
	go func() { w.exited <- w.cmd.Wait() }()
	t.Cleanup(func() {
		if w.cmd.ProcessState == nil {
			_ = w.cmd.Process.Kill()
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(w.log)
			t.Logf("worker log:\n%s", b)
		}
	})
	return w
}

// stop sends SIGTERM and checks the worker exits cleanly, without a stack trace.
func (w *waitingWorker) stop(t *testing.T) {
	t.Helper()
	w.once.Do(func() {
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-w.exited:
			if err != nil {
				t.Errorf("worker exited with %v after SIGTERM", err)
			}
		case <-time.After(time.Minute):
			t.Error("worker still running a minute after SIGTERM")
			_ = w.cmd.Process.Kill()
		}
		b, _ := os.ReadFile(w.log)
		if bytes.Contains(b, []byte("panic")) || bytes.Contains(b, []byte("goroutine ")) {
			t.Errorf("worker output has a panic:\n%s", b)
		}
	})
}

// waitingLine is one "waiting for dependency" log line.
type waitingLine struct {
	Msg        string `json:"msg"`
	Dependency string `json:"dependency"`
	ConfigKey  string `json:"config_key"`
	Error      string `json:"error"`
	Attempt    int    `json:"attempt"`
}

// waitingLines are the log's waiting lines for dependencies whose name starts with check.
func (w *waitingWorker) waitingLines(t *testing.T, check string) []waitingLine {
	t.Helper()
	f, err := os.Open(w.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []waitingLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l waitingLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "waiting for dependency" && strings.HasPrefix(l.Dependency, check) {
			lines = append(lines, l)
		}
	}
	return lines
}

type readiness struct {
	Ready  bool   `json:"ready"`
	Status string `json:"status"`
	Checks map[string]struct {
		OK        bool       `json:"ok"`
		Target    string     `json:"target"`
		ConfigKey string     `json:"configKey"`
		Error     string     `json:"error"`
		CheckedAt *time.Time `json:"checkedAt"`
	} `json:"checks"`
}

func readyz(t *testing.T, url string) (int, readiness) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var rd readiness
	if err := json.NewDecoder(resp.Body).Decode(&rd); err != nil {
		t.Fatalf("GET %s: decode: %v", url, err)
	}
	return resp.StatusCode, rd
}

// waitHTTP polls url until it answers with code.
func waitHTTP(t *testing.T, url string, code int, timeout time.Duration) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	var last string
	answered := waitUntil(timeout, func() bool {
		resp, err := hc.Get(url)
		if err != nil {
			last = err.Error()
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		last = fmt.Sprintf("%s %s", resp.Status, b)
		return resp.StatusCode == code
	})
	if !answered {
		t.Fatalf("%s did not answer %d within %s; last: %s", url, code, timeout, last)
	}
}

// startProxy forwards TCP connections on addr to upstream until the test ends.
func startProxy(t *testing.T, addr, network, upstream string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("proxy listen on %s: %v", addr, err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial(network, upstream)
			if err != nil {
				down.Close()
				continue
			}
			track(down)
			track(up)
			go func() { _, _ = io.Copy(up, down); up.Close() }()
			go func() { _, _ = io.Copy(down, up); down.Close() }()
		}
	}()
}

// notifySocket is a socket like systemd's NOTIFY_SOCKET that keeps what it receives.
type notifySocket struct {
	path  string
	mu    sync.Mutex
	notes []string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &notifySocket{path: filepath.Join(dir, "notify.sock")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.notes = append(n.notes, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

func (n *notifySocket) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.notes...)
}

// has reports whether a notification starting with prefix arrives within a few seconds.
func (n *notifySocket) has(t *testing.T, prefix string) bool {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range n.all() {
			if strings.HasPrefix(s, prefix) {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}
