package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/premiscale/premiscale/internal/testservices"
)

// TestEveryCommandHasExamples walks the command tree: every command a user can run shows
// examples in its help.
func TestEveryCommandHasExamples(t *testing.T) {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no examples in its help", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCommand())
}

func TestMissingArguments(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"group", "status"}, "missing NAME: the group to show (see premiscale group status --help)"},
		{[]string{"group", "create"}, "missing NAME: the group to start"},
		{[]string{"group", "delete"}, "missing NAME: the group to delete"},
		{[]string{"group", "scale", "--desired", "2"}, "missing NAME: the group to resize"},
		{[]string{"group", "pause"}, "missing NAME: the group to pause"},
		{[]string{"group", "events"}, "missing NAME: the group whose decisions to print"},
		{[]string{"group", "roll"}, "missing NAME: the group to roll"},
		{[]string{"host", "status"}, "missing NAME: the host to show"},
		{[]string{"group", "protect", "web"}, "missing INSTANCE: the instance, as group status lists it"},
		{[]string{"group", "status", "web", "extra"}, `too many arguments: premiscale group status takes NAME, got ["web" "extra"]`},
		{[]string{"group", "list", "-o", "xml"}, `--output "xml": must be table, json or yaml`},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			r := run(t, 10*time.Second, c.args...)
			if r.code == 0 || !strings.Contains(r.stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want a failure saying %q", r.code, r.stderr, c.want)
			}
		})
	}
}

// TestGroupProgressAgainstARunningWorker runs a real worker (libvirt's test driver, the dev
// server, MariaDB) and checks what the CLI shows while groups come and go: create --wait
// (ready, and a timeout with its reason), -o yaml, completion, status --watch and delete's
// progress.
func TestGroupProgressAgainstARunningWorker(t *testing.T) {
	group := testservices.UniqueName(t, "prog")
	ac := testservices.WriteAgentConfig(t, group, testservices.UniqueName(t, "h"), "{minNodes: 1, maxNodes: 2, resourceTarget: {cpu: 50}}")
	keepTestDriver(t, group)
	stop := startWorker(t, ac.Path)
	defer stop()

	// A group from a file, started by the CLI, waited for.
	web := group + "w"
	keepTestDriver(t, web)
	webFile := writeGroupFile(t, web, ac.Host, "{minNodes: 2, maxNodes: 3, resourceTarget: {cpu: 50}}")
	r := run(t, 3*time.Minute, "group", "create", web, "-f", webFile, "--wait", "--timeout", "2m", "-c", ac.Path)
	if r.code != 0 {
		t.Fatalf("create --wait: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The test driver's instances may be running before the first look, and the group may
	// have decided twice between two looks: launching and a scale-out line are not a must.
	for _, want := range []string{
		`group ` + web + ` started`,
		`  ` + web + `-1: (launching|running) on host ` + ac.Host,
		`  ` + web + `-2: (launching|running) on host ` + ac.Host,
		`  decision: (scale-out|hold) \d → \d \((acted|held)\): `,
		`group ` + web + `: 2/2 running \(min 2, max 3\)`,
		`group ` + web + ` is ready: 2 running \(min 2, max 3\)`,
	} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("create --wait output lacks %s:\n%s", want, r.stdout)
		}
	}
	t.Logf("create --wait:\n%s", r.stdout)

	// Waiting for a running group that is ready returns at once; with -o json, progress goes
	// to stderr and stdout is one document.
	r = run(t, time.Minute, "group", "create", web, "-f", webFile, "--wait", "-o", "json", "-c", ac.Path)
	var created struct {
		Group   string
		Started bool
		Ready   bool
		Status  statusJSON
	}
	if err := json.Unmarshal([]byte(r.stdout), &created); err != nil || r.code != 0 {
		t.Fatalf("create --wait -o json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if created.Group != web || created.Started || !created.Ready || len(created.Status.Instances) != 2 || !strings.Contains(r.stderr, "already running") {
		t.Errorf("create --wait -o json: %+v, stderr %q", created, r.stderr)
	}

	// -o yaml parses, with the same keys as JSON.
	r = run(t, 30*time.Second, "group", "status", web, "-o", "yaml", "-c", ac.Path)
	var st statusJSON
	if err := yaml.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 0 {
		t.Fatalf("status -o yaml: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	var doc map[string]any
	_ = yaml.Unmarshal([]byte(r.stdout), &doc)
	if st.Group != web || st.Min != 2 || len(st.Instances) != 2 || st.Instances[0].State != "running" || doc["lastDecision"] == nil {
		t.Errorf("status -o yaml decoded to %+v:\n%s", st, r.stdout)
	}
	r = run(t, 30*time.Second, "group", "list", "-o", "yaml", "-c", ac.Path)
	var list []statusJSON
	if err := yaml.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 0 || len(list) != 2 {
		t.Errorf("list -o yaml: exit %d, %v, %d groups\n%s%s", r.code, err, len(list), r.stdout, r.stderr)
	}

	// Completion: running groups, a group's instances, and the config's groups for create.
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"group", "status", ""}, []string{group, web}},
		{[]string{"group", "delete", group[:3]}, []string{group, web}},
		{[]string{"group", "protect", web, ""}, []string{web + "-1", web + "-2"}},
		{[]string{"group", "create", ""}, []string{group}},
	} {
		args := append([]string{"__complete", "-c", ac.Path}, c.args...)
		r := run(t, 30*time.Second, args...)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		for _, want := range c.want {
			if !contains(lines, want) {
				t.Errorf("premiscale %s: completions %q lack %q (stderr %q)", strings.Join(args, " "), lines, want, r.stderr)
			}
		}
		if last := lines[len(lines)-1]; last != ":4" {
			t.Errorf("premiscale %s: directive %q, want :4 (no file completion)", strings.Join(args, " "), last)
		}
	}

	// status --watch redraws until interrupted, then exits cleanly.
	watch := exec.Command(binary, "group", "status", web, "--watch", "--interval", "500ms", "-c", ac.Path)
	var watchOut, watchErr bytes.Buffer
	watch.Stdout, watch.Stderr = &watchOut, &watchErr
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second)
	_ = watch.Process.Signal(syscall.SIGINT)
	werr := watch.Wait()
	if n := strings.Count(watchOut.String(), "Every 500ms: premiscale group status "+web); werr != nil || n < 2 {
		t.Errorf("status --watch: %v after SIGINT, %d refreshes; want a clean exit after at least 2\n%s%s", werr, n, watchOut.String(), watchErr.String())
	}

	// delete prints the instances retiring and gone.
	r = run(t, 3*time.Minute, "group", "delete", web, "-c", ac.Path)
	if r.code != 0 {
		t.Fatalf("delete: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"group " + web + ": retiring 2 instances (" + web + "-1, " + web + "-2)",
		"  " + web + "-1: gone",
		"  " + web + "-2: gone",
		"group " + web + " deleted",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("delete output lacks %q:\n%s", want, r.stdout)
		}
	}
	t.Logf("delete:\n%s", r.stdout)

	// A group whose base image does not exist never gets an instance running: --wait gives up
	// at its timeout, says why and exits non-zero. (A launch fails after its activity's
	// retries, about 15 s here: the timeout leaves room for one.)
	broken := group + "b"
	brokenFile := writeGroupFile(t, broken, ac.Host, "{minNodes: 1, maxNodes: 1, resourceTarget: {cpu: 50}}")
	r = run(t, 2*time.Minute, "group", "create", broken, "-f", brokenFile, "--wait", "--timeout", "45s", "-c", ac.Path)
	wantErr := regexp.MustCompile(`premiscale: group ` + broken + ` did not reach its minimum of 1 running instances within 45s: 0/1 running \(min 1, max 1.*\); last launch error \(\d+ in a row\): .*` + broken + `-base\.qcow2`)
	if r.code != 1 || !wantErr.MatchString(r.stderr) {
		t.Errorf("create --wait of a group that cannot launch: exit %d; want 1 and an error matching %s\nstdout:\n%s\nstderr:\n%s", r.code, wantErr, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "launch failing (") {
		t.Errorf("create --wait did not show the failing launches:\n%s", r.stdout)
	}
	t.Logf("create --wait timeout:\n%s%s", r.stdout, r.stderr)
	if r := run(t, 3*time.Minute, "group", "delete", broken, "-c", ac.Path); r.code != 0 {
		t.Errorf("delete %s: exit %d\n%s%s", broken, r.code, r.stdout, r.stderr)
	}
	if r := run(t, 3*time.Minute, "group", "delete", group, "-c", ac.Path); r.code != 0 {
		t.Errorf("delete %s: exit %d\n%s%s", group, r.code, r.stdout, r.stderr)
	}
	stop()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
