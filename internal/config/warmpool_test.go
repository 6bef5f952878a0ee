package config

import (
	"strings"
	"testing"

	"github.com/premiscale/premiscale/internal/spec"
)

func TestWarmPoolSpec(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       spec.WarmPool
	}{
		{name: "none", yaml: base, want: spec.WarmPool{}},
		{name: "size alone defaults to stopped", yaml: edit(t, "        hosts: [local]\n", "        hosts: [local]\n        warmPool: {size: 2}\n"),
			want: spec.WarmPool{Size: 2, State: spec.PoolStopped}},
		{name: "saved and reused", yaml: edit(t, "        hosts: [local]\n", "        hosts: [local]\n        warmPool:\n          size: 3\n          state: saved\n          reuseOnScaleIn: true\n"),
			want: spec.WarmPool{Size: 3, State: spec.PoolSaved, ReuseOnScaleIn: true}},
		{name: "running", yaml: edit(t, "        hosts: [local]\n", "        hosts: [local]\n        warmPool: {size: 1, state: running}\n"),
			want: spec.WarmPool{Size: 1, State: spec.PoolRunning}},
		// A pool of 0 is no pool: the spec is the one a group without the key has.
		{name: "size 0", yaml: edit(t, "        hosts: [local]\n", "        hosts: [local]\n        warmPool: {size: 0, state: saved, reuseOnScaleIn: true}\n"),
			want: spec.WarmPool{}},
		// A schedule may raise maxNodes, and with it the room the pool may fill.
		{name: "room from a schedule", yaml: edit(t, "          maxNodes: 3\n", "          maxNodes: 3\n          schedules: [{name: day, cron: '0 8 * * *', duration: 10h, maxNodes: 6}]\n",
			"        hosts: [local]\n", "        hosts: [local]\n        warmPool: {size: 5}\n"),
			want: spec.WarmPool{Size: 5, State: spec.PoolStopped}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.yaml), "config.yaml", env(nil))
			if err != nil {
				t.Fatalf("%v\n%s", err, tt.yaml)
			}
			gs, err := cfg.Controller.GroupSpec("web", cfg.Controller.Autoscale.Groups["web"])
			if err != nil {
				t.Fatal(err)
			}
			if gs.WarmPool != tt.want {
				t.Errorf("warm pool = %+v, want %+v", gs.WarmPool, tt.want)
			}
		})
	}
}

func TestInvalidWarmPool(t *testing.T) {
	p := "controller.autoscale.groups.web.warmPool"
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{name: "unknown state", yaml: edit(t, "        hosts: [local]\n", "        hosts: [local]\n        warmPool: {size: 1, state: hibernated}\n"),
			want: []string{p + `.state: unsupported state "hibernated" (allowed: stopped, saved, running)`}},
		{name: "negative size", yaml: edit(t, "        hosts: [local]\n", "        hosts: [local]\n        warmPool: {size: -1}\n"),
			want: []string{p + ".size: must not be negative, got -1"}},
		{name: "larger than maxNodes", yaml: edit(t, "        hosts: [local]\n", "        hosts: [local]\n        warmPool: {size: 4, state: saved}\n"),
			want: []string{p + ".size: is 4, more than maxNodes (3): pool members count toward maxNodes, so the pool could never fill"}},
		{name: "unknown key", yaml: edit(t, "        hosts: [local]\n", "        hosts: [local]\n        warmPool: {size: 1, reuse: true}\n"),
			want: []string{p + ".reuse: unknown key (allowed keys here: reuseOnScaleIn, size, state)"}},
		{name: "wrong type", yaml: edit(t, "        hosts: [local]\n", "        hosts: [local]\n        warmPool: {size: some, reuseOnScaleIn: maybe}\n"),
			want: []string{p + `.size: expected a whole number, got "some"`, p + `.reuseOnScaleIn: expected true or false, got "maybe"`}},
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
