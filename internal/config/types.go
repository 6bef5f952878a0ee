// Package config loads, expands, defaults and validates PremiScale's v1alpha1 YAML configuration.
package config

import "time"

// DefaultPath is where the worker looks for its configuration when -c is not given.
const DefaultPath = "/opt/premiscale/config.yaml"

// Version is the only configuration format version this build understands.
const Version = "v1alpha1"

// Config is the whole configuration file.
type Config struct {
	Version    string     `yaml:"version" json:"version"`
	Controller Controller `yaml:"controller" json:"controller"`
}

// Controller holds everything the worker and the group commands need.
type Controller struct {
	PidFile        string         `yaml:"pidFile" json:"pidFile"`
	Mode           string         `yaml:"mode" json:"mode"`
	Healthcheck    Healthcheck    `yaml:"healthcheck" json:"healthcheck"`
	Temporal       Temporal       `yaml:"temporal" json:"temporal"`
	Databases      Databases      `yaml:"databases" json:"databases"`
	Checkin        Checkin        `yaml:"checkin" json:"checkin"`
	Reconciliation Reconciliation `yaml:"reconciliation" json:"reconciliation"`
	Autoscale      Autoscale      `yaml:"autoscale" json:"autoscale"`
	Platform       Platform       `yaml:"platform" json:"platform"`
}

// Healthcheck is the worker's own health endpoint (/livez, /readyz, /healthz).
type Healthcheck struct {
	Host string `yaml:"host" json:"host"`
	Port int    `yaml:"port" json:"port"`
}

// Temporal says where the Temporal frontend is, how to reach it securely, and which namespace
// and shared task queue to use.
type Temporal struct {
	Address   string      `yaml:"address" json:"address"`
	Namespace string      `yaml:"namespace" json:"namespace"`
	TaskQueue string      `yaml:"taskQueue" json:"taskQueue"`
	TLS       TemporalTLS `yaml:"tls" json:"tls"`
	// APIKey authenticates to Temporal Cloud or any server that takes API keys; usually written
	// $TEMPORAL_API_KEY. It turns TLS on unless tls.enabled is false.
	APIKey string `yaml:"apiKey,omitempty" json:"-"`
	// Sources names where values set outside the file came from (an environment variable or a
	// flag), by key below controller.temporal ("address", "tls.ca"), so that messages point at
	// the right place. Keys absent here came from the file or its defaults.
	Sources map[string]string `yaml:"-" json:"-"`
}

// TemporalTLS secures the connection to Temporal. Relative paths start at the config file's folder.
type TemporalTLS struct {
	// Enabled turns TLS on or off; unset, TLS is on when any other key here or apiKey is set.
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// CA is a PEM file of the certificates that sign the server's; empty uses the system's roots.
	CA string `yaml:"ca,omitempty" json:"ca,omitempty"`
	// Cert and Key are the client's PEM certificate and key, for mTLS; both or neither.
	Cert string `yaml:"cert,omitempty" json:"cert,omitempty"`
	Key  string `yaml:"key,omitempty" json:"key,omitempty"`
	// ServerName is the name the server's certificate must carry, when the address's host is not it.
	ServerName string `yaml:"serverName,omitempty" json:"serverName,omitempty"`
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
	// Secret keys the HMAC of every instance's check-in token. Empty means the workers generate one
	// and share it through the state database; set it (usually as a $VARIABLE) to pin it.
	Secret string `yaml:"secret,omitempty" json:"-"`
}

// Reconciliation is how often each group evaluates its metrics.
type Reconciliation struct {
	Interval Duration `yaml:"interval" json:"interval"`
}

// Autoscale lists the hypervisor hosts and the autoscaling groups placed on them, and how the
// fleet of hosts is watched.
type Autoscale struct {
	Hosts []Host `yaml:"hosts" json:"hosts"`
	// Serve names the hosts this worker serves (runs their libvirt activities, proves them
	// alive, collects their stats); empty serves every host. A fleet runs one worker per host,
	// each serving its own; `premiscale worker --serve NAME` says the same per process.
	Serve  []string         `yaml:"serve,omitempty" json:"serve,omitempty"`
	Groups map[string]Group `yaml:"groups" json:"groups"`
	// HostDownAfter: a host without proof of life (its worker reached its libvirt) for this long
	// is down; no launch goes there. Default: two reconciliation intervals.
	HostDownAfter Duration `yaml:"hostDownAfter" json:"hostDownAfter"`
	// HostGracePeriod: the instances of a host down this long are recorded lost and replaced on
	// other hosts; 0 never replaces them.
	HostGracePeriod Duration `yaml:"hostGracePeriod" json:"hostGracePeriod"`
	// OrphanGracePeriod: a domain or volume with PremiScale's marks and no live instance is
	// removed (or reported) once it has been found so this long.
	OrphanGracePeriod Duration `yaml:"orphanGracePeriod" json:"orphanGracePeriod"`
	// Drift is what the sweep does with orphans: remove them, or only report them.
	Drift string `yaml:"drift" json:"drift"`
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
	// CPUOvercommit and MemoryOvercommit multiply the host's CPUs and memory (after Reserved)
	// into what placement may hand out.
	CPUOvercommit    float64 `yaml:"cpuOvercommit" json:"cpuOvercommit"`
	MemoryOvercommit float64 `yaml:"memoryOvercommit" json:"memoryOvercommit"`
	// Reserved is kept for the hypervisor itself.
	Reserved HostReserve `yaml:"reserved" json:"reserved"`
}

// What the drift sweep does with an orphan.
const (
	DriftRemove = "remove"
	DriftReport = "report"
)

// HostReserve is capacity placement never hands out.
type HostReserve struct {
	CPUs int `yaml:"cpus" json:"cpus"`
	// Memory is in MiB.
	Memory int `yaml:"memory" json:"memory"`
}

// Group is one autoscaling group.
type Group struct {
	// Image is the base volume; instance overlays are created in the same pool.
	Image Image `yaml:"image" json:"image"`
	// Placement is spread (balance the group over its hosts, then the least loaded) or pack
	// (fill the fullest host that has room).
	Placement string `yaml:"placement" json:"placement"`
	// Rollout bounds a rolling replacement of the group's instances.
	Rollout Rollout `yaml:"rollout" json:"rollout"`
	// Domain is the shape of a new VM. Exclusive with Name.
	Domain *DomainShape `yaml:"domain,omitempty" json:"domain,omitempty"`
	// Name is an existing domain used as a template. Exclusive with Domain.
	Name       string     `yaml:"name,omitempty" json:"name,omitempty"`
	CloudInit  CloudInit  `yaml:"cloud-init" json:"cloudInit"`
	Hosts      []string   `yaml:"hosts" json:"hosts"`
	Networking Networking `yaml:"networking" json:"networking"`
	Scaling    Scaling    `yaml:"scaling" json:"scaling"`
	Health     Health     `yaml:"health" json:"health"`
	// WarmPool keeps instances booted ahead of need, for scale-outs to take before they
	// launch cold.
	WarmPool WarmPool `yaml:"warmPool" json:"warmPool"`
}

// Image is a group's base image: a volume, "pool/volume", which `image: pool/volume` sets alone,
// and where to copy it from onto a host whose pool lacks it.
type Image struct {
	Volume string `yaml:"volume,shorthand" json:"volume"`
	// Source is a local path or an http(s) URL of the image file; SHA256 is required with it.
	Source string `yaml:"source,omitempty" json:"source,omitempty"`
	SHA256 string `yaml:"sha256,omitempty" json:"sha256,omitempty"`
}

// Rollout bounds a rolling replacement: at most MaxSurge instances above the group's size, and
// at most MaxUnavailable of its instances retired before their replacements run.
type Rollout struct {
	MaxSurge       int `yaml:"maxSurge" json:"maxSurge"`
	MaxUnavailable int `yaml:"maxUnavailable" json:"maxUnavailable"`
}

// WarmPool is a group's warm pool: Size instances booted once and parked in State (stopped,
// saved or running), outside the group's size and metrics but within maxNodes.
type WarmPool struct {
	Size  int    `yaml:"size" json:"size"`
	State string `yaml:"state" json:"state"`
	// ReuseOnScaleIn returns instances a scale-in retires to the pool instead of destroying them.
	ReuseOnScaleIn bool `yaml:"reuseOnScaleIn" json:"reuseOnScaleIn"`
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
	// Nameservers are the DNS servers of statically addressed instances (optional).
	Nameservers []string `yaml:"nameservers,omitempty" json:"nameservers,omitempty"`
}

// Scaling is the group's size bounds and the policy that moves it between them.
type Scaling struct {
	MinNodes int `yaml:"minNodes" json:"minNodes"`
	MaxNodes int `yaml:"maxNodes" json:"maxNodes"`
	// Increment caps how many instances one evaluation adds or removes.
	Increment int `yaml:"increment" json:"increment"`
	// Cooldown is the default of ScaleOut.Cooldown and ScaleIn.Cooldown.
	Cooldown Duration `yaml:"cooldown" json:"cooldown"`
	// ResourceTarget is shorthand for target-tracking checks named "cpu" and "memory".
	ResourceTarget ResourceTarget `yaml:"resourceTarget" json:"resourceTarget"`
	ScaleOut       ScaleOut       `yaml:"scaleOut" json:"scaleOut"`
	ScaleIn        ScaleIn        `yaml:"scaleIn" json:"scaleIn"`
	// Checks are combined the safe way: any scale-out beats hold, hold beats scale-in.
	Checks []Check `yaml:"checks,omitempty" json:"checks,omitempty"`
	// Schedules override the bounds while active; of several active ones, the last listed wins.
	Schedules []Schedule `yaml:"schedules,omitempty" json:"schedules,omitempty"`
	// TerminationPolicy picks the instances a scale-in retires: oldest-first, newest-first or
	// unhealthy-first.
	TerminationPolicy string `yaml:"terminationPolicy" json:"terminationPolicy"`
	// MaxConcurrentLaunches caps the instances launching (not yet running) at once; 0 = no cap.
	MaxConcurrentLaunches int           `yaml:"maxConcurrentLaunches" json:"maxConcurrentLaunches"`
	LaunchBackoff         LaunchBackoff `yaml:"launchBackoff" json:"launchBackoff"`
	// DryRun makes the group decide and record its decisions without acting on them.
	DryRun bool `yaml:"dryRun" json:"dryRun"`
}

// ResourceTarget holds the utilisation percentages (0,100] target tracking aims for; 0 means unset.
type ResourceTarget struct {
	CPU    float64 `yaml:"cpu,omitempty" json:"cpu,omitempty"`
	Memory float64 `yaml:"memory,omitempty" json:"memory,omitempty"`
}

// ScaleOut tunes how fast the group grows.
type ScaleOut struct {
	// Cooldown is the wait after a scale-out before the next metric-driven one.
	Cooldown  Duration  `yaml:"cooldown" json:"cooldown"`
	RateLimit RateLimit `yaml:"rateLimit" json:"rateLimit"`
}

// ScaleIn tunes how fast the group shrinks.
type ScaleIn struct {
	// Cooldown is the wait after any size change before a metric-driven scale-in.
	Cooldown Duration `yaml:"cooldown" json:"cooldown"`
	// StabilizationWindow: a scale-in goes no lower than the highest recommendation within it,
	// so a short dip does not shrink the group; 0 turns it off.
	StabilizationWindow Duration  `yaml:"stabilizationWindow" json:"stabilizationWindow"`
	RateLimit           RateLimit `yaml:"rateLimit" json:"rateLimit"`
}

// RateLimit allows at most Count instances, or Percent of the current size, to be added (or
// removed) per Period. The zero value is no limit.
type RateLimit struct {
	Count   int      `yaml:"count,omitempty" json:"count,omitempty"`
	Percent float64  `yaml:"percent,omitempty" json:"percent,omitempty"`
	Period  Duration `yaml:"period" json:"period"`
}

// Check is one opinion about the group's size: a metric and a strategy that turns it into a
// size. Exactly one of Target, Threshold and Fixed is set.
type Check struct {
	Name string `yaml:"name" json:"name"`
	// Metric is cpu, memory (the group's mean utilisation, percent) or query.
	Metric string `yaml:"metric" json:"metric"`
	// Query is a Flux query returning one number, written as a Go text/template over {{.Group}}
	// and {{.Window}} (see influxdb.RenderQuery). It is not $VAR-expanded: templates use $ themselves.
	Query string `yaml:"query,omitempty" json:"query,omitempty" expand:"false"`
	// Window is the span the metric is averaged (or the query's range) over.
	Window Duration `yaml:"window" json:"window"`
	// Staleness: data whose newest point is older than this counts as missing; 0 = no limit.
	Staleness Duration `yaml:"staleness" json:"staleness"`
	// OnError is what missing, stale or failed data does: hold, fail or fallback.
	OnError string `yaml:"onError" json:"onError"`
	// Fallback is the size recommended on error with OnError fallback.
	Fallback  int                `yaml:"fallback,omitempty" json:"fallback,omitempty"`
	Target    *TargetStrategy    `yaml:"target,omitempty" json:"target,omitempty"`
	Threshold *ThresholdStrategy `yaml:"threshold,omitempty" json:"threshold,omitempty"`
	Fixed     *FixedStrategy     `yaml:"fixed,omitempty" json:"fixed,omitempty"`
}

// TargetStrategy sizes the group so the metric comes to Value, holding while it is within
// Tolerance (a fraction of Value).
type TargetStrategy struct {
	Value     float64 `yaml:"value" json:"value"`
	Tolerance float64 `yaml:"tolerance" json:"tolerance"`
}

// ThresholdStrategy adds a step above Upper and removes one below Lower. The step is Step
// instances or StepPercent of the current size (rounded up, at least 1).
type ThresholdStrategy struct {
	Upper       float64 `yaml:"upper" json:"upper"`
	Lower       float64 `yaml:"lower" json:"lower"`
	Step        int     `yaml:"step,omitempty" json:"step,omitempty"`
	StepPercent float64 `yaml:"stepPercent,omitempty" json:"stepPercent,omitempty"`
}

// FixedStrategy always recommends Size.
type FixedStrategy struct {
	Size int `yaml:"size" json:"size"`
}

// Schedule overrides the bounds from each time Cron fires, for Duration. Nil fields keep the
// group's value; Desired is a floor while the schedule is active.
type Schedule struct {
	Name string `yaml:"name" json:"name"`
	// Cron is a 5-field cron expression or a descriptor such as @daily, read in TimeZone.
	Cron     string   `yaml:"cron" json:"cron"`
	TimeZone string   `yaml:"timeZone" json:"timeZone"`
	Duration Duration `yaml:"duration" json:"duration"`
	MinNodes *int     `yaml:"minNodes,omitempty" json:"minNodes,omitempty"`
	MaxNodes *int     `yaml:"maxNodes,omitempty" json:"maxNodes,omitempty"`
	Desired  *int     `yaml:"desired,omitempty" json:"desired,omitempty"`
}

// LaunchBackoff slows launches down after failures: after After consecutive failed launches the
// group waits Initial before the next, doubling each further failure up to Max.
type LaunchBackoff struct {
	After   int      `yaml:"after" json:"after"`
	Initial Duration `yaml:"initial" json:"initial"`
	Max     Duration `yaml:"max" json:"max"`
}

// Duration is a time.Duration written in YAML as integer seconds (60) or a Go duration ("1m30s").
type Duration struct{ time.Duration }
