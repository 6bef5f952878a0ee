// Package config loads, expands, defaults and validates PremiScale's v1alpha1 YAML configuration.
package config

import "time"

// DefaultPath is where the agent looks for its configuration when -c is not given.
const DefaultPath = "/opt/premiscale/config.yaml"

// Version is the only configuration format version this build understands.
const Version = "v1alpha1"

// Config is the whole configuration file.
type Config struct {
	Version    string     `yaml:"version" json:"version"`
	Controller Controller `yaml:"controller" json:"controller"`
}

// Controller holds everything the agent (worker) and the group commands need.
type Controller struct {
	PidFile        string         `yaml:"pidFile" json:"pidFile"`
	Mode           string         `yaml:"mode" json:"mode"`
	Healthcheck    Healthcheck    `yaml:"healthcheck" json:"healthcheck"`
	Temporal       Temporal       `yaml:"temporal" json:"temporal"`
	Databases      Databases      `yaml:"databases" json:"databases"`
	Checkin        Checkin        `yaml:"checkin" json:"checkin"`
	Reconciliation Reconciliation `yaml:"reconciliation" json:"reconciliation"`
	Autoscale      Autoscale      `yaml:"autoscale" json:"autoscale"`
}

// Healthcheck is the agent's own liveness endpoint.
type Healthcheck struct {
	Host string `yaml:"host" json:"host"`
	Port int    `yaml:"port" json:"port"`
}

// Temporal says where the Temporal frontend is and which namespace and shared task queue to use.
type Temporal struct {
	Address   string `yaml:"address" json:"address"`
	Namespace string `yaml:"namespace" json:"namespace"`
	TaskQueue string `yaml:"taskQueue" json:"taskQueue"`
}

// Databases configures the state (MySQL) and time-series (InfluxDB) stores.
type Databases struct {
	// CollectionInterval is how often each worker samples libvirt domain stats.
	CollectionInterval Duration `yaml:"collectionInterval" json:"collectionInterval"`
	// HostConnectionTimeout bounds every libvirt call and connection attempt.
	HostConnectionTimeout Duration   `yaml:"hostConnectionTimeout" json:"hostConnectionTimeout"`
	State                 StateDB    `yaml:"state" json:"state"`
	Timeseries            Timeseries `yaml:"timeseries" json:"timeseries"`
}

// StateDB is the MySQL (or MariaDB) database holding groups, instances and the decision log.
type StateDB struct {
	Type       string     `yaml:"type" json:"type"`
	Connection Connection `yaml:"connection" json:"connection"`
}

// Timeseries is the InfluxDB database holding domain and host metrics.
type Timeseries struct {
	Type       string     `yaml:"type" json:"type"`
	Retention  Duration   `yaml:"retention" json:"retention"`
	Connection Connection `yaml:"connection" json:"connection"`
}

// Connection is how to reach a database.
type Connection struct {
	// URL is host:port for MySQL and http(s)://host:port for InfluxDB.
	URL          string      `yaml:"url" json:"url"`
	Database     string      `yaml:"database" json:"database"`
	Organization string      `yaml:"organization,omitempty" json:"organization,omitempty"`
	Credentials  Credentials `yaml:"credentials" json:"credentials"`
}

// Credentials are a username and password, usually given as $VARIABLES.
type Credentials struct {
	Username string `yaml:"username" json:"username"`
	Password string `yaml:"password" json:"-"`
}

// Checkin is the HTTP endpoint new VMs call (cloud-init phone_home) when they are up.
type Checkin struct {
	// Listen is the host:port the worker's check-in server binds.
	Listen string `yaml:"listen" json:"listen"`
	// URL is the base URL a guest uses to reach Listen (it may differ, e.g. 10.0.2.2 under user networking).
	URL string `yaml:"url" json:"url"`
	// Secret keys the HMAC of every instance's check-in token. Empty means the agents generate one
	// and share it through the state database; set it (usually as a $VARIABLE) to pin it.
	Secret string `yaml:"secret,omitempty" json:"-"`
}

// Reconciliation is how often each group evaluates its metrics.
type Reconciliation struct {
	Interval Duration `yaml:"interval" json:"interval"`
}

// Autoscale lists the hypervisor hosts and the autoscaling groups placed on them.
type Autoscale struct {
	Hosts  []Host           `yaml:"hosts" json:"hosts"`
	Groups map[string]Group `yaml:"groups" json:"groups"`
}

// Host is one hypervisor. Either URI is set, or Address (with Protocol, Port, User, SSHKey) builds it.
type Host struct {
	Name       string `yaml:"name" json:"name"`
	URI        string `yaml:"uri,omitempty" json:"uri,omitempty"`
	Address    string `yaml:"address,omitempty" json:"address,omitempty"`
	Port       int    `yaml:"port,omitempty" json:"port,omitempty"`
	Protocol   string `yaml:"protocol,omitempty" json:"protocol,omitempty"`
	User       string `yaml:"user,omitempty" json:"user,omitempty"`
	SSHKey     string `yaml:"sshKey,omitempty" json:"sshKey,omitempty"`
	Hypervisor string `yaml:"hypervisor" json:"hypervisor"`
}

// Group is one autoscaling group.
type Group struct {
	// Image is the base volume, as "pool/volume"; instance overlays are created in the same pool.
	Image string `yaml:"image" json:"image"`
	// Domain is the shape of a new VM. Exclusive with Name.
	Domain *DomainShape `yaml:"domain,omitempty" json:"domain,omitempty"`
	// Name is an existing domain used as a template. Exclusive with Domain.
	Name       string     `yaml:"name,omitempty" json:"name,omitempty"`
	CloudInit  CloudInit  `yaml:"cloud-init" json:"cloudInit"`
	Hosts      []string   `yaml:"hosts" json:"hosts"`
	Networking Networking `yaml:"networking" json:"networking"`
	Scaling    Scaling    `yaml:"scaling" json:"scaling"`
	Health     Health     `yaml:"health" json:"health"`
}

// Health says when an instance counts as up and when it counts as broken (and is replaced).
type Health struct {
	// Checkin makes a new instance wait for its cloud-init check-in before it counts as
	// running; default true. Turn it off for images without cloud-init.
	Checkin *bool `yaml:"checkin,omitempty" json:"checkin,omitempty"`
	// BootTimeout: an instance that has not checked in by then is replaced.
	BootTimeout Duration `yaml:"bootTimeout" json:"bootTimeout"`
	// HeartbeatInterval is how often the guest calls the check-in endpoint; 0 disables.
	HeartbeatInterval Duration `yaml:"heartbeatInterval" json:"heartbeatInterval"`
	// HeartbeatTimeout: an instance silent for this long is replaced; 0 disables.
	HeartbeatTimeout Duration `yaml:"heartbeatTimeout" json:"heartbeatTimeout"`
	// ShutdownGrace is how long a retiring guest gets after the ACPI request before destroy.
	ShutdownGrace Duration `yaml:"shutdownGrace" json:"shutdownGrace"`
}

// CheckinEnabled reports whether instances wait for their check-in (the default).
func (h Health) CheckinEnabled() bool { return h.Checkin == nil || *h.Checkin }

// DomainShape is what a new domain looks like.
type DomainShape struct {
	VCPUs int `yaml:"vcpus" json:"vcpus"`
	// Memory is in MiB.
	Memory int `yaml:"memory" json:"memory"`
	// Type is kvm or qemu; empty picks kvm where the host can run it, else qemu.
	Type string `yaml:"type,omitempty" json:"type,omitempty"`
	// Arch and Machine default to x86_64 and pc.
	Arch    string `yaml:"arch,omitempty" json:"arch,omitempty"`
	Machine string `yaml:"machine,omitempty" json:"machine,omitempty"`
	// Kernel, Initrd and Cmdline enable direct kernel boot for images without a bootloader.
	Kernel  string `yaml:"kernel,omitempty" json:"kernel,omitempty"`
	Initrd  string `yaml:"initrd,omitempty" json:"initrd,omitempty"`
	Cmdline string `yaml:"cmdline,omitempty" json:"cmdline,omitempty"`
	// Network is the libvirt network to attach ("" for none, "user" for user-mode networking).
	Network string `yaml:"network,omitempty" json:"network,omitempty"`
}

// CloudInit is the user's #cloud-config, inline or from a file.
type CloudInit struct {
	// Inline is not $VAR-expanded: shell snippets in a cloud-config use $ themselves.
	Inline string `yaml:"inline,omitempty" json:"inline,omitempty" expand:"false"`
	// File is resolved relative to the folder of the file that names it.
	File string `yaml:"file,omitempty" json:"file,omitempty"`
	// Content is the resolved #cloud-config text (Inline, or File's content), filled by Parse.
	Content string `yaml:"-" json:"-"`
}

// Networking is how instances get addresses.
type Networking struct {
	// Type is dynamic (DHCP), static (from Addresses) or ignore.
	Type      string   `yaml:"type" json:"type"`
	Addresses []string `yaml:"addresses,omitempty" json:"addresses,omitempty"`
	Subnet    string   `yaml:"subnet,omitempty" json:"subnet,omitempty"`
	Gateway   string   `yaml:"gateway,omitempty" json:"gateway,omitempty"`
}

// Scaling is the group's size bounds and its target-tracking policy.
type Scaling struct {
	MinNodes  int `yaml:"minNodes" json:"minNodes"`
	MaxNodes  int `yaml:"maxNodes" json:"maxNodes"`
	Increment int `yaml:"increment" json:"increment"`
	// Cooldown is the time after a scale action during which no other action is taken.
	Cooldown       Duration       `yaml:"cooldown" json:"cooldown"`
	ResourceTarget ResourceTarget `yaml:"resourceTarget" json:"resourceTarget"`
}

// ResourceTarget holds the utilisation percentages (0,100] target tracking aims for; 0 means unset.
type ResourceTarget struct {
	CPU    float64 `yaml:"cpu,omitempty" json:"cpu,omitempty"`
	Memory float64 `yaml:"memory,omitempty" json:"memory,omitempty"`
}

// Duration is a time.Duration written in YAML as integer seconds (60) or a Go duration ("1m30s").
type Duration struct{ time.Duration }
