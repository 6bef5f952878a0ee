package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/audit"
	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/testservices"
)

// outageLength is how long each dependency stays down: the 30 s.
const outageLength = 30 * time.Second

// TestGroupCarriesOnThroughOutages runs a group on a private stack (its own Temporal dev
// server, MariaDB, InfluxDB and session libvirtd; the shared services are never touched) and
// takes each dependency away for outageLength twice: while the group scales out, and while it
// holds steady on load at its target. After each outage the group must carry on by itself:
// the scale-out completes, the steady group neither grows nor shrinks (missing metrics are no
// reason to scale in), the status, MySQL and libvirt agree instance by instance, the decision
// log holds no decision twice, and the worker logged the outage once and its end once.
//
// MariaDB, InfluxDB and Temporal are stopped (SIGTERM) and started again on the same port and
// data. libvirtd is frozen (SIGSTOP) and thawed instead: its test driver keeps its domains in
// the daemon's memory, so a restart would be a host that lost its VMs, not an outage.
func TestGroupCarriesOnThroughOutages(t *testing.T) {
	st := testservices.StartStack(t, 1)
	group, host := testservices.UniqueName(t, "out"), testservices.UniqueName(t, "h")
	ac := testservices.WriteAgentConfigFor(t, st.AgentOptions(t, testservices.AgentOptions{
		Group: group, Host: host,
		GroupBody: testservices.TestDriverGroup(group, host,
			"{minNodes: 1, maxNodes: 3, increment: 2, cooldown: 0, scaleIn: {stabilizationWindow: 0}, resourceTarget: {cpu: 50}}"),
	}))
	f := newFixtureFrom(t, ac)
	logs := &logCapture{}
	w := f.runWorker(Options{StartGroups: true, Logger: slog.New(logs)})
	defer w.stop(t)
	ctl := w.Groups()
	f.waitFor(ctl, "the minimum of 1 running instance", time.Minute, running(1))
	load := f.writeLoad(ctl, 50)
	load.tolerateErrors()
	defer load.close()
	interval := f.cfg.Controller.Reconciliation.Interval.Duration

	faults := []struct {
		name        string // as the worker names the dependency
		stop, start func()
	}{
		{"mysql", st.MariaDB.Stop, st.MariaDB.Start},
		{"influxdb", st.InfluxDB.Stop, st.InfluxDB.Start},
		{"libvirt/" + host, st.Hosts[0].Pause, st.Hosts[0].Resume},
		{"temporal", st.Temporal.Stop, st.Temporal.Start},
	}
	for _, fault := range faults {
		ok := t.Run(fault.name, func(t *testing.T) {
			outage := func(what string) (from time.Time) {
				from = time.Now()
				fault.stop()
				t.Logf("%s down %s", fault.name, what)
				time.Sleep(outageLength)
				fault.start()
				t.Logf("%s back after %s", fault.name, time.Since(from).Round(time.Second))
				logs.waitFor(t, fault.name, "back after", from, 2*time.Minute)
				return from
			}

			// Scale-out: 1 → 3 under load, the dependency gone as the launches begin.
			load.set(95)
			f.waitFor(ctl, "a scale-out under way", time.Minute, func(s groupctl.Status) bool { return len(s.Instances) > 1 })
			from := outage("during a scale-out")
			f.waitFor(ctl, "the scale-out to 3 completed after the outage", 3*time.Minute, running(3))
			f.audit(t, ctl)
			logs.expectOneOutage(t, fault.name, from)

			// Steady state: the load at the target, so nothing should change through the outage.
			load.set(50)
			time.Sleep(3 * interval)
			eventsBefore := len(f.events())
			from = outage("at steady state")
			time.Sleep(3 * interval) // evaluations after the outage
			if s := f.waitFor(ctl, "3 running instances after the outage", 2*time.Minute, running(3)); len(s.Instances) != 3 {
				t.Errorf("%d instances after a steady-state outage, want 3", len(s.Instances))
			}
			for _, e := range f.events()[eventsBefore:] {
				if e.To != e.From {
					t.Errorf("decision through a steady-state outage of %s: %d → %d (%s, %s)", fault.name, e.From, e.To, e.Outcome, e.Reason)
				}
			}
			f.audit(t, ctl)
			logs.expectOneOutage(t, fault.name, from)

			// Back to the minimum for the next dependency.
			load.set(5)
			f.waitFor(ctl, "shrinking back to 1", 2*time.Minute, running(1))
			f.audit(t, ctl)
		})
		if !ok {
			break // the next outage would start from an unknown state
		}
	}
	load.close()
	f.deleteGroup(ctl)
}

// audit compares the group's status, MySQL and libvirt, waiting up to a minute for them to
// agree (a retirement finishes, say), and fails the test with what still differs.
func (f *fixture) audit(t *testing.T, ctl *groupctl.Client) {
	t.Helper()
	src := audit.Sources{Status: audit.StatusOf(ctl), Store: f.store, Hosts: []*libvirt.Conn{f.conn}, Pool: testPool}
	var anomalies []audit.Anomaly
	var last audit.Report
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r, err := audit.Collect(ctx, src, f.group)
		cancel()
		if err == nil && r.Settled() {
			last = r
			if anomalies = audit.Compare(r); len(anomalies) == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("audit of group %s: %v", f.group, err)
			}
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Errorf("group %s: status %s, MySQL %s, libvirt %s disagree:\n%v", f.group,
		audit.Names(last.Workflow), audit.Names(last.Records), audit.Names(last.Domains), anomalies)
}

// logCapture is a slog.Handler that keeps every line at info level and above (and shows them
// with PREMISCALE_TEST_LOG set).
type logCapture struct {
	mu    sync.Mutex
	lines []capturedLine
	attrs []slog.Attr
	root  *logCapture // the handler With… derived from, which holds the lines
}

type capturedLine struct {
	at    time.Time
	level slog.Level
	msg   string
	attrs map[string]string
}

func (l *logCapture) Enabled(_ context.Context, level slog.Level) bool {
	return level >= slog.LevelInfo || os.Getenv("PREMISCALE_TEST_LOG") != ""
}

func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	line := capturedLine{at: r.Time, level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range l.attrs {
		line.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { line.attrs[a.Key] = a.Value.String(); return true })
	if os.Getenv("PREMISCALE_TEST_LOG") != "" {
		fmt.Fprintf(os.Stderr, "%s %s %s %v\n", line.at.Format("15:04:05.000"), line.level, line.msg, line.attrs)
	}
	if r.Level < slog.LevelInfo {
		return nil
	}
	root := l.rootHandler()
	root.mu.Lock()
	root.lines = append(root.lines, line)
	root.mu.Unlock()
	return nil
}

func (l *logCapture) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logCapture{attrs: append(append([]slog.Attr{}, l.attrs...), attrs...), root: l.rootHandler()}
}

// WithGroup is not used by the worker; groups are flattened.
func (l *logCapture) WithGroup(string) slog.Handler { return l }

func (l *logCapture) rootHandler() *logCapture {
	if l.root != nil {
		return l.root
	}
	return l
}

func (l *logCapture) since(from time.Time) []capturedLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []capturedLine
	for _, line := range l.lines {
		if !line.at.Before(from) {
			out = append(out, line)
		}
	}
	return out
}

// waitFor waits for a line about dependency that contains text, logged after from.
func (l *logCapture) waitFor(t *testing.T, dependency, text string, from time.Time, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, line := range l.since(from) {
			if line.attrs["dependency"] == dependency && strings.Contains(line.msg, text) {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no log line about %s saying %q within %s", dependency, text, timeout)
}

// expectOneOutage checks the worker's lines since from: one warning that dependency is
// unreachable, one line that it is back, and no other warning or error.
func (l *logCapture) expectOneOutage(t *testing.T, dependency string, from time.Time) {
	t.Helper()
	var down, back int
	var others []string
	for _, line := range l.since(from) {
		switch {
		case line.attrs["dependency"] == dependency && strings.Contains(line.msg, " unreachable since ") && line.level == slog.LevelWarn:
			down++
		case line.attrs["dependency"] == dependency && strings.Contains(line.msg, " back after ") && line.level == slog.LevelInfo:
			back++
		case dependency == "temporal" && strings.HasPrefix(line.msg, "[TMPRL1104]"):
			// The SDK's note that a workflow task took over 5 s: a task polled just before
			// the server stopped waited for the rest of its history. These tests turn the
			// sticky cache off (TestMain), so every task reads its whole history from the
			// server; with the cache on, as in production, few do.
		case line.level >= slog.LevelWarn:
			others = append(others, fmt.Sprintf("%s %s %v", line.level, line.msg, line.attrs))
		}
	}
	if down != 1 || back != 1 {
		var lines []string
		for _, line := range l.since(from) {
			if line.attrs["dependency"] != "" || line.level >= slog.LevelWarn {
				lines = append(lines, fmt.Sprintf("%s %s %s %v", line.at.Format("15:04:05.000"), line.level, line.msg, line.attrs))
			}
		}
		t.Errorf("the worker logged %d outage lines and %d recovery lines for %s, want one each; since %s:\n%s",
			down, back, dependency, from.Format("15:04:05.000"), strings.Join(lines, "\n"))
	}
	if len(others) > 0 {
		t.Errorf("the worker logged %d more warnings or errors during the outage of %s:\n%s", len(others), dependency, strings.Join(others, "\n"))
	}
}
