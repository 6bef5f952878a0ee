package libvirt

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"
)

// ErrForeignDomain is returned when a domain with an instance's name exists
// but was not made by PremiScale for that group: adopting (or removing) it
// could destroy somebody else's VM.
var ErrForeignDomain = errors.New("domain is not a PremiScale instance")

// ErrInvalidSpec marks a domain spec that libvirt (or our own checks) rejects as such: retrying
// the same spec cannot succeed. Besides definitions libvirt refuses, that is a base image,
// storage pool, template domain, kernel, initrd or disk that does not exist.
var ErrInvalidSpec = errors.New("invalid domain spec")

// invalidSpec marks err with ErrInvalidSpec and leaves its message as it is: libvirt's own
// message says what is wrong.
func invalidSpec(err error) error { return invalidSpecError{err} }

type invalidSpecError struct{ err error }

func (e invalidSpecError) Error() string   { return e.err.Error() }
func (e invalidSpecError) Unwrap() []error { return []error{ErrInvalidSpec, e.err} }

// missingFile says whether err is libvirt failing on a file that does not exist ("unable to
// stat: /boot/vmlinuz: No such file or directory", "Cannot access storage file …"): a system
// error carrying ENOENT's message, as libvirt reports it for a domain's kernel or disks.
func missingFile(err error) bool {
	var le golibvirt.Error
	return errors.As(err, &le) && le.Code == uint32(golibvirt.ErrSystemError) &&
		strings.Contains(strings.ToLower(le.Message), syscall.ENOENT.Error())
}

// DomainState is a domain's lifecycle state, as libvirt names it.
type DomainState string

// The states libvirt reports.
const (
	StateNoState     DomainState = "nostate"
	StateRunning     DomainState = "running"
	StateBlocked     DomainState = "blocked"
	StatePaused      DomainState = "paused"
	StateShutdown    DomainState = "shutdown" // shutting down
	StateShutoff     DomainState = "shutoff"
	StateCrashed     DomainState = "crashed"
	StatePMSuspended DomainState = "pmsuspended"
)

func stateFromLibvirt(s int32) DomainState {
	switch golibvirt.DomainState(s) {
	case golibvirt.DomainRunning:
		return StateRunning
	case golibvirt.DomainBlocked:
		return StateBlocked
	case golibvirt.DomainPaused:
		return StatePaused
	case golibvirt.DomainShutdown:
		return StateShutdown
	case golibvirt.DomainShutoff:
		return StateShutoff
	case golibvirt.DomainCrashed:
		return StateCrashed
	case golibvirt.DomainPmsuspended:
		return StatePMSuspended
	default:
		return StateNoState
	}
}

// Active reports whether the domain has a running hypervisor process (any
// state but shutoff, crashed and nostate).
func (s DomainState) Active() bool {
	switch s {
	case StateShutoff, StateCrashed, StateNoState:
		return false
	default:
		return true
	}
}

// Domain is what PremiScale knows about one libvirt domain.
type Domain struct {
	Name string
	// Group is the group named in the domain's PremiScale metadata; empty
	// when it has none.
	Group string
	// Foreign is set when the driver reports the domain's metadata and it has
	// no PremiScale element: the domain is someone else's, whatever its name.
	Foreign   bool
	State     DomainState
	VCPUs     int
	MemoryMiB int
	// Pool is set on a warm-pool member (its metadata says so): it holds its room on the host
	// but is no part of its group's metrics.
	Pool bool
}

// EnsureDomainRunning defines the domain if no domain of that name exists and
// starts it unless it is active already. It is idempotent: retrying after any
// failure converges on one running domain. An existing domain that is not
// PremiScale's instance of spec.Group is refused with ErrForeignDomain.
func (c *Conn) EnsureDomainRunning(ctx context.Context, spec DomainSpec) (created bool, err error) {
	if err := validateSpec(spec); err != nil {
		return false, fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	unlock, err := c.names.lock(ctx, "domain/"+spec.Name)
	if err != nil {
		return false, fmt.Errorf("ensure domain %s on %s: %w", spec.Name, c.uri, err)
	}
	defer unlock()

	dom, found, err := c.lookupDomain(ctx, spec.Name)
	if err != nil {
		return false, err
	}
	if found {
		if err := c.checkOwner(ctx, dom, spec.Group); err != nil {
			return false, err
		}
	} else {
		doc, err := c.renderDomain(ctx, spec)
		if err != nil {
			return false, err
		}
		dom, err = call(ctx, c, "define domain "+spec.Name, func(l *golibvirt.Libvirt) (golibvirt.Domain, error) {
			return l.DomainDefineXML(doc)
		})
		if err != nil {
			// Another process may have defined it between our lookup and define
			// (libvirt then says "already exists with uuid"): that is success.
			again, found, lerr := c.lookupDomain(ctx, spec.Name)
			if lerr != nil || !found {
				if hasCode(err, golibvirt.ErrXMLError, golibvirt.ErrXMLDetail, golibvirt.ErrConfigUnsupported) {
					err = fmt.Errorf("%w: %w", ErrInvalidSpec, err)
				}
				return false, err
			}
			if err := c.checkOwner(ctx, again, spec.Group); err != nil {
				return false, err
			}
			c.log.Debug("domain defined concurrently elsewhere", "domain", spec.Name, "define_err", err)
			dom = again
		} else {
			created = true
			c.log.Info("defined domain", "domain", spec.Name, "group", spec.Group)
		}
	}

	state, err := c.domainState(ctx, dom)
	if err != nil {
		return created, err
	}
	if state.Active() {
		return created, nil
	}
	err = do(ctx, c, "start domain "+spec.Name, func(l *golibvirt.Libvirt) error { return l.DomainCreate(dom) })
	if err != nil {
		// A concurrent start wins the race: libvirt then says "already running"
		// (ERR_OPERATION_INVALID on qemu, ERR_INTERNAL_ERROR on the test driver).
		if state, serr := c.domainState(ctx, dom); serr == nil && state.Active() {
			return created, nil
		}
		if missingFile(err) || hasCode(err, golibvirt.ErrXMLError, golibvirt.ErrXMLDetail, golibvirt.ErrConfigUnsupported) {
			// A kernel, initrd or disk the definition names does not exist, or the
			// hypervisor refuses the definition: starting again will not help.
			err = invalidSpec(err)
		}
		return created, err
	}
	c.log.Info("started domain", "domain", spec.Name)
	return created, nil
}

// renderDomain resolves what DomainXML cannot (domain type, disk paths and
// formats, the template's XML) and renders the XML.
func (c *Conn) renderDomain(ctx context.Context, spec DomainSpec) (string, error) {
	var templateXML string
	if spec.Template != "" {
		doc, err := c.templateXML(ctx, spec)
		if err != nil {
			return "", err
		}
		templateXML = doc
	} else if spec.Type == "" {
		t, err := c.pickDomainType(ctx, spec.Arch)
		if err != nil {
			return "", fmt.Errorf("define domain %s on %s: %w", spec.Name, c.uri, err)
		}
		spec.Type = t
	}
	spec.Disks = slices.Clone(spec.Disks)
	paths := make([]string, len(spec.Disks))
	for i, d := range spec.Disks {
		info, err := c.volumeInfo(ctx, d.Pool, d.Volume)
		if err != nil {
			return "", fmt.Errorf("define domain %s: disk %d: %w", spec.Name, i, err)
		}
		paths[i] = info.path
		if spec.Disks[i].Format == "" {
			spec.Disks[i].Format = info.format
		}
	}
	if spec.Template != "" {
		return TemplateDomainXML(templateXML, spec, paths)
	}
	return DomainXML(spec, paths)
}

// templateXML fetches the inactive XML of spec's template: the live XML
// would carry runtime details (ports, labels, device aliases) into the clone.
// The secure flag keeps graphics passwords, which the clone must not lose.
func (c *Conn) templateXML(ctx context.Context, spec DomainSpec) (string, error) {
	doc, err := call(ctx, c, "get XML of template domain "+spec.Template, func(l *golibvirt.Libvirt) (string, error) {
		dom, err := l.DomainLookupByName(spec.Template)
		if err != nil {
			return "", err
		}
		return l.DomainGetXMLDesc(dom, golibvirt.DomainXMLInactive|golibvirt.DomainXMLSecure)
	})
	if hasCode(err, golibvirt.ErrNoDomain) {
		return "", invalidSpec(fmt.Errorf("template domain %q does not exist on %s", spec.Template, c.uri))
	}
	if err != nil {
		return "", fmt.Errorf("define domain %s from template %s: %w", spec.Name, spec.Template, err)
	}
	return doc, nil
}

// pickDomainType chooses test for the test driver, else kvm when the host's
// capabilities offer it for arch, else qemu (software emulation).
func (c *Conn) pickDomainType(ctx context.Context, arch string) (string, error) {
	if strings.Split(c.parsed.Scheme, "+")[0] == "test" {
		return "test", nil
	}
	if arch == "" {
		arch = "x86_64"
	}
	doc, err := c.capabilities(ctx)
	if err != nil {
		return "", err
	}
	var caps libvirtxml.Caps
	if err := caps.Unmarshal(doc); err != nil {
		return "", fmt.Errorf("parse capabilities of %s: %w", c.uri, err)
	}
	offered := false
	for _, g := range caps.Guests {
		if g.OSType != "hvm" || g.Arch.Name != arch {
			continue
		}
		offered = true
		for _, d := range g.Arch.Domains {
			if d.Type == "kvm" {
				return "kvm", nil
			}
		}
	}
	if !offered {
		return "", fmt.Errorf("host %s offers no hvm guests for arch %s", c.uri, arch)
	}
	return "qemu", nil
}

func (c *Conn) capabilities(ctx context.Context) (string, error) {
	c.mu.Lock()
	caps := c.caps
	c.mu.Unlock()
	if caps != "" {
		return caps, nil
	}
	caps, err := call(ctx, c, "get capabilities", func(l *golibvirt.Libvirt) (string, error) {
		return l.ConnectGetCapabilities()
	})
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.caps = caps
	c.mu.Unlock()
	return caps, nil
}

// RemoveDomain stops and undefines the named domain if it exists. A running
// domain first gets an ACPI shutdown and up to grace to power off; then it is
// destroyed. A domain without PremiScale metadata is refused with
// ErrForeignDomain. Absent: (false, nil).
func (c *Conn) RemoveDomain(ctx context.Context, name string, grace time.Duration) (existed bool, err error) {
	unlock, err := c.names.lock(ctx, "domain/"+name)
	if err != nil {
		return false, fmt.Errorf("remove domain %s on %s: %w", name, c.uri, err)
	}
	defer unlock()

	dom, found, err := c.lookupDomain(ctx, name)
	if err != nil || !found {
		return false, err
	}
	if err := c.checkOwner(ctx, dom, ""); err != nil {
		return true, ignoreNoDomain(err)
	}

	state, err := c.domainState(ctx, dom)
	if err != nil {
		return true, ignoreNoDomain(err)
	}
	if (state == StateRunning || state == StateShutdown) && grace > 0 {
		if state, err = c.shutdownAndWait(ctx, dom, grace); err != nil {
			return true, ignoreNoDomain(err)
		}
	}
	if state.Active() {
		err := do(ctx, c, "destroy domain "+name, func(l *golibvirt.Libvirt) error { return l.DomainDestroy(dom) })
		// "domain is not running": it powered off on its own in the meantime.
		if err != nil && !hasCode(err, golibvirt.ErrOperationInvalid) {
			return true, ignoreNoDomain(err)
		}
	}

	const flags = golibvirt.DomainUndefineManagedSave | golibvirt.DomainUndefineSnapshotsMetadata |
		golibvirt.DomainUndefineNvram | golibvirt.DomainUndefineCheckpointsMetadata
	err = do(ctx, c, "undefine domain "+name, func(l *golibvirt.Libvirt) error { return l.DomainUndefineFlags(dom, flags) })
	if hasCode(err, golibvirt.ErrInvalidArg, golibvirt.ErrNoSupport, golibvirt.ErrArgumentUnsupported) {
		// Drivers without NVRAM or checkpoints (the test driver) reject those flags; a saved
		// warm-pool member still needs its managed save image removed with it.
		err = do(ctx, c, "undefine domain "+name, func(l *golibvirt.Libvirt) error {
			return l.DomainUndefineFlags(dom, golibvirt.DomainUndefineManagedSave)
		})
		if hasCode(err, golibvirt.ErrInvalidArg, golibvirt.ErrNoSupport, golibvirt.ErrArgumentUnsupported) {
			err = do(ctx, c, "undefine domain "+name, func(l *golibvirt.Libvirt) error { return l.DomainUndefine(dom) })
		}
	}
	if err = ignoreNoDomain(err); err != nil {
		return true, err
	}
	c.log.Info("removed domain", "domain", name)
	return true, nil
}

// shutdownAndWait asks the guest to power off (ACPI) and polls until it is
// no longer active or grace has passed; it returns the last state seen.
func (c *Conn) shutdownAndWait(ctx context.Context, dom golibvirt.Domain, grace time.Duration) (DomainState, error) {
	deadline := time.Now().Add(grace)
	err := do(ctx, c, "shut down domain "+dom.Name, func(l *golibvirt.Libvirt) error { return l.DomainShutdown(dom) })
	if err != nil {
		if hasCode(err, golibvirt.ErrNoDomain) {
			return StateShutoff, err
		}
		// The guest may have stopped by itself; the state check below decides.
		c.log.Warn("ACPI shutdown failed; will destroy", "domain", dom.Name, "err", err)
		return c.domainState(ctx, dom)
	}
	poll := min(500*time.Millisecond, max(grace/10, 10*time.Millisecond))
	for {
		state, err := c.domainState(ctx, dom)
		if err != nil || !state.Active() || time.Now().After(deadline) {
			return state, err
		}
		timer := time.NewTimer(min(poll, time.Until(deadline)+time.Millisecond))
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return state, fmt.Errorf("wait for domain %s on %s to shut down: %w", dom.Name, c.uri, ctx.Err())
		}
	}
}

// LookupDomain returns the named domain, or found=false if there is none.
func (c *Conn) LookupDomain(ctx context.Context, name string) (Domain, bool, error) {
	dom, found, err := c.lookupDomain(ctx, name)
	if err != nil || !found {
		return Domain{}, false, err
	}
	meta, status, err := c.metadata(ctx, dom)
	if err != nil {
		return Domain{}, false, ignoreNoDomain(err)
	}
	d, err := c.describe(ctx, dom)
	if err != nil {
		if hasCode(err, golibvirt.ErrNoDomain) {
			return Domain{}, false, nil
		}
		return Domain{}, false, err
	}
	if status == metaFound {
		d.Group, d.Pool = meta.Group, meta.Pool == "true"
	}
	d.Foreign = status == metaAbsent
	return d, true, nil
}

// ListGroupDomains returns every domain (active or not) whose PremiScale
// metadata names group, sorted by name. Where a driver cannot report metadata,
// a name of the form "<group>-<digits>" counts instead. Domains without
// PremiScale metadata are never counted: they are not ours to scale.
func (c *Conn) ListGroupDomains(ctx context.Context, group string) ([]Domain, error) {
	doms, err := call(ctx, c, "list domains", func(l *golibvirt.Libvirt) ([]golibvirt.Domain, error) {
		d, _, err := l.ConnectListAllDomains(1, golibvirt.ConnectListDomainsActive|golibvirt.ConnectListDomainsInactive)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("list domains of group %s: %w", group, err)
	}
	namePattern := regexp.MustCompile("^" + regexp.QuoteMeta(group) + "-[0-9]+$")
	var out []Domain
	for _, dom := range doms {
		meta, status, err := c.metadata(ctx, dom)
		if hasCode(err, golibvirt.ErrNoDomain) {
			continue // undefined while we were listing
		}
		if err != nil {
			return nil, fmt.Errorf("list domains of group %s: %w", group, err)
		}
		switch status {
		case metaFound:
			if meta.Group != group {
				continue
			}
		case metaAbsent:
			continue
		case metaUnreadable:
			if !namePattern.MatchString(dom.Name) {
				continue
			}
		}
		d, err := c.describe(ctx, dom)
		if hasCode(err, golibvirt.ErrNoDomain) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list domains of group %s: %w", group, err)
		}
		d.Group = group
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Domain) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (c *Conn) lookupDomain(ctx context.Context, name string) (golibvirt.Domain, bool, error) {
	dom, err := call(ctx, c, "look up domain "+name, func(l *golibvirt.Libvirt) (golibvirt.Domain, error) {
		return l.DomainLookupByName(name)
	})
	if hasCode(err, golibvirt.ErrNoDomain) {
		return golibvirt.Domain{}, false, nil
	}
	if err != nil {
		return golibvirt.Domain{}, false, err
	}
	return dom, true, nil
}

func (c *Conn) domainState(ctx context.Context, dom golibvirt.Domain) (DomainState, error) {
	s, err := call(ctx, c, "get state of domain "+dom.Name, func(l *golibvirt.Libvirt) (int32, error) {
		s, _, err := l.DomainGetState(dom, 0)
		return s, err
	})
	if err != nil {
		return StateNoState, err
	}
	return stateFromLibvirt(s), nil
}

// describe fills a Domain (without Group) from DomainGetInfo.
func (c *Conn) describe(ctx context.Context, dom golibvirt.Domain) (Domain, error) {
	type info struct {
		state  uint8
		maxMem uint64
		vcpus  uint16
	}
	i, err := call(ctx, c, "get info of domain "+dom.Name, func(l *golibvirt.Libvirt) (info, error) {
		state, maxMem, _, vcpus, _, err := l.DomainGetInfo(dom)
		return info{state, maxMem, vcpus}, err
	})
	if err != nil {
		return Domain{}, err
	}
	return Domain{
		Name:      dom.Name,
		State:     stateFromLibvirt(int32(i.state)),
		VCPUs:     int(i.vcpus),
		MemoryMiB: int(i.maxMem / 1024),
	}, nil
}

type metaStatus int

const (
	metaFound      metaStatus = iota
	metaAbsent                // the domain has no PremiScale element
	metaUnreadable            // the driver cannot say, or the element is malformed
)

// metadata reads PremiScale's element of dom. Only transport-level failures
// and a vanished domain (ERR_NO_DOMAIN) are returned as errors.
func (c *Conn) metadata(ctx context.Context, dom golibvirt.Domain) (instanceMetadata, metaStatus, error) {
	doc, err := call(ctx, c, "get metadata of domain "+dom.Name, func(l *golibvirt.Libvirt) (string, error) {
		return l.DomainGetMetadata(dom, int32(golibvirt.DomainMetadataElement), golibvirt.OptString{MetadataNamespace}, golibvirt.DomainAffectCurrent)
	})
	switch {
	case hasCode(err, golibvirt.ErrNoDomainMetadata):
		return instanceMetadata{}, metaAbsent, nil
	case hasCode(err, golibvirt.ErrNoDomain):
		return instanceMetadata{}, metaUnreadable, err
	case err != nil && isLibvirtError(err):
		c.log.Debug("domain metadata unreadable", "domain", dom.Name, "err", err)
		return instanceMetadata{}, metaUnreadable, nil
	case err != nil:
		return instanceMetadata{}, metaUnreadable, err
	}
	m, err := parseMetadata(doc)
	if err != nil {
		c.log.Debug("domain metadata malformed", "domain", dom.Name, "err", err)
		return instanceMetadata{}, metaUnreadable, nil
	}
	return m, metaFound, nil
}

// checkOwner refuses a domain that is not PremiScale's (group "" accepts any
// group). A driver that cannot report metadata gets the benefit of the doubt.
func (c *Conn) checkOwner(ctx context.Context, dom golibvirt.Domain, group string) error {
	meta, status, err := c.metadata(ctx, dom)
	if err != nil {
		return err
	}
	switch {
	case status == metaAbsent:
		return fmt.Errorf("domain %s on %s has no PremiScale metadata: %w", dom.Name, c.uri, ErrForeignDomain)
	case status == metaFound && group != "" && meta.Group != group:
		return fmt.Errorf("domain %s on %s belongs to group %q, not %q: %w", dom.Name, c.uri, meta.Group, group, ErrForeignDomain)
	}
	return nil
}

func isLibvirtError(err error) bool {
	var le golibvirt.Error
	return errors.As(err, &le)
}

func ignoreNoDomain(err error) error {
	if hasCode(err, golibvirt.ErrNoDomain) {
		return nil
	}
	return err
}
