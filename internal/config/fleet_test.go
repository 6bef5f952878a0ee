package config

import (
	"strings"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/spec"
)

// The keys that place instances on a fleet of hosts: capacity, host timings, drift, images,
// placement and rollouts.

func TestFleetDefaults(t *testing.T) {
	cfg, err := Parse([]byte(edit(t, "controller:\n", "controller:\n  reconciliation: {interval: 20s}\n")), "config.yaml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	as := cfg.Controller.Autoscale
	if as.HostDownAfter.Duration != 40*time.Second || as.HostGracePeriod.Duration != DefaultHostGracePeriod ||
		as.OrphanGracePeriod.Duration != DefaultOrphanGracePeriod || as.Drift != DriftRemove {
		t.Errorf("fleet defaults = %+v; want hostDownAfter two reconciliation intervals (40s)", as)
	}
	h := as.Hosts[0]
	if h.CPUOvercommit != 4 || h.MemoryOvercommit != 1 || h.Reserved != (HostReserve{CPUs: 1, Memory: 1024}) {
		t.Errorf("host capacity defaults = %v, %v, %+v", h.CPUOvercommit, h.MemoryOvercommit, h.Reserved)
	}
	gs, err := cfg.Controller.GroupSpec("web", as.Groups["web"])
	if err != nil {
		t.Fatal(err)
	}
	if gs.Placement != spec.PlacementSpread || gs.Rollout != (spec.Rollout{MaxSurge: 1}) || gs.HostGracePeriod != DefaultHostGracePeriod {
		t.Errorf("group spec = placement %q, rollout %+v, grace %s", gs.Placement, gs.Rollout, gs.HostGracePeriod)
	}
}

func TestFleetKeys(t *testing.T) {
	const sum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	doc := edit(t,
		"  autoscale:\n", "  autoscale:\n    hostDownAfter: 45s\n    hostGracePeriod: 0\n    orphanGracePeriod: 2m\n    drift: report\n",
		"        uri: test:///default\n", "        uri: test:///default\n        cpuOvercommit: 2.5\n        memoryOvercommit: 1.2\n        reserved: {cpus: 2, memory: 2048}\n",
		"        image: default/base.qcow2\n", "        image: {volume: default/base.qcow2, source: https://images.example.com/base.qcow2, sha256: "+strings.ToUpper(sum)+"}\n        placement: pack\n        rollout: {maxSurge: 2, maxUnavailable: 1}\n",
	)
	cfg, err := Parse([]byte(doc), "config.yaml", env(nil))
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	as := cfg.Controller.Autoscale
	if as.HostDownAfter.Duration != 45*time.Second || as.HostGracePeriod.Duration != 0 || as.OrphanGracePeriod.Duration != 2*time.Minute || as.Drift != DriftReport {
		t.Errorf("fleet = %+v", as)
	}
	if h := as.Hosts[0]; h.CPUOvercommit != 2.5 || h.MemoryOvercommit != 1.2 || h.Reserved != (HostReserve{CPUs: 2, Memory: 2048}) {
		t.Errorf("host = %+v", h)
	}
	gs, err := cfg.Controller.GroupSpec("web", as.Groups["web"])
	if err != nil {
		t.Fatal(err)
	}
	if gs.Placement != spec.PlacementPack || gs.Rollout != (spec.Rollout{MaxSurge: 2, MaxUnavailable: 1}) || gs.HostGracePeriod != 0 ||
		gs.Launch.ImagePool != "default" || gs.Launch.ImageVolume != "base.qcow2" ||
		gs.Launch.ImageSource != "https://images.example.com/base.qcow2" || gs.Launch.ImageSHA256 != sum {
		t.Errorf("group spec = %+v", gs)
	}
}

func TestInvalidFleetKeys(t *testing.T) {
	web := "controller.autoscale.groups.web"
	host := "controller.autoscale.hosts[0]"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "fleet timings and drift",
			yaml: edit(t, "  autoscale:\n", "  autoscale:\n    hostDownAfter: 0\n    hostGracePeriod: -1\n    orphanGracePeriod: -1m\n    drift: delete\n"),
			want: []string{
				"controller.autoscale.hostDownAfter: must be greater than 0, got 0s",
				"controller.autoscale.hostGracePeriod: must not be negative, got -1",
				"controller.autoscale.orphanGracePeriod: must not be negative, got -1m",
				`controller.autoscale.drift: unsupported drift "delete" (allowed: remove, report)`,
			},
		},
		{
			name: "serve names hosts of the config",
			yaml: edit(t, "  autoscale:\n", "  autoscale:\n    serve: [local, kvm9]\n"),
			want: []string{`controller.autoscale.serve[1]: unknown host "kvm9" (defined hosts: local, kvm1)`},
		},
		{
			name: "host capacity",
			yaml: edit(t, "        uri: test:///default\n", "        uri: test:///default\n        cpuOvercommit: 0\n        memoryOvercommit: 101\n        reserved: {cpus: -1, memory: -5}\n"),
			want: []string{
				host + ".cpuOvercommit: must be a ratio greater than 0 and at most 100, got 0",
				host + ".memoryOvercommit: must be a ratio greater than 0 and at most 100, got 101",
				host + ".reserved.cpus: must not be negative, got -1",
				host + ".reserved.memory: must not be negative, got -5 (MiB)",
			},
		},
		{
			name: "image shorthand keeps its path",
			yaml: edit(t, "        image: default/base.qcow2\n", "        image: base.qcow2\n"),
			want: []string{web + `.image: must be pool/volume (a libvirt storage pool and a volume in it), got "base.qcow2"`},
		},
		{
			name: "image mapping",
			yaml: edit(t, "        image: default/base.qcow2\n", "        image: {volume: x, source: relative/base.qcow2, sha256: abc}\n"),
			want: []string{
				web + `.image.volume: must be pool/volume (a libvirt storage pool and a volume in it), got "x"`,
				web + `.image.source: must be an absolute path or an http(s) URL of the image file, got "relative/base.qcow2"`,
				web + `.image.sha256: must be 64 hex digits (sha256sum prints it), got "abc"`,
			},
		},
		{
			name: "image source needs its checksum",
			yaml: edit(t, "        image: default/base.qcow2\n", "        image: {volume: default/base.qcow2, source: /srv/images/base.qcow2}\n"),
			want: []string{web + ".image.sha256: is required (the SHA-256 of the image file, 64 hex digits (sha256sum prints it))"},
		},
		{
			name: "checksum without source",
			yaml: edit(t, "        image: default/base.qcow2\n", "        image: {volume: default/base.qcow2, sha256: 0123}\n"),
			want: []string{web + ".image.sha256: is used only with source"},
		},
		{
			name: "placement and rollout",
			yaml: edit(t, "        hosts: [local]\n", "        hosts: [local]\n        placement: random\n        rollout: {maxSurge: 0, maxUnavailable: 0}\n"),
			want: []string{
				web + `.placement: unsupported placement "random" (allowed: spread, pack)`,
				web + ".rollout: maxSurge and maxUnavailable are both 0: a rolling replacement could never start (set maxSurge to add before retiring, or maxUnavailable to retire first)",
			},
		},
		{
			name: "negative rollout",
			yaml: edit(t, "        hosts: [local]\n", "        hosts: [local]\n        rollout: {maxSurge: -1, maxUnavailable: -2}\n"),
			want: []string{
				web + ".rollout.maxSurge: must not be negative, got -1",
				web + ".rollout.maxUnavailable: must not be negative, got -2",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "config.yaml", env(nil))
			got := problems(t, err)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
