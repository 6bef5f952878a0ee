// Package spec holds the types that cross PremiScale's package boundaries: a group's spec as the
// workflows carry it (parsed values, never YAML types), the names of workflows, task queues,
// signals, updates and queries, instance states, and the status a group reports. The config
// loader builds a spec once (internal/config); workflows, activities, groupctl, the check-in
// server and the platform link read it. Nothing here does I/O.
//
// These types are stored in Temporal workflow history as JSON, so a change of shape is also a
// history-compatibility change: keep field names, and decode the old shape where one changes.
package spec

import (
	"net/netip"
	"time"

	"github.com/premiscale/premiscale/internal/policy"
)

// Group is everything a GroupWorkflow needs to know about its group. Field names are part of the
// JSON recorded in workflow histories.
type Group struct {
	Name string
	// Interval is the time between evaluations.
	Interval time.Duration
	Policy   policy.Spec
	// TerminationPolicy orders scale-in.
	TerminationPolicy TerminationPolicy
	// MaxConcurrentLaunches bounds instances launching or booting at once; 0 = unlimited.
	MaxConcurrentLaunches int
	LaunchBackoff         Backoff
	// DryRun groups decide and record but never act.
	DryRun bool
	// Hosts are the hosts instances may be placed on, in preference order.
	Hosts  []string
	Launch Launch
	// StaticAddresses is the expanded pool of networking.addresses (static networking only),
	// in the order addresses are handed out.
	StaticAddresses []netip.Addr
	// Placement picks a new instance's host among those with room.
	Placement Placement `json:",omitempty"`
	// Rollout bounds a rolling replacement.
	Rollout Rollout `json:",omitzero"`
	// HostGracePeriod: the instances of a host down this long are recorded lost and replaced
	// elsewhere; 0 never replaces them.
	HostGracePeriod time.Duration `json:",omitempty"`
	// WarmPool keeps instances booted ahead of need for scale-outs to take.
	WarmPool WarmPool `json:",omitzero"`
}

// Placement is how a group chooses among the hosts that have room.
type Placement string

// Placements, as a group's placement writes them.
const (
	// PlacementSpread balances the group across its hosts, then prefers the least loaded.
	PlacementSpread Placement = "spread"
	// PlacementPack fills the host with the least room left that still fits.
	PlacementPack Placement = "pack"
)

// Rollout bounds a rolling replacement: at most MaxSurge instances above the group's size at
// once, and at most MaxUnavailable of its size retired before their replacements run.
type Rollout struct {
	MaxSurge, MaxUnavailable int
}

// Backoff: after After consecutive failed launches the group waits Initial before the next,
// doubling up to Max.
type Backoff struct {
	After        int
	Initial, Max time.Duration
}

// Launch is what an InstanceWorkflow needs to create, and watch, one VM.
type Launch struct {
	// ImagePool and ImageVolume name the base image; the overlay and the seed go in the same pool.
	ImagePool, ImageVolume string
	// ImageSource (a local path or an http(s) URL) and ImageSHA256 say where to copy the base
	// image from onto a host whose pool lacks it; "" copies it from another host that has it.
	ImageSource string `json:",omitempty"`
	ImageSHA256 string `json:",omitempty"`
	// Domain is the shape of a new VM; with Template set, its non-zero fields override the
	// template's.
	Domain Domain
	// Template names an existing domain each instance is cloned from; "" builds from Domain.
	Template string
	// CloudInit is the user's #cloud-config template; "" for none.
	CloudInit  string
	Networking Network
	Health     Health
}

// Domain is the shape of a new VM. The JSON names are those recorded in histories.
type Domain struct {
	VCPUs int `json:"vcpus"`
	// Memory is in MiB.
	Memory int `json:"memory"`
	// Type is kvm or qemu; "" picks kvm where the host offers it, else qemu.
	Type string `json:"type,omitempty"`
	// Arch and Machine default to x86_64 and pc.
	Arch    string `json:"arch,omitempty"`
	Machine string `json:"machine,omitempty"`
	// Kernel, Initrd and Cmdline enable direct kernel boot (paths on the host).
	Kernel  string `json:"kernel,omitempty"`
	Initrd  string `json:"initrd,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
	// Network is the libvirt network to attach: "" for none, "user" for user-mode networking.
	Network string `json:"network,omitempty"`
}

// Network is the group's networking; the address itself is chosen per instance.
type Network struct {
	Type NetworkType
	// Subnet and Gateway apply to static networking: the instance's address gets Subnet's
	// prefix length, and Gateway is its default route (optional).
	Subnet      netip.Prefix
	Gateway     netip.Addr
	Nameservers []netip.Addr
}

// NetworkType is how instances get their address.
type NetworkType string

// Network types, as networking.type writes them.
const (
	NetworkDynamic NetworkType = "dynamic"
	NetworkStatic  NetworkType = "static"
	NetworkIgnore  NetworkType = "ignore"
)

// Health says when an instance counts as up and when it counts as broken.
type Health struct {
	// Checkin makes an instance wait in "booting" for its cloud-init check-in.
	Checkin bool
	// BootTimeout: no check-in by then and the instance is replaced.
	BootTimeout time.Duration
	// HeartbeatInterval is the period of the guest's heartbeat timer; 0 disables it.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout: no heartbeat for this long and the instance is replaced; 0 disables it.
	HeartbeatTimeout time.Duration
	// ShutdownGrace is how long a retiring guest gets after the ACPI request before destroy.
	ShutdownGrace time.Duration
}

// defaultHealthCheckInterval is how often a running instance's domain is checked when no
// heartbeat interval says otherwise.
const defaultHealthCheckInterval = time.Minute

// CheckInterval is how often a running instance is health-checked.
func (h Health) CheckInterval() time.Duration {
	if h.HeartbeatInterval > 0 {
		return h.HeartbeatInterval
	}
	return defaultHealthCheckInterval
}

// TerminationPolicy picks the instances a scale-in retires first.
type TerminationPolicy string

// Termination policies, as scaling.terminationPolicy writes them.
const (
	TerminateNewestFirst    TerminationPolicy = "newest-first"
	TerminateOldestFirst    TerminationPolicy = "oldest-first"
	TerminateUnhealthyFirst TerminationPolicy = "unhealthy-first"
)

// TerminationPolicies lists every termination policy, for validation and help texts.
func TerminationPolicies() []TerminationPolicy {
	return []TerminationPolicy{TerminateNewestFirst, TerminateOldestFirst, TerminateUnhealthyFirst}
}
