package config

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/premiscale/premiscale/internal/spec"
)

// groupNamePattern keeps group names usable as workflow IDs ("asg/<name>"), domain names
// ("<name>-<n>") and DNS labels in cloud-init hostnames.
var groupNamePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)

// hostNamePattern keeps host names usable in task-queue names ("premiscale-host-<name>") and logs.
var hostNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

func hostPath(i int) string { return fmt.Sprintf("controller.autoscale.hosts[%d]", i) }

func validateConfig(r *report, c *Config, baseDir string) {
	validateVersion(r, "version", c.Version)

	ctl := &c.Controller
	if r.required("controller.mode", ctl.Mode, "") && ctl.Mode != DefaultMode {
		r.add("controller.mode", "unsupported mode %q (allowed: standalone)", ctl.Mode)
	}
	r.required("controller.pidFile", ctl.PidFile, "")
	if r.required("controller.healthcheck.host", ctl.Healthcheck.Host, "") {
		if err := checkHost(ctl.Healthcheck.Host); err != nil {
			r.add("controller.healthcheck.host", "%v", err)
		}
	}
	checkPortField(r, "controller.healthcheck.port", ctl.Healthcheck.Port, true)

	if r.required("controller.temporal.address", ctl.Temporal.Address, "host:port of the Temporal frontend") {
		if err := checkHostPort(ctl.Temporal.Address, false); err != nil {
			r.add("controller.temporal.address", "%v", err)
		}
	}
	r.required("controller.temporal.namespace", ctl.Temporal.Namespace, "")
	r.required("controller.temporal.taskQueue", ctl.Temporal.TaskQueue, "")
	validateTemporalTLS(r, &ctl.Temporal, baseDir)

	db := &ctl.Databases
	positive(r, "controller.databases.collectionInterval", db.CollectionInterval)
	positive(r, "controller.databases.hostConnectionTimeout", db.HostConnectionTimeout)

	const state = "controller.databases.state"
	if r.required(state+".type", db.State.Type, "allowed: mysql") && db.State.Type != "mysql" {
		r.add(state+".type", "unsupported database type %q (allowed: mysql)", db.State.Type)
	}
	if r.required(state+".connection.url", db.State.Connection.URL, "host:port of the MySQL server") {
		if err := checkHostPort(db.State.Connection.URL, false); err != nil {
			r.add(state+".connection.url", "%v (MySQL's url is host:port, e.g. 127.0.0.1:3306)", err)
		}
	}
	r.required(state+".connection.database", db.State.Connection.Database, "")
	r.required(state+".connection.credentials.username", db.State.Connection.Credentials.Username, "")
	r.required(state+".connection.credentials.password", db.State.Connection.Credentials.Password, "")

	const ts = "controller.databases.timeseries"
	if r.required(ts+".type", db.Timeseries.Type, "allowed: influxdb") && db.Timeseries.Type != "influxdb" {
		r.add(ts+".type", "unsupported database type %q (allowed: influxdb)", db.Timeseries.Type)
	}
	if r.required(ts+".connection.url", db.Timeseries.Connection.URL, "http(s)://host:port of InfluxDB") {
		if err := checkHTTPURL(db.Timeseries.Connection.URL); err != nil {
			r.add(ts+".connection.url", "%v", err)
		}
	}
	r.required(ts+".connection.database", db.Timeseries.Connection.Database, "")
	if db.Timeseries.Retention.Duration < 0 {
		r.add(ts+".retention", "must not be negative")
	}

	if r.required("controller.checkin.listen", ctl.Checkin.Listen, "host:port the check-in server binds") {
		if err := checkHostPort(ctl.Checkin.Listen, true); err != nil {
			r.add("controller.checkin.listen", "%v", err)
		}
	}
	if r.required("controller.checkin.url", ctl.Checkin.URL, "the URL guests use to reach checkin.listen") {
		if err := checkHTTPURL(ctl.Checkin.URL); err != nil {
			r.add("controller.checkin.url", "%v", err)
		}
	}
	// The secret is optional (the workers generate one), but a short one makes check-in tokens
	// guessable.
	if n := len(ctl.Checkin.Secret); n > 0 && n < minCheckinSecret {
		r.add("controller.checkin.secret", "must be at least %d characters, got %d (generate one with: openssl rand -hex 32)", minCheckinSecret, n)
	}

	positive(r, "controller.reconciliation.interval", ctl.Reconciliation.Interval)
	validatePlatform(r, &ctl.Platform, baseDir)

	validateFleet(r, "controller.autoscale", ctl.Autoscale)
	hosts := validateHosts(r, ctl.Autoscale.Hosts)
	for i, name := range ctl.Autoscale.Serve {
		if !slices.Contains(hosts, name) {
			r.add(fmt.Sprintf("controller.autoscale.serve[%d]", i), "unknown host %q (defined hosts: %s)", name, strings.Join(hosts, ", "))
		}
	}
	validateGroups(r, "controller.autoscale.groups", ctl.Autoscale.Groups, hosts, baseDir)
}

// minCheckinSecret is the shortest check-in secret accepted.
const minCheckinSecret = 32

func validateVersion(r *report, path, v string) {
	if r.required(path, v, "this build understands "+Version) && v != Version {
		r.add(path, "unsupported version %q (this build understands %s)", v, Version)
	}
}

func positive(r *report, path string, d Duration) {
	if d.Duration <= 0 {
		r.add(path, "must be greater than 0, got %s", d)
	}
}

func checkPortField(r *report, path string, port int, required bool) {
	if port == 0 && !required {
		return
	}
	if port < 1 || port > 65535 {
		r.add(path, "port must be between 1 and 65535, got %d", port)
	}
}

// validateHosts checks the hypervisor list and returns the names of its hosts, in order.
func validateHosts(r *report, hosts []Host) []string {
	names := make([]string, 0, len(hosts))
	firstIndex := map[string]int{}
	for i, h := range hosts {
		p := hostPath(i)
		if r.required(p+".name", h.Name, "") {
			if !hostNamePattern.MatchString(h.Name) {
				r.add(p+".name", "invalid host name %q: use letters, digits, '.', '_' and '-', at most 63 characters", h.Name)
			}
			if j, dup := firstIndex[h.Name]; dup {
				r.add(p+".name", "duplicate host name %q (also %s)", h.Name, fmt.Sprintf("hosts[%d]", j))
			} else {
				firstIndex[h.Name] = i
				names = append(names, h.Name)
			}
		}

		switch {
		case h.URI != "" && h.Address != "":
			r.add(p, "set either uri or address, not both")
		case h.URI == "" && h.Address == "":
			if r.ok(p+".uri", p+".address") {
				r.add(p, "one of uri (a libvirt URI) or address (with protocol, port, user, sshKey) is required%s",
					r.emptyNote(p+".uri", p+".address"))
			}
		case h.URI != "":
			if err := checkLibvirtURI(h.URI); err != nil {
				r.add(p+".uri", "%v", err)
			}
			var extra []string
			for _, f := range []struct {
				name string
				set  bool
			}{{"port", h.Port != 0}, {"protocol", h.Protocol != ""}, {"user", h.User != ""}, {"sshKey", h.SSHKey != ""}} {
				if f.set {
					extra = append(extra, f.name)
				}
			}
			if len(extra) > 0 {
				r.add(p, "%s used only with address; with uri, put them in the URI", strings.Join(extra, ", ")+pluralVerb(len(extra)))
			}
		default:
			if err := checkHost(h.Address); err != nil {
				r.add(p+".address", "%v", err)
			}
			checkPortField(r, p+".port", h.Port, false)
			switch h.Protocol {
			case "ssh":
			case "tls", "tcp":
				if h.User != "" || h.SSHKey != "" {
					r.add(p, "user and sshKey are used only with protocol ssh, not %s", h.Protocol)
				}
			default:
				r.add(p+".protocol", "unsupported protocol %q (allowed: ssh, tls, tcp)", h.Protocol)
			}
		}
		if h.Hypervisor != "qemu" {
			r.add(p+".hypervisor", "unsupported hypervisor %q (allowed: qemu)", h.Hypervisor)
		}
		validateCapacity(r, p, h)
	}
	return names
}

// validateFleet checks how the fleet of hosts is watched.
func validateFleet(r *report, p string, a Autoscale) {
	// Its default derives from reconciliation.interval, which is checked (and reported) itself.
	if r.present[p+".hostDownAfter"] {
		positive(r, p+".hostDownAfter", a.HostDownAfter)
	}
	// hostGracePeriod and orphanGracePeriod: the decoder refuses negative durations; 0 is off.
	if a.Drift != DriftRemove && a.Drift != DriftReport {
		r.add(p+".drift", "unsupported drift %q (allowed: %s, %s)", a.Drift, DriftRemove, DriftReport)
	}
}

// validateCapacity checks what placement may hand out of host p.
func validateCapacity(r *report, p string, h Host) {
	for _, o := range []struct {
		key string
		v   float64
	}{{"cpuOvercommit", h.CPUOvercommit}, {"memoryOvercommit", h.MemoryOvercommit}} {
		if !(o.v > 0 && o.v <= 100) {
			r.add(p+"."+o.key, "must be a ratio greater than 0 and at most 100, got %v", o.v)
		}
	}
	if h.Reserved.CPUs < 0 {
		r.add(p+".reserved.cpus", "must not be negative, got %d", h.Reserved.CPUs)
	}
	if h.Reserved.Memory < 0 {
		r.add(p+".reserved.memory", "must not be negative, got %d (MiB)", h.Reserved.Memory)
	}
}

func pluralVerb(n int) string {
	if n == 1 {
		return " is"
	}
	return " are"
}

// validateGroups checks every group of a map at prefix, and stores each group's resolved
// cloud-init text. baseDir resolves relative cloud-init files. A nil hosts skips the check that
// groups name known hosts.
func validateGroups(r *report, prefix string, groups map[string]Group, hosts []string, baseDir string) {
	for _, name := range sortedKeys(groups) {
		g := groups[name]
		validateGroup(r, joinPath(prefix, name), name, &g, hosts, baseDir)
		groups[name] = g
	}
}

func validateGroup(r *report, p, name string, g *Group, hosts []string, baseDir string) {
	if !groupNamePattern.MatchString(name) {
		r.add(p, "invalid group name %q: use lowercase letters, digits and '-', start with a letter, at most 40 characters (it becomes a workflow ID and part of domain names)", name)
	}

	validateImage(r, p+".image", g.Image)
	if pl := spec.Placement(g.Placement); pl != spec.PlacementSpread && pl != spec.PlacementPack {
		r.add(p+".placement", "unsupported placement %q (allowed: %s, %s)", g.Placement, spec.PlacementSpread, spec.PlacementPack)
	}
	validateRollout(r, p+".rollout", g.Rollout)

	switch {
	case g.Domain != nil && g.Name != "":
		r.add(p, "set either domain (the shape of new VMs) or name (an existing domain to copy), not both")
	case g.Domain == nil && g.Name == "":
		if !r.ok(p+".domain", p+".name") {
			break
		}
		r.add(p, "one of domain (the shape of new VMs) or name (an existing domain to copy) is required")
	case g.Domain != nil:
		validateDomain(r, p+".domain", g.Domain)
	}

	g.CloudInit.Content = cloudInitContent(r, p+".cloud-init", g.CloudInit, baseDir)

	if len(g.Hosts) == 0 {
		r.add(p+".hosts", "at least one host is required")
	}
	seen := map[string]bool{}
	for i, h := range g.Hosts {
		hp := fmt.Sprintf("%s.hosts[%d]", p, i)
		if !r.required(hp, h, "a host name from controller.autoscale.hosts") {
			continue
		}
		if seen[h] {
			r.add(hp, "host %q is listed twice", h)
			continue
		}
		seen[h] = true
		if hosts != nil && !slices.Contains(hosts, h) {
			if len(hosts) == 0 {
				r.add(hp, "unknown host %q (controller.autoscale.hosts is empty)", h)
			} else {
				r.add(hp, "unknown host %q (defined hosts: %s)", h, strings.Join(hosts, ", "))
			}
		}
	}

	staticAddrs := validateNetworking(r, p+".networking", g.Networking)
	validateScaling(r, p+".scaling", name, g.Scaling, staticAddrs)
	validateHealth(r, p+".health", g.Health)
	validateWarmPool(r, p+".warmPool", g.WarmPool, g.Scaling)
}

// validateImage checks a group's image, written as pool/volume or as a mapping with a source.
func validateImage(r *report, p string, im Image) {
	// Problems with the volume are reported where the user wrote it: at image itself for
	// `image: pool/vol` (or no image at all), at image.volume in the mapping form.
	vp := p + ".volume"
	if r.shorthand[p] || !r.present[p] {
		vp = p
	}
	if r.required(vp, im.Volume, "pool/volume of the base image") {
		pool, vol, ok := strings.Cut(im.Volume, "/")
		if !ok || pool == "" || vol == "" || strings.Contains(vol, "/") {
			r.add(vp, "must be pool/volume (a libvirt storage pool and a volume in it), got %q", im.Volume)
		}
	}
	switch {
	case im.Source == "" && im.SHA256 != "":
		r.add(p+".sha256", "is used only with source")
	case im.Source != "":
		if !filepath.IsAbs(im.Source) {
			if err := checkHTTPURL(im.Source); err != nil {
				r.add(p+".source", "must be an absolute path or an http(s) URL of the image file, got %q", im.Source)
			}
		}
		if r.required(p+".sha256", im.SHA256, "the SHA-256 of the image file, 64 hex digits (sha256sum prints it)") && !sha256Pattern.MatchString(im.SHA256) {
			r.add(p+".sha256", "must be 64 hex digits (sha256sum prints it), got %q", im.SHA256)
		}
	}
}

// sha256Pattern is a SHA-256 digest in hex.
var sha256Pattern = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

func validateRollout(r *report, p string, ro Rollout) {
	if ro.MaxSurge < 0 {
		r.add(p+".maxSurge", "must not be negative, got %d", ro.MaxSurge)
	}
	if ro.MaxUnavailable < 0 {
		r.add(p+".maxUnavailable", "must not be negative, got %d", ro.MaxUnavailable)
	}
	if ro.MaxSurge == 0 && ro.MaxUnavailable == 0 && r.ok(p+".maxSurge", p+".maxUnavailable") {
		r.add(p, "maxSurge and maxUnavailable are both 0: a rolling replacement could never start (set maxSurge to add before retiring, or maxUnavailable to retire first)")
	}
}

func validateHealth(r *report, p string, h Health) {
	for _, d := range []struct {
		key string
		v   Duration
	}{{"bootTimeout", h.BootTimeout}, {"heartbeatInterval", h.HeartbeatInterval}, {"heartbeatTimeout", h.HeartbeatTimeout}, {"shutdownGrace", h.ShutdownGrace}} {
		if d.v.Duration < 0 {
			r.add(p+"."+d.key, "must not be negative, got %s", d.v)
		}
	}
	if h.CheckinEnabled() && h.BootTimeout.Duration == 0 {
		r.add(p+".bootTimeout", "must be greater than 0 while checkin is on (an instance that never checks in would wait forever)")
	}
	if h.HeartbeatTimeout.Duration > 0 && h.HeartbeatTimeout.Duration <= h.HeartbeatInterval.Duration {
		r.add(p, "heartbeatTimeout (%s) must be longer than heartbeatInterval (%s), or every instance would look silent", h.HeartbeatTimeout, h.HeartbeatInterval)
	}
}

func validateDomain(r *report, p string, d *DomainShape) {
	if d.VCPUs < 1 {
		r.add(p+".vcpus", "must be at least 1, got %d", d.VCPUs)
	}
	if d.Memory < 64 {
		r.add(p+".memory", "must be at least 64 (MiB), got %d", d.Memory)
	}
	switch d.Type {
	case "", "kvm", "qemu":
	default:
		r.add(p+".type", "unsupported domain type %q (allowed: kvm, qemu, or empty to pick kvm where the host can)", d.Type)
	}
	if d.Kernel == "" {
		if d.Initrd != "" {
			r.add(p+".initrd", "is used only with kernel")
		}
		if d.Cmdline != "" {
			r.add(p+".cmdline", "is used only with kernel")
		}
	}
}

// cloudInitContent returns the group's #cloud-config text, checking that it is one.
func cloudInitContent(r *report, p string, ci CloudInit, baseDir string) string {
	switch {
	case ci.Inline != "" && ci.File != "":
		r.add(p, "set either inline or file, not both")
		return ""
	case ci.Inline != "":
		if line, msg := checkCloudConfig(ci.Inline); msg != "" {
			where := r.line(p + ".inline")
			if line > 0 {
				if r.literal[p+".inline"] {
					// A | block starts on the line after its key.
					where += line
				}
				msg = fmt.Sprintf("line %d of the cloud-config: %s", line, msg)
			}
			r.problems = append(r.problems, Problem{Path: p + ".inline", Line: where, Message: msg})
		}
		return ci.Inline
	case ci.File != "":
		path := ci.File
		if !filepath.IsAbs(path) {
			path = filepath.Join(baseDir, path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				r.add(p+".file", "cannot read %s: file does not exist (relative paths start at the config file's folder)", path)
			} else {
				r.add(p+".file", "cannot read %v", err)
			}
			return ""
		}
		content := string(data)
		if line, msg := checkCloudConfig(content); msg != "" {
			if line > 0 {
				r.add(p+".file", "%s line %d: %s", path, line, msg)
			} else {
				r.add(p+".file", "%s: %s", path, msg)
			}
		}
		return content
	}
	return ""
}

// checkCloudConfig returns what is wrong with a #cloud-config document and the line, if any.
func checkCloudConfig(s string) (int, string) {
	if !strings.HasPrefix(s, "#cloud-config") {
		first, _, _ := strings.Cut(s, "\n")
		return 1, fmt.Sprintf("must start with a #cloud-config line, got %q", first)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(s), &doc); err != nil {
		line, msg := yamlSyntaxError([]byte(s), err)
		return line, "invalid YAML: " + msg
	}
	if len(doc.Content) == 0 {
		return 0, ""
	}
	if top := doc.Content[0]; top.Kind != yaml.MappingNode {
		return top.Line, "a cloud-config must be a mapping (key: value) at the top level"
	}
	return 0, ""
}

// validateNetworking checks a group's networking and returns how many static addresses it
// offers (-1 when that is not a limit: not static, or the addresses are invalid).
func validateNetworking(r *report, p string, n Networking) int64 {
	switch n.Type {
	case string(spec.NetworkDynamic), string(spec.NetworkIgnore):
		if len(n.Addresses) > 0 || n.Subnet != "" || n.Gateway != "" || len(n.Nameservers) > 0 {
			r.add(p, "addresses, subnet, gateway and nameservers are used only with type static, not %s", n.Type)
		}
		return -1
	case string(spec.NetworkStatic):
	default:
		r.add(p+".type", "unsupported networking type %q (allowed: dynamic, static, ignore)", n.Type)
		return -1
	}

	var subnet netip.Prefix
	subnetOK := false
	if r.required(p+".subnet", n.Subnet, "CIDR of the instances' network, e.g. 192.168.5.0/24") {
		var err error
		subnet, err = netip.ParsePrefix(n.Subnet)
		switch {
		case err != nil:
			r.add(p+".subnet", "invalid subnet %q: must be a CIDR such as 192.168.5.0/24", n.Subnet)
		case !subnet.Addr().Is4():
			r.add(p+".subnet", "%s is not an IPv4 subnet: static networking is IPv4 only (the network-config PremiScale writes has no IPv6)", n.Subnet)
		default:
			subnet = subnet.Masked()
			subnetOK = true
		}
	}
	var gateway netip.Addr
	if r.required(p+".gateway", n.Gateway, "IP address of the router") {
		var err error
		gateway, err = netip.ParseAddr(n.Gateway)
		switch {
		case err != nil:
			r.add(p+".gateway", "invalid IP address %q", n.Gateway)
			gateway = netip.Addr{}
		case !gateway.Is4():
			r.add(p+".gateway", "%s is not an IPv4 address: static networking is IPv4 only", n.Gateway)
			gateway = netip.Addr{}
		case subnetOK && !subnet.Contains(gateway):
			r.add(p+".gateway", "%s is not in subnet %s", gateway, subnet)
		}
	}
	for i, ns := range n.Nameservers {
		if _, err := netip.ParseAddr(strings.TrimSpace(ns)); err != nil {
			r.add(fmt.Sprintf("%s.nameservers[%d]", p, i), "invalid IP address %q", ns)
		}
	}

	if len(n.Addresses) == 0 {
		r.add(p+".addresses", "at least one address or range (e.g. 192.168.5.10-192.168.5.50) is required with type static")
		return -1
	}
	var total int64
	valid := true
	for i, a := range n.Addresses {
		ap := fmt.Sprintf("%s.addresses[%d]", p, i)
		if !r.required(ap, a, "") {
			valid = false
			continue
		}
		first, last, err := ParseAddressRange(a)
		if err != nil {
			r.add(ap, "%v", err)
			valid = false
			continue
		}
		if subnetOK && (!subnet.Contains(first) || !subnet.Contains(last)) {
			r.add(ap, "%s is not in subnet %s", a, subnet)
		}
		if gateway.IsValid() && first.Compare(gateway) <= 0 && gateway.Compare(last) <= 0 {
			r.add(ap, "%s includes the gateway %s", a, gateway)
		}
		total += rangeSize(first, last)
	}
	if !valid {
		return -1
	}
	if total > MaxPoolSize {
		// Overlapping ranges count twice here, so this errs on the side of a message; a pool
		// anywhere near the limit is a typo anyway.
		r.add(p+".addresses", "the ranges name %d addresses, more than the %d a pool may hold", total, MaxPoolSize)
		return -1
	}
	return total
}

// rangeSize counts the IPv4 addresses from first to last.
func rangeSize(first, last netip.Addr) int64 {
	a, b := first.As4(), last.As4()
	return int64(binary.BigEndian.Uint32(b[:])) - int64(binary.BigEndian.Uint32(a[:])) + 1
}

// checkHost accepts an IP address or a DNS host name.
func checkHost(s string) error {
	if reason := hostProblem(s); reason != "" {
		return fmt.Errorf("invalid host %q: %s", s, reason)
	}
	return nil
}

func hostProblem(s string) string {
	if _, err := netip.ParseAddr(s); err == nil {
		return ""
	}
	if len(s) > 253 {
		return "longer than 253 characters"
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if !validLabel(label) {
			return "must be an IP address or a host name"
		}
	}
	return ""
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c == '-' || c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			return false
		}
	}
	return true
}

// checkHostPort accepts host:port; emptyHost allows ":port" (all interfaces) for listen addresses.
func checkHostPort(s string, emptyHost bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("invalid address %q: must be host:port", s)
	}
	if host == "" && !emptyHost {
		return fmt.Errorf("invalid address %q: host is missing", s)
	}
	if host != "" {
		if reason := hostProblem(host); reason != "" {
			return fmt.Errorf("invalid address %q: host %s", s, reason)
		}
	}
	return checkPort(s, port)
}

func checkPort(s, port string) error {
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("invalid address %q: port must be a number between 1 and 65535", s)
	}
	return nil
}

// checkHTTPURL accepts http(s)://host[:port][/path].
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid URL %q: must be http(s)://host:port", s)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("invalid URL %q: must start with http:// or https://", s)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("invalid URL %q: host is missing", s)
	}
	if err := checkHost(u.Hostname()); err != nil {
		return fmt.Errorf("invalid URL %q: bad host %q", s, u.Hostname())
	}
	if p := u.Port(); p != "" {
		if err := checkPort(s, p); err != nil {
			return fmt.Errorf("invalid URL %q: port must be a number between 1 and 65535", s)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("invalid URL %q: port is empty", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("invalid URL %q: must not carry a user, query or fragment", s)
	}
	return nil
}

// libvirtDrivers are the hypervisor drivers a PremiScale host may use: qemu for real VMs, and
// libvirt's test driver for tests and demos.
var libvirtDrivers = []string{"qemu", "test"}

// libvirtTransports are the transports go-libvirt can dial.
var libvirtTransports = []string{"unix", "ssh", "libssh", "libssh2", "tls", "tcp"}

// checkLibvirtURI accepts the libvirt URIs go-libvirt can connect to, e.g. qemu:///system,
// qemu+ssh://user@host/system?keyfile=... or test:///default.
func checkLibvirtURI(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid libvirt URI %q: %v", s, errors.Unwrap(err))
	}
	if u.Scheme == "" || u.Opaque != "" {
		return fmt.Errorf("invalid libvirt URI %q: must look like qemu:///system or qemu+ssh://user@host/system", s)
	}
	driver, transport, hasTransport := strings.Cut(u.Scheme, "+")
	if !slices.Contains(libvirtDrivers, driver) {
		return fmt.Errorf("invalid libvirt URI %q: unsupported driver %q (allowed: %s)", s, driver, strings.Join(libvirtDrivers, ", "))
	}
	if hasTransport && !slices.Contains(libvirtTransports, transport) {
		return fmt.Errorf("invalid libvirt URI %q: unsupported transport %q (allowed: %s)", s, transport, strings.Join(libvirtTransports, ", "))
	}
	remote := (hasTransport && transport != "unix") || (!hasTransport && u.Host != "")
	if remote && u.Hostname() == "" {
		return fmt.Errorf("invalid libvirt URI %q: transport %s needs a host", s, transport)
	}
	if !remote && u.Host != "" {
		return fmt.Errorf("invalid libvirt URI %q: a local (unix) URI has no host", s)
	}
	if u.Hostname() != "" {
		if err := checkHost(u.Hostname()); err != nil {
			return fmt.Errorf("invalid libvirt URI %q: bad host %q", s, u.Hostname())
		}
	}
	if p := u.Port(); p != "" {
		if err := checkPort(s, p); err != nil {
			return fmt.Errorf("invalid libvirt URI %q: port must be a number between 1 and 65535", s)
		}
	}
	if driver == "qemu" && u.Path != "/system" && u.Path != "/session" {
		return fmt.Errorf("invalid libvirt URI %q: the qemu driver's path is /system or /session", s)
	}
	if driver == "test" && u.Path == "" {
		return fmt.Errorf("invalid libvirt URI %q: the test driver needs a path, e.g. test:///default", s)
	}
	return nil
}
