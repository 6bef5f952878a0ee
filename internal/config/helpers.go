package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/premiscale/premiscale/internal/influxdb"
	"github.com/premiscale/premiscale/internal/spec"
)

// LibvirtURI is the URI to connect to the host with: URI as given, or one built from Address,
// Protocol, Port, User and SSHKey, e.g. qemu+ssh://root@10.0.0.5:22/system?keyfile=/root/.ssh/id_ed25519.
func (h Host) LibvirtURI() (string, error) {
	if h.URI != "" {
		if h.Address != "" {
			return "", fmt.Errorf("host %s: set either uri or address, not both", h.Name)
		}
		if err := checkLibvirtURI(h.URI); err != nil {
			return "", fmt.Errorf("host %s: %w", h.Name, err)
		}
		return h.URI, nil
	}
	if h.Address == "" {
		return "", fmt.Errorf("host %s: neither uri nor address is set", h.Name)
	}
	if err := checkHost(h.Address); err != nil {
		return "", fmt.Errorf("host %s: %w", h.Name, err)
	}
	protocol := h.Protocol
	if protocol == "" {
		protocol = DefaultProtocol
	}
	switch protocol {
	case "ssh", "tls", "tcp":
	default:
		return "", fmt.Errorf("host %s: unsupported protocol %q (allowed: ssh, tls, tcp)", h.Name, protocol)
	}
	driver := h.Hypervisor
	if driver == "" {
		driver = DefaultHypervisor
	}

	u := url.URL{Scheme: driver + "+" + protocol, Host: h.Address, Path: "/system"}
	if strings.Contains(h.Address, ":") {
		u.Host = "[" + h.Address + "]" // an IPv6 address
	}
	if h.Port != 0 {
		if h.Port < 1 || h.Port > 65535 {
			return "", fmt.Errorf("host %s: port must be between 1 and 65535, got %d", h.Name, h.Port)
		}
		u.Host = net.JoinHostPort(h.Address, strconv.Itoa(h.Port))
	}
	if protocol == "ssh" {
		if h.User != "" {
			u.User = url.User(h.User)
		}
		if h.SSHKey != "" {
			// '/' is legal in a query; leaving it unescaped keeps the URI readable in logs.
			u.RawQuery = "keyfile=" + strings.ReplaceAll(url.QueryEscape(h.SSHKey), "%2F", "/")
		}
	}
	return u.String(), nil
}

// Allowance is what the host's config lets placement hand out of it.
func (h Host) Allowance() spec.Allowance {
	return spec.Allowance{
		CPUOvercommit: h.CPUOvercommit, MemoryOvercommit: h.MemoryOvercommit,
		ReservedCPUs: h.Reserved.CPUs, ReservedMemoryMiB: int64(h.Reserved.Memory),
	}
}

// ImagePool is the storage pool of the group's base image ("pool" of "pool/volume").
func (g Group) ImagePool() string {
	pool, _, _ := strings.Cut(g.Image.Volume, "/")
	return pool
}

// ImageVolume is the base image's volume name ("volume" of "pool/volume").
func (g Group) ImageVolume() string {
	_, vol, _ := strings.Cut(g.Image.Volume, "/")
	return vol
}

// Host finds a hypervisor host by name.
func (c *Config) Host(name string) (Host, bool) {
	for _, h := range c.Controller.Autoscale.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}

// Summary describes the configuration for `premiscale --validate`: what a user wants to check
// before starting the worker. Passwords are never shown.
func (c *Config) Summary() string {
	var b strings.Builder
	ctl := c.Controller
	db := ctl.Databases
	fmt.Fprintf(&b, "version:        %s (mode %s)\n", c.Version, ctl.Mode)
	fmt.Fprintf(&b, "temporal:       %s (namespace %s, task queue %s)\n", ctl.Temporal.Address, ctl.Temporal.Namespace, ctl.Temporal.TaskQueue)
	if t := ctl.Temporal; t.TLSEnabled() || t.APIKey != "" {
		fmt.Fprintf(&b, "temporal auth:  %s\n", temporalAuth(t))
	}
	fmt.Fprintf(&b, "state:          %s %s, database %s, user %s\n", db.State.Type, db.State.Connection.URL, db.State.Connection.Database, db.State.Connection.Credentials.Username)
	retention := "infinite retention"
	if db.Timeseries.Retention.Duration > 0 {
		retention = "retention " + db.Timeseries.Retention.String()
	}
	fmt.Fprintf(&b, "timeseries:     %s %s, database %s, %s\n", db.Timeseries.Type, db.Timeseries.Connection.URL, db.Timeseries.Connection.Database, retention)
	fmt.Fprintf(&b, "intervals:      reconciliation %s, collection %s, host timeout %s\n", ctl.Reconciliation.Interval, db.CollectionInterval, db.HostConnectionTimeout)
	fmt.Fprintf(&b, "check-in:       listen %s, guests call %s\n", ctl.Checkin.Listen, ctl.Checkin.URL)
	fmt.Fprintf(&b, "healthcheck:    %s\n", net.JoinHostPort(ctl.Healthcheck.Host, strconv.Itoa(ctl.Healthcheck.Port)))
	fmt.Fprintf(&b, "platform:       %s\n", platformSummary(ctl.Platform))

	serves := "every host"
	if len(ctl.Autoscale.Serve) > 0 {
		serves = strings.Join(ctl.Autoscale.Serve, ", ")
	}
	fmt.Fprintf(&b, "hosts:          %d (this worker serves %s; down after %s without proof of life)\n", len(ctl.Autoscale.Hosts), serves, ctl.Autoscale.HostDownAfter)
	for _, h := range ctl.Autoscale.Hosts {
		uri, err := h.LibvirtURI()
		if err != nil {
			uri = "invalid: " + err.Error()
		}
		fmt.Fprintf(&b, "  %s  %s\n", h.Name, uri)
	}

	fmt.Fprintf(&b, "groups:         %d\n", len(ctl.Autoscale.Groups))
	for _, name := range sortedKeys(ctl.Autoscale.Groups) {
		b.WriteString(groupSummary(name, ctl.Autoscale.Groups[name]))
	}
	return b.String()
}

func groupSummary(name string, g Group) string {
	var b strings.Builder
	s := g.Scaling
	fmt.Fprintf(&b, "  %s\n", name)
	fmt.Fprintf(&b, "    size:       min %d, max %d, increment %d, cooldown %s\n", s.MinNodes, s.MaxNodes, s.Increment, s.Cooldown)
	var targets []string
	if s.ResourceTarget.CPU > 0 {
		targets = append(targets, fmt.Sprintf("cpu %g%%", s.ResourceTarget.CPU))
	}
	if s.ResourceTarget.Memory > 0 {
		targets = append(targets, fmt.Sprintf("memory %g%%", s.ResourceTarget.Memory))
	}
	fmt.Fprintf(&b, "    targets:    %s\n", strings.Join(targets, ", "))
	if len(s.Checks) > 0 {
		checks := make([]string, len(s.Checks))
		for i, c := range s.Checks {
			checks[i] = fmt.Sprintf("%s (%s)", c.Name, describeCheck(c))
		}
		fmt.Fprintf(&b, "    checks:     %s\n", strings.Join(checks, ", "))
	}
	if len(s.Schedules) > 0 {
		schedules := make([]string, len(s.Schedules))
		for i, sc := range s.Schedules {
			schedules[i] = fmt.Sprintf("%s (%q %s for %s: %s)", sc.Name, sc.Cron, sc.TimeZone, sc.Duration, describeOverride(sc))
		}
		fmt.Fprintf(&b, "    schedules:  %s\n", strings.Join(schedules, ", "))
	}
	fmt.Fprintf(&b, "    scale-out:  cooldown %s%s\n", s.ScaleOut.Cooldown, describeRate(s.ScaleOut.RateLimit))
	fmt.Fprintf(&b, "    scale-in:   cooldown %s, stabilization %s%s, retire %s\n", s.ScaleIn.Cooldown, s.ScaleIn.StabilizationWindow,
		describeRate(s.ScaleIn.RateLimit), s.TerminationPolicy)
	concurrent := "no limit"
	if s.MaxConcurrentLaunches > 0 {
		concurrent = fmt.Sprintf("%d at once", s.MaxConcurrentLaunches)
	}
	fmt.Fprintf(&b, "    launches:   %s, back off after %d failures (%s to %s)\n", concurrent,
		s.LaunchBackoff.After, s.LaunchBackoff.Initial, s.LaunchBackoff.Max)
	if s.DryRun {
		b.WriteString("    dry run:    decisions are recorded, never acted on\n")
	}
	fmt.Fprintf(&b, "    hosts:      %s\n", strings.Join(g.Hosts, ", "))
	shape := "copy of domain " + g.Name
	if g.Domain != nil {
		shape = fmt.Sprintf("%d vCPU, %d MiB", g.Domain.VCPUs, g.Domain.Memory)
	}
	image := g.Image.Volume
	if g.Image.Source != "" {
		image += ", copied to hosts that lack it from " + g.Image.Source
	}
	fmt.Fprintf(&b, "    image:      %s (%s)\n", image, shape)
	fmt.Fprintf(&b, "    placement:  %s; rollout: surge %d, unavailable %d\n", g.Placement, g.Rollout.MaxSurge, g.Rollout.MaxUnavailable)
	if w := g.WarmPool; w.Size > 0 {
		reuse := ""
		if w.ReuseOnScaleIn {
			reuse = ", scale-ins return instances to it"
		}
		fmt.Fprintf(&b, "    warm pool:  %d %s%s\n", w.Size, w.State, reuse)
	}
	network := g.Networking.Type
	if g.Networking.Type == "static" {
		network += " " + strings.Join(g.Networking.Addresses, ", ")
	}
	fmt.Fprintf(&b, "    networking: %s\n", network)
	cloudInit := "none"
	switch {
	case g.CloudInit.File != "":
		cloudInit = "file " + g.CloudInit.File
	case g.CloudInit.Inline != "":
		cloudInit = "inline"
	}
	fmt.Fprintf(&b, "    cloud-init: %s\n", cloudInit)
	return b.String()
}

func describeCheck(c Check) string {
	metric := c.Metric
	if metric == "" {
		metric = "no metric"
	}
	switch {
	case c.Target != nil:
		return fmt.Sprintf("%s, target %g", metric, c.Target.Value)
	case c.Threshold != nil:
		return fmt.Sprintf("%s, threshold %g..%g", metric, c.Threshold.Lower, c.Threshold.Upper)
	case c.Fixed != nil:
		return fmt.Sprintf("fixed %d", c.Fixed.Size)
	}
	return metric
}

func describeOverride(sc Schedule) string {
	var parts []string
	for _, f := range []struct {
		name string
		v    *int
	}{{"min", sc.MinNodes}, {"max", sc.MaxNodes}, {"desired", sc.Desired}} {
		if f.v != nil {
			parts = append(parts, fmt.Sprintf("%s %d", f.name, *f.v))
		}
	}
	return strings.Join(parts, ", ")
}

func describeRate(rl RateLimit) string {
	switch {
	case rl.Count > 0:
		return fmt.Sprintf(", at most %d per %s", rl.Count, rl.Period)
	case rl.Percent > 0:
		return fmt.Sprintf(", at most %g%% per %s", rl.Percent, rl.Period)
	}
	return ""
}

// InfluxOptions says where the time-series database is, for internal/influxdb.
func (t Timeseries) InfluxOptions() influxdb.Options {
	c := t.Connection
	return influxdb.Options{
		URL: c.URL, Database: c.Database, Username: c.Credentials.Username, Password: c.Credentials.Password,
		Retention: t.Retention.Duration,
	}
}
