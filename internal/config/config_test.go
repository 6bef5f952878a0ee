package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// env returns a lookupEnv over a fixed map, so tests do not depend on the process environment.
func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// base is the smallest valid configuration; the invalid cases each change a piece of it.
const base = `version: v1alpha1
controller:
  databases:
    state:
      type: mysql
      connection:
        url: 127.0.0.1:3306
        credentials:
          username: premiscale
          password: premiscale
    timeseries:
      type: influxdb
      connection:
        url: http://127.0.0.1:8086
  autoscale:
    hosts:
      - name: local
        uri: test:///default
      - name: kvm1
        address: 10.0.0.1
        user: root
    groups:
      web:
        image: default/base.qcow2
        domain:
          vcpus: 1
          memory: 512
        hosts: [local]
        scaling:
          minNodes: 1
          maxNodes: 3
          resourceTarget:
            cpu: 50
`

// edit applies old→new replacements to base, failing the test if an old text is absent (so a
// case cannot silently test the unchanged base).
func edit(t *testing.T, pairs ...string) string {
	t.Helper()
	s := base
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("edit: %q is not in the base config", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

func problems(t *testing.T, err error) []string {
	t.Helper()
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("want a *ValidationError, got %T: %v", err, err)
	}
	out := make([]string, len(verr.Problems))
	for i, p := range verr.Problems {
		out[i] = p.String()
	}
	return out
}

func TestBaseIsValidAndDefaulted(t *testing.T) {
	cfg, err := Parse([]byte(base), "config.yaml", env(nil))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	ctl := cfg.Controller
	checks := []struct {
		name      string
		got, want any
	}{
		{"mode", ctl.Mode, "standalone"},
		{"pidFile", ctl.PidFile, "/opt/premiscale/premiscale.pid"},
		{"healthcheck.host", ctl.Healthcheck.Host, "127.0.0.1"},
		{"healthcheck.port", ctl.Healthcheck.Port, 8085},
		{"temporal.address", ctl.Temporal.Address, "127.0.0.1:7233"},
		{"temporal.namespace", ctl.Temporal.Namespace, "default"},
		{"temporal.taskQueue", ctl.Temporal.TaskQueue, "premiscale"},
		{"collectionInterval", ctl.Databases.CollectionInterval.Duration, 30 * time.Second},
		{"hostConnectionTimeout", ctl.Databases.HostConnectionTimeout.Duration, 30 * time.Second},
		{"reconciliation.interval", ctl.Reconciliation.Interval.Duration, 60 * time.Second},
		{"checkin.listen", ctl.Checkin.Listen, "127.0.0.1:8090"},
		{"checkin.url", ctl.Checkin.URL, "http://127.0.0.1:8090"},
		{"state.database", ctl.Databases.State.Connection.Database, "premiscale"},
		{"timeseries.database", ctl.Databases.Timeseries.Connection.Database, "premiscale"},
		{"hosts[0].hypervisor", ctl.Autoscale.Hosts[0].Hypervisor, "qemu"},
		{"hosts[0].protocol (uri: none)", ctl.Autoscale.Hosts[0].Protocol, ""},
		{"hosts[1].protocol", ctl.Autoscale.Hosts[1].Protocol, "ssh"},
		{"web.networking.type", ctl.Autoscale.Groups["web"].Networking.Type, "dynamic"},
		{"web.increment", ctl.Autoscale.Groups["web"].Scaling.Increment, 1},
		{"web.cooldown", ctl.Autoscale.Groups["web"].Scaling.Cooldown.Duration, 60 * time.Second},
		{"web.cloud-init.content", ctl.Autoscale.Groups["web"].CloudInit.Content, ""},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestFullFile(t *testing.T) {
	cfg, err := Parse(mustRead(t, "testdata/full.yaml"), "testdata/full.yaml", env(map[string]string{
		"DB_USER": "ps", "DB_PASSWORD": "s3cret$", "INFLUX_USER": "influx",
		// INFLUX_PASSWORD is unset: full.yaml writes it ${INFLUX_PASSWORD:-}, an explicit empty value.
	}))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	ctl := cfg.Controller
	web, batch := ctl.Autoscale.Groups["web"], ctl.Autoscale.Groups["batch"]
	checks := []struct {
		name      string
		got, want any
	}{
		{"pidFile", ctl.PidFile, "/run/premiscale.pid"},
		{"healthcheck", ctl.Healthcheck, Healthcheck{Host: "0.0.0.0", Port: 9085}},
		{"temporal", ctl.Temporal, Temporal{Address: "temporal.example.com:7233", Namespace: "prod", TaskQueue: "premiscale"}},
		{"collectionInterval (integer seconds)", ctl.Databases.CollectionInterval.Duration, 15 * time.Second},
		{"hostConnectionTimeout", ctl.Databases.HostConnectionTimeout.Duration, 90 * time.Second},
		{"state credentials (${VAR} and $VAR)", ctl.Databases.State.Connection.Credentials, Credentials{Username: "ps", Password: "s3cret$"}},
		{"state database", ctl.Databases.State.Connection.Database, "ps"},
		{"timeseries retention", ctl.Databases.Timeseries.Retention.Duration, 720 * time.Hour},
		{"timeseries org", ctl.Databases.Timeseries.Connection.Organization, "acme"},
		{"timeseries credentials (optional, unset)", ctl.Databases.Timeseries.Connection.Credentials, Credentials{Username: "influx"}},
		{"checkin", ctl.Checkin, Checkin{Listen: ":8090", URL: "https://checkin.example.com/base"}},
		{"reconciliation", ctl.Reconciliation.Interval.Duration, 2 * time.Minute},
		{"hosts", len(ctl.Autoscale.Hosts), 3},
		{"kvm2 protocol", ctl.Autoscale.Hosts[1].Protocol, "tls"},
		{"web domain", *web.Domain, DomainShape{VCPUs: 2, Memory: 1024, Type: "qemu", Kernel: "/var/lib/premiscale/vmlinuz",
			Initrd: "/var/lib/premiscale/initrd.img", Cmdline: "root=/dev/vda console=ttyS0", Network: "user"}},
		{"web cloud-init content (from file)", web.CloudInit.Content, "#cloud-config\npackages: [nginx]\n"},
		{"web hosts", web.Hosts, []string{"kvm1", "kvm2"}},
		{"web networking", web.Networking, Networking{Type: "static", Subnet: "192.168.5.0/24", Gateway: "192.168.5.1",
			Addresses: []string{"192.168.5.10-192.168.5.12", "192.168.5.20"}}},
		{"web scaling", web.Scaling, Scaling{MinNodes: 1, MaxNodes: 4, Increment: 2, Cooldown: Duration{0},
			ResourceTarget: ResourceTarget{CPU: 50, Memory: 80.5},
			ScaleIn:        ScaleIn{StabilizationWindow: Duration{5 * time.Minute}},
			// The defaults that follow other keys: maxConcurrentLaunches is the increment.
			TerminationPolicy: "newest-first", MaxConcurrentLaunches: 2,
			LaunchBackoff: LaunchBackoff{After: 3, Initial: Duration{30 * time.Second}, Max: Duration{10 * time.Minute}}}},
		{"web pool", web.ImagePool(), "default"},
		{"web volume", web.ImageVolume(), "web.qcow2"},
		{"batch name", batch.Name, "batch-template"},
		{"batch domain", batch.Domain, (*DomainShape)(nil)},
		{"batch inline is not expanded", batch.CloudInit.Content, "#cloud-config\nruncmd:\n  - echo $HOME > /tmp/home\n"},
		{"batch defaults", batch.Scaling, Scaling{MaxNodes: 2, Increment: 1, Cooldown: Duration{time.Minute},
			ResourceTarget:    ResourceTarget{Memory: 70},
			ScaleOut:          ScaleOut{Cooldown: Duration{time.Minute}},
			ScaleIn:           ScaleIn{Cooldown: Duration{time.Minute}, StabilizationWindow: Duration{5 * time.Minute}},
			TerminationPolicy: "newest-first", MaxConcurrentLaunches: 1,
			LaunchBackoff: LaunchBackoff{After: 3, Initial: Duration{30 * time.Second}, Max: Duration{10 * time.Minute}}}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	if h, ok := cfg.Host("kvm2"); !ok || h.Address != "kvm2.example.com" {
		t.Errorf("Host(kvm2) = %+v, %v", h, ok)
	}
	if _, ok := cfg.Host("nope"); ok {
		t.Error("Host(nope) found a host")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestInvalid(t *testing.T) {
	const web = "controller.autoscale.groups.web"
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string // every problem, in file order
	}{
		{
			name: "unknown key with suggestion",
			yaml: edit(t, "      connection:\n        url: 127.0.0.1:3306", "      connection:\n        url: 127.0.0.1:3306\n        databse: x"),
			want: []string{"controller.databases.state.connection.databse: unknown key (did you mean database?)"},
		},
		{
			name: "unknown key listing allowed keys",
			yaml: edit(t, "version: v1alpha1\n", "version: v1alpha1\nfrobnicate: yes\n"),
			want: []string{"frobnicate: unknown key (allowed keys here: controller, version)"},
		},
		{
			name: "misspelt parent key",
			yaml: edit(t, "    timeseries:\n      type: influxdb\n      connection:", "    timeseries:\n      type: influxdb\n      conection:"),
			want: []string{
				// Not also "connection.url: is required": that follows from the typo.
				"controller.databases.timeseries.conection: unknown key (did you mean connection?)",
			},
		},
		{
			name: "health timeouts",
			yaml: edit(t, "        hosts: [local]\n", "        hosts: [local]\n        health: {bootTimeout: 0, heartbeatInterval: 60s, heartbeatTimeout: 30s, shutdownGrace: -1}\n"),
			want: []string{
				web + ".health.shutdownGrace: must not be negative, got -1",
				web + ".health.bootTimeout: must be greater than 0 while checkin is on (an instance that never checks in would wait forever)",
				web + ".health: heartbeatTimeout (30s) must be longer than heartbeatInterval (1m0s), or every instance would look silent",
			},
		},
		{
			name: "wrong version",
			yaml: edit(t, "version: v1alpha1", "version: v1beta1"),
			want: []string{`version: unsupported version "v1beta1" (this build understands v1alpha1)`},
		},
		{
			name: "missing version",
			yaml: edit(t, "version: v1alpha1\n", ""),
			want: []string{"version: is required (this build understands v1alpha1)"},
		},
		{
			name: "mode",
			yaml: edit(t, "controller:\n", "controller:\n  mode: hosted\n"),
			want: []string{`controller.mode: unsupported mode "hosted" (allowed: standalone)`},
		},
		{
			name: "state type",
			yaml: edit(t, "type: mysql", "type: postgres"),
			want: []string{`controller.databases.state.type: unsupported database type "postgres" (allowed: mysql)`},
		},
		{
			name: "timeseries type",
			yaml: edit(t, "type: influxdb", "type: prometheus"),
			want: []string{`controller.databases.timeseries.type: unsupported database type "prometheus" (allowed: influxdb)`},
		},
		{
			name: "min greater than max",
			yaml: edit(t, "minNodes: 1", "minNodes: 5"),
			want: []string{web + ".scaling: minNodes (5) is greater than maxNodes (3)"},
		},
		{
			name: "negative min, zero max, zero increment",
			yaml: edit(t, "minNodes: 1\n          maxNodes: 3", "minNodes: -1\n          maxNodes: 0\n          increment: 0"),
			want: []string{
				web + ".scaling.minNodes: must not be negative, got -1",
				web + ".scaling.maxNodes: must be at least 1, got 0",
				web + ".scaling.increment: must be at least 1, got 0",
			},
		},
		{
			name: "zero intervals",
			yaml: edit(t, "controller:\n", "controller:\n  reconciliation:\n    interval: 0\n",
				"  databases:\n", "  databases:\n    collectionInterval: 0s\n    hostConnectionTimeout: 0\n"),
			want: []string{
				"controller.reconciliation.interval: must be greater than 0, got 0s",
				"controller.databases.collectionInterval: must be greater than 0, got 0s",
				"controller.databases.hostConnectionTimeout: must be greater than 0, got 0s",
			},
		},
		{
			name: "negative and garbage durations",
			yaml: edit(t, "controller:\n", "controller:\n  reconciliation:\n    interval: -10\n",
				"maxNodes: 3", "maxNodes: 3\n          cooldown: -5s",
				"  databases:\n", "  databases:\n    collectionInterval: often\n    hostConnectionTimeout: [1]\n"),
			want: []string{
				"controller.reconciliation.interval: must not be negative, got -10",
				`controller.databases.collectionInterval: invalid duration "often": use whole seconds (60) or a Go duration such as "90s" or "5m"`,
				"controller.databases.hostConnectionTimeout: expected a duration, got a list",
				web + ".scaling.cooldown: must not be negative, got -5s",
			},
		},
		{
			name: "resource targets out of range",
			yaml: edit(t, "cpu: 50", "cpu: 0\n            memory: 101"),
			want: []string{web + ".scaling.resourceTarget.memory: must be a percentage in (0,100] for metric memory, got 101"},
		},
		{
			name: "negative resource target",
			yaml: edit(t, "cpu: 50", "cpu: -5"),
			want: []string{web + ".scaling.resourceTarget.cpu: must be a percentage in (0,100] for metric cpu, got -5"},
		},
		{
			name: "nothing sizes the group",
			yaml: edit(t, "          resourceTarget:\n            cpu: 50\n", ""),
			want: []string{web + ".scaling: nothing sizes the group: set at least one of resourceTarget, checks or schedules"},
		},
		{
			name: "empty resource target",
			yaml: edit(t, "            cpu: 50\n", "            cpu: 0\n"),
			want: []string{web + ".scaling.resourceTarget: at least one of cpu or memory (a utilisation percentage to aim for) must be set"},
		},
		{
			name: "duplicate host names",
			yaml: edit(t, "name: kvm1", "name: local"),
			want: []string{`controller.autoscale.hosts[1].name: duplicate host name "local" (also hosts[0])`},
		},
		{
			name: "host with both uri and address",
			yaml: edit(t, "uri: test:///default", "uri: test:///default\n        address: 10.0.0.2"),
			want: []string{"controller.autoscale.hosts[0]: set either uri or address, not both"},
		},
		{
			name: "host with neither uri nor address",
			yaml: edit(t, "        address: 10.0.0.1\n        user: root\n", ""),
			want: []string{"controller.autoscale.hosts[1]: one of uri (a libvirt URI) or address (with protocol, port, user, sshKey) is required"},
		},
		{
			name: "address settings with uri",
			yaml: edit(t, "uri: test:///default", "uri: test:///default\n        port: 22\n        user: root"),
			want: []string{"controller.autoscale.hosts[0]: port, user are used only with address; with uri, put them in the URI"},
		},
		{
			name: "protocol",
			yaml: edit(t, "user: root", "user: root\n        protocol: telnet"),
			want: []string{`controller.autoscale.hosts[1].protocol: unsupported protocol "telnet" (allowed: ssh, tls, tcp)`},
		},
		{
			name: "user with tls",
			yaml: edit(t, "user: root", "user: root\n        protocol: tls"),
			want: []string{"controller.autoscale.hosts[1]: user and sshKey are used only with protocol ssh, not tls"},
		},
		{
			name: "hypervisor",
			yaml: edit(t, "user: root", "user: root\n        hypervisor: xen"),
			want: []string{`controller.autoscale.hosts[1].hypervisor: unsupported hypervisor "xen" (allowed: qemu)`},
		},
		{
			name: "bad address and port",
			yaml: edit(t, "address: 10.0.0.1", "address: bad_host!\n        port: 70000"),
			want: []string{
				`controller.autoscale.hosts[1].address: invalid host "bad_host!": must be an IP address or a host name`,
				"controller.autoscale.hosts[1].port: port must be between 1 and 65535, got 70000",
			},
		},
		{
			name: "uri with unsupported transport",
			yaml: edit(t, "uri: test:///default", "uri: qemu+ftp://h/system"),
			want: []string{`controller.autoscale.hosts[0].uri: invalid libvirt URI "qemu+ftp://h/system": unsupported transport "ftp" (allowed: unix, ssh, libssh, libssh2, tls, tcp)`},
		},
		{
			name: "uri with unsupported driver",
			yaml: edit(t, "uri: test:///default", "uri: xen:///system"),
			want: []string{`controller.autoscale.hosts[0].uri: invalid libvirt URI "xen:///system": unsupported driver "xen" (allowed: qemu, test)`},
		},
		{
			name: "uri that does not parse",
			yaml: edit(t, "uri: test:///default", `uri: "qemu+ssh://ho st/system"`),
			want: []string{`controller.autoscale.hosts[0].uri: invalid libvirt URI "qemu+ssh://ho st/system": invalid character " " in host name`},
		},
		{
			name: "uri without a scheme",
			yaml: edit(t, "uri: test:///default", "uri: /var/run/libvirt"),
			want: []string{`controller.autoscale.hosts[0].uri: invalid libvirt URI "/var/run/libvirt": must look like qemu:///system or qemu+ssh://user@host/system`},
		},
		{
			name: "remote uri without host",
			yaml: edit(t, "uri: test:///default", "uri: qemu+ssh:///system"),
			want: []string{`controller.autoscale.hosts[0].uri: invalid libvirt URI "qemu+ssh:///system": transport ssh needs a host`},
		},
		{
			name: "qemu uri with a bad path",
			yaml: edit(t, "uri: test:///default", "uri: qemu:///sytem"),
			want: []string{`controller.autoscale.hosts[0].uri: invalid libvirt URI "qemu:///sytem": the qemu driver's path is /system or /session`},
		},
		{
			name: "group naming an unknown host, twice the same host",
			yaml: edit(t, "hosts: [local]", "hosts: [local, kvm9, local]"),
			want: []string{
				web + `.hosts[1]: unknown host "kvm9" (defined hosts: local, kvm1)`,
				web + `.hosts[2]: host "local" is listed twice`,
			},
		},
		{
			name: "group without hosts",
			yaml: edit(t, "hosts: [local]", "hosts: []"),
			want: []string{web + ".hosts: at least one host is required"},
		},
		{
			name: "group without image",
			yaml: edit(t, "        image: default/base.qcow2\n", ""),
			want: []string{web + ".image: is required (pool/volume of the base image)"},
		},
		{
			name: "image not pool/volume",
			yaml: edit(t, "image: default/base.qcow2", "image: base.qcow2"),
			want: []string{web + `.image: must be pool/volume (a libvirt storage pool and a volume in it), got "base.qcow2"`},
		},
		{
			name: "group with domain and name",
			yaml: edit(t, "        domain:\n", "        name: template\n        domain:\n"),
			want: []string{web + ": set either domain (the shape of new VMs) or name (an existing domain to copy), not both"},
		},
		{
			name: "group with neither domain nor name",
			yaml: edit(t, "        domain:\n          vcpus: 1\n          memory: 512\n", ""),
			want: []string{web + ": one of domain (the shape of new VMs) or name (an existing domain to copy) is required"},
		},
		{
			name: "domain too small",
			yaml: edit(t, "vcpus: 1\n          memory: 512", "vcpus: 0\n          memory: 32\n          type: xen\n          initrd: /boot/initrd"),
			want: []string{
				web + ".domain.vcpus: must be at least 1, got 0",
				web + ".domain.memory: must be at least 64 (MiB), got 32",
				web + `.domain.type: unsupported domain type "xen" (allowed: kvm, qemu, or empty to pick kvm where the host can)`,
				web + ".domain.initrd: is used only with kernel",
			},
		},
		{
			name: "invalid group name",
			yaml: edit(t, "    groups:\n      web:", "    groups:\n      Web_1:"),
			want: []string{`controller.autoscale.groups.Web_1: invalid group name "Web_1": use lowercase letters, digits and '-', start with a letter, at most 40 characters (it becomes a workflow ID and part of domain names)`},
		},
		{
			name: "group name too long",
			yaml: edit(t, "    groups:\n      web:", "    groups:\n      "+strings.Repeat("a", 41)+":"),
			want: []string{"controller.autoscale.groups." + strings.Repeat("a", 41) + ": invalid group name"},
		},
		{
			name: "cloud-init inline and file",
			yaml: edit(t, "        hosts: [local]", "        hosts: [local]\n        cloud-init:\n          inline: \"#cloud-config\"\n          file: cloud-config.yaml"),
			want: []string{web + ".cloud-init: set either inline or file, not both"},
		},
		{
			name: "cloud-init file missing",
			yaml: edit(t, "        hosts: [local]", "        hosts: [local]\n        cloud-init:\n          file: nope.yaml"),
			want: []string{web + ".cloud-init.file: cannot read testdata/nope.yaml: file does not exist (relative paths start at the config file's folder)"},
		},
		{
			name: "cloud-init file without #cloud-config",
			yaml: edit(t, "        hosts: [local]", "        hosts: [local]\n        cloud-init:\n          file: not-cloud-config.yaml"),
			want: []string{web + `.cloud-init.file: testdata/not-cloud-config.yaml line 1: must start with a #cloud-config line, got "packages: [nginx]"`},
		},
		{
			name: "cloud-init file with invalid YAML",
			yaml: edit(t, "        hosts: [local]", "        hosts: [local]\n        cloud-init:\n          file: broken-cloud-config.yaml"),
			want: []string{web + ".cloud-init.file: testdata/broken-cloud-config.yaml line 4: invalid YAML: did not find expected key"},
		},
		{
			name: "cloud-init inline with invalid YAML",
			yaml: edit(t, "        hosts: [local]", "        hosts: [local]\n        cloud-init:\n          inline: |\n            #cloud-config\n            a: b\n            a: [c\n"),
			want: []string{web + ".cloud-init.inline: line 3 of the cloud-config: invalid YAML: did not find expected ',' or ']'"},
		},
		{
			name: "cloud-init that is not a mapping",
			yaml: edit(t, "        hosts: [local]", "        hosts: [local]\n        cloud-init:\n          inline: |\n            #cloud-config\n            - a\n"),
			want: []string{web + ".cloud-init.inline: line 2 of the cloud-config: a cloud-config must be a mapping (key: value) at the top level"},
		},
		{
			name: "networking type",
			yaml: edit(t, "        hosts: [local]", "        hosts: [local]\n        networking:\n          type: bridge"),
			want: []string{web + `.networking.type: unsupported networking type "bridge" (allowed: dynamic, static, ignore)`},
		},
		{
			name: "static without subnet, gateway, addresses",
			yaml: edit(t, "        hosts: [local]", "        hosts: [local]\n        networking:\n          type: static"),
			want: []string{
				web + ".networking.subnet: is required (CIDR of the instances' network, e.g. 192.168.5.0/24)",
				web + ".networking.gateway: is required (IP address of the router)",
				web + ".networking.addresses: at least one address or range (e.g. 192.168.5.10-192.168.5.50) is required with type static",
			},
		},
		{
			name: "static with bad IPs and ranges",
			yaml: edit(t, "        hosts: [local]", `        hosts: [local]
        networking:
          type: static
          subnet: 192.168.5.0/33
          gateway: 192.168.5.300
          addresses: [192.168.5.2-192.168.5.1, 192.168.5.x, "10.0.0.1-::1"]`),
			want: []string{
				web + `.networking.subnet: invalid subnet "192.168.5.0/33": must be a CIDR such as 192.168.5.0/24`,
				web + `.networking.gateway: invalid IP address "192.168.5.300"`,
				web + `.networking.addresses[0]: range "192.168.5.2-192.168.5.1" ends before it starts`,
				web + `.networking.addresses[1]: invalid IP address or range "192.168.5.x": use 192.168.5.7 or 192.168.5.2-192.168.5.254`,
				web + `.networking.addresses[2]: ::1 is not an IPv4 address: static addresses are IPv4 only (the network-config PremiScale writes has no IPv6)`,
			},
		},
		{
			name: "IPv6 static networking is refused at validation, not at launch",
			yaml: edit(t, "        hosts: [local]", `        hosts: [local]
        networking:
          type: static
          subnet: fd00:20::/64
          gateway: fd00:20::1
          addresses: [fd00:20::10-fd00:20::20]
          nameservers: [fd00:20::53, 10.0.0.x]`),
			want: []string{
				web + `.networking.subnet: fd00:20::/64 is not an IPv4 subnet: static networking is IPv4 only (the network-config PremiScale writes has no IPv6)`,
				web + `.networking.gateway: fd00:20::1 is not an IPv4 address: static networking is IPv4 only`,
				web + `.networking.addresses[0]: fd00:20::10 is not an IPv4 address: static addresses are IPv4 only (the network-config PremiScale writes has no IPv6)`,
				web + `.networking.nameservers[1]: invalid IP address "10.0.0.x"`,
			},
		},
		{
			name: "static addresses outside the subnet, or taking the gateway",
			yaml: edit(t, "        hosts: [local]", `        hosts: [local]
        networking:
          type: static
          subnet: 192.168.5.0/24
          gateway: 192.168.6.1
          addresses: [192.168.5.1-192.168.5.9, 10.0.0.1]`),
			want: []string{
				web + ".networking.gateway: 192.168.6.1 is not in subnet 192.168.5.0/24",
				web + ".networking.addresses[1]: 10.0.0.1 is not in subnet 192.168.5.0/24",
			},
		},
		{
			name: "maxNodes above the static addresses",
			yaml: edit(t, "        hosts: [local]", `        hosts: [local]
        networking:
          type: static
          subnet: 192.168.5.0/24
          gateway: 192.168.5.1
          addresses: [192.168.5.1-192.168.5.2]`),
			want: []string{
				web + ".networking.addresses[0]: 192.168.5.1-192.168.5.2 includes the gateway 192.168.5.1",
				web + ".scaling.maxNodes: maxNodes (3) is larger than the 2 static addresses in networking.addresses",
			},
		},
		{
			name: "static settings with dynamic",
			yaml: edit(t, "        hosts: [local]", "        hosts: [local]\n        networking:\n          subnet: 10.0.0.0/8"),
			want: []string{web + ".networking: addresses, subnet, gateway and nameservers are used only with type static, not dynamic"},
		},
		{
			name: "unset required variables",
			yaml: edit(t, "username: premiscale\n          password: premiscale", "username: ${DB_USER}\n          password: pre-$MYSQL_PASSWORD",
				"url: 127.0.0.1:3306", "url: $DB_HOST:3306"),
			want: []string{
				"controller.databases.state.connection.url: variable $DB_HOST is not set",
				"controller.databases.state.connection.credentials.username: variable $DB_USER is not set",
				"controller.databases.state.connection.credentials.password: variable $MYSQL_PASSWORD is not set",
			},
		},
		{
			name: "unset variable in a host list and an image",
			yaml: edit(t, "hosts: [local]", "hosts: [$HOST]", "image: default/base.qcow2", "image: $POOL/$VOLUME"),
			want: []string{
				web + ".image: variables $POOL, $VOLUME are not set",
				web + ".hosts[0]: variable $HOST is not set",
			},
		},
		{
			name: "bad variable syntax",
			yaml: edit(t, "password: premiscale", "password: ${oops"),
			want: []string{`controller.databases.state.connection.credentials.password: unterminated ${ in "${oops"`},
		},
		{
			name: "malformed urls and addresses",
			yaml: edit(t, "url: 127.0.0.1:3306", "url: mysql://127.0.0.1:3306",
				"url: http://127.0.0.1:8086", "url: 127.0.0.1:8086",
				"controller:\n", `controller:
  healthcheck: {host: "local host", port: 0}
  temporal: {address: "127.0.0.1"}
  checkin: {listen: "127.0.0.1:99999", url: "ftp://127.0.0.1:8090"}
`),
			want: []string{
				`controller.healthcheck.host: invalid host "local host": must be an IP address or a host name`,
				"controller.healthcheck.port: port must be between 1 and 65535, got 0",
				`controller.temporal.address: invalid address "127.0.0.1": must be host:port`,
				`controller.checkin.listen: invalid address "127.0.0.1:99999": port must be a number between 1 and 65535`,
				`controller.checkin.url: invalid URL "ftp://127.0.0.1:8090": must start with http:// or https://`,
				`controller.databases.state.connection.url: invalid address "mysql://127.0.0.1:3306": must be host:port (MySQL's url is host:port, e.g. 127.0.0.1:3306)`,
				`controller.databases.timeseries.connection.url: invalid URL "127.0.0.1:8086": must be http(s)://host:port`,
			},
		},
		{
			name: "short checkin secret",
			yaml: edit(t, "controller:\n", "controller:\n  checkin:\n    secret: too-short\n"),
			want: []string{"controller.checkin.secret: must be at least 32 characters, got 9"},
		},
		{
			name: "checkin secret from an unset variable",
			yaml: edit(t, "controller:\n", "controller:\n  checkin:\n    secret: $CHECKIN_SECRET\n"),
			want: []string{"controller.checkin.secret: variable $CHECKIN_SECRET is not set"},
		},
		{
			name: "checkin secret too short after expansion",
			yaml: edit(t, "controller:\n", "controller:\n  checkin:\n    secret: ${SHORT}\n"),
			env:  map[string]string{"SHORT": "0123456789abcdef0123456789abcde"},
			want: []string{"controller.checkin.secret: must be at least 32 characters, got 31"},
		},
		{
			name: "wrong value types",
			yaml: edit(t, "minNodes: 1", "minNodes: one", "cpu: 50", "cpu: lots", "hosts: [local]", "hosts: local",
				"        domain:\n", "        domain:\n          arch: {x: 1}\n"),
			want: []string{
				web + `.domain.arch: expected a string, got a mapping`,
				web + ".hosts: expected a list, got \"local\"",
				web + `.scaling.minNodes: expected a whole number, got "one"`,
				web + `.scaling.resourceTarget.cpu: expected a number, got "lots"`,
			},
		},
		{
			name: "duplicate key",
			yaml: edit(t, "minNodes: 1", "minNodes: 1\n          minNodes: 2"),
			want: []string{web + ".scaling.minNodes: duplicate key (first given at line 30)"},
		},
		{
			name: "many problems at once",
			yaml: edit(t, "version: v1alpha1", "version: v2", "type: mysql", "type: sqlite", "minNodes: 1", "minNodes: 9",
				"memory: 512", "memory: 1"),
			want: []string{
				`version: unsupported version "v2" (this build understands v1alpha1)`,
				`controller.databases.state.type: unsupported database type "sqlite" (allowed: mysql)`,
				web + ".domain.memory: must be at least 64 (MiB), got 1",
				web + ".scaling: minNodes (9) is greater than maxNodes (3)",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.yaml), "testdata/config.yaml", env(tt.env))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want problems:\n%s", cfg, strings.Join(tt.want, "\n"))
			}
			got := problems(t, err)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\ngot:\n%s\nwant:\n%s", len(got), len(tt.want), strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("problem %d:\n got %s\nwant %s", i, got[i], tt.want[i])
				}
			}
			if !strings.Contains(err.Error(), tt.want[0]) {
				t.Errorf("Error() does not contain %q:\n%s", tt.want[0], err)
			}
		})
	}
}

func TestProblemLines(t *testing.T) {
	_, err := Parse([]byte(edit(t, "minNodes: 1", "minNodes: 5", "memory: 512", "memory: 1", "uri: test:///default", "uri: xen:///")),
		"config.yaml", env(nil))
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("want *ValidationError, got %v", err)
	}
	want := map[string]int{
		"controller.autoscale.hosts[0].uri":             18,
		"controller.autoscale.groups.web.domain.memory": 27,
		"controller.autoscale.groups.web.scaling":       29, // min > max is reported on the scaling key
	}
	for _, p := range verr.Problems {
		if l, ok := want[p.Path]; ok && p.Line != l {
			t.Errorf("%s: line %d, want %d", p.Path, p.Line, l)
		}
		delete(want, p.Path)
	}
	for p := range want {
		t.Errorf("no problem reported for %s", p)
	}
	if d := verr.Detailed(); !strings.Contains(d, "config.yaml:27: controller.autoscale.groups.web.domain.memory: must be at least 64") {
		t.Errorf("Detailed() lacks file:line prefix:\n%s", d)
	}
}

func TestSyntaxError(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"bad indentation", "version: v1alpha1\ncontroller:\n  mode: standalone\n bad: indent\n", "config.yaml: line 4: did not find expected key"},
		{"tab", "version: v1alpha1\ncontroller:\n\tmode: x\n", "config.yaml: line 3: found character that cannot start any token"},
		{"empty", "", "config.yaml: the file is empty"},
		{"only comments", "# nothing here\n", "config.yaml: the file is empty"},
		{"two documents", "version: v1alpha1\n---\nversion: v1alpha1\n", "config.yaml: line 2: a second YAML document (---) starts here"},
		{"not a mapping", "- a\n- b\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "config.yaml", env(nil))
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if tt.want == "" {
				if got := problems(t, err); len(got) != 1 || got[0] != "the file must be a mapping (key: value) at the top level, got a list" {
					t.Errorf("got %q", got)
				}
				return
			}
			var serr *SyntaxError
			if !errors.As(err, &serr) {
				t.Fatalf("want *SyntaxError, got %T: %v", err, err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got %q, want prefix %q", err, tt.want)
			}
		})
	}
}

func TestExpandVars(t *testing.T) {
	vars := env(map[string]string{"A": "alpha", "B_2": "beta", "EMPTY": ""})
	tests := []struct {
		in, want       string
		missing, empty []string
		err            string
	}{
		{in: "plain", want: "plain"},
		{in: "$A", want: "alpha"},
		{in: "${A}", want: "alpha"},
		{in: "x${A}y$B_2.z", want: "xalphaybeta.z"},
		{in: "$A$B_2", want: "alphabeta"},
		{in: "${EMPTY}", want: "", empty: []string{"EMPTY"}},
		{in: "$EMPTY$A$EMPTY", want: "alpha", empty: []string{"EMPTY"}},
		{in: "pa$$word", want: "pa$word"},
		{in: "$$A and $${A}", want: "$A and ${A}"},
		{in: "cost: 5$", want: "cost: 5$"},
		{in: "$1 and $- and $ and $:", want: "$1 and $- and $ and $:"},
		{in: "$NOPE/${NOPE}/$ALSO", want: "//", missing: []string{"NOPE", "ALSO"}},
		{in: "$NOPE/$EMPTY", want: "/", missing: []string{"NOPE"}, empty: []string{"EMPTY"}},

		// ${NAME:-default}: the value when set and not empty, else the literal default.
		{in: "${A:-x}", want: "alpha"},
		{in: "${NOPE:-x}", want: "x"},
		{in: "${EMPTY:-x}", want: "x"},
		{in: "${NOPE:-}", want: ""},
		{in: "${EMPTY:-}", want: ""},
		{in: "${NOPE:-http://h:1}/x ${A:-y}", want: "http://h:1/x alpha"},
		{in: "${NOPE:-a b:-c {d}", want: "a b:-c {d"},
		{in: "${NOPE:-5$} ${NOPE:-$1} ${NOPE:-p$$w}", want: "5$ $1 p$w"},

		{in: "${A", err: `unterminated ${ in "${A"`},
		{in: "${A:-", err: `unterminated ${ in "${A:-"`},
		{in: "x ${A:-default", err: `unterminated ${ in "x ${A:-default"`},
		{in: "${}", err: "invalid variable name in ${}"},
		{in: "${1A}", err: "invalid variable name in ${1A}"},
		{in: "${ A}", err: "invalid variable name in ${ A}"},
		{in: "${A-b}", err: "unsupported variable reference ${A-b} (write $NAME, ${NAME} or ${NAME:-default}, and $$ for a literal $)"},
		{in: "${A:=b}", err: "unsupported variable reference ${A:=b}"},
		{in: "${A:?b}", err: "unsupported variable reference ${A:?b}"},
		{in: "${A B}", err: "unsupported variable reference ${A B}"},
		{in: "${A:-$B}", err: "the default in ${A:-$B} is literal text: variables in it are not expanded"},
		{in: "${A:-${B}}", err: "the default in ${A:-${B} is literal text"},
	}
	for _, tt := range tests {
		x, err := expandVars(tt.in, vars)
		if tt.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("expandVars(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("expandVars(%q): %v", tt.in, err)
			continue
		}
		if x.value != tt.want || !reflect.DeepEqual(x.missing, tt.missing) || !reflect.DeepEqual(x.empty, tt.empty) {
			t.Errorf("expandVars(%q) = %q, missing %q, empty %q; want %q, %q, %q", tt.in, x.value, x.missing, x.empty, tt.want, tt.missing, tt.empty)
		}
	}
}

// TestUnsetVariables checks that a variable that is not set is a problem at its key, whatever
// the key (required or with a default, string, number, duration, bool, secret, host), with the
// key's line, and that nothing else is said about the key.
func TestUnsetVariables(t *testing.T) {
	web := "controller.autoscale.groups.web"
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string // "line: path: message"
	}{
		{
			name: "required key",
			yaml: edit(t, "username: premiscale", "username: $DB_USER"),
			want: []string{"9: controller.databases.state.connection.credentials.username: variable $DB_USER is not set"},
		},
		{
			name: "optional key with a default",
			yaml: edit(t, "controller:\n", "controller:\n  temporal:\n    address: ${TEMPORAL_HOST}:7233\n"),
			want: []string{"4: controller.temporal.address: variable $TEMPORAL_HOST is not set"},
		},
		{
			name: "optional key without a default",
			yaml: edit(t, "url: http://127.0.0.1:8086", "url: http://127.0.0.1:8086\n        organization: $INFLUX_ORG"),
			want: []string{"15: controller.databases.timeseries.connection.organization: variable $INFLUX_ORG is not set"},
		},
		{
			name: "numbers",
			yaml: edit(t, "maxNodes: 3", "maxNodes: $MAX", "cpu: 50", "cpu: ${CPU}", "controller:\n", "controller:\n  healthcheck: {port: $HC_PORT}\n"),
			want: []string{
				"3: controller.healthcheck.port: variable $HC_PORT is not set",
				"32: " + web + ".scaling.maxNodes: variable $MAX is not set",
				"34: " + web + ".scaling.resourceTarget.cpu: variable $CPU is not set",
			},
		},
		{
			name: "durations",
			yaml: edit(t, "controller:\n", "controller:\n  reconciliation:\n    interval: $RECONCILE\n",
				"    state:\n", "    collectionInterval: ${INTERVAL}\n    state:\n"),
			want: []string{
				"4: controller.reconciliation.interval: variable $RECONCILE is not set",
				"6: controller.databases.collectionInterval: variable $INTERVAL is not set",
			},
		},
		{
			name: "bool",
			yaml: edit(t, "        hosts: [local]\n", "        hosts: [local]\n        health:\n          checkin: $CHECKIN\n"),
			want: []string{"30: " + web + ".health.checkin: variable $CHECKIN is not set"},
		},
		{
			name: "checkin secret",
			yaml: edit(t, "controller:\n", "controller:\n  checkin:\n    secret: $CHECKIN_SECRET\n"),
			want: []string{"4: controller.checkin.secret: variable $CHECKIN_SECRET is not set"},
		},
		{
			name: "host uri and address",
			yaml: edit(t, "uri: test:///default", "uri: $LIBVIRT_URI", "address: 10.0.0.1", "address: ${KVM1_ADDRESS}"),
			want: []string{
				"18: controller.autoscale.hosts[0].uri: variable $LIBVIRT_URI is not set",
				"20: controller.autoscale.hosts[1].address: variable $KVM1_ADDRESS is not set",
			},
		},
		{
			name: "cloud-init file",
			yaml: edit(t, "        hosts: [local]\n", "        hosts: [local]\n        cloud-init: {file: $CLOUD_CONFIG}\n"),
			want: []string{"29: " + web + ".cloud-init.file: variable $CLOUD_CONFIG is not set"},
		},
		{
			name: "only the unset one of several",
			yaml: edit(t, "image: default/base.qcow2", "image: $POOL/$VOLUME-${NOPE}"),
			env:  map[string]string{"POOL": "default", "VOLUME": "base"},
			want: []string{"24: " + web + ".image: variable $NOPE is not set"},
		},
		{
			name: "set but empty in a required key",
			yaml: edit(t, "username: premiscale", "username: $DB_USER", "url: 127.0.0.1:3306", "url: ${DB_HOST:-}"),
			env:  map[string]string{"DB_USER": ""},
			want: []string{
				"7: controller.databases.state.connection.url: is required (host:port of the MySQL server)",
				"9: controller.databases.state.connection.credentials.username: is required, but variable $DB_USER is empty",
			},
		},
		{
			name: "set but empty host uri",
			yaml: edit(t, "uri: test:///default", "uri: $LIBVIRT_URI"),
			env:  map[string]string{"LIBVIRT_URI": ""},
			want: []string{"17: controller.autoscale.hosts[0]: one of uri (a libvirt URI) or address (with protocol, port, user, sshKey) is required, but variable $LIBVIRT_URI is empty"},
		},
		{
			name: "bad syntax",
			yaml: edit(t, "username: premiscale", "username: ${DB_USER:-", "password: premiscale", "password: ${DB_PASSWORD-x}"),
			want: []string{
				`9: controller.databases.state.connection.credentials.username: unterminated ${ in "${DB_USER:-"`,
				"10: controller.databases.state.connection.credentials.password: unsupported variable reference ${DB_PASSWORD-x}",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "config.yaml", env(tt.env))
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("want a *ValidationError, got %v", err)
			}
			got := make([]string, len(verr.Problems))
			for i, p := range verr.Problems {
				got[i] = fmt.Sprintf("%d: %s", p.Line, p)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\ngot:\n%s\nwant:\n%s", len(got), len(tt.want), strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("problem %d:\n got %s\nwant %s", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestVariableValues checks what valid variable references decode to.
func TestVariableValues(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		env   map[string]string
		check func(*Config) (got, want any)
	}{
		{
			name:  "${VAR:-default} with VAR set",
			yaml:  edit(t, "controller:\n", "controller:\n  temporal: {address: \"${TEMPORAL_HOST:-127.0.0.1}:7233\"}\n"),
			env:   map[string]string{"TEMPORAL_HOST": "temporal.example.com"},
			check: func(c *Config) (any, any) { return c.Controller.Temporal.Address, "temporal.example.com:7233" },
		},
		{
			name:  "${VAR:-default} with VAR unset",
			yaml:  edit(t, "controller:\n", "controller:\n  temporal: {address: \"${TEMPORAL_HOST:-temporal.internal}:7233\"}\n"),
			check: func(c *Config) (any, any) { return c.Controller.Temporal.Address, "temporal.internal:7233" },
		},
		{
			name:  "${VAR:-default} with VAR empty",
			yaml:  edit(t, "controller:\n", "controller:\n  temporal: {address: \"${TEMPORAL_HOST:-temporal.internal}:7233\"}\n"),
			env:   map[string]string{"TEMPORAL_HOST": ""},
			check: func(c *Config) (any, any) { return c.Controller.Temporal.Address, "temporal.internal:7233" },
		},
		{
			name: "${VAR:-} in an optional key: the key's default",
			yaml: edit(t, "controller:\n", "controller:\n  pidFile: ${PIDFILE:-}\n  temporal: {namespace: \"${NS:-}\"}\n"),
			check: func(c *Config) (any, any) {
				return c.Controller.PidFile + " " + c.Controller.Temporal.Namespace, DefaultPidFile + " default"
			},
		},
		{
			name:  "set but empty in an optional key: the key's default",
			yaml:  edit(t, "controller:\n", "controller:\n  pidFile: $PIDFILE\n"),
			env:   map[string]string{"PIDFILE": ""},
			check: func(c *Config) (any, any) { return c.Controller.PidFile, DefaultPidFile },
		},
		{
			name:  "number from a default",
			yaml:  edit(t, "maxNodes: 3", "maxNodes: ${MAX:-5}"),
			check: func(c *Config) (any, any) { return c.Controller.Autoscale.Groups["web"].Scaling.MaxNodes, 5 },
		},
		{
			name: "${VAR:-} number: the key's default",
			yaml: edit(t, "maxNodes: 3", "maxNodes: 3\n          increment: ${INCREMENT:-}"),
			check: func(c *Config) (any, any) {
				return c.Controller.Autoscale.Groups["web"].Scaling.Increment, DefaultIncrement
			},
		},
		{
			name: "durations and a secret from a variable and from a default",
			yaml: edit(t, "controller:\n", "controller:\n  reconciliation: {interval: $RECONCILE}\n  checkin: {secret: \"${SECRET:-0123456789abcdef0123456789abcdef}\"}\n",
				"    state:\n", "    collectionInterval: ${INTERVAL:-45s}\n    state:\n"),
			env: map[string]string{"RECONCILE": "90s"},
			check: func(c *Config) (any, any) {
				return []any{c.Controller.Reconciliation.Interval.Duration, c.Controller.Databases.CollectionInterval.Duration, c.Controller.Checkin.Secret},
					[]any{90 * time.Second, 45 * time.Second, "0123456789abcdef0123456789abcdef"}
			},
		},
		{
			name: "${VAR:-} bool: as if absent (checkin stays on)",
			yaml: edit(t, "        hosts: [local]\n", "        hosts: [local]\n        health: {checkin: \"${CHECKIN:-}\"}\n"),
			check: func(c *Config) (any, any) {
				return c.Controller.Autoscale.Groups["web"].Health.Checkin, (*bool)(nil)
			},
		},
		{
			name: "$$ is a literal $",
			yaml: edit(t, "password: premiscale", "password: pa$$word$$HOME"),
			check: func(c *Config) (any, any) {
				return c.Controller.Databases.State.Connection.Credentials.Password, "pa$word$HOME"
			},
		},
		{
			name: "host uri from a variable",
			yaml: edit(t, "uri: test:///default", "uri: ${LIBVIRT_URI:-qemu:///system}"),
			env:  map[string]string{"LIBVIRT_URI": "test:///default"},
			check: func(c *Config) (any, any) {
				return c.Controller.Autoscale.Hosts[0].URI, "test:///default"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.yaml), "config.yaml", env(tt.env))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got, want := tt.check(cfg); !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

func TestEnvExpansion(t *testing.T) {
	y := edit(t,
		"username: premiscale\n          password: premiscale", "username: ${DB_USER}\n          password: $DB_PASSWORD",
		"maxNodes: 3", "maxNodes: $MAX",
		// Keys are never expanded: $web would be an invalid group name, not a variable.
		"    groups:\n      web:", "    groups:\n      web:",
	)
	cfg, err := Parse([]byte(y), "config.yaml", env(map[string]string{
		"DB_USER": "u", "DB_PASSWORD": "p@$s", "MAX": "7",
	}))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	creds := cfg.Controller.Databases.State.Connection.Credentials
	if creds.Username != "u" || creds.Password != "p@$s" {
		t.Errorf("credentials = %+v", creds)
	}
	if got := cfg.Controller.Autoscale.Groups["web"].Scaling.MaxNodes; got != 7 {
		t.Errorf("maxNodes = %d, want 7 (expanded then decoded as a number)", got)
	}

	_, err = Parse([]byte(edit(t, "    groups:\n      web:", "    groups:\n      $NAME:")), "config.yaml", env(map[string]string{"NAME": "web"}))
	if err == nil || !strings.Contains(err.Error(), `controller.autoscale.groups.$NAME: invalid group name "$NAME"`) {
		t.Errorf("map keys must not be expanded; got %v", err)
	}

	// Cloud-init inline content is never expanded: an unset variable there is the guest's business.
	cfg, err = Parse([]byte(edit(t, "        hosts: [local]\n", "        hosts: [local]\n        cloud-init:\n          inline: |\n            #cloud-config\n            runcmd:\n              - echo $UNSET $$ ${X:-y}\n")),
		"config.yaml", env(nil))
	if err != nil {
		t.Fatalf("Parse with $ in cloud-init inline: %v", err)
	}
	if got, want := cfg.Controller.Autoscale.Groups["web"].CloudInit.Content, "#cloud-config\nruncmd:\n  - echo $UNSET $$ ${X:-y}\n"; got != want {
		t.Errorf("cloud-init content = %q, want %q", got, want)
	}
}

func TestCheckinSecret(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want string
	}{
		{name: "absent: the agents generate one", yaml: base, want: ""},
		{name: "literal", yaml: edit(t, "controller:\n", "controller:\n  checkin:\n    secret: "+secret+"\n"), want: secret},
		{name: "from a variable", yaml: edit(t, "controller:\n", "controller:\n  checkin:\n    secret: $CHECKIN_SECRET\n"),
			env: map[string]string{"CHECKIN_SECRET": secret + "-and-more"}, want: secret + "-and-more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.yaml), "config.yaml", env(tt.env))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := cfg.Controller.Checkin.Secret; got != tt.want {
				t.Errorf("secret = %q, want %q", got, tt.want)
			}
			// The secret must never leak through the JSON form (status output, logs).
			j, err := json.Marshal(cfg.Controller.Checkin)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && strings.Contains(string(j), tt.want) {
				t.Errorf("JSON of checkin shows the secret: %s", j)
			}
		})
	}
}

func TestMergeKeysAndAliases(t *testing.T) {
	y := edit(t, "    groups:\n      web:\n", `    groups:
      api:
        <<: &shape
          image: default/base.qcow2
          domain: {vcpus: 1, memory: 512}
          hosts: [local]
        scaling: {maxNodes: 2, resourceTarget: {cpu: 40}}
      web:
`)
	cfg, err := Parse([]byte(y), "config.yaml", env(nil))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	api := cfg.Controller.Autoscale.Groups["api"]
	if api.Image.Volume != "default/base.qcow2" || api.Domain == nil || api.Domain.Memory != 512 || api.Scaling.MaxNodes != 2 {
		t.Errorf("api = %+v", api)
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{in: "60", want: time.Minute},
		{in: "0", want: 0},
		{in: "90s", want: 90 * time.Second},
		{in: "5m", want: 5 * time.Minute},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "-1", err: "must not be negative, got -1"},
		{in: "-5s", err: "must not be negative, got -5s"},
		{in: "1.5", err: `invalid duration "1.5"`},
		{in: "soon", err: `invalid duration "soon"`},
		{in: "", err: `invalid duration ""`},
		{in: "99999999999999999", err: "too large"},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseDuration(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestDurationRoundTrip(t *testing.T) {
	type holder struct {
		D Duration `yaml:"d" json:"d"`
	}
	in := holder{D: Duration{90 * time.Second}}

	j, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(j) != `{"d":"1m30s"}` {
		t.Errorf("JSON = %s", j)
	}
	var fromJSON holder
	if err := json.Unmarshal(j, &fromJSON); err != nil || fromJSON != in {
		t.Errorf("JSON round trip = %+v, %v", fromJSON, err)
	}
	if err := json.Unmarshal([]byte(`{"d":45}`), &fromJSON); err != nil || fromJSON.D.Duration != 45*time.Second {
		t.Errorf("JSON seconds = %+v, %v", fromJSON, err)
	}
	if err := json.Unmarshal([]byte(`{"d":"-3s"}`), &fromJSON); err == nil {
		t.Error("JSON negative duration accepted")
	}
	if err := json.Unmarshal([]byte(`{"d":true}`), &fromJSON); err == nil {
		t.Error("JSON bool duration accepted")
	}

	y, err := yaml.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(y) != "d: 1m30s\n" {
		t.Errorf("YAML = %q", y)
	}
	var fromYAML holder
	if err := yaml.Unmarshal(y, &fromYAML); err != nil || fromYAML != in {
		t.Errorf("YAML round trip = %+v, %v", fromYAML, err)
	}
	if err := yaml.Unmarshal([]byte("d: 120\n"), &fromYAML); err != nil || fromYAML.D.Duration != 2*time.Minute {
		t.Errorf("YAML seconds = %+v, %v", fromYAML, err)
	}
	if err := yaml.Unmarshal([]byte("d: nope\n"), &fromYAML); err == nil {
		t.Error("YAML garbage duration accepted")
	}
}

func TestLibvirtURI(t *testing.T) {
	tests := []struct {
		name string
		host Host
		want string
		err  string
	}{
		{"uri as given", Host{Name: "a", URI: "qemu+ssh://root@h/system?keyfile=/k"}, "qemu+ssh://root@h/system?keyfile=/k", ""},
		{"test driver", Host{Name: "a", URI: "test:///default"}, "test:///default", ""},
		{"ssh full", Host{Name: "a", Address: "10.0.0.5", Port: 2222, Protocol: "ssh", User: "root", SSHKey: "/root/.ssh/id_ed25519", Hypervisor: "qemu"},
			"qemu+ssh://root@10.0.0.5:2222/system?keyfile=/root/.ssh/id_ed25519", ""},
		{"ssh defaults", Host{Name: "a", Address: "kvm1.example.com"}, "qemu+ssh://kvm1.example.com/system", ""},
		{"ssh key with a space", Host{Name: "a", Address: "h", User: "u", SSHKey: "/keys/my key"}, "qemu+ssh://u@h/system?keyfile=/keys/my+key", ""},
		{"tls", Host{Name: "a", Address: "h", Port: 16514, Protocol: "tls"}, "qemu+tls://h:16514/system", ""},
		{"tcp", Host{Name: "a", Address: "h", Protocol: "tcp"}, "qemu+tcp://h/system", ""},
		{"ipv6", Host{Name: "a", Address: "fd00::1", Protocol: "tcp"}, "qemu+tcp://[fd00::1]/system", ""},
		{"ipv6 with port", Host{Name: "a", Address: "fd00::1", Port: 16509, Protocol: "tcp"}, "qemu+tcp://[fd00::1]:16509/system", ""},
		{"neither", Host{Name: "a"}, "", "host a: neither uri nor address is set"},
		{"both", Host{Name: "a", URI: "test:///default", Address: "h"}, "", "not both"},
		{"bad protocol", Host{Name: "a", Address: "h", Protocol: "rsh"}, "", `unsupported protocol "rsh"`},
		{"bad uri", Host{Name: "a", URI: "vbox:///session"}, "", `unsupported driver "vbox"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.host.LibvirtURI()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("LibvirtURI() = %q, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("LibvirtURI() = %q, %v; want %q", got, err, tt.want)
			}
			if err := checkLibvirtURI(got); err != nil {
				t.Errorf("built URI does not validate: %v", err)
			}
		})
	}
}

func TestImagePoolVolume(t *testing.T) {
	g := Group{Image: Image{Volume: "default-pool/demo-base.qcow2"}}
	if g.ImagePool() != "default-pool" || g.ImageVolume() != "demo-base.qcow2" {
		t.Errorf("pool %q volume %q", g.ImagePool(), g.ImageVolume())
	}
}

func TestSummary(t *testing.T) {
	cfg, err := Parse(mustRead(t, "testdata/full.yaml"), "testdata/full.yaml", env(map[string]string{"DB_USER": "ps", "DB_PASSWORD": "topsecret"}))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Summary()
	for _, want := range []string{
		"version:        v1alpha1",
		"temporal:       temporal.example.com:7233 (namespace prod, task queue premiscale)",
		"state:          mysql db.example.com:3306, database ps, user ps",
		"timeseries:     influxdb http://influx.example.com:8086, database premiscale, retention 720h0m0s",
		"hosts:          3",
		"kvm1  qemu+ssh://root@10.0.0.11:2222/system?keyfile=/root/.ssh/id_ed25519",
		"kvm2  qemu+tls://kvm2.example.com/system",
		"groups:         2",
		"size:       min 1, max 4, increment 2, cooldown 0s",
		"targets:    cpu 50%, memory 80.5%",
		"hosts:      kvm1, kvm2",
		"cloud-init: file cloud-config.yaml",
		"scale-in:   cooldown 0s, stabilization 5m0s, retire newest-first",
		"launches:   2 at once, back off after 3 failures (30s to 10m0s)",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("Summary lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "topsecret") {
		t.Errorf("Summary shows the password:\n%s", s)
	}
	// Groups are listed in name order, so the output is stable.
	if strings.Index(s, "  batch\n") > strings.Index(s, "  web\n") {
		t.Errorf("groups not sorted:\n%s", s)
	}
}

func TestParseGroupFile(t *testing.T) {
	cfg, err := Parse([]byte(base), "config.yaml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	valid := `version: v1alpha1
groups:
  api:
    image: default/api.qcow2
    domain: {vcpus: 2, memory: 1024}
    cloud-init:
      file: cloud-config.yaml
    hosts: [local, kvm1]
    scaling:
      maxNodes: $MAX
      resourceTarget: {memory: 60}
`
	groups, err := ParseGroupFile([]byte(valid), "testdata/group.yaml", env(map[string]string{"MAX": "5"}), cfg)
	if err != nil {
		t.Fatalf("ParseGroupFile: %v", err)
	}
	api, ok := groups["api"]
	if !ok || len(groups) != 1 {
		t.Fatalf("groups = %+v", groups)
	}
	if api.Scaling.MaxNodes != 5 || api.Scaling.Increment != 1 || api.Scaling.Cooldown.Duration != time.Minute || api.Networking.Type != "dynamic" {
		t.Errorf("api = %+v (want expansion and defaults)", api)
	}
	if api.CloudInit.Content != "#cloud-config\npackages: [nginx]\n" {
		t.Errorf("cloud-init content = %q (relative to the group file's folder)", api.CloudInit.Content)
	}

	tests := []struct {
		name string
		yaml string
		cfg  *Config
		want []string
	}{
		{
			name: "problems use groups.<name> paths",
			yaml: "version: v1alpha1\ngroups:\n  api:\n    image: x\n    domain: {vcpus: 1, memory: 512}\n    hosts: [kvm7]\n    scaling: {minNodes: 3, maxNodes: 2, resourceTarget: {cpu: 50}}\n",
			cfg:  cfg,
			want: []string{
				`groups.api.image: must be pool/volume (a libvirt storage pool and a volume in it), got "x"`,
				`groups.api.hosts[0]: unknown host "kvm7" (defined hosts: local, kvm1)`,
				"groups.api.scaling: minNodes (3) is greater than maxNodes (2)",
			},
		},
		{
			name: "no groups and wrong version",
			yaml: "version: v1\ngroups: {}\n",
			cfg:  cfg,
			want: []string{`version: unsupported version "v1" (this build understands v1alpha1)`, "groups: at least one group is required"},
		},
		{
			name: "unknown key",
			yaml: "version: v1alpha1\ngroup:\n  api: {}\n",
			cfg:  cfg,
			want: []string{"group: unknown key (did you mean groups?)"},
		},
		{
			name: "unset variable",
			yaml: "version: v1alpha1\ngroups:\n  api:\n    image: a/b\n    name: tmpl\n    hosts: [local]\n    scaling: {maxNodes: $MAX, resourceTarget: {cpu: 50}}\n",
			cfg:  cfg,
			want: []string{"groups.api.scaling.maxNodes: variable $MAX is not set"},
		},
		{
			name: "nil config skips the host check",
			yaml: "version: v1alpha1\ngroups:\n  api:\n    image: a/b\n    name: tmpl\n    hosts: [anything]\n    scaling: {maxNodes: 1, resourceTarget: {cpu: 50}}\n    bogus: 1\n",
			want: []string{"groups.api.bogus: unknown key (allowed keys here: cloud-init, domain, health, hosts, image, name, networking, placement, rollout, scaling, warmPool)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseGroupFile([]byte(tt.yaml), "group.yaml", env(nil), tt.cfg)
			got := problems(t, err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "read config:") {
		t.Errorf("Load(missing) = %v", err)
	}
	if _, err := LoadGroupFile(filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil || !strings.Contains(err.Error(), "read group file:") {
		t.Errorf("LoadGroupFile(missing) = %v", err)
	}
}
