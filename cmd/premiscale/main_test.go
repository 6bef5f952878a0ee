package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/testservices"
)

// binary is the premiscale command built once for these tests: they run it as users do.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "premiscale-cli")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "premiscale")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build premiscale: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

func run(t *testing.T, timeout time.Duration, args ...string) result {
	t.Helper()
	return runEnv(t, timeout, nil, args...)
}

// runEnv runs the binary with env added to this process's environment.
func runEnv(t *testing.T, timeout time.Duration, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("premiscale %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("premiscale %s did not finish within %s", strings.Join(args, " "), timeout)
	}
	return r
}

func TestValidateExamples(t *testing.T) {
	t.Setenv("PREMISCALE_MYSQL_USER", "premiscale")
	t.Setenv("PREMISCALE_MYSQL_PASSWORD", "secret")
	t.Setenv("PREMISCALE_INFLUX_USER", "premiscale")
	t.Setenv("PREMISCALE_INFLUX_PASSWORD", "secret")
	for _, name := range []string{"local.yaml", "production.yaml"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("..", "..", "deploy", "examples", name)
			r := run(t, 20*time.Second, "--validate", "-c", path)
			if r.code != 0 || !strings.Contains(r.stdout, "is valid") {
				t.Fatalf("--validate %s: exit %d\nstdout: %s\nstderr: %s", name, r.code, r.stdout, r.stderr)
			}
			if strings.Contains(r.stdout, "secret") {
				t.Errorf("the summary shows a password:\n%s", r.stdout)
			}
		})
	}
}

// TestValidateRejectsBrokenConfigs runs --validate on every broken config in the config
// package's testdata; each file names the messages it must produce in "# want: " lines.
func TestValidateRejectsBrokenConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "internal", "config", "testdata", "invalid", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no broken configs found (%v)", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			r := run(t, 20*time.Second, "--validate", "-c", path)
			if r.code == 0 {
				t.Fatalf("--validate accepted %s:\n%s", path, r.stdout)
			}
			for _, line := range strings.Split(string(data), "\n") {
				if want, ok := strings.CutPrefix(line, "# want: "); ok && !strings.Contains(r.stderr, want) {
					t.Errorf("error output lacks %q:\n%s", want, r.stderr)
				}
			}
			// Every problem of an invalid (not unparsable) file is "<file>:<line>: <key>: <message>".
			if _, problems, ok := strings.Cut(r.stderr, path+" is not valid ("); ok {
				_, problems, _ = strings.Cut(problems, "\n")
				for _, p := range strings.Split(strings.TrimSuffix(problems, "\n"), "\n") {
					rest, ok := strings.CutPrefix(p, path+":")
					if n, _, _ := strings.Cut(rest, ":"); !ok || n == "" || strings.Trim(n, "0123456789") != "" {
						t.Errorf("problem line %q does not start with %s:<line>:", p, path)
					}
				}
			}
		})
	}
}

// TestValidateVariables runs --validate and a command that loads the config on a file whose
// Temporal address (a key with a default) uses a variable: unset, it is a problem naming the
// file, line, key and variable; ${VAR:-default} stands in for it.
func TestValidateVariables(t *testing.T) {
	const name = "PREMISCALE_TEST_TEMPORAL_HOST"
	t.Setenv(name, "") // restores the variable after the test...
	os.Unsetenv(name)  // ...which runs with it unset.
	write := func(address string) string {
		path := filepath.Join(t.TempDir(), "vars.yaml")
		doc := `version: v1alpha1
controller:
  temporal:
    address: "` + address + `"
  databases:
    state:
      type: mysql
      connection:
        url: 127.0.0.1:3306
        credentials: {username: premiscale, password: premiscale}
    timeseries:
      type: influxdb
      connection: {url: "http://127.0.0.1:8086"}
`
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	bad := write("${" + name + "}:7233")
	wantHeader := bad + " is not valid (1 problems):\n"
	wantLine := bad + ":4: controller.temporal.address: variable $" + name + " is not set"
	r := run(t, 20*time.Second, "--validate", "-c", bad)
	if r.code == 0 || !strings.Contains(r.stderr, wantHeader+wantLine+"\n") {
		t.Errorf("--validate with %s unset: exit %d; want a failure saying\n%s%s\ngot:\n%s%s", name, r.code, wantHeader, wantLine, r.stdout, r.stderr)
	}
	// Every command that loads the config reports it the same way, before connecting anywhere.
	r = run(t, 20*time.Second, "group", "list", "-c", bad)
	if r.code == 0 || !strings.Contains(r.stderr, wantHeader+wantLine+"\n") {
		t.Errorf("group list with %s unset: exit %d; want a failure saying\n%s%s\ngot:\n%s%s", name, r.code, wantHeader, wantLine, r.stdout, r.stderr)
	}

	good := write("${" + name + ":-temporal.example.com}:7233")
	r = run(t, 20*time.Second, "--validate", "-c", good)
	if r.code != 0 || !strings.Contains(r.stdout, "temporal.example.com:7233") {
		t.Errorf("--validate with ${%s:-temporal.example.com}: exit %d\nstdout: %s\nstderr: %s", name, r.code, r.stdout, r.stderr)
	}
}

func TestMissingConfigNamesThePath(t *testing.T) {
	r := run(t, 20*time.Second, "--validate", "-c", "/nonexistent/premiscale.yaml")
	if r.code == 0 || !strings.Contains(r.stderr, "/nonexistent/premiscale.yaml") {
		t.Fatalf("exit %d, stderr %q; want a failure naming the file", r.code, r.stderr)
	}
}

func TestVersionAndHelp(t *testing.T) {
	if r := run(t, 10*time.Second, "--version"); r.code != 0 || !strings.HasPrefix(r.stdout, "premiscale ") {
		t.Errorf("--version: exit %d, %q", r.code, r.stdout)
	}
	r := run(t, 10*time.Second, "--help")
	for _, flag := range []string{"-d, --daemon", "-c, --config string", "--validate", "--version", "--log-stdout", "--pid-file string", "--debug", "/opt/premiscale/config.yaml"} {
		if !strings.Contains(r.stdout, flag) {
			t.Errorf("--help lacks %q:\n%s", flag, r.stdout)
		}
	}
}

// keepTestDriver holds a connection to libvirt's test driver, whose state lives only while a
// connection is open, and gives the group its base image.
func keepTestDriver(t *testing.T, group string) {
	t.Helper()
	ctx := context.Background()
	conn, err := libvirt.Dial(ctx, "test:///default", libvirt.Options{CallTimeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("connect to libvirt test driver: %v (run testenv/up)", err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.EnsureVolume(ctx, testservices.TestPool, group+"-base.qcow2", 1<<30, "qcow2"); err != nil {
		t.Fatalf("create base image: %v", err)
	}
}

func TestGroupCommandsAgainstARunningWorker(t *testing.T) {
	group := testservices.UniqueName(t, "cli")
	ac := testservices.WriteAgentConfig(t, group, testservices.UniqueName(t, "h"), "{minNodes: 1, maxNodes: 2, resourceTarget: {cpu: 50}}")
	keepTestDriver(t, group)
	other := group + "x"
	keepTestDriver(t, other)

	stopWorker := startWorker(t, ac.Path)
	defer stopWorker()

	// The worker starts the config's group; wait for its first instance.
	status := waitStatus(t, ac.Path, group, func(s statusJSON) bool {
		return len(s.Instances) == 1 && s.Instances[0].State == "running"
	})
	if status.Instances[0].Name != group+"-1" || status.Min != 1 || status.Max != 2 {
		t.Errorf("status %+v, want one instance %s-1 and bounds 1..2", status, group)
	}
	if r := run(t, 30*time.Second, "group", "status", group, "-c", ac.Path); r.code != 0 || !strings.Contains(r.stdout, group+"-1") || !strings.Contains(r.stdout, "running") {
		t.Errorf("group status table: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Creating it again is not an error: the running group gets the spec.
	if r := run(t, 30*time.Second, "group", "create", group, "-c", ac.Path); r.code != 0 || !strings.Contains(r.stdout, "already running") {
		t.Errorf("second create: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A group from a file starts fresh.
	groupFile := writeGroupFile(t, other, ac.Host, "{minNodes: 2, maxNodes: 2, resourceTarget: {cpu: 50}}")
	if r := run(t, 30*time.Second, "group", "create", other, "-f", groupFile, "-c", ac.Path); r.code != 0 || !strings.Contains(r.stdout, "started") {
		t.Errorf("create from file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	waitStatus(t, ac.Path, other, func(s statusJSON) bool { return s.Current == 2 })
	if r := run(t, 30*time.Second, "group", "create", "nosuchgroup", "-c", ac.Path); r.code == 0 || !strings.Contains(r.stderr, `group "nosuchgroup" is not defined`) {
		t.Errorf("create of an unknown group: exit %d\n%s", r.code, r.stderr)
	}

	r := run(t, 30*time.Second, "group", "list", "-o", "json", "-c", ac.Path)
	var list []statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 0 {
		t.Fatalf("group list -o json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if len(list) != 2 || list[0].Group != group || list[1].Group != other {
		t.Errorf("group list shows %+v, want %s and %s", list, group, other)
	}

	for _, g := range []string{group, other} {
		if r := run(t, 3*time.Minute, "group", "delete", g, "-c", ac.Path); r.code != 0 || !strings.Contains(r.stdout, "deleted") {
			t.Errorf("group delete %s: exit %d\n%s%s", g, r.code, r.stdout, r.stderr)
		}
	}
	if r := run(t, 30*time.Second, "group", "status", group, "-c", ac.Path); r.code == 0 || !strings.Contains(r.stderr, "not running") {
		t.Errorf("status after delete: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// SIGTERM stops the worker cleanly.
	stopWorker()
}

type statusJSON struct {
	Group        string `json:"group"`
	Min          int    `json:"min"`
	Max          int    `json:"max"`
	Current      int    `json:"current"`
	Paused       bool   `json:"paused"`
	LastDecision struct {
		Outcome string `json:"outcome"`
		Reason  string `json:"reason"`
	} `json:"lastDecision"`
	Instances []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"instances"`
}

func waitStatus(t *testing.T, configPath, group string, ok func(statusJSON) bool) statusJSON {
	t.Helper()
	return waitStatusFor(t, configPath, group, 90*time.Second, ok)
}

func waitStatusFor(t *testing.T, configPath, group string, timeout time.Duration, ok func(statusJSON) bool) statusJSON {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last result
	for time.Now().Before(deadline) {
		last = run(t, 30*time.Second, "group", "status", group, "-o", "json", "-c", configPath)
		var s statusJSON
		if last.code == 0 && json.Unmarshal([]byte(last.stdout), &s) == nil && ok(s) {
			return s
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("group %s never reached the expected status; last: exit %d\n%s%s", group, last.code, last.stdout, last.stderr)
	return statusJSON{}
}

func TestDaemonAndPidFile(t *testing.T) {
	ac := testservices.WriteAgentConfig(t, "", testservices.UniqueName(t, "h"), "")
	pidFile := filepath.Join(t.TempDir(), "agent.pid")

	r := run(t, 60*time.Second, "-d", "-c", ac.Path, "--pid-file", pidFile)
	if r.code != 0 || !strings.Contains(r.stdout, "started in the background") {
		t.Fatalf("premiscale -d: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	pid := readPid(t, pidFile)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if !alive(pid) {
		t.Fatalf("daemon pid %d from %s is not running", pid, pidFile)
	}

	// A second worker on the same pid file refuses to start and names the running one.
	r = run(t, 60*time.Second, "-d", "-c", ac.Path, "--pid-file", pidFile)
	if want := fmt.Sprintf("another premiscale worker (pid %d) is running with pid file %s", pid, pidFile); r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("second worker: exit %d, stderr %q; want a refusal saying %q", r.code, r.stderr, want)
	}

	stopDaemon(t, pid, pidFile)

	// A pid file left by a crashed worker is stale and is taken over.
	if err := os.WriteFile(pidFile, []byte("999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = run(t, 60*time.Second, "-d", "-c", ac.Path, "--pid-file", pidFile)
	if r.code != 0 {
		t.Fatalf("start over a stale pid file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	newPid := readPid(t, pidFile)
	t.Cleanup(func() { syscall.Kill(newPid, syscall.SIGKILL) })
	if newPid == 999999 {
		t.Fatal("stale pid file was not replaced")
	}
	// The pid file is written once the health endpoint listens; the workers start once the
	// dependencies answer.
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/readyz", ac.Config.Controller.Healthcheck.Port), http.StatusOK, time.Minute)
	logData, err := os.ReadFile(filepath.Join(filepath.Dir(pidFile), "premiscale.log"))
	if err != nil || !strings.Contains(string(logData), `"msg":"workers started"`) {
		t.Errorf("daemon log beside the pid file lacks the start message (%v):\n%s", err, logData)
	}
	stopDaemon(t, newPid, pidFile)
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %s holds %q", path, b)
	}
	return pid
}

func stopDaemon(t *testing.T, pid int, pidFile string) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("signal daemon %d: %v", pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon %d still running 30s after SIGTERM", pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file %s still there after the daemon stopped (%v)", pidFile, err)
	}
}

// alive reports whether pid runs; a zombie (exited, not yet reaped by whoever adopted the
// daemon) counts as stopped.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// writeGroupFile writes a group file (for group create/update -f) with one test-driver group.
func writeGroupFile(t *testing.T, group, host, scaling string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "group.yaml")
	doc := fmt.Sprintf("version: v1alpha1\ngroups:\n  %s:\n    image: %s/%s-base.qcow2\n    domain: {vcpus: 1, memory: 128}\n    hosts: [%s]\n    networking: {type: ignore}\n    health: {checkin: false}\n    scaling: %s\n",
		group, testservices.TestPool, group, host, scaling)
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
