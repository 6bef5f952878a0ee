package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"
)

// A fleet is several independent libvirt hosts on this machine, each a private session-mode
// libvirtd run as a user of its own (testenv/hosts), each served by a `premiscale worker`
// process of its own with --serve, as on a rack of hypervisors: the workers share the config's
// hosts and groups, one Temporal task queue, one MySQL and one InfluxDB.
type fleet struct {
	t       *testing.T
	hosts   []*fleetHost
	group   string
	store   *state.Store
	options fleetOptions
}

type fleetHost struct {
	name   string
	daemon *testservices.Libvirtd
	uri    string
	// conn is the test's own connection: it inspects the host, and keeps a test driver's
	// domains alive while the host's worker is down (the driver forgets them with its last
	// connection).
	conn   *libvirt.Conn
	config string
	worker *workerProcess
}

type fleetOptions struct {
	hosts int
	// session makes the hosts qemu:///session hosts (real QEMU) instead of test drivers.
	session bool
	// groupBody makes the group's mapping from the host names (8-space indented YAML).
	groupBody func(hosts []string) string
	// autoscale is more of controller.autoscale (4-space indented YAML).
	autoscale string
	// hostExtra is more of each host's mapping (flow YAML fields).
	hostExtra string
	// baseImage: the group's base image is made on every test-driver host before the workers
	// start (the test driver cannot stream volumes, so it cannot be copied there).
	baseImage bool
	// setupHost, when set, prepares host i before the workers start.
	setupHost func(t *testing.T, h *fleetHost, i int)
}

// startFleet starts the hosts and their workers, and waits until every worker is ready.
func startFleet(t *testing.T, o fleetOptions) *fleet {
	t.Helper()
	ctx := context.Background()
	f := &fleet{t: t, group: testservices.UniqueName(t, "fl"), options: o}
	var entries []testservices.HostEntry
	var names []string
	for i := range o.hosts {
		d := testservices.StartLibvirtd(t, testservices.LibvirtdOptions{User: fmt.Sprintf("premiscale-h%d", i%testservices.HostUsers+1)})
		h := &fleetHost{name: fmt.Sprintf("%s-h%d", f.group, i+1), daemon: d, uri: d.TestURI()}
		if o.session {
			h.uri = d.SessionURI()
		}
		conn, err := libvirt.Dial(ctx, h.uri, libvirt.Options{CallTimeout: 20 * time.Second})
		if err != nil {
			t.Fatalf("connect to host %s at %s: %v", h.name, h.uri, err)
		}
		h.conn = conn
		t.Cleanup(func() { conn.Close() })
		if o.baseImage && !o.session {
			if _, err := conn.EnsureVolume(ctx, testservices.TestPool, f.group+"-base.qcow2", 1<<30, "qcow2"); err != nil {
				t.Fatalf("create the base image on host %s: %v", h.name, err)
			}
		}
		if o.setupHost != nil {
			o.setupHost(t, h, i)
		}
		f.hosts = append(f.hosts, h)
		names = append(names, h.name)
		entries = append(entries, testservices.HostEntry{Name: h.name, URI: h.uri, Extra: o.hostExtra})
	}
	mysql, influx := testservices.MySQL(t), testservices.Influx(t)
	queue := "tq-" + testservices.UniqueName(t, "q")
	for _, h := range f.hosts {
		ac := testservices.WriteAgentConfigFor(t, testservices.AgentOptions{
			Group: f.group, GroupBody: strings.ReplaceAll(o.groupBody(names), "{{group}}", f.group), Hosts: entries, Serve: []string{h.name},
			TaskQueue: queue, State: &mysql, Timeseries: &influx, Autoscale: o.autoscale,
		})
		h.config = ac.Path
	}
	store, err := state.Open(ctx, mysql)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f.store = store
	for _, h := range f.hosts {
		h.worker = runWorkerProcess(t, h.config)
	}
	return f
}

// path is a config the group commands use: any worker's will do.
func (f *fleet) path() string { return f.hosts[0].config }

func (f *fleet) host(name string) *fleetHost {
	for _, h := range f.hosts {
		if h.name == name {
			return h
		}
	}
	f.t.Fatalf("no host %s in the fleet", name)
	return nil
}

// fleetStatus is `group status -o json` with what the fleet tests look at.
type fleetStatus struct {
	Current      int `json:"current"`
	LastDecision struct {
		Action  string `json:"action"`
		Outcome string `json:"outcome"`
		Reason  string `json:"reason"`
	} `json:"lastDecision"`
	Instances []struct {
		Name       string `json:"name"`
		Host       string `json:"host"`
		State      string `json:"state"`
		Generation int    `json:"generation"`
		Reason     string `json:"reason"`
	} `json:"instances"`
	Roll *struct {
		Active   bool   `json:"active"`
		Total    int    `json:"Total"`
		Replaced int    `json:"Replaced"`
		Stopped  string `json:"stopped"`
	} `json:"roll"`
	Paused bool `json:"paused"`
	Images []struct {
		Host  string `json:"Host"`
		State string `json:"State"`
	} `json:"images"`
}

// live counts the instances that count toward the group's size (not lost, not ended).
func (s fleetStatus) live() int {
	n := 0
	for _, in := range s.Instances {
		if in.State == "launching" || in.State == "booting" || in.State == "running" {
			n++
		}
	}
	return n
}

// running lists the running instances by host.
func (s fleetStatus) runningOn() map[string][]string {
	out := map[string][]string{}
	for _, in := range s.Instances {
		if in.State == "running" {
			out[in.Host] = append(out[in.Host], in.Name)
		}
	}
	return out
}

func (s fleetStatus) count(state string) int {
	n := 0
	for _, in := range s.Instances {
		if in.State == state {
			n++
		}
	}
	return n
}

func (f *fleet) status() (fleetStatus, error) {
	r := run(f.t, 30*time.Second, "group", "status", f.group, "-o", "json", "-c", f.path())
	var s fleetStatus
	if r.code != 0 {
		return s, fmt.Errorf("group status: exit %d: %s", r.code, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		return s, fmt.Errorf("group status -o json: %v\n%s", err, r.stdout)
	}
	return s, nil
}

// wait polls the group's status until ok accepts it; every status seen also goes to each,
// when set, so that a test can check an invariant all along.
func (f *fleet) wait(timeout time.Duration, what string, ok func(fleetStatus) bool, each func(fleetStatus)) fleetStatus {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	var last fleetStatus
	var lastErr error
	for time.Now().Before(deadline) {
		s, err := f.status()
		if err == nil {
			if each != nil {
				each(s)
			}
			if ok(s) {
				return s
			}
			last = s
		}
		lastErr = err
		time.Sleep(300 * time.Millisecond)
	}
	f.t.Fatalf("group %s: no %s within %s; last status %+v (%v)", f.group, what, timeout, last, lastErr)
	return last
}

// hostJSON is `host status NAME -o json`.
type hostJSON struct {
	Name          string `json:"name"`
	Up            bool   `json:"up"`
	Down          string `json:"down"`
	CPUs          int    `json:"cpus"`
	MemoryMiB     int64  `json:"memoryMiB"`
	UsedCPUs      int    `json:"usedCpus"`
	UsedMemoryMiB int64  `json:"usedMemoryMiB"`
	Domains       int    `json:"domains"`
	Allocatable   struct {
		VCPUs     int   `json:"vcpus"`
		MemoryMiB int64 `json:"memoryMiB"`
	} `json:"allocatable"`
	Instances []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"instances"`
}

func (f *fleet) hostStatus(name string) hostJSON {
	f.t.Helper()
	r := run(f.t, 30*time.Second, "host", "status", name, "-o", "json", "-c", f.path())
	var h hostJSON
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &h) != nil {
		f.t.Fatalf("host status %s -o json: exit %d\n%s%s", name, r.code, r.stdout, r.stderr)
	}
	return h
}

// events returns the reasons in the group's decision log.
func (f *fleet) events() []string { return eventReasons(f.t, f.path(), f.group) }

// waitEvent waits for a decision-log row that contains every one of parts.
func (f *fleet) waitEvent(timeout time.Duration, parts ...string) string {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	var reasons []string
	for time.Now().Before(deadline) {
		reasons = f.events()
		for _, r := range reasons {
			if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(r, p) }) {
				return r
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	f.t.Fatalf("decision log of %s has no row with %q within %s: %q", f.group, parts, timeout, reasons)
	return ""
}

func (f *fleet) cli(timeout time.Duration, args ...string) string {
	f.t.Helper()
	r := run(f.t, timeout, append(args, "-c", f.path())...)
	if r.code != 0 {
		f.t.Fatalf("premiscale %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// virsh runs virsh on a host, as an operator at its console would.
func (h *fleetHost) virsh(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "virsh", append([]string{"-c", h.uri}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("virsh %s on %s: %v\n%s", strings.Join(args, " "), h.name, err, out)
	}
	return string(out)
}

func (h *fleetHost) hasDomain(t *testing.T, name string) bool {
	t.Helper()
	_, found, err := h.conn.LookupDomain(context.Background(), name)
	if err != nil {
		t.Fatalf("look up %s on %s: %v", name, h.name, err)
	}
	return found
}

// testDriverGroup is a group on the fleet's test-driver hosts: no guest runs, so no check-in.
func testDriverGroup(memory int, scaling, more string) func([]string) string {
	return func(hosts []string) string {
		return fmt.Sprintf(`
        image: %s/{{group}}-base.qcow2
        domain: {vcpus: 1, memory: %d}
        hosts: [%s]
        networking: {type: ignore}
        health: {checkin: false, heartbeatInterval: 1s}%s
        scaling: %s`, testservices.TestPool, memory, strings.Join(hosts, ", "), more, scaling)
	}
}

// fleetTimings are short, so that a host failure plays out in seconds.
const fleetTimings = `    hostDownAfter: 4s
    hostGracePeriod: 4s
    orphanGracePeriod: 5s`

// TestFleetSpreadHostFailureAndDrift runs one group over three hosts, each with its own
// worker: the group spreads over them; a host whose libvirtd hangs and whose worker dies is
// down within hostDownAfter, its instance is lost after hostGracePeriod and replaced on another
// host without the live instances ever above maxNodes, and the lost domain is removed when
// the host comes back. Then drift: an orphan domain made by hand with PremiScale's metadata
// is removed, a domain destroyed by hand is replaced, and a domain of someone else's that took
// an instance's name is reported and left alone while the instance is replaced.
func TestFleetSpreadHostFailureAndDrift(t *testing.T) {
	// Each fleet has hosts, databases and a task queue of its own; the fleets mostly wait.
	t.Parallel()
	f := startFleet(t, fleetOptions{
		hosts: 3, baseImage: true, autoscale: fleetTimings,
		groupBody: testDriverGroup(512, "{minNodes: 3, maxNodes: 3, resourceTarget: {cpu: 50}}", ""),
	})
	s := f.wait(90*time.Second, "3 instances running, one per host", func(s fleetStatus) bool {
		on := s.runningOn()
		return s.live() == 3 && len(on) == 3 && len(on[f.hosts[0].name]) == 1 && len(on[f.hosts[1].name]) == 1
	}, nil)
	for _, h := range f.hosts {
		// The host's worker proves it alive, with what its domains hold, every second here.
		var hs hostJSON
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			if hs = f.hostStatus(h.name); hs.UsedMemoryMiB > 0 {
				break
			}
		}
		// The test driver has 16 CPUs and 3 GiB; the default reserve is 1 CPU and 1 GiB, the
		// default overcommit 4 for CPUs and 1 for memory.
		if !hs.Up || hs.CPUs != 16 || hs.MemoryMiB != 3072 || hs.UsedMemoryMiB != 512 || hs.UsedCPUs != 1 ||
			hs.Allocatable.VCPUs != 60 || hs.Allocatable.MemoryMiB != 2048 || len(hs.Instances) != 1 {
			t.Errorf("host status %s: %+v; want up, 16 CPUs, 3072 MiB, 1 CPU and 512 MiB used by 1 instance, 60 CPUs and 2048 MiB allocatable", h.name, hs)
		}
	}
	if out := f.cli(30*time.Second, "host", "list"); strings.Count(out, " up ") < 3 && strings.Count(out, "up") < 3 {
		t.Errorf("host list shows fewer than 3 hosts up:\n%s", out)
	}

	// Host 3 fails: its libvirtd hangs and its worker dies.
	h3 := f.hosts[2]
	var lostName string
	for _, in := range s.Instances {
		if in.Host == h3.name {
			lostName = in.Name
		}
	}
	failed := time.Now()
	h3.worker.kill()
	h3.daemon.Pause()
	deadline := time.Now().Add(time.Minute)
	for f.hostStatus(h3.name).Up {
		if time.Now().After(deadline) {
			t.Fatalf("host %s still up a minute after its worker and libvirtd stopped", h3.name)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("measured: host down %.1f s after its worker and libvirtd stopped (hostDownAfter 4s)", time.Since(failed).Seconds())
	if hs := f.hostStatus(h3.name); !strings.Contains(hs.Down, "no proof of life") {
		t.Errorf("host status of the down host says %q; want why (no proof of life for …)", hs.Down)
	}

	maxLive := 0
	s = f.wait(2*time.Minute, "the lost instance replaced on another host", func(s fleetStatus) bool {
		on := s.runningOn()
		return s.count("lost") == 1 && s.live() == 3 && len(on[f.hosts[0].name])+len(on[f.hosts[1].name]) == 3
	}, func(s fleetStatus) { maxLive = max(maxLive, s.live()) })
	t.Logf("measured: lost instance replaced and running %.1f s after the host failed (hostGracePeriod 4s)", time.Since(failed).Seconds())
	if maxLive > 3 {
		t.Errorf("the group had %d live instances while replacing the lost one; maxNodes is 3", maxLive)
	}
	for _, in := range s.Instances {
		if in.State == "lost" && (in.Name != lostName || !strings.Contains(in.Reason, h3.name)) {
			t.Errorf("lost instance %s (%s); want %s, with its host named", in.Name, in.Reason, lostName)
		}
	}
	if rec, _, err := f.store.GetInstance(context.Background(), lostName); err != nil || rec.State != "lost" {
		t.Errorf("MySQL record of %s: %+v (%v); want lost", lostName, rec, err)
	}
	f.waitEvent(10*time.Second, lostName, "lost")
	// No launch went to the down host.
	for _, in := range s.Instances {
		if in.Host == h3.name && in.Name != lostName {
			t.Errorf("instance %s was placed on the down host %s", in.Name, h3.name)
		}
	}

	// Host 3 comes back: the lost domain is removed, and the instance ends terminated.
	h3.daemon.Resume()
	h3.worker = runWorkerProcess(t, h3.config)
	back := time.Now()
	f.wait(90*time.Second, "the lost instance removed", func(s fleetStatus) bool {
		return s.count("lost") == 0 && s.live() == 3
	}, nil)
	deadline = time.Now().Add(30 * time.Second)
	for h3.hasDomain(t, lostName) {
		if time.Now().After(deadline) {
			t.Fatalf("the lost domain %s is still on %s 30 s after the group forgot it", lostName, h3.name)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("measured: lost domain removed %.1f s after its host came back", time.Since(back).Seconds())
	if rec, _, err := f.store.GetInstance(context.Background(), lostName); err != nil || rec.State != "terminated" || !strings.Contains(rec.Reason, "answered again") {
		t.Errorf("MySQL record of %s: %+v (%v); want terminated, removed when its host answered again", lostName, rec, err)
	}

	// Drift. An orphan: a copy of a live instance's domain, with its metadata, under a name no
	// instance has.
	s, _ = f.status()
	h1 := f.hosts[0]
	var onH1, onH2 string
	for _, in := range s.Instances {
		switch {
		case in.State == "running" && in.Host == h1.name && onH1 == "":
			onH1 = in.Name
		case in.State == "running" && in.Host == f.hosts[1].name && onH2 == "":
			onH2 = in.Name
		}
	}
	orphan := f.group + "-90"
	xml := h1.virsh(t, "dumpxml", onH1)
	xml = strings.Replace(xml, "<name>"+onH1+"</name>", "<name>"+orphan+"</name>", 1)
	xml = regexp.MustCompile(`(?s)<uuid>.*?</uuid>`).ReplaceAllString(xml, "")
	xml = regexp.MustCompile(`(?s)<mac address=[^/]*/>`).ReplaceAllString(xml, "")
	xmlPath := filepath.Join(t.TempDir(), "orphan.xml")
	if err := os.WriteFile(xmlPath, []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	h1.virsh(t, "define", xmlPath)
	h1.virsh(t, "start", orphan)
	made := time.Now()
	f.waitEvent(time.Minute, "drift on host "+h1.name, "domain "+orphan+" removed", "no instance of that name")
	t.Logf("measured: orphan domain removed %.1f s after it appeared (orphanGracePeriod 5s)", time.Since(made).Seconds())
	if h1.hasDomain(t, orphan) {
		t.Errorf("orphan domain %s is still on %s after the decision log says it was removed", orphan, h1.name)
	}

	// A domain removed by hand is replaced, with the reason. Undefined first (a running
	// domain becomes transient) so that no health check can find it shut off in between.
	h1.virsh(t, "undefine", onH1)
	h1.virsh(t, "destroy", onH1)
	f.wait(time.Minute, "the destroyed instance replaced", func(s fleetStatus) bool {
		gone := !slices.ContainsFunc(s.Instances, func(in struct {
			Name       string `json:"name"`
			Host       string `json:"host"`
			State      string `json:"state"`
			Generation int    `json:"generation"`
			Reason     string `json:"reason"`
		}) bool {
			return in.Name == onH1
		})
		return gone && s.count("running") == 3
	}, nil)
	if rec, _, err := f.store.GetInstance(context.Background(), onH1); err != nil || rec.State != "failed" || !strings.Contains(rec.Reason, "disappeared") {
		t.Errorf("MySQL record of %s destroyed by hand: %+v (%v); want failed, its domain disappeared", onH1, rec, err)
	}

	// Someone else's domain takes a live instance's name: reported and never touched; the
	// instance, whose own domain is gone, is replaced.
	h2 := f.hosts[1]
	h2.virsh(t, "destroy", onH2)
	h2.virsh(t, "undefine", onH2)
	foreign := fmt.Sprintf(`<domain type="test"><name>%s</name><memory unit="MiB">64</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`, onH2)
	foreignPath := filepath.Join(t.TempDir(), "foreign.xml")
	if err := os.WriteFile(foreignPath, []byte(foreign), 0o644); err != nil {
		t.Fatal(err)
	}
	h2.virsh(t, "define", foreignPath)
	h2.virsh(t, "start", onH2)
	f.wait(time.Minute, "the instance whose name was taken replaced", func(s fleetStatus) bool {
		for _, in := range s.Instances {
			if in.Name == onH2 {
				return false
			}
		}
		return s.count("running") == 3
	}, nil)
	// A health check between the undefine and the define finds no domain at all: that reason
	// is as true (TestUnhealthyInstancesAreReplaced in workflows pins the foreign case).
	if rec, _, err := f.store.GetInstance(context.Background(), onH2); err != nil || !strings.Contains(rec.Reason, "without PremiScale's metadata") && !strings.Contains(rec.Reason, "disappeared") {
		t.Errorf("MySQL record of %s: %+v (%v); want its reason to say a foreign domain took its name (or that its domain disappeared)", onH2, rec, err)
	}
	time.Sleep(6 * time.Second) // a drift sweep or two, and the orphan grace period
	if !h2.hasDomain(t, onH2) {
		t.Errorf("the foreign domain %s on %s was removed; PremiScale must never touch it", onH2, h2.name)
	}

	f.cli(3*time.Minute, "group", "delete", f.group)
	if !h2.hasDomain(t, onH2) {
		t.Errorf("group delete removed the foreign domain %s", onH2)
	}
}

// TestFleetCapacity fills two hosts: a group placed with pack fills one host first; a second
// group (spread) gets the room left, says which hosts lack what for the rest, and launches
// nothing more until room appears, then reaches its size.
func TestFleetCapacity(t *testing.T) {
	t.Parallel()
	// 1 GiB instances: 2 fit in a test-driver host's 2 GiB allocatable (3 GiB less the reserve).
	f := startFleet(t, fleetOptions{
		hosts: 2, baseImage: true, autoscale: fleetTimings,
		groupBody: testDriverGroup(1024, "{minNodes: 2, maxNodes: 4, resourceTarget: {cpu: 50}}", "\n        placement: pack"),
	})
	h1, h2 := f.hosts[0].name, f.hosts[1].name
	s := f.wait(90*time.Second, "2 instances running", func(s fleetStatus) bool { return s.count("running") == 2 }, nil)
	if on := s.runningOn(); len(on[h1]) != 2 {
		t.Errorf("placement pack put the group's 2 instances on %v; want both on %s", on, h1)
	}

	// The second group wants 4 and fits 2, on the second host.
	big := &fleet{t: t, group: f.group + "b", hosts: f.hosts, store: f.store}
	file := filepath.Join(t.TempDir(), "big.yaml")
	doc := "version: v1alpha1\ngroups:\n  " + big.group + ":" + strings.ReplaceAll(
		testDriverGroup(1024, "{minNodes: 4, maxNodes: 4, resourceTarget: {cpu: 50}}", "")([]string{h1, h2}), "{{group}}", f.group)
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(doc, "\n        ", "\n    ")), 0o600); err != nil {
		t.Fatal(err)
	}
	big.cli(30*time.Second, "group", "create", big.group, "-f", file)
	s = big.wait(90*time.Second, "2 of 4 running and no capacity for the rest", func(s fleetStatus) bool {
		return s.count("running") == 2 && strings.Contains(s.LastDecision.Reason, "no capacity")
	}, nil)
	want := fmt.Sprintf("no capacity: %s needs 1024 MiB of memory (0 free); %s needs 1024 MiB of memory (0 free)", h1, h2)
	if !strings.Contains(s.LastDecision.Reason, want) {
		t.Errorf("last decision %q; want it to say %q", s.LastDecision.Reason, want)
	}
	if on := s.runningOn(); len(on[h2]) != 2 {
		t.Errorf("the second group's instances are on %v; want both on %s, the host with room", on, h2)
	}
	if out := big.cli(30*time.Second, "group", "status", big.group); !strings.Contains(out, want) {
		t.Errorf("group status does not say why the group is short:\n%s", out)
	}

	// Evaluations go on (every 2 s) without launching: no instance is recorded beyond the 2,
	// and the decision log says it once.
	time.Sleep(8 * time.Second)
	recs, err := f.store.ListInstances(context.Background(), big.group, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Errorf("MySQL has %d instances of %s after 4 evaluations short of room; want 2 (no launch without room)", len(recs), big.group)
	}
	rows := 0
	for _, r := range big.events() {
		if strings.Contains(r, "no capacity") {
			rows++
		}
	}
	if rows != 1 {
		t.Errorf("%d decision-log rows say no capacity; want 1 (repeats are counted, not written)", rows)
	}

	// Room appears when the first group shrinks; the second reaches its size, 2 per host.
	f.cli(30*time.Second, "group", "scale", f.group, "--min", "0", "--desired", "0")
	s = big.wait(90*time.Second, "4 running once room appeared", func(s fleetStatus) bool { return s.count("running") == 4 }, nil)
	if on := s.runningOn(); len(on[h1]) != 2 || len(on[h2]) != 2 {
		t.Errorf("the second group's 4 instances are on %v; want 2 per host", on)
	}
	big.cli(3*time.Minute, "group", "delete", big.group)
	f.cli(3*time.Minute, "group", "delete", f.group)
}

// TestFleetRollingReplacement replaces 6 instances spread over 3 hosts, at most 2 above the
// group's size and none below it: first for a change of the domain's shape (group update),
// then for group roll, paused and resumed halfway.
func TestFleetRollingReplacement(t *testing.T) {
	t.Parallel()
	f := startFleet(t, fleetOptions{
		hosts: 3, baseImage: true, autoscale: fleetTimings,
		groupBody: testDriverGroup(128, "{minNodes: 6, maxNodes: 6, increment: 6, maxConcurrentLaunches: 2, resourceTarget: {cpu: 50}}", "\n        rollout: {maxSurge: 2}"),
	})
	s := f.wait(90*time.Second, "6 running", func(s fleetStatus) bool { return s.count("running") == 6 }, nil)
	old := map[string]bool{}
	for _, in := range s.Instances {
		old[in.Name] = true
	}
	firstOld := slices.Sorted(maps.Keys(old))

	// Bounds all along: live at most 6 + maxSurge, running at least 6 − maxUnavailable.
	maxLive, minRunning := 0, 6
	bounds := func(s fleetStatus) { maxLive, minRunning = max(maxLive, s.live()), min(minRunning, s.count("running")) }

	// group update with a new shape rolls the group.
	file := filepath.Join(t.TempDir(), "update.yaml")
	doc := "version: v1alpha1\ngroups:\n  " + f.group + ":" + strings.ReplaceAll(
		testDriverGroup(256, "{minNodes: 6, maxNodes: 6, increment: 6, maxConcurrentLaunches: 2, resourceTarget: {cpu: 50}}", "\n        rollout: {maxSurge: 2}")(hostNames(f)), "{{group}}", f.group)
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(doc, "\n        ", "\n    ")), 0o600); err != nil {
		t.Fatal(err)
	}
	f.cli(30*time.Second, "group", "update", f.group, "-f", file)
	start := time.Now()
	s = f.wait(2*time.Minute, "the roll done", func(s fleetStatus) bool {
		return s.Roll != nil && !s.Roll.Active && s.Roll.Replaced == 6 && s.count("running") == 6
	}, bounds)
	t.Logf("measured: 6 instances rolled with maxSurge 2 in %.1f s", time.Since(start).Seconds())
	for _, in := range s.Instances {
		if old[in.Name] && in.State != "retiring" && in.State != "terminated" {
			t.Errorf("instance %s of the old generation is still %s after the roll", in.Name, in.State)
		}
	}
	s = f.wait(30*time.Second, "the old instances gone", func(s fleetStatus) bool { return len(s.Instances) == 6 }, nil)
	for _, h := range f.hosts {
		for _, name := range firstOld {
			if h.hasDomain(t, name) {
				t.Errorf("host %s still has the domain of old instance %s", h.name, name)
			}
		}
	}
	f.waitEvent(10*time.Second, "rolling replacement of 6 instances started")

	// group roll, paused in the middle: nothing moves while paused; resume finishes it.
	old = map[string]bool{}
	for _, in := range s.Instances {
		old[in.Name] = true
	}
	if out := f.cli(30*time.Second, "group", "roll", f.group); !strings.Contains(out, "rolling replacement of 6 instances started") {
		t.Errorf("group roll says %q", out)
	}
	s = f.wait(time.Minute, "the roll under way", func(s fleetStatus) bool {
		return s.Roll != nil && s.Roll.Active && s.Roll.Replaced >= 1
	}, bounds)
	f.cli(30*time.Second, "group", "pause", f.group)
	time.Sleep(3 * time.Second) // an evaluation in flight when the pause came may finish its step
	paused, _ := f.status()
	time.Sleep(6 * time.Second)
	still, _ := f.status()
	if still.Roll == nil || paused.Roll == nil || still.Roll.Replaced != paused.Roll.Replaced || len(still.Instances) != len(paused.Instances) {
		t.Errorf("the roll moved while the group was paused: %+v then %+v", paused.Roll, still.Roll)
	}
	if still.Roll != nil && still.Roll.Replaced == 6 {
		t.Fatalf("the roll finished before the pause could be seen: %+v", still.Roll)
	}
	f.cli(30*time.Second, "group", "resume", f.group)
	s = f.wait(2*time.Minute, "the second roll done", func(s fleetStatus) bool {
		return s.Roll != nil && !s.Roll.Active && s.Roll.Replaced == 6 && s.count("running") == 6
	}, bounds)
	for _, in := range s.Instances {
		if old[in.Name] && in.State != "retiring" && in.State != "terminated" {
			t.Errorf("instance %s of the old generation is still %s after group roll", in.Name, in.State)
		}
	}
	if maxLive > 8 || minRunning < 6 {
		t.Errorf("during the rolls live instances reached %d (max 6 + maxSurge 2) and running fell to %d (min 6 − maxUnavailable 0)", maxLive, minRunning)
	}
	if out := f.cli(30*time.Second, "group", "status", f.group); !strings.Contains(out, "done: 6 of 6 replaced (operator: group roll") {
		t.Errorf("group status does not show the finished roll:\n%s", out)
	}
	f.cli(3*time.Minute, "group", "delete", f.group)
}

func hostNames(f *fleet) []string {
	var names []string
	for _, h := range f.hosts {
		names = append(names, h.name)
	}
	return names
}

// TestFleetCopiesBaseImages runs two real-QEMU hosts (qemu:///session of two private
// libvirtd) whose pool "premiscale" only the first fills with the group's base image. The
// second host's worker copies it before the first launch there, streamed from the first host
// through libvirt, once for two launches at the same time; a second group's image comes from
// image.source (a file) checked against its sha256, and a third's, with a wrong sha256, is
// refused with the reason and leaves no volume behind. The guests have no bootable disk: they
// sit in the firmware, which is all these launches need, and costs next to nothing.
func TestFleetCopiesBaseImages(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	base := make([]byte, 3<<20+12345) // not a whole number of stream chunks
	for i := range base {
		base[i] = byte(i*7 + i/4096)
	}
	basePath := filepath.Join(dir, "base.raw")
	if err := os.WriteFile(basePath, base, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(base)
	baseSum := hex.EncodeToString(sum[:])

	f := startFleet(t, fleetOptions{
		hosts: 2, session: true, autoscale: fleetTimings,
		setupHost: func(t *testing.T, h *fleetHost, i int) {
			pool := filepath.Join(h.daemon.Dir(), "home", "pool")
			h.virsh(t, "pool-define-as", "premiscale", "dir", "--target", pool)
			h.virsh(t, "pool-build", "premiscale")
			h.virsh(t, "pool-start", "premiscale")
			if i == 0 {
				h.virsh(t, "vol-create-as", "premiscale", "base.raw", fmt.Sprint(len(base)), "--format", "raw")
				h.virsh(t, "vol-upload", "--pool", "premiscale", "base.raw", basePath)
			}
		},
		groupBody: func(hosts []string) string {
			// Only on the second host: both launches need the copy at once.
			return fmt.Sprintf(`
        image: premiscale/base.raw
        domain: {vcpus: 1, memory: 64, type: qemu, network: user}
        hosts: [%s]
        networking: {type: ignore}
        health: {checkin: false, heartbeatInterval: 2s}
        scaling: {minNodes: 2, maxNodes: 2, increment: 2, maxConcurrentLaunches: 2, resourceTarget: {cpu: 50}}`, hosts[1])
		},
	})
	h1, h2 := f.hosts[0], f.hosts[1]
	s := f.wait(3*time.Minute, "2 instances running on the second host", func(s fleetStatus) bool {
		return len(s.runningOn()[h2.name]) == 2
	}, nil)
	_ = s
	got := downloadVolume(t, h2, "premiscale", "base.raw")
	if gs := sha256.Sum256(got); hex.EncodeToString(gs[:]) != baseSum || len(got) != len(base) {
		t.Errorf("the copy on %s has %d bytes, SHA-256 %x; want %d bytes, %s", h2.name, len(got), gs, len(base), baseSum)
	}
	rec, found, err := f.store.GetHostImage(context.Background(), h2.name, "premiscale", "base.raw")
	if err != nil || !found || rec.State != "ready" || rec.SHA256 != baseSum || rec.Source != "host "+h1.name || rec.Bytes != int64(len(base)) {
		t.Errorf("MySQL record of the copy on %s: %+v (found %v, %v); want ready, from host %s, %d bytes, SHA-256 %s", h2.name, rec, found, err, h1.name, len(base), baseSum)
	}
	if n := strings.Count(readFile(t, h2.worker.log), `"msg":"base image copied"`); n != 1 {
		t.Errorf("the second host's worker copied the image %d times for 2 launches at once; want once", n)
	}
	if out := f.cli(30*time.Second, "group", "status", f.group); !strings.Contains(out, "premiscale/base.raw: on "+h2.name) {
		t.Errorf("group status does not say which hosts have the image:\n%s", out)
	}

	// From image.source, checked against its sha256; and a wrong sha256, refused.
	for _, c := range []struct {
		name, sha string
		ok        bool
	}{{"src", baseSum, true}, {"bad", strings.Repeat("0", 64), false}} {
		g := &fleet{t: t, group: f.group + c.name, hosts: f.hosts, store: f.store}
		file := filepath.Join(t.TempDir(), "group.yaml")
		doc := fmt.Sprintf(`version: v1alpha1
groups:
  %s:
    image: {volume: premiscale/%s.raw, source: %s, sha256: %s}
    domain: {vcpus: 1, memory: 64, type: qemu, network: user}
    hosts: [%s]
    networking: {type: ignore}
    health: {checkin: false, heartbeatInterval: 2s}
    scaling: {minNodes: 1, maxNodes: 1, resourceTarget: {cpu: 50}}
`, g.group, c.name, basePath, c.sha, h1.name)
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		g.cli(30*time.Second, "group", "create", g.group, "-f", file)
		if c.ok {
			g.wait(3*time.Minute, "1 instance running from image.source", func(s fleetStatus) bool { return s.count("running") == 1 }, nil)
			rec, _, err := f.store.GetHostImage(context.Background(), h1.name, "premiscale", c.name+".raw")
			if err != nil || rec.State != "ready" || rec.Source != basePath || rec.SHA256 != baseSum {
				t.Errorf("MySQL record of the copy from image.source: %+v (%v)", rec, err)
			}
		} else {
			g.wait(3*time.Minute, "the launch refused for the wrong sha256", func(s fleetStatus) bool {
				return strings.Contains(s.LastDecision.Reason, "not the "+c.sha+" the group's image.sha256 says")
			}, nil)
			if ok, err := h1.conn.VolumeExists(context.Background(), "premiscale", c.name+".raw"); err != nil || ok {
				t.Errorf("a copy that failed its sha256 check is left on %s: exists %v (%v)", h1.name, ok, err)
			}
		}
		g.cli(3*time.Minute, "group", "delete", g.group)
	}
	f.cli(3*time.Minute, "group", "delete", f.group)
}

func downloadVolume(t *testing.T, h *fleetHost, pool, volume string) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := h.conn.DownloadVolume(context.Background(), pool, volume, &b); err != nil {
		t.Fatalf("download %s/%s from %s: %v", pool, volume, h.name, err)
	}
	return b.Bytes()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
