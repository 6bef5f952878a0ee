package config

import (
	"sort"
	"time"
)

// Defaults that other packages may want to show or reuse.
const (
	DefaultMode               = "standalone"
	DefaultPidFile            = "/opt/premiscale/premiscale.pid"
	DefaultHealthcheckHost    = "127.0.0.1"
	DefaultHealthcheckPort    = 8085
	DefaultTemporalAddress    = "127.0.0.1:7233"
	DefaultTemporalNamespace  = "default"
	DefaultTaskQueue          = "premiscale"
	DefaultCheckinListen      = "127.0.0.1:8090"
	DefaultCheckinURL         = "http://127.0.0.1:8090"
	DefaultDatabase           = "premiscale"
	DefaultNetworkingType     = "dynamic"
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
	setDefault(r, "controller.temporal.taskQueue", &ctl.Temporal.TaskQueue, DefaultTaskQueue)
	setDefault(r, "controller.databases.collectionInterval", &ctl.Databases.CollectionInterval, Duration{DefaultCollectionInterval})
	setDefault(r, "controller.databases.hostConnectionTimeout", &ctl.Databases.HostConnectionTimeout, Duration{DefaultHostTimeout})
	setDefault(r, "controller.databases.state.connection.database", &ctl.Databases.State.Connection.Database, DefaultDatabase)
	setDefault(r, "controller.databases.timeseries.connection.database", &ctl.Databases.Timeseries.Connection.Database, DefaultDatabase)
	setDefault(r, "controller.checkin.listen", &ctl.Checkin.Listen, DefaultCheckinListen)
	setDefault(r, "controller.checkin.url", &ctl.Checkin.URL, DefaultCheckinURL)
	setDefault(r, "controller.reconciliation.interval", &ctl.Reconciliation.Interval, Duration{DefaultReconcileInterval})

	for i := range ctl.Autoscale.Hosts {
		h := &ctl.Autoscale.Hosts[i]
		p := hostPath(i)
		setDefault(r, p+".hypervisor", &h.Hypervisor, DefaultHypervisor)
		if h.Address != "" {
			setDefault(r, p+".protocol", &h.Protocol, DefaultProtocol)
		}
	}
	applyGroupDefaults(r, "controller.autoscale.groups", ctl.Autoscale.Groups)
}

// applyGroupDefaults fills the groups of a map whose path is prefix (groups are map values, so
// each is copied out and written back).
func applyGroupDefaults(r *report, prefix string, groups map[string]Group) {
	for _, name := range sortedKeys(groups) {
		g := groups[name]
		p := joinPath(prefix, name)
		setDefault(r, p+".networking.type", &g.Networking.Type, DefaultNetworkingType)
		setDefault(r, p+".scaling.increment", &g.Scaling.Increment, DefaultIncrement)
		setDefault(r, p+".scaling.cooldown", &g.Scaling.Cooldown, Duration{DefaultCooldown})
		setDefault(r, p+".health.bootTimeout", &g.Health.BootTimeout, Duration{DefaultBootTimeout})
		setDefault(r, p+".health.heartbeatInterval", &g.Health.HeartbeatInterval, Duration{DefaultHeartbeatInterval})
		setDefault(r, p+".health.heartbeatTimeout", &g.Health.HeartbeatTimeout, Duration{DefaultHeartbeatTimeout})
		setDefault(r, p+".health.shutdownGrace", &g.Health.ShutdownGrace, Duration{DefaultShutdownGrace})
		groups[name] = g
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
