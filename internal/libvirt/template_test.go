package libvirt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/premiscale/premiscale/internal/spec"
)

// instanceDisks are the disks CreateInstance gives an instance: its overlay
// and its cloud-init seed.
func instanceDisks(name string) ([]DiskSpec, []string) {
	return []DiskSpec{
			{Pool: "default", Volume: name + ".qcow2", Target: "vda", Format: "qcow2"},
			{Pool: "default", Volume: name + "-seed.img", Target: "vdb", Format: "raw", ReadOnly: true},
		}, []string{
			"/var/lib/libvirt/images/" + name + ".qcow2",
			"/var/lib/libvirt/images/" + name + "-seed.img",
		}
}

func TestTemplateDomainXMLGolden(t *testing.T) {
	disks, paths := instanceDisks("web-7")
	cdromDisks := []DiskSpec{disks[0], {Pool: "default", Volume: "web-7-seed.iso", Device: "cdrom"}}
	tests := []struct {
		name     string
		template string // testdata/<template>.xml
		spec     DomainSpec
		paths    []string
		// What the clone must have.
		wantType      string
		wantVCPUs     uint
		wantMemory    libvirtxml.DomainMemory
		wantKernel    string
		wantCmdline   string
		wantForeign   []string // foreign metadata kept
		wantMACs      []string // per interface; "" = none (libvirt picks)
		wantBootOrder uint     // of the first disk
		wantTopology  *libvirtxml.DomainCPUTopology
		wantSCSI      bool
	}{
		{
			name:     "template_clone",
			template: "template_full",
			spec: DomainSpec{
				Name:     "web-7",
				Group:    "web",
				Template: "ubuntu-golden",
				Disks:    disks,
				MAC:      "52:54:00:aa:bb:cc",
				// Ignored with a template: it defines machine and networking.,
				Domain: spec.Domain{Arch: "aarch64", Machine: "virt", Network: "other"},
			},
			paths:        paths,
			wantType:     "kvm",
			wantVCPUs:    4,
			wantMemory:   libvirtxml.DomainMemory{Value: 4194304, Unit: "KiB"},
			wantForeign:  []string{"http://libosinfo.org/xmlns/libvirt/domain/1.0"},
			wantMACs:     []string{"52:54:00:aa:bb:cc"},
			wantTopology: &libvirtxml.DomainCPUTopology{Sockets: 1, Dies: 1, Cores: 2, Threads: 2},
		},
		{
			name:     "template_overrides",
			template: "template_full",
			spec: DomainSpec{
				Name:     "web-8",
				Group:    "web",
				Template: "ubuntu-golden",
				Disks:    disks,
				Domain:   spec.Domain{Type: "qemu", VCPUs: 6, Memory: 2048, Kernel: "/var/lib/premiscale/vmlinuz", Initrd: "/var/lib/premiscale/initrd.img", Cmdline: "root=/dev/vda1 console=ttyS0"},
			},
			paths:        paths,
			wantType:     "qemu",
			wantVCPUs:    6,
			wantMemory:   libvirtxml.DomainMemory{Value: 2048, Unit: "MiB"},
			wantKernel:   "/var/lib/premiscale/vmlinuz",
			wantCmdline:  "root=/dev/vda1 console=ttyS0",
			wantForeign:  []string{"http://libosinfo.org/xmlns/libvirt/domain/1.0"},
			wantMACs:     []string{""},
			wantTopology: &libvirtxml.DomainCPUTopology{Sockets: 6, Dies: 1, Cores: 1, Threads: 1},
		},
		{
			// A template that is itself an instance, boots by device order, has
			// three interfaces, fixed spice/vnc/websocket ports and a static label.
			name:     "template_instance",
			template: "template_instance",
			spec: DomainSpec{
				Name:     "web-9",
				Group:    "web",
				Template: "web-1",
				Disks:    cdromDisks,
				MAC:      "52:54:00:12:34:56",
				Domain:   spec.Domain{VCPUs: 4},
			},
			paths:         []string{paths[0], "/var/lib/libvirt/images/web-7-seed.iso"},
			wantType:      "qemu",
			wantVCPUs:     4,
			wantMemory:    libvirtxml.DomainMemory{Value: 1048576, Unit: "KiB"},
			wantForeign:   []string{"https://acme.example/xmlns/1"},
			wantMACs:      []string{"52:54:00:12:34:56", "", ""},
			wantBootOrder: 2,
			wantTopology:  &libvirtxml.DomainCPUTopology{Sockets: 2, Cores: 2, Threads: 1},
			wantSCSI:      true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmplDoc, err := os.ReadFile(filepath.Join("testdata", tt.template+".xml"))
			if err != nil {
				t.Fatal(err)
			}
			var tmpl libvirtxml.Domain
			if err := tmpl.Unmarshal(string(tmplDoc)); err != nil {
				t.Fatalf("parse template: %v", err)
			}
			got, err := TemplateDomainXML(string(tmplDoc), tt.spec, tt.paths)
			if err != nil {
				t.Fatalf("TemplateDomainXML: %v", err)
			}
			checkGolden(t, tt.name, got)

			var dom libvirtxml.Domain
			if err := dom.Unmarshal(got); err != nil {
				t.Fatalf("parse rendered XML: %v", err)
			}
			if dom.Name != tt.spec.Name {
				t.Errorf("name = %q, want %q", dom.Name, tt.spec.Name)
			}
			if dom.UUID != "" || dom.HWUUID != "" {
				t.Errorf("uuid = %q, hwuuid = %q; want none (libvirt assigns)", dom.UUID, dom.HWUUID)
			}
			if dom.GenID != nil && dom.GenID.Value != "" {
				t.Errorf("genid = %q, want generated", dom.GenID.Value)
			}
			if strings.Contains(got, tmpl.UUID) {
				t.Errorf("template UUID %s still in the clone", tmpl.UUID)
			}
			if dom.Type != tt.wantType {
				t.Errorf("type = %q, want %q", dom.Type, tt.wantType)
			}
			if dom.VCPU == nil || dom.VCPU.Value != tt.wantVCPUs || dom.VCPU.Current != 0 {
				t.Errorf("vcpu = %+v, want %d all online", dom.VCPU, tt.wantVCPUs)
			}
			if dom.VCPUs != nil && len(dom.VCPUs.VCPU) != int(tt.wantVCPUs) {
				t.Errorf("<vcpus> lists %d vcpus, want %d", len(dom.VCPUs.VCPU), tt.wantVCPUs)
			}
			if dom.Memory == nil || *dom.Memory != tt.wantMemory {
				t.Errorf("memory = %+v, want %+v", dom.Memory, tt.wantMemory)
			}
			if tt.wantTopology != nil && (dom.CPU == nil || dom.CPU.Topology == nil || *dom.CPU.Topology != *tt.wantTopology) {
				t.Errorf("topology = %+v, want %+v", dom.CPU.Topology, tt.wantTopology)
			}
			if dom.OS.Kernel != tt.wantKernel || dom.OS.Cmdline != tt.wantCmdline {
				t.Errorf("kernel %q cmdline %q, want %q %q", dom.OS.Kernel, dom.OS.Cmdline, tt.wantKernel, tt.wantCmdline)
			}

			// Metadata: exactly one PremiScale element, ours, and the foreign ones kept.
			if dom.Metadata == nil {
				t.Fatal("no <metadata>")
			}
			meta, err := parseMetadata(dom.Metadata.XML)
			if err != nil {
				t.Fatalf("parse metadata: %v", err)
			}
			if meta.Group != tt.spec.Group || meta.Name != tt.spec.Name {
				t.Errorf("metadata = %+v, want group %q name %q", meta, tt.spec.Group, tt.spec.Name)
			}
			if n := strings.Count(dom.Metadata.XML, MetadataNamespace); n != 1 {
				t.Errorf("PremiScale namespace appears %d times in metadata %q, want once", n, dom.Metadata.XML)
			}
			for _, ns := range tt.wantForeign {
				if !strings.Contains(dom.Metadata.XML, ns) {
					t.Errorf("foreign metadata %s lost: %q", ns, dom.Metadata.XML)
				}
			}

			// Disks: ours only.
			if len(dom.Devices.Disks) != len(tt.spec.Disks) {
				t.Fatalf("%d disks, want %d", len(dom.Devices.Disks), len(tt.spec.Disks))
			}
			for i, d := range dom.Devices.Disks {
				if d.Source == nil || d.Source.File == nil || d.Source.File.File != tt.paths[i] {
					t.Errorf("disk %d source = %+v, want file %s", i, d.Source, tt.paths[i])
				}
			}
			if first := dom.Devices.Disks[0]; tt.wantBootOrder == 0 && first.Boot != nil ||
				tt.wantBootOrder != 0 && (first.Boot == nil || first.Boot.Order != tt.wantBootOrder) {
				t.Errorf("first disk boot = %+v, want order %d", first.Boot, tt.wantBootOrder)
			}
			hasSCSI := false
			for _, c := range dom.Devices.Controllers {
				hasSCSI = hasSCSI || c.Type == "scsi"
			}
			if hasSCSI != tt.wantSCSI {
				t.Errorf("scsi controller present = %v, want %v", hasSCSI, tt.wantSCSI)
			}

			// Interfaces: same count, MACs replaced.
			if len(dom.Devices.Interfaces) != len(tt.wantMACs) {
				t.Fatalf("%d interfaces, want %d", len(dom.Devices.Interfaces), len(tt.wantMACs))
			}
			for i, iface := range dom.Devices.Interfaces {
				got := ""
				if iface.MAC != nil {
					got = iface.MAC.Address
				}
				if got != tt.wantMACs[i] {
					t.Errorf("interface %d MAC = %q, want %q", i, got, tt.wantMACs[i])
				}
				if iface.Target != nil && iface.Target.Managed != "no" {
					t.Errorf("interface %d keeps the template's tap name %q", i, iface.Target.Dev)
				}
			}

			// Nothing two domains cannot share.
			for _, g := range dom.Devices.Graphics {
				switch {
				case g.VNC != nil && (g.VNC.Port > 0 || g.VNC.AutoPort != "yes" || g.VNC.WebSocket > 0):
					t.Errorf("vnc keeps fixed ports: %+v", g.VNC)
				case g.Spice != nil && (g.Spice.Port > 0 || g.Spice.TLSPort > 0 || g.Spice.AutoPort != "yes"):
					t.Errorf("spice keeps fixed ports: %+v", g.Spice)
				}
			}
			for _, l := range dom.SecLabel {
				if l.Type == "static" || l.Label != "" {
					t.Errorf("fixed seclabel kept: %+v", l)
				}
			}
			if tmpl.OS.NVRam != nil {
				if dom.OS.NVRam == nil || dom.OS.NVRam.NVRam != "" || dom.OS.NVRam.Template != tmpl.OS.NVRam.Template {
					t.Errorf("nvram = %+v, want no path and the template's firmware template", dom.OS.NVRam)
				}
				if dom.OS.Loader == nil || dom.OS.Loader.Path != tmpl.OS.Loader.Path {
					t.Errorf("loader = %+v, want the template's", dom.OS.Loader)
				}
			}
			for _, si := range dom.SysInfo {
				if si.SMBIOS != nil && si.SMBIOS.System != nil {
					for _, e := range si.SMBIOS.System.Entry {
						if e.Name == "uuid" {
							t.Errorf("sysinfo keeps the template's uuid %q", e.Value)
						}
					}
				}
			}
		})
	}
}

func TestTemplateDomainXMLRejects(t *testing.T) {
	full, err := os.ReadFile(filepath.Join("testdata", "template_full.xml"))
	if err != nil {
		t.Fatal(err)
	}
	numa := `<domain type='kvm'><name>n</name><memory>1048576</memory><vcpu>2</vcpu>` +
		`<os><type>hvm</type></os><cpu><numa><cell id='0' cpus='0-1' memory='1048576' unit='KiB'/></numa></cpu></domain>`
	ok := DomainSpec{Name: "g-1", Group: "g", Template: "t"}
	tests := []struct {
		name    string
		doc     string
		mutate  func(*DomainSpec)
		paths   []string
		want    string
		invalid bool // wraps ErrInvalidSpec
	}{
		{"numa with vcpus", numa, func(s *DomainSpec) { s.VCPUs = 4 }, nil, "NUMA", true},
		{"numa with memory", numa, func(s *DomainSpec) { s.Memory = 512 }, nil, "NUMA", true},
		{"negative vcpus", string(full), func(s *DomainSpec) { s.VCPUs = -1 }, nil, "vcpus", true},
		{"negative memory", string(full), func(s *DomainSpec) { s.Memory = -1 }, nil, "memory", true},
		{"no group", string(full), func(s *DomainSpec) { s.Group = "" }, nil, "empty group", true},
		{"not xml", "<domain", func(*DomainSpec) {}, nil, "parse XML of template t", true},
		{"path count", string(full), func(s *DomainSpec) { s.Disks = []DiskSpec{{Pool: "p", Volume: "v"}} }, nil, "disk paths", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := ok
			tt.mutate(&spec)
			_, err := TemplateDomainXML(tt.doc, spec, tt.paths)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("TemplateDomainXML error = %v, want one containing %q", err, tt.want)
			}
			if errors.Is(err, ErrInvalidSpec) != tt.invalid {
				t.Errorf("errors.Is(err, ErrInvalidSpec) = %v, want %v", !tt.invalid, tt.invalid)
			}
		})
	}

	// NUMA alone is fine: the template's sizes are kept.
	if _, err := TemplateDomainXML(numa, ok, nil); err != nil {
		t.Errorf("NUMA template without overrides: %v", err)
	}
	// Zero sizes need a template; DomainXML refuses template specs.
	if _, err := DomainXML(DomainSpec{Name: "g-1", Group: "g"}, nil); err == nil {
		t.Error("DomainXML accepted zero vcpus without a template")
	}
	if _, err := DomainXML(DomainSpec{Name: "g-1", Group: "g", Template: "t", Domain: spec.Domain{VCPUs: 1, Memory: 64}}, nil); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("DomainXML with a template: err = %v, want ErrInvalidSpec", err)
	}
}

func TestReplaceMetadata(t *testing.T) {
	const ours = `<premiscale:instance xmlns:premiscale="` + MetadataNamespace + `" group="g" name="g-1"/>`
	tests := []struct {
		name, inner, want string
	}{
		{"empty", "", ours},
		{"whitespace", "\n  ", ours},
		{"foreign kept verbatim", "\n    <a:x xmlns:a=\"urn:a\"><a:y k='1'/></a:x>\n  ", ours + "\n" + `<a:x xmlns:a="urn:a"><a:y k='1'/></a:x>`},
		{
			"ours replaced, foreign around it kept",
			`<a:x xmlns:a="urn:a"/><p:instance xmlns:p="` + MetadataNamespace + `" group="old" name="old-1"></p:instance><b:z xmlns:b="urn:b">t</b:z>`,
			ours + "\n" + `<a:x xmlns:a="urn:a"/><b:z xmlns:b="urn:b">t</b:z>`,
		},
		{
			// Same local name, other namespace: not ours.
			"foreign instance element",
			`<o:instance xmlns:o="urn:other" group="x"/>`,
			ours + "\n" + `<o:instance xmlns:o="urn:other" group="x"/>`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := replaceMetadata(tt.inner, ours)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("replaceMetadata =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
	if _, err := replaceMetadata("<a:x xmlns:a='urn:a'>", ours); err == nil {
		t.Error("replaceMetadata accepted unbalanced XML")
	}
}

func TestFitTopology(t *testing.T) {
	tests := []struct {
		in   libvirtxml.DomainCPUTopology
		n    int
		want libvirtxml.DomainCPUTopology
	}{
		{libvirtxml.DomainCPUTopology{Sockets: 1, Cores: 2, Threads: 2}, 8, libvirtxml.DomainCPUTopology{Sockets: 2, Cores: 2, Threads: 2}},
		{libvirtxml.DomainCPUTopology{Sockets: 1, Dies: 1, Cores: 4, Threads: 1}, 6, libvirtxml.DomainCPUTopology{Sockets: 6, Dies: 1, Cores: 1, Threads: 1}},
		{libvirtxml.DomainCPUTopology{Sockets: 4, Cores: 1, Threads: 1}, 3, libvirtxml.DomainCPUTopology{Sockets: 3, Cores: 1, Threads: 1}},
	}
	for _, tt := range tests {
		got := tt.in
		fitTopology(&got, tt.n)
		if got != tt.want {
			t.Errorf("fitTopology(%+v, %d) = %+v, want %+v", tt.in, tt.n, got, tt.want)
		}
	}
}

// defineTemplateDomain defines a domain for instances to be cloned from, as a
// user would, and undefines it at cleanup. It returns the template's UUID.
func defineTemplateDomain(t *testing.T, c *Conn, name string) string {
	t.Helper()
	ctx := testCtx(t)
	doc := `<domain type='test'>
  <name>` + name + `</name>
  <metadata><acme:owner xmlns:acme="https://acme.example/xmlns/1">ops</acme:owner></metadata>
  <memory unit='MiB'>96</memory>
  <vcpu>3</vcpu>
  <os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>
  <devices>
    <disk type='file' device='disk'>
      <source file='/` + testPool + `/template-root.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <source file='/` + testPool + `/installer.iso'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:de:ad:01'/>
      <source network='default'/>
    </interface>
    <graphics type='vnc' port='5901' autoport='no'/>
  </devices>
</domain>`
	dom, err := call(ctx, c, "define template domain", func(l *golibvirt.Libvirt) (golibvirt.Domain, error) {
		return l.DomainDefineXML(doc)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = do(context.Background(), c, "undefine template domain", func(l *golibvirt.Libvirt) error {
			d, err := l.DomainLookupByName(name)
			if err != nil {
				return err
			}
			return l.DomainUndefine(d)
		})
	})
	return formatUUID(dom.UUID)
}

func formatUUID(u golibvirt.UUID) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	for i, v := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b.WriteByte('-')
		}
		b.WriteByte(hex[v>>4])
		b.WriteByte(hex[v&0xf])
	}
	return b.String()
}

func TestTemplateCloneOnTestDriver(t *testing.T) {
	c := dialTest(t, testURI)
	ctx := testCtx(t)
	group := uniqueName(t, "g")
	name := group + "-1"
	tmplName := group + "-template"
	overlay := name + ".qcow2"
	tmplUUID := defineTemplateDomain(t, c, tmplName)

	if _, err := c.EnsureVolume(ctx, testPool, overlay, 1<<20, "qcow2"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.DeleteVolume(context.Background(), testPool, overlay) })

	ds := DomainSpec{
		Name: name, Group: group, Template: tmplName,
		Disks: []DiskSpec{{Pool: testPool, Volume: overlay, Target: "vda"}},
		MAC:   InstanceMAC(name),
	}
	for i, want := range []bool{true, false} {
		created, err := c.EnsureDomainRunning(ctx, ds)
		if err != nil || created != want {
			t.Fatalf("EnsureDomainRunning #%d = %v, %v; want created=%v", i+1, created, err, want)
		}
		if i == 0 {
			t.Cleanup(func() { _, _ = c.RemoveDomain(context.Background(), name, 0) })
		}
	}

	d, found, err := c.LookupDomain(ctx, name)
	if err != nil || !found {
		t.Fatalf("LookupDomain = %v, %v", found, err)
	}
	want := Domain{Name: name, Group: group, State: StateRunning, VCPUs: 3, MemoryMiB: 96}
	if d != want {
		t.Errorf("LookupDomain = %+v, want %+v (sizes from the template)", d, want)
	}
	if list, err := c.ListGroupDomains(ctx, group); err != nil || len(list) != 1 || list[0].Name != name {
		t.Errorf("ListGroupDomains = %+v, %v; want only %s (the template is not an instance)", list, err, name)
	}

	xmlDoc, err := call(ctx, c, "get xml", func(l *golibvirt.Libvirt) (string, error) {
		dom, err := l.DomainLookupByName(name)
		if err != nil {
			return "", err
		}
		return l.DomainGetXMLDesc(dom, golibvirt.DomainXMLInactive)
	})
	if err != nil {
		t.Fatal(err)
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(xmlDoc); err != nil {
		t.Fatal(err)
	}
	if def.UUID == "" || def.UUID == tmplUUID {
		t.Errorf("clone uuid = %q, template's = %q; want a fresh one", def.UUID, tmplUUID)
	}
	if def.Type != "test" {
		t.Errorf("type = %q, want the template's (test)", def.Type)
	}
	if len(def.Devices.Disks) != 1 {
		t.Fatalf("clone has %d disks, want only the overlay:\n%s", len(def.Devices.Disks), xmlDoc)
	}
	if got := def.Devices.Disks[0]; got.Source.File.File != "/"+testPool+"/"+overlay || got.Driver.Type != "qcow2" {
		t.Errorf("disk = file %q format %q, want /%s/%s qcow2", got.Source.File.File, got.Driver.Type, testPool, overlay)
	}
	if len(def.Devices.Interfaces) != 1 || def.Devices.Interfaces[0].MAC == nil || def.Devices.Interfaces[0].MAC.Address != ds.MAC {
		t.Errorf("interfaces = %+v, want one with MAC %s", def.Devices.Interfaces, ds.MAC)
	}
	if def.Metadata == nil || !strings.Contains(def.Metadata.XML, "https://acme.example/xmlns/1") {
		t.Errorf("foreign metadata lost: %+v", def.Metadata)
	}
	if len(def.Devices.Graphics) != 1 || def.Devices.Graphics[0].VNC == nil || def.Devices.Graphics[0].VNC.AutoPort != "yes" {
		t.Errorf("graphics = %+v, want vnc with autoport", def.Devices.Graphics)
	}

	// A template that does not exist cannot appear by retrying.
	missing := group + "-no-such-template"
	bad := ds
	bad.Name, bad.Template = group+"-2", missing
	_, err = c.EnsureDomainRunning(ctx, bad)
	if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), testURI) {
		t.Errorf("EnsureDomainRunning with a missing template: err = %v, want ErrInvalidSpec naming %s and %s", err, missing, testURI)
	}
	if _, found, err := c.LookupDomain(ctx, bad.Name); err != nil || found {
		t.Errorf("LookupDomain %s = %v, %v; want nothing defined", bad.Name, found, err)
	}
}

// TestTemplateClonesOnQEMU starts two clones of one UEFI template at once on
// qemu:///system: libvirt must accept the clone XML (NVRAM without a path,
// autoport graphics) and the clones must not share a VNC port or an NVRAM
// file, which removal deletes.
func TestTemplateClonesOnQEMU(t *testing.T) {
	c := dialTest(t, qemuURI)
	ensureQEMUPool(t, c)
	ctx := testCtx(t)
	group := uniqueName(t, "g")
	tmplName := group + "-template"
	tmplNVRAM := "/var/lib/libvirt/qemu/nvram/" + tmplName + "_VARS.fd"
	// TCG rather than KVM: the test is about the XML, and TCG runs wherever QEMU does.
	doc := `<domain type='qemu'>
  <name>` + tmplName + `</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
    <nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>` + tmplNVRAM + `</nvram>
    <boot dev='hd'/>
  </os>
  <features><acpi/><apic/></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='` + qemuPoolPath + `/` + tmplName + `-root.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='user'>
      <mac address='52:54:00:de:ad:02'/>
      <model type='virtio'/>
    </interface>
    <graphics type='vnc' port='5901' autoport='no' listen='127.0.0.1'/>
  </devices>
  <seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>
</domain>`
	if err := do(ctx, c, "define template domain", func(l *golibvirt.Libvirt) error {
		_, err := l.DomainDefineXML(doc)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		err := do(context.Background(), c, "undefine template domain", func(l *golibvirt.Libvirt) error {
			d, err := l.DomainLookupByName(tmplName)
			if err != nil {
				return err
			}
			return l.DomainUndefineFlags(d, golibvirt.DomainUndefineNvram)
		})
		if err != nil {
			t.Errorf("clean up template %s: %v", tmplName, err)
		}
	})

	type clone struct{ name, overlay, nvram string }
	var clones []clone
	for i := 1; i <= 2; i++ {
		cl := clone{name: fmt.Sprintf("%s-%d", group, i)}
		cl.overlay = cl.name + ".qcow2"
		t.Cleanup(func() {
			_, _ = c.RemoveDomain(context.Background(), cl.name, 0)
			_, _ = c.DeleteVolume(context.Background(), qemuPool, cl.overlay)
		})
		if _, err := c.EnsureVolume(ctx, qemuPool, cl.overlay, 16<<20, "qcow2"); err != nil {
			t.Fatal(err)
		}
		ds := DomainSpec{
			Name: cl.name, Group: group, Template: tmplName,
			Disks: []DiskSpec{{Pool: qemuPool, Volume: cl.overlay, Target: "vda"}},
			MAC:   InstanceMAC(cl.name),
		}
		if created, err := c.EnsureDomainRunning(ctx, ds); err != nil || !created {
			t.Fatalf("EnsureDomainRunning %s = %v, %v", cl.name, created, err)
		}
		clones = append(clones, cl)
	}

	ports := map[int]string{}
	for i, cl := range clones {
		live := domainDef(t, c, cl.name, 0)
		inactive := domainDef(t, c, cl.name, golibvirt.DomainXMLInactive)
		if d, found, err := c.LookupDomain(ctx, cl.name); err != nil || !found || d.State != StateRunning || d.Group != group {
			t.Errorf("LookupDomain %s = %+v, %v, %v; want running in %s", cl.name, d, found, err, group)
		}
		if n := inactive.OS.NVRam; n == nil || n.NVRam == "" || n.NVRam == tmplNVRAM || !strings.Contains(n.NVRam, cl.name) {
			t.Errorf("clone %s nvram = %+v, want a file of its own", cl.name, n)
		} else {
			clones[i].nvram = n.NVRam
			if _, err := os.Stat(n.NVRam); err != nil {
				t.Errorf("clone %s nvram: %v", cl.name, err)
			}
		}
		if len(live.Devices.Graphics) != 1 || live.Devices.Graphics[0].VNC == nil {
			t.Fatalf("clone %s graphics = %+v, want one vnc", cl.name, live.Devices.Graphics)
		}
		port := live.Devices.Graphics[0].VNC.Port
		if other, taken := ports[port]; taken || port <= 0 {
			t.Errorf("clone %s vnc port %d (also used by %q)", cl.name, port, other)
		}
		ports[port] = cl.name
		if ifs := inactive.Devices.Interfaces; len(ifs) != 1 || ifs[0].MAC == nil || ifs[0].MAC.Address != InstanceMAC(cl.name) {
			t.Errorf("clone %s interfaces = %+v, want one with MAC %s", cl.name, ifs, InstanceMAC(cl.name))
		}
		if len(inactive.Devices.Disks) != 1 || inactive.Devices.Disks[0].Source.File.File != qemuPoolPath+"/"+cl.overlay {
			t.Errorf("clone %s disks = %+v, want only its overlay", cl.name, inactive.Devices.Disks)
		}
	}

	for _, cl := range clones {
		if existed, err := c.RemoveDomain(ctx, cl.name, 0); err != nil || !existed {
			t.Fatalf("RemoveDomain %s = %v, %v", cl.name, existed, err)
		}
		if cl.nvram == "" {
			continue
		}
		if _, err := os.Stat(cl.nvram); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("nvram %s of removed clone %s: stat err = %v, want it deleted", cl.nvram, cl.name, err)
		}
	}
}

// domainDef reads and parses the XML of the named domain.
func domainDef(t *testing.T, c *Conn, name string, flags golibvirt.DomainXMLFlags) libvirtxml.Domain {
	t.Helper()
	doc, err := call(testCtx(t), c, "get xml of "+name, func(l *golibvirt.Libvirt) (string, error) {
		dom, err := l.DomainLookupByName(name)
		if err != nil {
			return "", err
		}
		return l.DomainGetXMLDesc(dom, flags)
	})
	if err != nil {
		t.Fatal(err)
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(doc); err != nil {
		t.Fatal(err)
	}
	return def
}
