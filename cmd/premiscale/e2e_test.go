package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/influxdb"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"

	"github.com/premiscale/premiscale/internal/spec"
)

// The guest image testenv/guest-image builds and loads (see `testenv/guest-image --env`).
var guest = struct{ image, kernel, initrd, cmdline string }{
	image:   envOr("PREMISCALE_GUEST_IMAGE", "premiscale/debian-12-cloudinit.qcow2"),
	kernel:  envOr("PREMISCALE_GUEST_KERNEL", "/var/lib/libvirt/images/premiscale-boot/debian-12-cloudinit.vmlinuz"),
	initrd:  envOr("PREMISCALE_GUEST_INITRD", "/var/lib/libvirt/images/premiscale-boot/debian-12-cloudinit.initrd.img"),
	cmdline: envOr("PREMISCALE_GUEST_CMDLINE", "root=/dev/vda console=ttyS0 ds=nocloud"),
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// markers records the paths the guests' own cloud-config POSTs to, proving the user's
// cloud-init ran (with the instance's name rendered into it), and what they posted.
type markers struct {
	mu   sync.Mutex
	seen map[string]string
}

func (m *markers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	m.mu.Lock()
	m.seen[r.URL.Path] = string(body)
	m.mu.Unlock()
}

func (m *markers) has(path string) bool {
	_, ok := m.body(path)
	return ok
}

func (m *markers) body(path string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.seen[path]
	return b, ok
}

// TestRealVMsBootCheckInAndRetire is the end-to-end test: `premiscale worker` and the group
// commands as processes, real VMs from the cloud-init guest image under TCG on qemu:///system.
// The group uses static networking as the README documents it (a pool of addresses, a CIDR
// subnet, a gateway, nameservers) on user-mode networking's 10.0.2.0/24, and each guest reports
// the address it really configured.
func TestRealVMsBootCheckInAndRetire(t *testing.T) {
	ctx := context.Background()
	// Cleanups run last-in first-out: the connection closes after removeLeftovers used it.
	conn, pool, _ := systemWithGuestImage(t)
	for _, f := range []string{guest.kernel, guest.initrd} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("guest boot file: %v (run testenv/guest-image)", err)
		}
	}

	m, markerPort := startMarkers(t)

	group := testservices.UniqueName(t, "vm")
	// A host name of its own: a demo worker serving host "local" must not take these activities.
	host := testservices.UniqueName(t, "h")
	checkinPort := testservices.FreePort(t)
	// Under user-mode networking the guest reaches the host's 127.0.0.1 as 10.0.2.2.
	body := fmt.Sprintf(`
        image: %[1]s
        domain:
          vcpus: 1
          memory: 512
          type: qemu
          network: user
          kernel: %[2]s
          initrd: %[3]s
          cmdline: %[4]q
        cloud-init:
          inline: |
            #cloud-config
            runcmd:
              - [curl, -fsS, -m, "20", -X, POST, "http://10.0.2.2:%[5]d/marker/{{.Name}}/{{.Index}}/{{.Address}}"]
              - [sh, -c, "ip -4 -o addr show | curl -fsS -m 20 --data-binary @- http://10.0.2.2:%[5]d/addr/{{.Name}}"]
              - [sh, -c, "timeout 120 sh -c 'while :; do :; done' >/dev/null 2>&1 &"]
        hosts: [%[6]s]
        # Not .15, the address user-mode networking's DHCP would give: the guest can only have
        # these from the seed's network-config.
        networking: {type: static, addresses: [10.0.2.20-10.0.2.21], subnet: 10.0.2.0/24, gateway: 10.0.2.2, nameservers: [10.0.2.3]}
        health: {bootTimeout: 8m, heartbeatInterval: 15s, heartbeatTimeout: 3m, shutdownGrace: 20s}
        scaling: {minNodes: 1, maxNodes: 2, scaleIn: {stabilizationWindow: 0}, resourceTarget: {cpu: 100}}`,
		guest.image, guest.kernel, guest.initrd, guest.cmdline, markerPort, host)
	ac := testservices.WriteAgentConfigFor(t, testservices.AgentOptions{
		Group: group, Host: host, URI: "qemu:///system", GroupBody: body,
		CheckinPort: checkinPort, CheckinURL: fmt.Sprintf("http://10.0.2.2:%d", checkinPort),
	})
	store, err := state.Open(ctx, ac.Config.Controller.Databases.State)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	t.Cleanup(func() { removeLeftovers(t, conn, pool, group) })

	start := time.Now()
	stop := startWorker(t, ac.Path)
	defer stop()
	first := group + "-1"
	waitStatusFor(t, ac.Path, group, 8*time.Minute, func(s statusJSON) bool {
		return len(s.Instances) == 1 && s.Instances[0].State == "running"
	})
	t.Logf("seconds from group start to the first check-in: %.0f", time.Since(start).Seconds())

	rec, found, err := store.GetInstance(ctx, first)
	if err != nil || !found || rec.CheckedInAt == nil || rec.Address == "" {
		t.Errorf("MySQL record of %s after check-in: %+v (found %v, %v); want a check-in time and an address", first, rec, found, err)
	}
	if !waitUntil(time.Minute, func() bool { return m.has("/marker/" + first + "/1/10.0.2.20") }) {
		t.Errorf("the user's cloud-config of %s did not run with its static address: no marker POST (got %v)", first, m.seen)
	}
	checkGuestAddress(t, m, first, "10.0.2.20/24")

	// The guest's busy loop must show in the collector's cpu_percent for the group.
	mc, err := influxdb.New(ac.Config.Controller.Databases.Timeseries.InfluxOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	var cpu influxdb.GroupMetric
	if !waitUntil(90*time.Second, func() bool {
		cpu, err = mc.GroupMean(ctx, group, "cpu_percent", 20*time.Second, nil)
		return err == nil && cpu.Instances == 1 && cpu.Value > 50
	}) {
		t.Errorf("cpu_percent of the group under load: %+v (%v); want above 50 from 1 instance", cpu, err)
	}

	// Scale to 2: a second VM boots and checks in.
	if r := run(t, 30*time.Second, "group", "scale", group, "--min", "2", "--desired", "2", "-c", ac.Path); r.code != 0 {
		t.Fatalf("scale to 2: exit %d\n%s", r.code, r.stderr)
	}
	second := group + "-2"
	waitStatusFor(t, ac.Path, group, 8*time.Minute, func(s statusJSON) bool {
		return len(s.Instances) == 2 && s.Instances[0].State == "running" && s.Instances[1].State == "running"
	})
	if !waitUntil(time.Minute, func() bool { return m.has("/marker/" + second + "/2/10.0.2.21") }) {
		t.Errorf("no marker from %s", second)
	}
	checkGuestAddress(t, m, second, "10.0.2.21/24")

	// Back to 1: the newest is shut down and removed with its disks.
	if r := run(t, 30*time.Second, "group", "scale", group, "--min", "1", "--desired", "1", "-c", ac.Path); r.code != 0 {
		t.Fatalf("scale to 1: exit %d\n%s", r.code, r.stderr)
	}
	waitStatusFor(t, ac.Path, group, 3*time.Minute, func(s statusJSON) bool {
		return len(s.Instances) == 1 && s.Instances[0].Name == first
	})
	if _, found, err := conn.LookupDomain(ctx, second); err != nil || found {
		t.Errorf("domain %s after retirement: found %v (%v)", second, found, err)
	}
	for _, vol := range []string{activities.OverlayVolumeName(second), activities.SeedVolumeName(second)} {
		if ok, err := conn.VolumeExists(ctx, pool, vol); err != nil || ok {
			t.Errorf("volume %s after retirement: exists %v (%v)", vol, ok, err)
		}
	}
	if rec, _, err := store.GetInstance(ctx, second); err != nil || rec.State != spec.StateTerminated || rec.TerminatedAt == nil {
		t.Errorf("MySQL record of %s: %+v (%v); want terminated with a time", second, rec, err)
	}

	if r := run(t, 5*time.Minute, "group", "delete", group, "-c", ac.Path); r.code != 0 {
		t.Errorf("delete: exit %d\n%s", r.code, r.stderr)
	}
	if _, found, _ := conn.LookupDomain(ctx, first); found {
		t.Errorf("domain %s still defined after delete", first)
	}
}

// startMarkers serves the guests' marker POSTs on 127.0.0.1 until the test ends.
func startMarkers(t *testing.T) (*markers, int) {
	t.Helper()
	m := &markers{seen: map[string]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: m, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return m, ln.Addr().(*net.TCPAddr).Port
}

// checkGuestAddress asserts what the guest said `ip -4 addr` shows: the address the group's
// static pool gave it, with the subnet's prefix length.
func checkGuestAddress(t *testing.T, m *markers, instance, want string) {
	t.Helper()
	var got string
	if !waitUntil(time.Minute, func() bool { var ok bool; got, ok = m.body("/addr/" + instance); return ok }) {
		t.Errorf("%s did not report its addresses", instance)
		return
	}
	if !strings.Contains(got, "inet "+want+" ") {
		t.Errorf("%s configured %q, want inet %s", instance, got, want)
	}
}

func waitUntil(timeout time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ok() {
			return true
		}
		time.Sleep(time.Second)
	}
	return ok()
}

// removeLeftovers removes whatever a failed run left on qemu:///system, so a broken test does
// not leave VMs burning the machine's two cores.
func removeLeftovers(t *testing.T, conn *libvirt.Conn, pool, group string) {
	ctx := context.Background()
	doms, err := conn.ListGroupDomains(ctx, group)
	if err != nil {
		t.Logf("cleanup: list domains: %v", err)
		return
	}
	for _, d := range doms {
		if _, err := conn.RemoveDomain(ctx, d.Name, 0); err != nil {
			t.Logf("cleanup: remove %s: %v", d.Name, err)
		}
		for _, vol := range []string{activities.OverlayVolumeName(d.Name), activities.SeedVolumeName(d.Name)} {
			_, _ = conn.DeleteVolume(ctx, pool, vol)
		}
	}
}

// TestRealVMsAcrossTwoHosts runs one group of real VMs over two hosts with a worker each:
// qemu:///system and the qemu:///session of a private libvirtd run as an unprivileged user.
// The session host's pool starts empty: its worker copies the base image from the system host
// before its first launch. Both guests boot, run the user's cloud-config and check in to the
// worker of their own host.
func TestRealVMsAcrossTwoHosts(t *testing.T) {
	ctx := context.Background()
	sys, pool, volume := systemWithGuestImage(t)
	daemon := testservices.StartLibvirtd(t, testservices.LibvirtdOptions{})
	session := &fleetHost{name: testservices.UniqueName(t, "ses"), daemon: daemon, uri: daemon.SessionURI()}
	session.virsh(t, "pool-define-as", pool, "dir", "--target", filepath.Join(daemon.Dir(), "home", "pool"))
	session.virsh(t, "pool-build", pool)
	session.virsh(t, "pool-start", pool)
	ses, err := libvirt.Dial(ctx, session.uri, libvirt.Options{CallTimeout: time.Minute})
	if err != nil {
		t.Fatalf("connect to the session host: %v", err)
	}
	t.Cleanup(func() { ses.Close() })

	m, markerPort := startMarkers(t)

	group := testservices.UniqueName(t, "vm2")
	system := testservices.UniqueName(t, "sys")
	hosts := []testservices.HostEntry{{Name: system, URI: "qemu:///system"}, {Name: session.name, URI: session.uri}}
	body := fmt.Sprintf(`
        image: %[1]s
        domain: {vcpus: 1, memory: 512, type: qemu, network: user, kernel: %[2]s, initrd: %[3]s, cmdline: %[4]q}
        cloud-init:
          inline: |
            #cloud-config
            runcmd:
              - [curl, -fsS, -m, "20", -X, POST, "http://10.0.2.2:%[5]d/marker/{{.Name}}"]
        hosts: [%[6]s, %[7]s]
        networking: {type: dynamic}
        health: {bootTimeout: 8m, heartbeatInterval: 15s, heartbeatTimeout: 3m, shutdownGrace: 20s}
        scaling: {minNodes: 2, maxNodes: 2, increment: 2, maxConcurrentLaunches: 2, resourceTarget: {cpu: 100}}`,
		guest.image, guest.kernel, guest.initrd, guest.cmdline, markerPort, system, session.name)
	mysql, influx := testservices.MySQL(t), testservices.Influx(t)
	queue := "tq-" + testservices.UniqueName(t, "q")
	var configs []string
	for _, serve := range []string{system, session.name} {
		port := testservices.FreePort(t)
		ac := testservices.WriteAgentConfigFor(t, testservices.AgentOptions{
			Group: group, GroupBody: body, Hosts: hosts, Serve: []string{serve}, TaskQueue: queue,
			State: &mysql, Timeseries: &influx,
			// Under user-mode networking a guest reaches the host's 127.0.0.1 as 10.0.2.2.
			CheckinPort: port, CheckinURL: fmt.Sprintf("http://10.0.2.2:%d", port),
		})
		configs = append(configs, ac.Path)
	}
	t.Cleanup(func() {
		removeLeftovers(t, sys, pool, group)
		removeLeftovers(t, ses, pool, group)
	})

	start := time.Now()
	for _, c := range configs {
		stop := startWorker(t, c)
		defer stop()
	}
	s := waitIntent(t, configs[0], group, 10*time.Minute, "2 VMs checked in", func(s intentStatus) bool { return s.allRunning(2) })
	t.Logf("measured: seconds from the workers' start to both check-ins, with the base image copied onto the session host first: %.0f", time.Since(start).Seconds())
	store, err := state.Open(ctx, mysql)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	onHost := map[string]string{}
	for _, in := range s.Instances {
		rec, found, err := store.GetInstance(ctx, in.Name)
		if err != nil || !found || rec.CheckedInAt == nil {
			t.Errorf("MySQL record of %s: %+v (found %v, %v); want a check-in", in.Name, rec, found, err)
		}
		onHost[rec.Host] = in.Name
		if !waitUntil(time.Minute, func() bool { return m.has("/marker/" + in.Name) }) {
			t.Errorf("the user's cloud-config of %s did not run: no marker", in.Name)
		}
	}
	if onHost[system] == "" || onHost[session.name] == "" {
		t.Errorf("instances by host: %v; want one on %s and one on %s", onHost, system, session.name)
	}
	if rec, ok, err := store.GetHostImage(ctx, session.name, pool, volume); err != nil || !ok || rec.State != "ready" || rec.Source != "host "+system {
		t.Errorf("the session host's copy of %s: %+v (found %v, %v); want ready, copied from host %s", guest.image, rec, ok, err, system)
	}
	if r := run(t, 5*time.Minute, "group", "delete", group, "-c", configs[0]); r.code != 0 {
		t.Errorf("delete: exit %d\n%s", r.code, r.stderr)
	}
	for name, conn := range map[string]*libvirt.Conn{system: sys, session.name: ses} {
		if doms, err := conn.ListGroupDomains(ctx, group); err != nil || len(doms) != 0 {
			t.Errorf("domains of %s left on %s after delete: %v (%v)", group, name, doms, err)
		}
	}
}

// systemWithGuestImage connects to qemu:///system, closed when the test ends, and checks that
// testenv's guest image is loaded there; it returns the image's pool and volume.
func systemWithGuestImage(t *testing.T) (conn *libvirt.Conn, pool, volume string) {
	t.Helper()
	ctx := context.Background()
	conn, err := libvirt.Dial(ctx, "qemu:///system", libvirt.Options{CallTimeout: time.Minute})
	if err != nil {
		t.Fatalf("connect to qemu:///system: %v (run testenv/up)", err)
	}
	t.Cleanup(func() { conn.Close() })
	pool, volume, _ = strings.Cut(guest.image, "/")
	if ok, err := conn.VolumeExists(ctx, pool, volume); err != nil || !ok {
		t.Fatalf("guest image %s is not loaded (%v): run testenv/guest-image", guest.image, err)
	}
	return conn, pool, volume
}
