package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/spec"
)

// pollInterval is how often --wait looks at the group again; deletePollInterval is delete's,
// shorter because instances on a fast host go within a second.
const (
	pollInterval       = time.Second
	deletePollInterval = 250 * time.Millisecond
)

// queryTimeout bounds one status query: a group whose worker is down does not answer.
const queryTimeout = 10 * time.Second

// tracker prints what changed in a group between two looks: instances appearing, changing
// state and going, new decisions, launch failures, and a one-line summary.
type tracker struct {
	w     io.Writer
	group string
	// deleting reports only instances going and the summary of a group being deleted: what
	// its decisions and the states of its instances say is known.
	deleting  bool
	states    map[string]spec.InstanceState
	decision  string
	launchErr string
	failures  int
	summary   string
}

func newTracker(w io.Writer, group string) *tracker {
	return &tracker{w: w, group: group, states: map[string]spec.InstanceState{}}
}

func (t *tracker) observe(s spec.GroupStatus) {
	if t.deleting {
		t.observeDeleting(s)
		return
	}
	// A group holding evaluates to the same decision again and again: show it once.
	if d := s.LastDecision; d != nil {
		if line := describeDecision(d); line != t.decision {
			t.decision = line
			fmt.Fprintf(t.w, "  decision: %s\n", line)
		}
	}
	if l := s.Launches; l.LastError != "" && (l.ConsecutiveFailures != t.failures || l.LastError != t.launchErr) {
		line := fmt.Sprintf("  launch failing (%d in a row): %s", l.ConsecutiveFailures, l.LastError)
		if l.BlockedUntil.After(time.Now()) {
			line += fmt.Sprintf("; next launch after %s", l.BlockedUntil.Local().Format(time.TimeOnly))
		}
		fmt.Fprintln(t.w, line)
	}
	t.failures, t.launchErr = s.Launches.ConsecutiveFailures, s.Launches.LastError

	seen := map[string]bool{}
	for _, in := range s.Instances {
		seen[in.Name] = true
		old, known := t.states[in.Name]
		if known && old == in.State {
			continue
		}
		line := fmt.Sprintf("  %s: %s", in.Name, in.State)
		if !known {
			line += " on host " + in.Host
		}
		if in.Reason != "" {
			line += " (" + in.Reason + ")"
		}
		fmt.Fprintln(t.w, line)
		t.states[in.Name] = in.State
	}
	t.forgetExcept(seen)
	t.summarize(s)
}

func (t *tracker) observeDeleting(s spec.GroupStatus) {
	seen := map[string]bool{}
	for _, in := range s.Instances {
		seen[in.Name] = true
	}
	t.forgetExcept(seen)
	// Until the group has the delete signal, its summary would still say "running".
	if s.Deleting {
		t.summarize(s)
	}
}

func (t *tracker) summarize(s spec.GroupStatus) {
	if sum := summarize(s); sum != t.summary {
		t.summary = sum
		fmt.Fprintln(t.w, sum)
	}
}

// forgetExcept prints "gone" for every instance seen before but not in seen.
func (t *tracker) forgetExcept(seen map[string]bool) {
	var gone []string
	for name := range t.states {
		if !seen[name] {
			gone = append(gone, name)
		}
	}
	slices.Sort(gone)
	for _, name := range gone {
		fmt.Fprintf(t.w, "  %s: gone\n", name)
		delete(t.states, name)
	}
}

// summarize is a group's size in one line: "group web: 1/2 running (min 2, max 4; 1 booting)".
func summarize(s spec.GroupStatus) string {
	counts := map[spec.InstanceState]int{}
	for _, in := range s.Instances {
		counts[in.State]++
	}
	var others []string
	for _, st := range []spec.InstanceState{spec.StateLaunching, spec.StateBooting, spec.StateResuming, spec.StateRetiring, spec.StateWarming, spec.StateWarm} {
		if n := counts[st]; n > 0 {
			others = append(others, fmt.Sprintf("%d %s", n, st))
		}
	}
	rest := ""
	if len(others) > 0 {
		rest = "; " + strings.Join(others, ", ")
	}
	if s.Deleting {
		return fmt.Sprintf("group %s: deleting, %s left%s", s.Group, plural(len(s.Instances), "instance"), rest)
	}
	return fmt.Sprintf("group %s: %d/%d running (min %d, max %d%s)", s.Group, counts[spec.StateRunning], s.Desired, s.Min, s.Max, rest)
}

func describeDecision(d *spec.DecisionRecord) string {
	return fmt.Sprintf("%s %d → %d (%s): %s", d.Action, d.From, d.To, d.Outcome, d.Reason)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// ready says whether the group has its minimum of running instances and none on the way up.
func ready(s spec.GroupStatus) bool {
	running := 0
	for _, in := range s.Instances {
		switch in.State {
		case spec.StateRunning:
			running++
		case spec.StateLaunching, spec.StateBooting, spec.StateResuming:
			return false
		}
	}
	return running >= s.Min
}

func status(ctx context.Context, ctl *groupctl.Client, group string) (groupctl.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	return ctl.Status(ctx, group)
}

// waitUntilReady polls the group, printing its progress to w, until it is ready, or returns
// an error saying why it is not once timeout has passed.
func waitUntilReady(ctx context.Context, ctl *groupctl.Client, group string, timeout time.Duration, w io.Writer) (groupctl.Status, error) {
	deadline := time.Now().Add(timeout)
	tr := newTracker(w, group)
	var (
		last    *groupctl.Status
		lastErr error
	)
	for {
		s, err := status(ctx, ctl, group)
		switch {
		case err == nil:
			tr.observe(s.GroupStatus)
			if ready(s.GroupStatus) {
				return s, nil
			}
			last, lastErr = &s, nil
		case errors.Is(err, groupctl.ErrNotRunning):
			return groupctl.Status{}, fmt.Errorf("group %s ended while waiting for it: %w", group, err)
		case ctx.Err() != nil:
			return groupctl.Status{}, ctx.Err()
		default:
			lastErr = err
		}
		if time.Now().After(deadline) {
			return groupctl.Status{}, notReadyError(group, timeout, ctl.TaskQueue, last, lastErr)
		}
		select {
		case <-ctx.Done():
			return groupctl.Status{}, ctx.Err()
		case <-time.After(min(pollInterval, time.Until(deadline)+time.Millisecond)):
		}
	}
}

// notReadyError says why a group is not ready: its size, its last launch error and decision.
func notReadyError(group string, timeout time.Duration, taskQueue string, last *groupctl.Status, lastErr error) error {
	if last == nil {
		return fmt.Errorf("group %s did not answer within %s: %v (is a premiscale worker running on task queue %s?)", group, timeout, lastErr, taskQueue)
	}
	s := last.GroupStatus
	var why []string
	why = append(why, strings.TrimPrefix(summarize(s), "group "+group+": "))
	if l := s.Launches; l.LastError != "" {
		why = append(why, fmt.Sprintf("last launch error (%d in a row): %s", l.ConsecutiveFailures, l.LastError))
	}
	if d := s.LastDecision; d != nil {
		why = append(why, "last decision: "+describeDecision(d))
	}
	if lastErr != nil {
		why = append(why, fmt.Sprintf("last status query failed: %v", lastErr))
	}
	return fmt.Errorf("group %s did not reach its minimum of %d running instances within %s: %s", group, s.Min, timeout, strings.Join(why, "; "))
}

// deleteWithProgress deletes the group, printing the instances it retires and each one gone
// to w, until the group's workflow has ended.
func deleteWithProgress(ctx context.Context, ctl *groupctl.Client, group string, w io.Writer) error {
	tr := newTracker(w, group)
	tr.deleting = true
	// What is there now is what the delete retires. A group that does not answer (its worker
	// is down) is still sent the delete; it acts once a worker runs.
	s, err := status(ctx, ctl, group)
	switch {
	case errors.Is(err, groupctl.ErrNotRunning):
		return err
	case err == nil:
		names := make([]string, len(s.Instances))
		for i, in := range s.Instances {
			names[i] = in.Name
			tr.states[in.Name] = spec.StateRetiring
		}
		list := ""
		if len(names) > 0 {
			list = " (" + strings.Join(names, ", ") + ")"
		}
		fmt.Fprintf(w, "group %s: retiring %s%s\n", group, plural(len(names), "instance"), list)
	}
	done := make(chan error, 1)
	go func() { done <- ctl.Delete(ctx, group) }()
	for {
		select {
		case err := <-done:
			if err == nil {
				tr.forgetExcept(nil)
			}
			return err
		case <-time.After(deletePollInterval):
		}
		// Once the workflow has ended the query fails; the next loop sees Delete return.
		if s, err := status(ctx, ctl, group); err == nil {
			tr.observe(s.GroupStatus)
		}
	}
}

// watchStatus prints show's output every interval until ctx ends (Ctrl-C), which is a clean
// exit. On a terminal the table is redrawn in place; elsewhere each refresh follows the last
// (YAML documents separated by ---, JSON documents one after another).
func watchStatus(ctx context.Context, cmd *cobra.Command, gf *groupFlags, group string, interval time.Duration, show func(io.Writer) error) error {
	out := cmd.OutOrStdout()
	redraw := gf.output == outputTable && isTerminal(out)
	for i := 0; ; i++ {
		var buf bytes.Buffer
		err := show(&buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		header := fmt.Sprintf("Every %s: premiscale group status %s    %s\n\n", interval, group, time.Now().Format(time.DateTime))
		switch {
		case redraw:
			fmt.Fprint(out, "\033[H\033[2J"+header)
		case gf.output == outputTable:
			if i > 0 {
				fmt.Fprintln(out)
			}
			fmt.Fprint(out, header)
		case gf.output == outputYAML && i > 0:
			fmt.Fprintln(out, "---")
		}
		if _, err := out.Write(buf.Bytes()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}
