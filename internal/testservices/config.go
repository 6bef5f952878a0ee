package testservices

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/config"
)

// TestPool is the storage pool every libvirt test:///default driver has.
const TestPool = "default-pool"

// AgentConfig describes an agent config on the real test services, with names unique to a test.
type AgentConfig struct {
	// Group and Host name the one group and the one test:///default host; empty means no group.
	Group, Host string
	// Path is where the config file was written; Config is the file loaded.
	Path   string
	Config *config.Config
}

// WriteAgentConfig writes a config pointing at a fresh MySQL and InfluxDB database, the shared
// Temporal dev server (on a task queue of its own) and libvirt's test:///default driver, and
// loads it through the real loader. The group's image is "<TestPool>/<group>-base.qcow2".
func WriteAgentConfig(t testing.TB, group, host, scaling string) AgentConfig {
	t.Helper()
	body := ""
	if group != "" {
		body = TestDriverGroup(group, host, scaling)
	}
	return WriteAgentConfigFor(t, AgentOptions{Group: group, Host: host, URI: "test:///default", GroupBody: body})
}

// TestDriverGroup is the body of a group on libvirt's test driver (for AgentOptions.GroupBody):
// image "<TestPool>/<group>-base.qcow2", no check-in, and the given scaling mapping.
func TestDriverGroup(group, host, scaling string) string {
	return fmt.Sprintf(`
        image: %[1]s/%[2]s-base.qcow2
        domain: {vcpus: 1, memory: 128}
        hosts: [%[3]s]
        networking: {type: ignore}
        # The test driver's domains run no guest, so nothing would ever check in.
        health: {checkin: false}
        scaling: %[4]s`, TestPool, group, host, scaling)
}

// AgentOptions shape a test agent config.
type AgentOptions struct {
	Group, Host, URI string
	// GroupBody is the group's mapping: YAML lines indented by 8 spaces, starting with a newline.
	GroupBody string
	// CheckinURL is the base URL guests use; empty means the check-in listener's own address.
	CheckinURL string
	// CheckinPort is the check-in listener's port; 0 picks a free one.
	CheckinPort int
	// CollectionInterval and ReconcileInterval default to 1 s and 2 s.
	CollectionInterval, ReconcileInterval time.Duration
	// TemporalAddr, State and Timeseries point the config at other services than the shared
	// ones (a test's private ones: see Stack); empty means the shared Temporal dev server and a
	// fresh database each on the shared MariaDB and InfluxDB.
	TemporalAddr string
	State        *config.StateDB
	Timeseries   *config.Timeseries
	// HostConnectionTimeout bounds every libvirt call; 0 means 20 s.
	HostConnectionTimeout time.Duration
}

// WriteAgentConfigFor writes and loads an agent config on the real test services for any
// libvirt URI and group body.
func WriteAgentConfigFor(t testing.TB, o AgentOptions) AgentConfig {
	t.Helper()
	var mysql config.StateDB
	if o.State != nil {
		mysql = *o.State
	} else {
		mysql = MySQL(t)
	}
	var influx config.Timeseries
	if o.Timeseries != nil {
		influx = *o.Timeseries
	} else {
		influx = Influx(t)
	}
	if o.TemporalAddr == "" {
		o.TemporalAddr = TemporalAddress(t)
	}
	if o.HostConnectionTimeout == 0 {
		o.HostConnectionTimeout = 20 * time.Second
	}
	dir := t.TempDir()
	groups := "{}"
	if o.Group != "" {
		groups = "\n      " + o.Group + ":" + o.GroupBody
	}
	if o.CheckinPort == 0 {
		o.CheckinPort = FreePort(t)
	}
	if o.CheckinURL == "" {
		o.CheckinURL = fmt.Sprintf("http://127.0.0.1:%d", o.CheckinPort)
	}
	if o.CollectionInterval == 0 {
		o.CollectionInterval = time.Second
	}
	if o.ReconcileInterval == 0 {
		o.ReconcileInterval = 2 * time.Second
	}
	doc := fmt.Sprintf(`version: v1alpha1
controller:
  pidFile: %[1]s/premiscale.pid
  healthcheck: {host: 127.0.0.1, port: %[2]d}
  temporal: {address: %[3]q, namespace: default, taskQueue: %[4]q}
  databases:
    collectionInterval: %[16]s
    hostConnectionTimeout: %[18]s
    state:
      type: mysql
      connection: {url: %[5]q, database: %[6]q, credentials: {username: %[7]q, password: %[8]q}}
    timeseries:
      type: influxdb
      connection: {url: %[9]q, database: %[10]q}
  checkin: {listen: "127.0.0.1:%[13]d", url: %[14]q}
  reconciliation: {interval: %[17]s}
  autoscale:
    hosts:
      - name: %[11]s
        uri: %[15]s
    groups: %[12]s
`, dir, FreePort(t), o.TemporalAddr, "tq-"+UniqueName(t, "q"),
		mysql.Connection.URL, mysql.Connection.Database, mysql.Connection.Credentials.Username, mysql.Connection.Credentials.Password,
		influx.Connection.URL, influx.Connection.Database, o.Host, groups, o.CheckinPort, o.CheckinURL, o.URI,
		o.CollectionInterval, o.ReconcileInterval, o.HostConnectionTimeout)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("test config does not load: %v\n%s", err, doc)
	}
	return AgentConfig{Group: o.Group, Host: o.Host, Path: path, Config: cfg}
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listened on a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
