package libvirt

import (
	"bytes"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/premiscale/premiscale/internal/spec"
)

// MetadataNamespace is the XML namespace of PremiScale's element in a
// domain's <metadata>. It marks a domain as a PremiScale instance and names
// its group, which is how groups are found again after a restart.
const MetadataNamespace = "https://premiscale.com/xmlns/libvirt/instance/1"

// metadataPrefix is the namespace prefix libvirt stores the element under.
const metadataPrefix = "premiscale"

// DiskSpec is one disk of a domain, backed by a volume in a storage pool.
type DiskSpec struct {
	Pool, Volume string
	// Device is "disk" (the default) or "cdrom".
	Device string
	// Target is the guest device name (vda, vdb... for disks, sda... for
	// cdroms); empty picks the next free one.
	Target   string
	ReadOnly bool
	// Format is the image format the hypervisor opens the file with (qcow2,
	// raw...). Empty: EnsureDomainRunning reads it from the volume; DomainXML
	// alone falls back to raw.
	Format string
}

// DomainSpec is one PremiScale instance's domain: the group's shape (spec.Domain: vCPUs,
// memory, type, arch, machine, direct kernel boot, network) and what is particular to the
// instance. A shape's Type "" lets EnsureDomainRunning pick ("test" for test:// URIs, else kvm
// when the host's capabilities offer it for Arch, else qemu); DomainXML alone falls back to
// qemu. Its Network is "" for no interface, "user" for user-mode networking, otherwise the
// name of a libvirt network.
type DomainSpec struct {
	// Name is the instance name, which is also the domain name.
	Name, Group string
	spec.Domain
	// Disks are attached on the virtio bus (cdroms on virtio-scsi, since
	// virtio-blk has no cdrom and some guest kernels lack SATA drivers).
	Disks []DiskSpec
	// MAC is the interface's hardware address; empty lets libvirt pick one.
	MAC string
	// Template names an existing domain to clone (see TemplateDomainXML);
	// "" builds the domain from the shape.
	Template string
	// Pool marks the domain as a warm-pool member in its metadata: the collector reports no
	// samples for it (see SetPoolMark).
	Pool bool
}

// DomainXML renders spec as libvirt domain XML. diskPaths holds the host path
// of each of spec.Disks, in order. It does no I/O.
func DomainXML(spec DomainSpec, diskPaths []string) (string, error) {
	if spec.Template != "" {
		return "", fmt.Errorf("%w: domain %s is cloned from template %s: render it with TemplateDomainXML", ErrInvalidSpec, spec.Name, spec.Template)
	}
	if err := validateSpec(spec); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	if len(diskPaths) != len(spec.Disks) {
		return "", fmt.Errorf("domain %s: %d disks but %d disk paths", spec.Name, len(spec.Disks), len(diskPaths))
	}
	domType := spec.Type
	if domType == "" {
		domType = "qemu"
	}
	arch := spec.Arch
	if arch == "" {
		arch = "x86_64"
	}
	machine := spec.Machine
	if machine == "" {
		machine = "pc"
	}
	meta, err := metadataXML(spec.Group, spec.Name, spec.Pool)
	if err != nil {
		return "", fmt.Errorf("domain %s: %w", spec.Name, err)
	}

	port := uint(0)
	dom := libvirtxml.Domain{
		Type:          domType,
		Name:          spec.Name,
		Metadata:      &libvirtxml.DomainMetadata{XML: meta},
		Memory:        &libvirtxml.DomainMemory{Value: uint(spec.Memory), Unit: "MiB"},
		CurrentMemory: &libvirtxml.DomainCurrentMemory{Value: uint(spec.Memory), Unit: "MiB"},
		VCPU:          &libvirtxml.DomainVCPU{Value: uint(spec.VCPUs)},
		OS: &libvirtxml.DomainOS{
			Type:    &libvirtxml.DomainOSType{Arch: arch, Machine: machine, Type: "hvm"},
			Kernel:  spec.Kernel,
			Initrd:  spec.Initrd,
			Cmdline: spec.Cmdline,
		},
		Clock:      &libvirtxml.DomainClock{Offset: "utc"},
		OnPoweroff: "destroy",
		OnReboot:   "restart",
		OnCrash:    "destroy",
		Devices: &libvirtxml.DomainDeviceList{
			Serials: []libvirtxml.DomainSerial{{
				Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
				Target: &libvirtxml.DomainSerialTarget{Port: &port},
			}},
			Consoles: []libvirtxml.DomainConsole{{
				Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
				Target: &libvirtxml.DomainConsoleTarget{Type: "serial", Port: &port},
			}},
			// A stats period makes the guest report its own memory use
			// (balloon.usable, balloon.unused), which memory utilisation needs.
			MemBalloon: &libvirtxml.DomainMemBalloon{Model: "virtio", Stats: &libvirtxml.DomainMemBalloonStats{Period: 10}},
			// Guests without entropy can stall early boot (cloud-init, sshd key generation).
			RNGs: []libvirtxml.DomainRNG{{
				Model:   "virtio",
				Backend: &libvirtxml.DomainRNGBackend{Random: &libvirtxml.DomainRNGBackendRandom{Device: "/dev/urandom"}},
			}},
		},
	}
	if spec.Kernel == "" {
		dom.OS.BootDevices = []libvirtxml.DomainBootDevice{{Dev: "hd"}}
	}
	if arch == "x86_64" || arch == "i686" {
		// ACPI is what makes DomainShutdown (a graceful ACPI power-off) work.
		dom.Features = &libvirtxml.DomainFeatureList{
			ACPI: &libvirtxml.DomainFeature{},
			APIC: &libvirtxml.DomainFeatureAPIC{},
		}
	}

	disks, needSCSI, err := diskDevices(spec, diskPaths)
	if err != nil {
		return "", err
	}
	dom.Devices.Disks = disks
	if needSCSI {
		dom.Devices.Controllers = []libvirtxml.DomainController{{Type: "scsi", Model: "virtio-scsi"}}
	}

	switch spec.Network {
	case "":
	case "user":
		dom.Devices.Interfaces = []libvirtxml.DomainInterface{{
			Source: &libvirtxml.DomainInterfaceSource{User: &libvirtxml.DomainInterfaceSourceUser{}},
			Model:  &libvirtxml.DomainInterfaceModel{Type: "virtio"},
		}}
	default:
		dom.Devices.Interfaces = []libvirtxml.DomainInterface{{
			Source: &libvirtxml.DomainInterfaceSource{Network: &libvirtxml.DomainInterfaceSourceNetwork{Network: spec.Network}},
			Model:  &libvirtxml.DomainInterfaceModel{Type: "virtio"},
		}}
	}
	if spec.MAC != "" && len(dom.Devices.Interfaces) > 0 {
		dom.Devices.Interfaces[0].MAC = &libvirtxml.DomainInterfaceMAC{Address: spec.MAC}
	}

	out, err := dom.Marshal()
	if err != nil {
		return "", fmt.Errorf("render domain %s XML: %w", spec.Name, err)
	}
	return out + "\n", nil
}

func validateSpec(spec DomainSpec) error {
	switch {
	case spec.Name == "":
		return fmt.Errorf("domain spec: empty name")
	case spec.Group == "":
		return fmt.Errorf("domain %s: empty group", spec.Name)
	// With a template, zero keeps the template's value.
	case spec.VCPUs < 0 || (spec.VCPUs == 0 && spec.Template == ""):
		return fmt.Errorf("domain %s: vcpus must be positive, got %d", spec.Name, spec.VCPUs)
	case spec.Memory < 0 || (spec.Memory == 0 && spec.Template == ""):
		return fmt.Errorf("domain %s: memory must be positive, got %d MiB", spec.Name, spec.Memory)
	case spec.Kernel == "" && (spec.Initrd != "" || spec.Cmdline != ""):
		return fmt.Errorf("domain %s: initrd or cmdline given without a kernel", spec.Name)
	}
	for i, d := range spec.Disks {
		if d.Pool == "" || d.Volume == "" {
			return fmt.Errorf("domain %s: disk %d: pool and volume are required", spec.Name, i)
		}
		if d.Device != "" && d.Device != "disk" && d.Device != "cdrom" {
			return fmt.Errorf("domain %s: disk %d: device %q is not disk or cdrom", spec.Name, i, d.Device)
		}
	}
	return nil
}

// diskDevices renders spec.Disks, assigning free targets in order. It reports
// whether a virtio-scsi controller is needed (for cdroms).
func diskDevices(spec DomainSpec, paths []string) ([]libvirtxml.DomainDisk, bool, error) {
	used := map[string]bool{}
	for _, d := range spec.Disks {
		if d.Target != "" {
			if used[d.Target] {
				return nil, false, fmt.Errorf("domain %s: disk target %s used twice", spec.Name, d.Target)
			}
			used[d.Target] = true
		}
	}
	next := func(prefix string) string {
		for c := 'a'; c <= 'z'; c++ {
			t := prefix + string(c)
			if !used[t] {
				used[t] = true
				return t
			}
		}
		return ""
	}

	var disks []libvirtxml.DomainDisk
	needSCSI := false
	for i, d := range spec.Disks {
		device, bus, prefix := "disk", "virtio", "vd"
		if d.Device == "cdrom" {
			device, bus, prefix = "cdrom", "scsi", "sd"
			needSCSI = true
		}
		target := d.Target
		if target == "" {
			if target = next(prefix); target == "" {
				return nil, false, fmt.Errorf("domain %s: no free %s* disk target", spec.Name, prefix)
			}
		}
		format := d.Format
		if format == "" {
			format = "raw"
		}
		disk := libvirtxml.DomainDisk{
			Device: device,
			Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: format},
			Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: paths[i]}},
			Target: &libvirtxml.DomainDiskTarget{Dev: target, Bus: bus},
		}
		if d.ReadOnly || device == "cdrom" {
			disk.ReadOnly = &libvirtxml.DomainDiskReadOnly{}
		}
		disks = append(disks, disk)
	}
	return disks, needSCSI, nil
}

// instanceMetadata is PremiScale's element in <metadata>. libvirt hands it
// back from DomainGetMetadata without the prefix, so parsing matches the
// local name only.
type instanceMetadata struct {
	XMLName xml.Name `xml:"instance"`
	Group   string   `xml:"group,attr"`
	Name    string   `xml:"name,attr"`
	// Pool is "true" on a warm-pool member.
	Pool string `xml:"pool,attr,omitempty"`
}

func metadataXML(group, name string, pool bool) (string, error) {
	attrs, err := metadataAttrs(group, name, pool)
	if err != nil {
		return "", err
	}
	return "<" + metadataPrefix + ":instance xmlns:" + metadataPrefix + "=\"" + MetadataNamespace + "\"" + attrs + "/>", nil
}

// metadataElement is PremiScale's element as DomainSetMetadata takes it: without a prefix,
// which goes beside it with the namespace.
func metadataElement(group, name string, pool bool) (string, error) {
	attrs, err := metadataAttrs(group, name, pool)
	if err != nil {
		return "", err
	}
	return "<instance" + attrs + "/>", nil
}

func metadataAttrs(group, name string, pool bool) (string, error) {
	var b strings.Builder
	b.WriteString(" group=\"")
	if err := xml.EscapeText(&b, []byte(group)); err != nil {
		return "", err
	}
	b.WriteString("\" name=\"")
	if err := xml.EscapeText(&b, []byte(name)); err != nil {
		return "", err
	}
	b.WriteString("\"")
	if pool {
		b.WriteString(" pool=\"true\"")
	}
	return b.String(), nil
}

// parseMetadata reads the element DomainGetMetadata returns (or the inner XML
// of a domain's <metadata>, from which it picks PremiScale's element).
func parseMetadata(doc string) (instanceMetadata, error) {
	dec := xml.NewDecoder(bytes.NewReader([]byte(doc)))
	for {
		tok, err := dec.Token()
		if err != nil {
			return instanceMetadata{}, fmt.Errorf("no PremiScale instance element in metadata %q", doc)
		}
		start, ok := tok.(xml.StartElement)
		if !ok || start.Name.Local != "instance" {
			continue
		}
		if start.Name.Space != "" && start.Name.Space != MetadataNamespace {
			continue
		}
		var m instanceMetadata
		if err := dec.DecodeElement(&m, &start); err != nil {
			return instanceMetadata{}, fmt.Errorf("parse PremiScale metadata %q: %w", doc, err)
		}
		return m, nil
	}
}

// InstanceMAC derives a stable, locally administered MAC address (in QEMU's 52:54:00 range)
// from an instance name, so the address the seed's network-config matches on is the one the
// domain gets, on every retry of its launch.
func InstanceMAC(name string) string {
	sum := sha256.Sum256([]byte(name))
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", sum[0], sum[1], sum[2])
}
