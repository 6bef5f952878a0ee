package activities

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.temporal.io/sdk/testsuite"
	"gopkg.in/yaml.v3"
	"libvirt.org/go/libvirtxml"

	"github.com/premiscale/premiscale/internal/cloudinit"
	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
)

// documentedEnv holds every variable the documented configurations read.
var documentedEnv = map[string]string{
	"PREMISCALE_MYSQL_USER": "premiscale", "PREMISCALE_MYSQL_PASSWORD": "secret",
	"MYSQL_USER": "premiscale", "MYSQL_PASSWORD": "secret",
	"INFLUX_USER": "premiscale", "INFLUX_PASSWORD": "secret",
	"PREMISCALE_CHECKIN_SECRET": strings.Repeat("s", 32),
}

// documentedGroup is one group of a documented configuration, loaded the way a user's is.
type documentedGroup struct {
	source string
	ctl    *config.Controller
	name   string
	group  config.Group
}

// TestEveryDocumentedGroupLaunches takes every group of every deploy/examples/*.yaml, the
// README's complete example group and the README's configuration reference through the path a
// user's group takes — the config loader, the one conversion to a spec, the launch activity's
// seed rendering and domain definition — and renders the domain XML libvirt would get. A
// documented option that validates but cannot launch fails here, not at a user's first scale-out.
func TestEveryDocumentedGroupLaunches(t *testing.T) {
	for name, value := range documentedEnv {
		t.Setenv(name, value)
	}
	groups := documentedGroups(t)
	if len(groups) < 4 {
		t.Fatalf("found %d documented groups; the examples or the README moved?", len(groups))
	}
	for _, dg := range groups {
		t.Run(dg.source+"/"+dg.name, func(t *testing.T) {
			gs, err := dg.ctl.GroupSpec(dg.name, dg.group)
			if err != nil {
				t.Fatalf("spec: %v", err)
			}
			launchDocumented(t, gs)
		})
	}
}

// launchDocumented runs CreateInstance for the group's first instance against a recording
// hypervisor and checks the seed and the domain XML.
func launchDocumented(t *testing.T, gs spec.Group) {
	t.Helper()
	name := gs.Name + "-1"
	p := CreateInstanceParams{Name: name, Group: gs.Name, Index: 1, InstanceID: name + "-run", Launch: gs.Launch}
	if gs.Launch.Networking.Type == spec.NetworkStatic {
		if len(gs.StaticAddresses) == 0 {
			t.Fatal("static networking without addresses")
		}
		p.Address = gs.StaticAddresses[0].String()
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	hv := &fakeHypervisor{uploads: map[string][]byte{}}
	h := &HostActivities{
		Host: gs.Hosts[0], Hyper: hv, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		CheckinURL: func(instance string) string { return "http://10.0.2.2:8090/checkin/" + instance + "/token" },
	}
	env.RegisterActivity(h)
	if _, err := env.ExecuteActivity(h.CreateInstance, p); err != nil {
		t.Fatalf("launch: %v", err)
	}

	if seed, ok := hv.uploads[SeedVolumeName(name)]; ok {
		label, files, err := cloudinit.ReadISO(seed)
		if err != nil || label != "cidata" {
			t.Fatalf("seed ISO: label %q, %v", label, err)
		}
		checkSeedNetwork(t, gs, p.Address, files["network-config"])
	} else if gs.Launch.CloudInit != "" || gs.Launch.Health.Checkin {
		t.Fatal("no seed was uploaded")
	}

	paths := make([]string, len(hv.spec.Disks))
	for i, d := range hv.spec.Disks {
		paths[i] = "/var/lib/libvirt/images/" + d.Volume
	}
	var doc string
	var err error
	if hv.spec.Template != "" {
		doc, err = libvirt.TemplateDomainXML(templateDomain, hv.spec, paths)
	} else {
		doc, err = libvirt.DomainXML(hv.spec, paths)
	}
	if err != nil {
		t.Fatalf("domain XML: %v", err)
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(doc); err != nil {
		t.Fatalf("domain XML does not parse: %v\n%s", err, doc)
	}
	if dom.Name != name || len(dom.Devices.Disks) != len(paths) {
		t.Errorf("domain %q with %d disks, want %s with %d", dom.Name, len(dom.Devices.Disks), name, len(paths))
	}
	if hv.spec.MAC != "" && (len(dom.Devices.Interfaces) != 1 || dom.Devices.Interfaces[0].MAC == nil ||
		!strings.EqualFold(dom.Devices.Interfaces[0].MAC.Address, hv.spec.MAC)) {
		t.Errorf("domain interfaces %+v, want one with the seed's MAC %s", dom.Devices.Interfaces, hv.spec.MAC)
	}
}

// checkSeedNetwork asserts a static instance's network-config holds its address with the
// subnet's prefix length and the gateway.
func checkSeedNetwork(t *testing.T, gs spec.Group, address string, netConfig []byte) {
	t.Helper()
	n := gs.Launch.Networking
	if n.Type != spec.NetworkStatic {
		return
	}
	var nc struct {
		Ethernets map[string]struct {
			Addresses []string `yaml:"addresses"`
			Gateway4  string   `yaml:"gateway4"`
		} `yaml:"ethernets"`
	}
	if err := yaml.Unmarshal(netConfig, &nc); err != nil {
		t.Fatalf("network-config: %v\n%s", err, netConfig)
	}
	want := fmt.Sprintf("%s/%d", address, n.Subnet.Bits())
	for _, eth := range nc.Ethernets {
		if len(eth.Addresses) == 1 && eth.Addresses[0] == want && eth.Gateway4 == n.Gateway.String() {
			return
		}
	}
	t.Errorf("network-config lacks address %s with gateway %s:\n%s", want, n.Gateway, netConfig)
}

// templateDomain stands in for an operator's template domain when a documented group clones one.
const templateDomain = `<domain type="kvm"><name>template</name><memory unit="KiB">1048576</memory><vcpu>1</vcpu>
<os><type arch="x86_64" machine="pc">hvm</type></os>
<devices><disk type="file" device="disk"><driver name="qemu" type="qcow2"/><source file="/t.qcow2"/><target dev="vda" bus="virtio"/></disk>
<interface type="network"><mac address="52:54:00:00:00:01"/><source network="default"/><model type="virtio"/></interface></devices></domain>`

// documentedGroups loads every configuration and group file the project documents.
func documentedGroups(t *testing.T) []documentedGroup {
	t.Helper()
	examples := filepath.Join("..", "deploy", "examples")
	files, err := filepath.Glob(filepath.Join(examples, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []documentedGroup
	configs := map[string]*config.Config{}
	var groupFiles []string
	for _, f := range files {
		if isGroupFile(t, f) {
			groupFiles = append(groupFiles, f)
			continue
		}
		if strings.HasSuffix(f, "cloud-config.yaml") {
			continue
		}
		cfg, err := config.Load(f)
		if err != nil {
			t.Fatalf("load %s: %v", f, err)
		}
		configs[filepath.Base(f)] = cfg
		out = append(out, configGroups(filepath.Base(f), cfg)...)
	}
	production := configs["production.yaml"]
	if production == nil {
		t.Fatal("deploy/examples/production.yaml did not load")
	}
	for _, f := range groupFiles {
		out = append(out, fileGroups(t, filepath.Base(f), f, production)...)
	}

	// The README's documents refer to web-cloud-config.yaml beside them.
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cloudConfig, err := os.ReadFile(filepath.Join(examples, "web-cloud-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "web-cloud-config.yaml"), cloudConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	reference := yamlBlockAfter(t, readme, "## Configuration (v1alpha1)")
	refPath := filepath.Join(dir, "reference.yaml")
	if err := os.WriteFile(refPath, []byte(reference), 0o600); err != nil {
		t.Fatal(err)
	}
	refCfg, err := config.Load(refPath)
	if err != nil {
		t.Fatalf("the README's configuration reference does not load: %v\n%s", err, reference)
	}
	out = append(out, configGroups("README configuration reference", refCfg)...)

	example := "version: v1alpha1\ngroups:\n" + indent(yamlBlockAfter(t, readme, "A complete example group:"))
	examplePath := filepath.Join(dir, "example-group.yaml")
	if err := os.WriteFile(examplePath, []byte(example), 0o600); err != nil {
		t.Fatal(err)
	}
	out = append(out, fileGroups(t, "README complete example", examplePath, production)...)
	return out
}

func configGroups(source string, cfg *config.Config) []documentedGroup {
	var out []documentedGroup
	for _, name := range slices.Sorted(maps.Keys(cfg.Controller.Autoscale.Groups)) {
		out = append(out, documentedGroup{source: source, ctl: &cfg.Controller, name: name, group: cfg.Controller.Autoscale.Groups[name]})
	}
	return out
}

func fileGroups(t *testing.T, source, path string, cfg *config.Config) []documentedGroup {
	t.Helper()
	groups, err := config.LoadGroupFile(path, cfg)
	if err != nil {
		t.Fatalf("load group file %s: %v", source, err)
	}
	var out []documentedGroup
	for _, name := range slices.Sorted(maps.Keys(groups)) {
		out = append(out, documentedGroup{source: source, ctl: &cfg.Controller, name: name, group: groups[name]})
	}
	return out
}

func isGroupFile(t *testing.T, path string) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(`(?m)^groups:`).Match(b)
}

// yamlBlockAfter returns the first ```yaml block after marker in a Markdown document.
func yamlBlockAfter(t *testing.T, doc []byte, marker string) string {
	t.Helper()
	i := bytes.Index(doc, []byte(marker))
	if i < 0 {
		t.Fatalf("README has no %q", marker)
	}
	rest := doc[i:]
	start := bytes.Index(rest, []byte("```yaml\n"))
	if start < 0 {
		t.Fatalf("no yaml block after %q", marker)
	}
	rest = rest[start+len("```yaml\n"):]
	end := bytes.Index(rest, []byte("\n```"))
	if end < 0 {
		t.Fatalf("unterminated yaml block after %q", marker)
	}
	return string(rest[:end+1])
}

// indent re-indents a group written at any depth (the README's example is shown nested) to
// sit under a group file's groups: key.
func indent(block string) string {
	lines := strings.Split(strings.TrimRight(block, "\n"), "\n")
	minIndent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " "))
		if minIndent < 0 || n < minIndent {
			minIndent = n
		}
	}
	var b strings.Builder
	for _, l := range lines {
		if len(l) >= minIndent {
			l = l[minIndent:]
		}
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}
