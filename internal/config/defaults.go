package config

import (
	"fmt"
	"sort"
	"time"

	"github.com/premiscale/premiscale/internal/policy"
	"github.com/premiscale/premiscale/internal/spec"
)

// Defaults that other packages may want to show or reuse.
const (
	DefaultMode               = "standalone"
	DefaultPidFile            = "/opt/premiscale/premiscale.pid"
	DefaultHealthcheckHost    = "127.0.0.1"
	DefaultHealthcheckPort    = 8085
	DefaultTemporalAddress    = "127.0.0.1:7233"
	DefaultTemporalNamespace  = "default"
	DefaultCheckinListen      = "127.0.0.1:8090"
	DefaultCheckinURL         = "http://127.0.0.1:8090"
	DefaultDatabase           = "premiscale"
	DefaultNetworkingType     = string(spec.NetworkDynamic)
	DefaultHypervisor         = "qemu"
	DefaultProtocol           = "ssh"
	DefaultIncrement          = 1
	DefaultCollectionInterval = 30 * time.Second
	DefaultHostTimeout        = 30 * time.Second
	DefaultReconcileInterval  = 60 * time.Second
	DefaultCooldown           = 60 * time.Second
	DefaultBootTimeout        = 10 * time.Minute
	DefaultHeartbeatInterval  = 30 * time.Second
	DefaultHeartbeatTimeout   = 2 * time.Minute
	DefaultShutdownGrace      = 60 * time.Second

	// A host's CPUs are commonly shared 4:1 by VMs; its memory is not shared at all.
	DefaultCPUOvercommit     = 4.0
	DefaultMemoryOvercommit  = 1.0
	DefaultReservedCPUs      = 1
	DefaultReservedMemoryMiB = 1024
	// A host rebooting comes back within minutes; replacing its instances sooner churns.
	DefaultHostGracePeriod   = 5 * time.Minute
	DefaultOrphanGracePeriod = 10 * time.Minute
	DefaultDrift             = DriftRemove
	DefaultPlacement         = string(spec.PlacementSpread)
	DefaultMaxSurge          = 1
	DefaultMaxUnavailable    = 0
	DefaultPoolState         = string(spec.PoolStopped)

	DefaultStabilizationWindow = 300 * time.Second
	DefaultOnError             = policy.OnErrorHold
	// DefaultTolerance is both a target check's default and the resourceTarget shorthand's.
	DefaultTolerance         = policy.DefaultTolerance
	DefaultThresholdStep     = 1
	DefaultTimeZone          = "UTC"
	DefaultTerminationPolicy = string(spec.TerminateNewestFirst)
	DefaultBackoffAfter      = 3
	DefaultBackoffInitial    = 30 * time.Second
	DefaultBackoffMax        = 10 * time.Minute
)

// setDefault sets *field to value when the key at path was absent (or empty after expansion).
func setDefault[T any](r *report, path string, field *T, value T) {
	if !r.present[path] {
		*field = value
	}
}

func applyDefaults(r *report, c *Config) {
	ctl := &c.Controller
	setDefault(r, "controller.mode", &ctl.Mode, DefaultMode)
	setDefault(r, "controller.pidFile", &ctl.PidFile, DefaultPidFile)
	setDefault(r, "controller.healthcheck.host", &ctl.Healthcheck.Host, DefaultHealthcheckHost)
	setDefault(r, "controller.healthcheck.port", &ctl.Healthcheck.Port, DefaultHealthcheckPort)
	setDefault(r, "controller.temporal.address", &ctl.Temporal.Address, DefaultTemporalAddress)
	setDefault(r, "controller.temporal.namespace", &ctl.Temporal.Namespace, DefaultTemporalNamespace)
	setDefault(r, "controller.temporal.taskQueue", &ctl.Temporal.TaskQueue, spec.DefaultTaskQueue)
	setDefault(r, "controller.databases.collectionInterval", &ctl.Databases.CollectionInterval, Duration{DefaultCollectionInterval})
	setDefault(r, "controller.databases.hostConnectionTimeout", &ctl.Databases.HostConnectionTimeout, Duration{DefaultHostTimeout})
	setDefault(r, "controller.databases.state.connection.database", &ctl.Databases.State.Connection.Database, DefaultDatabase)
	setDefault(r, "controller.databases.timeseries.connection.database", &ctl.Databases.Timeseries.Connection.Database, DefaultDatabase)
	setDefault(r, "controller.checkin.listen", &ctl.Checkin.Listen, DefaultCheckinListen)
	setDefault(r, "controller.checkin.url", &ctl.Checkin.URL, DefaultCheckinURL)
	setDefault(r, "controller.reconciliation.interval", &ctl.Reconciliation.Interval, Duration{DefaultReconcileInterval})
	setDefault(r, "controller.platform.host", &ctl.Platform.Host, DefaultPlatformHost)

	as := &ctl.Autoscale
	setDefault(r, "controller.autoscale.hostDownAfter", &as.HostDownAfter, Duration{2 * ctl.Reconciliation.Interval.Duration})
	setDefault(r, "controller.autoscale.hostGracePeriod", &as.HostGracePeriod, Duration{DefaultHostGracePeriod})
	setDefault(r, "controller.autoscale.orphanGracePeriod", &as.OrphanGracePeriod, Duration{DefaultOrphanGracePeriod})
	setDefault(r, "controller.autoscale.drift", &as.Drift, DefaultDrift)
	for i := range ctl.Autoscale.Hosts {
		h := &ctl.Autoscale.Hosts[i]
		p := hostPath(i)
		setDefault(r, p+".hypervisor", &h.Hypervisor, DefaultHypervisor)
		setDefault(r, p+".cpuOvercommit", &h.CPUOvercommit, DefaultCPUOvercommit)
		setDefault(r, p+".memoryOvercommit", &h.MemoryOvercommit, DefaultMemoryOvercommit)
		setDefault(r, p+".reserved.cpus", &h.Reserved.CPUs, DefaultReservedCPUs)
		setDefault(r, p+".reserved.memory", &h.Reserved.Memory, DefaultReservedMemoryMiB)
		if h.Address != "" {
			setDefault(r, p+".protocol", &h.Protocol, DefaultProtocol)
		}
	}
	applyGroupDefaults(r, "controller.autoscale.groups", ctl.Autoscale.Groups, ctl.DefaultCheckWindow())
}

// DefaultCheckWindow is the window of a check that sets none: the reconciliation interval, but
// at least two collection intervals, so that every instance has a sample in it even when the
// collector's and the group's clocks drift apart.
func (c *Controller) DefaultCheckWindow() time.Duration {
	return max(c.Reconciliation.Interval.Duration, 2*c.Databases.CollectionInterval.Duration)
}

// applyGroupDefaults fills the groups of a map whose path is prefix (groups are map values, so
// each is copied out and written back). window is what checks default their window to
// (Controller.DefaultCheckWindow); 0 (a group file read without its configuration) leaves
// windows unset.
func applyGroupDefaults(r *report, prefix string, groups map[string]Group, window time.Duration) {
	for _, name := range sortedKeys(groups) {
		g := groups[name]
		p := joinPath(prefix, name)
		setDefault(r, p+".networking.type", &g.Networking.Type, DefaultNetworkingType)
		setDefault(r, p+".placement", &g.Placement, DefaultPlacement)
		setDefault(r, p+".rollout.maxSurge", &g.Rollout.MaxSurge, DefaultMaxSurge)
		setDefault(r, p+".rollout.maxUnavailable", &g.Rollout.MaxUnavailable, DefaultMaxUnavailable)
		applyScalingDefaults(r, p+".scaling", &g.Scaling, window)
		setDefault(r, p+".health.bootTimeout", &g.Health.BootTimeout, Duration{DefaultBootTimeout})
		setDefault(r, p+".health.heartbeatInterval", &g.Health.HeartbeatInterval, Duration{DefaultHeartbeatInterval})
		setDefault(r, p+".health.heartbeatTimeout", &g.Health.HeartbeatTimeout, Duration{DefaultHeartbeatTimeout})
		setDefault(r, p+".health.shutdownGrace", &g.Health.ShutdownGrace, Duration{DefaultShutdownGrace})
		setDefault(r, p+".warmPool.state", &g.WarmPool.State, DefaultPoolState)
		groups[name] = g
	}
}

// applyScalingDefaults fills a group's scaling at path p. Order matters: the per-direction
// cooldowns default to the (defaulted) cooldown, and maxConcurrentLaunches to the increment.
func applyScalingDefaults(r *report, p string, s *Scaling, window time.Duration) {
	setDefault(r, p+".increment", &s.Increment, DefaultIncrement)
	setDefault(r, p+".cooldown", &s.Cooldown, Duration{DefaultCooldown})
	setDefault(r, p+".scaleOut.cooldown", &s.ScaleOut.Cooldown, s.Cooldown)
	setDefault(r, p+".scaleIn.cooldown", &s.ScaleIn.Cooldown, s.Cooldown)
	setDefault(r, p+".scaleIn.stabilizationWindow", &s.ScaleIn.StabilizationWindow, Duration{DefaultStabilizationWindow})
	for i := range s.Checks {
		c := &s.Checks[i]
		cp := fmt.Sprintf("%s.checks[%d]", p, i)
		if window > 0 {
			setDefault(r, cp+".window", &c.Window, Duration{window})
		}
		setDefault(r, cp+".onError", &c.OnError, DefaultOnError)
		if c.Target != nil {
			setDefault(r, cp+".target.tolerance", &c.Target.Tolerance, DefaultTolerance)
		}
		if c.Threshold != nil && !r.present[cp+".threshold.step"] && !r.present[cp+".threshold.stepPercent"] {
			c.Threshold.Step = DefaultThresholdStep
		}
	}
	for i := range s.Schedules {
		setDefault(r, fmt.Sprintf("%s.schedules[%d].timeZone", p, i), &s.Schedules[i].TimeZone, DefaultTimeZone)
	}
	setDefault(r, p+".terminationPolicy", &s.TerminationPolicy, DefaultTerminationPolicy)
	setDefault(r, p+".maxConcurrentLaunches", &s.MaxConcurrentLaunches, s.Increment)
	setDefault(r, p+".launchBackoff.after", &s.LaunchBackoff.After, DefaultBackoffAfter)
	setDefault(r, p+".launchBackoff.initial", &s.LaunchBackoff.Initial, Duration{DefaultBackoffInitial})
	setDefault(r, p+".launchBackoff.max", &s.LaunchBackoff.Max, Duration{DefaultBackoffMax})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
