package libvirt

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"

	"github.com/premiscale/premiscale/internal/spec"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func TestDomainXMLGolden(t *testing.T) {
	tests := []struct {
		name  string
		spec  DomainSpec
		paths []string
	}{
		{
			name: "plain",
			spec: DomainSpec{
				Name:   "web-3",
				Group:  "web",
				Disks:  []DiskSpec{{Pool: "default", Volume: "web-3.qcow2", Format: "qcow2"}},
				Domain: spec.Domain{Type: "kvm", VCPUs: 2, Memory: 1024},
			},
			paths: []string{"/var/lib/libvirt/images/web-3.qcow2"},
		},
		{
			name: "kernel_boot",
			spec: DomainSpec{
				Name:   "api-12",
				Group:  "api",
				Disks:  []DiskSpec{{Pool: "default", Volume: "api-12.qcow2", Format: "qcow2"}},
				Domain: spec.Domain{Type: "qemu", VCPUs: 1, Memory: 512, Arch: "x86_64", Machine: "q35", Kernel: "/var/lib/premiscale/vmlinuz", Initrd: "/var/lib/premiscale/initrd.img", Cmdline: "root=/dev/vda console=ttyS0 ds=nocloud"},
			},
			paths: []string{"/var/lib/libvirt/images/api-12.qcow2"},
		},
		{
			name: "user_net_cdrom",
			spec: DomainSpec{
				Name:  "batch-1",
				Group: "batch",
				Disks: []DiskSpec{
					{Pool: "default", Volume: "batch-1.qcow2", Format: "qcow2"},
					{Pool: "default", Volume: "batch-1-seed.iso", Device: "cdrom"},
					{Pool: "default", Volume: "scratch.raw", Target: "vdc", ReadOnly: true},
				},
				Domain: spec.Domain{Type: "qemu", VCPUs: 1, Memory: 768, Network: "user"},
			},
			paths: []string{
				"/var/lib/libvirt/images/batch-1.qcow2",
				"/var/lib/libvirt/images/batch-1-seed.iso",
				"/var/lib/libvirt/images/scratch.raw",
			},
		},
		{
			name: "network_escaping",
			spec: DomainSpec{
				Name:   `odd-1`,
				Group:  `a"b<c&d`,
				Domain: spec.Domain{VCPUs: 1, Memory: 256, Network: "default"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DomainXML(tt.spec, tt.paths)
			if err != nil {
				t.Fatalf("DomainXML: %v", err)
			}
			checkGolden(t, tt.name, got)

			// The XML must read back as the same domain, metadata included.
			var dom libvirtxml.Domain
			if err := dom.Unmarshal(got); err != nil {
				t.Fatalf("parse rendered XML: %v", err)
			}
			if dom.Name != tt.spec.Name {
				t.Errorf("name = %q, want %q", dom.Name, tt.spec.Name)
			}
			if dom.Metadata == nil {
				t.Fatal("no <metadata> element")
			}
			if !strings.Contains(dom.Metadata.XML, MetadataNamespace) {
				t.Errorf("metadata %q lacks namespace %s", dom.Metadata.XML, MetadataNamespace)
			}
			meta, err := parseMetadata(dom.Metadata.XML)
			if err != nil {
				t.Fatalf("parse metadata: %v", err)
			}
			if meta.Group != tt.spec.Group || meta.Name != tt.spec.Name {
				t.Errorf("metadata = %+v, want group %q name %q", meta, tt.spec.Group, tt.spec.Name)
			}
			if len(dom.Devices.Disks) != len(tt.spec.Disks) {
				t.Fatalf("%d disks, want %d", len(dom.Devices.Disks), len(tt.spec.Disks))
			}
			for i, d := range dom.Devices.Disks {
				if d.Source == nil || d.Source.File == nil || d.Source.File.File != tt.paths[i] {
					t.Errorf("disk %d source = %+v, want file %s", i, d.Source, tt.paths[i])
				}
			}
			if len(dom.Devices.Serials) != 1 || len(dom.Devices.Consoles) != 1 {
				t.Errorf("want one serial and one console, got %d and %d", len(dom.Devices.Serials), len(dom.Devices.Consoles))
			}
		})
	}
}

func TestParseMetadataAsLibvirtReturnsIt(t *testing.T) {
	// DomainGetMetadata hands the element back without its prefix or namespace.
	tests := []struct {
		doc       string
		wantGroup string
		wantErr   bool
	}{
		{doc: `<instance group="web" name="web-3"/>`, wantGroup: "web"},
		{doc: `<premiscale:instance xmlns:premiscale="` + MetadataNamespace + `" group="db" name="db-1"/>`, wantGroup: "db"},
		{doc: `<other:instance xmlns:other="https://example.com/x" group="no" name="no"/>`, wantErr: true},
		{doc: `<something/>`, wantErr: true},
		{doc: `not xml`, wantErr: true},
	}
	for _, tt := range tests {
		m, err := parseMetadata(tt.doc)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseMetadata(%q) error = %v, wantErr %v", tt.doc, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && m.Group != tt.wantGroup {
			t.Errorf("parseMetadata(%q) group = %q, want %q", tt.doc, m.Group, tt.wantGroup)
		}
	}
}

func TestDomainXMLRejectsBadSpecs(t *testing.T) {
	ok := DomainSpec{Name: "g-1", Group: "g", Domain: spec.Domain{VCPUs: 1, Memory: 128}}
	tests := []struct {
		name   string
		mutate func(*DomainSpec)
		paths  []string
		want   string
	}{
		{"no name", func(s *DomainSpec) { s.Name = "" }, nil, "empty name"},
		{"no group", func(s *DomainSpec) { s.Group = "" }, nil, "empty group"},
		{"no vcpus", func(s *DomainSpec) { s.VCPUs = 0 }, nil, "vcpus"},
		{"no memory", func(s *DomainSpec) { s.Memory = -1 }, nil, "memory"},
		{"cmdline without kernel", func(s *DomainSpec) { s.Cmdline = "x" }, nil, "without a kernel"},
		{"path count", func(s *DomainSpec) { s.Disks = []DiskSpec{{Pool: "p", Volume: "v"}} }, nil, "disk paths"},
		{"bad device", func(s *DomainSpec) { s.Disks = []DiskSpec{{Pool: "p", Volume: "v", Device: "floppy"}} }, []string{"/x"}, "floppy"},
		{"duplicate target", func(s *DomainSpec) {
			s.Disks = []DiskSpec{{Pool: "p", Volume: "v", Target: "vda"}, {Pool: "p", Volume: "w", Target: "vda"}}
		}, []string{"/x", "/y"}, "used twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := ok
			tt.mutate(&spec)
			_, err := DomainXML(spec, tt.paths)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("DomainXML error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// checkGolden compares rendered XML with testdata/<name>.golden, rewriting it under -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file (run go test -run %s -update to create it): %v", t.Name(), err)
	}
	if got != string(want) {
		t.Errorf("rendered XML differs from %s (rerun with -update if intended)\n--- got ---\n%s\n--- want ---\n%s", golden, got, want)
	}
}
