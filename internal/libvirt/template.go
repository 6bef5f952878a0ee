package libvirt

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// TemplateDomainXML renders an instance as a clone of templateXML, the
// (inactive) XML of an existing domain. The clone keeps the template's
// hardware but gets spec's name, disks, metadata and MAC, and loses
// everything that two domains cannot share: UUID, hardware and generation
// IDs, NVRAM file, fixed graphics ports, fixed security labels and fixed tap
// device names. spec.VCPUs and spec.Memory override the template's values
// when non-zero, spec.Kernel (with Initrd and Cmdline) replaces its boot
// when set, and spec.Type its domain type when set. spec.Arch, Machine and
// Network are ignored: the template defines the machine and its networking.
// diskPaths holds the host path of each of spec.Disks, in order. It does no
// I/O.
func TemplateDomainXML(templateXML string, spec DomainSpec, diskPaths []string) (string, error) {
	if spec.Template == "" {
		spec.Template = "(unnamed)" // only named in errors; validateSpec needs it set
	}
	if err := validateSpec(spec); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	if len(diskPaths) != len(spec.Disks) {
		return "", fmt.Errorf("domain %s: %d disks but %d disk paths", spec.Name, len(spec.Disks), len(diskPaths))
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(templateXML); err != nil {
		return "", fmt.Errorf("%w: domain %s: parse XML of template %s: %w", ErrInvalidSpec, spec.Name, spec.Template, err)
	}
	if dom.Devices == nil {
		dom.Devices = &libvirtxml.DomainDeviceList{}
	}
	if dom.OS == nil {
		dom.OS = &libvirtxml.DomainOS{}
	}

	dom.Name = spec.Name
	dom.ID = nil
	// libvirt assigns a fresh UUID; the hardware UUID and the SMBIOS UUID the
	// guest sees must not repeat the template's either (libvirt also rejects
	// an SMBIOS UUID that differs from the domain's).
	dom.UUID = ""
	dom.HWUUID = ""
	dropSMBIOSUUID(dom.SysInfo)
	if dom.GenID != nil {
		// An empty <genid/> makes libvirt generate one: a copied VM generation ID
		// would hide from the guest that it is a new machine.
		dom.GenID.Value = ""
	}
	if spec.Type != "" {
		dom.Type = spec.Type
	}

	meta, err := metadataXML(spec.Group, spec.Name, spec.Pool)
	if err != nil {
		return "", fmt.Errorf("domain %s: %w", spec.Name, err)
	}
	inner := ""
	if dom.Metadata != nil {
		inner = dom.Metadata.XML
	}
	if inner, err = replaceMetadata(inner, meta); err != nil {
		return "", fmt.Errorf("%w: domain %s: metadata of template %s: %w", ErrInvalidSpec, spec.Name, spec.Template, err)
	}
	dom.Metadata = &libvirtxml.DomainMetadata{XML: inner}

	if err := applySize(&dom, spec); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	if spec.Kernel != "" {
		dom.OS.Kernel, dom.OS.Initrd, dom.OS.Cmdline = spec.Kernel, spec.Initrd, spec.Cmdline
	}
	freshNVRAM(dom.OS)

	if err := replaceDisks(&dom, spec, diskPaths); err != nil {
		return "", err
	}
	for i := range dom.Devices.Interfaces {
		iface := &dom.Devices.Interfaces[i]
		iface.MAC = nil // libvirt generates one
		if i == 0 && spec.MAC != "" {
			iface.MAC = &libvirtxml.DomainInterfaceMAC{Address: spec.MAC}
		}
		// A tap name the template chose would collide with the template's own
		// (and every other clone's); an unmanaged tap must be named, so it stays.
		if iface.Target != nil && iface.Target.Managed != "no" {
			iface.Target = nil
		}
	}
	for i := range dom.Devices.Graphics {
		autoPort(&dom.Devices.Graphics[i])
	}
	dom.SecLabel = clonableSecLabels(dom.SecLabel)
	if b := dom.Devices.MemBalloon; b != nil && b.Model == "virtio" && b.Stats == nil {
		// As in DomainXML: memory utilisation needs the guest's own figures.
		b.Stats = &libvirtxml.DomainMemBalloonStats{Period: 10}
	}

	out, err := dom.Marshal()
	if err != nil {
		return "", fmt.Errorf("render domain %s XML from template %s: %w", spec.Name, spec.Template, err)
	}
	return out + "\n", nil
}

// applySize applies the spec's non-zero VCPUs and Memory, keeping what
// depends on the vCPU count consistent with it.
func applySize(dom *libvirtxml.Domain, spec DomainSpec) error {
	if spec.VCPUs == 0 && spec.Memory == 0 {
		return nil
	}
	if dom.CPU != nil && dom.CPU.Numa != nil && len(dom.CPU.Numa.Cell) > 0 {
		// Cells fix both the memory and the vCPUs of each node; rescaling them
		// is a placement decision PremiScale cannot make for the user.
		return fmt.Errorf("domain %s: template %s defines NUMA cells, so vcpus and memory cannot be overridden; leave them unset",
			spec.Name, spec.Template)
	}
	if spec.Memory > 0 {
		dom.Memory = &libvirtxml.DomainMemory{Value: uint(spec.Memory), Unit: "MiB"}
		dom.CurrentMemory = &libvirtxml.DomainCurrentMemory{Value: uint(spec.Memory), Unit: "MiB"}
	}
	if spec.VCPUs > 0 {
		n := spec.VCPUs
		if dom.VCPU == nil {
			dom.VCPU = &libvirtxml.DomainVCPU{}
		}
		dom.VCPU.Value, dom.VCPU.Current = uint(n), 0
		// The per-vCPU list must name exactly the vCPUs there are.
		dom.VCPUs = nil
		if dom.CPUTune != nil {
			dom.CPUTune.VCPUPin = slices.DeleteFunc(dom.CPUTune.VCPUPin, func(p libvirtxml.DomainCPUTuneVCPUPin) bool {
				return p.VCPU >= uint(n)
			})
		}
		if dom.CPU != nil && dom.CPU.Topology != nil {
			fitTopology(dom.CPU.Topology, n)
		}
	}
	return nil
}

// fitTopology makes the topology's product n (libvirt rejects any other),
// keeping the template's cores and threads per socket when n allows.
func fitTopology(t *libvirtxml.DomainCPUTopology, n int) {
	perSocket := max(t.Dies, 1) * max(t.Clusters, 1) * max(t.Cores, 1) * max(t.Threads, 1)
	if n%perSocket == 0 {
		t.Sockets = n / perSocket
		return
	}
	one := func(v int) int {
		if v == 0 {
			return 0
		}
		return 1
	}
	*t = libvirtxml.DomainCPUTopology{Sockets: n, Dies: one(t.Dies), Clusters: one(t.Clusters), Cores: 1, Threads: 1}
}

// freshNVRAM keeps the firmware but not the template's NVRAM file: with no
// path libvirt creates a per-domain one (named after the domain) from the
// firmware's variables template on first start, and RemoveDomain deletes it.
// Copying the path would make every clone share (and corrupt) one file.
func freshNVRAM(o *libvirtxml.DomainOS) {
	if n := o.NVRam; n != nil {
		n.NVRam, n.Source = "", nil
		if n.Template == "" && n.TemplateFormat == "" && n.Format == "" {
			o.NVRam = nil
		}
	}
	if v := o.VarStore; v != nil {
		v.Path = ""
		if v.Template == "" {
			o.VarStore = nil
		}
	}
}

// replaceDisks swaps every disk of the template (its images belong to the
// template) for the spec's, rendered as DomainXML renders them.
func replaceDisks(dom *libvirtxml.Domain, spec DomainSpec, paths []string) error {
	disks, needSCSI, err := diskDevices(spec, paths)
	if err != nil {
		return err
	}
	// A template that boots by per-device order would otherwise boot none of
	// our disks: the first one takes the place of the template's first.
	bootOrder := uint(0)
	for _, d := range dom.Devices.Disks {
		if d.Boot != nil && (bootOrder == 0 || d.Boot.Order < bootOrder) {
			bootOrder = d.Boot.Order
		}
	}
	if bootOrder > 0 && len(disks) > 0 {
		i := slices.IndexFunc(disks, func(d libvirtxml.DomainDisk) bool { return d.Device == "disk" })
		disks[max(i, 0)].Boot = &libvirtxml.DomainDeviceBoot{Order: bootOrder}
	}
	dom.Devices.Disks = disks
	if needSCSI && !slices.ContainsFunc(dom.Devices.Controllers, func(c libvirtxml.DomainController) bool { return c.Type == "scsi" }) {
		dom.Devices.Controllers = append(dom.Devices.Controllers, libvirtxml.DomainController{Type: "scsi", Model: "virtio-scsi"})
	}
	return nil
}

// autoPort lets libvirt pick the listen ports of g when the template fixed
// them: a second domain on the same port would fail to start.
func autoPort(g *libvirtxml.DomainGraphic) {
	switch {
	case g.VNC != nil:
		if g.VNC.Port > 0 || g.VNC.AutoPort == "no" {
			g.VNC.Port, g.VNC.AutoPort = 0, "yes"
		}
		if g.VNC.WebSocket > 0 {
			g.VNC.WebSocket = -1 // auto-allocated
		}
	case g.Spice != nil:
		if g.Spice.Port > 0 || g.Spice.TLSPort > 0 || g.Spice.AutoPort == "no" {
			g.Spice.Port, g.Spice.TLSPort, g.Spice.AutoPort = 0, 0, "yes"
		}
	case g.RDP != nil:
		if g.RDP.Port > 0 || g.RDP.AutoPort == "no" {
			g.RDP.Port, g.RDP.AutoPort = 0, "yes"
		}
	}
}

// clonableSecLabels drops static labels (a fixed label would let one clone's
// processes reach another's files) and forgets labels generated for the
// template, keeping the rest of the security configuration.
func clonableSecLabels(labels []libvirtxml.DomainSecLabel) []libvirtxml.DomainSecLabel {
	var out []libvirtxml.DomainSecLabel
	for _, l := range labels {
		if l.Type == "static" {
			continue
		}
		l.Label, l.ImageLabel = "", ""
		out = append(out, l)
	}
	return out
}

func dropSMBIOSUUID(infos []libvirtxml.DomainSysInfo) {
	for _, si := range infos {
		if si.SMBIOS == nil || si.SMBIOS.System == nil {
			continue
		}
		si.SMBIOS.System.Entry = slices.DeleteFunc(si.SMBIOS.System.Entry, func(e libvirtxml.DomainSysInfoEntry) bool {
			return e.Name == "uuid"
		})
	}
}

// replaceMetadata returns the inner XML of a <metadata> element with every
// top-level element of PremiScale's namespace removed and ours added. Other
// applications' elements are kept byte for byte.
func replaceMetadata(inner, ours string) (string, error) {
	dec := xml.NewDecoder(strings.NewReader(inner))
	var kept strings.Builder
	depth := 0
	copied := int64(0) // inner[:copied] has been dealt with
	start := int64(0)
	drop := false
	for {
		before := dec.InputOffset()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				start = before
				drop = t.Name.Space == MetadataNamespace
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 && drop {
				kept.WriteString(inner[copied:start])
				copied = dec.InputOffset()
			}
		}
	}
	kept.WriteString(inner[copied:])
	rest := strings.TrimSpace(kept.String())
	if rest == "" {
		return ours, nil
	}
	return ours + "\n" + rest, nil
}

// TemplateShape reads the vCPUs and memory (MiB) of a template domain, as its clones get them
// unless the group's shape overrides them.
func (c *Conn) TemplateShape(ctx context.Context, template string) (vcpus, memoryMiB int, err error) {
	doc, err := c.templateXML(ctx, DomainSpec{Name: "a clone", Template: template})
	if err != nil {
		return 0, 0, err
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(doc); err != nil {
		return 0, 0, fmt.Errorf("read template domain %s on %s: %w", template, c.uri, err)
	}
	if dom.VCPU != nil {
		vcpus = int(dom.VCPU.Value)
	}
	if dom.Memory != nil {
		unit := dom.Memory.Unit
		if unit == "" {
			unit = "KiB" // a domain's memory, unlike a volume's size, defaults to KiB
		}
		memoryMiB = int(scaleSize(uint64(dom.Memory.Value), unit) >> 20)
	}
	return vcpus, memoryMiB, nil
}
