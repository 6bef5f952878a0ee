package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/influxdb"
	"github.com/premiscale/premiscale/internal/policy"
	"github.com/premiscale/premiscale/internal/spec"
)

// withScaling adds extra (YAML written from column 0) to the base config's web.scaling, then
// applies the old→new pairs as edit does.
func withScaling(t *testing.T, extra string, pairs ...string) string {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.Split(strings.Trim(extra, "\n"), "\n") {
		b.WriteString("          " + line + "\n")
	}
	return edit(t, append([]string{"            cpu: 50\n", "            cpu: 50\n" + b.String()}, pairs...)...)
}

// noResourceTarget is the edit that removes the base config's resourceTarget.
var noResourceTarget = []string{"          resourceTarget:\n            cpu: 50\n", ""}

func TestScalingInvalid(t *testing.T) {
	const sc = "controller.autoscale.groups.web.scaling"
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string // every problem, in file order
	}{
		{
			name: "threshold upper not above lower",
			yaml: withScaling(t, `
checks:
  - {name: cpu-high, metric: cpu, threshold: {upper: 80, lower: 20}}
  - {name: queue, metric: query, query: 'x', threshold: {upper: 20, lower: 80}}
`),
			want: []string{sc + ".checks[1].threshold: upper (20) must be greater than lower (80)"},
		},
		{
			name: "check names: missing, invalid, duplicate, taken by the shorthand",
			yaml: withScaling(t, `
checks:
  - {metric: cpu, fixed: {size: 1}}
  - {name: Big_Queue, metric: cpu, fixed: {size: 1}}
  - {name: base, fixed: {size: 1}}
  - {name: base, fixed: {size: 2}}
  - {name: cpu, metric: cpu, threshold: {upper: 80, lower: 20}}
  - {name: memory, metric: memory, threshold: {upper: 80, lower: 20}}
`),
			want: []string{
				sc + ".checks[0].name: is required (a unique name of lowercase letters, digits and '-')",
				sc + `.checks[1].name: invalid check name "Big_Queue": use lowercase letters, digits and '-', at most 63 characters`,
				sc + `.checks[3].name: duplicate check name "base" (also checks[2])`,
				sc + `.checks[4].name: check name "cpu" is taken by the resourceTarget.cpu shorthand: rename the check or drop resourceTarget.cpu`,
			},
		},
		{
			name: "metric and query",
			yaml: withScaling(t, `
checks:
  - {name: a, target: {value: 5}}
  - {name: b, metric: disk, target: {value: 5}}
  - {name: c, metric: query, target: {value: 5}}
  - {name: d, metric: cpu, query: 'from(bucket: "x")', target: {value: 5}}
  - {name: e, query: 'from(bucket: "x")', fixed: {size: 1}}
`),
			want: []string{
				sc + ".checks[0].metric: is required (cpu, memory or query)",
				sc + `.checks[1].metric: unsupported metric "disk" (allowed: cpu, memory, query)`,
				sc + ".checks[2].query: is required (a Flux query returning one number)",
				sc + ".checks[3].query: is used only with metric: query, not cpu",
				sc + ".checks[4].query: is used only with metric: query",
			},
		},
		{
			name: "query templates",
			yaml: withScaling(t, `
checks:
  - {name: a, metric: query, query: 'from(bucket: "{{.Group}"', target: {value: 5}}
  - {name: b, metric: query, query: 'range(start: -{{.Windw}})', target: {value: 5}}
  - {name: c, metric: query, query: '{{if false}}x{{end}}', target: {value: 5}}
  - {name: d, metric: query, query: '{{len 3}}', target: {value: 5}}
`),
			want: []string{
				sc + `.checks[0].query: parse query template: template: query:1: bad character U+007D '}'`,
				sc + `.checks[1].query: execute query template: template: query:1:16: executing "query" at <.Windw>: map has no entry for key "Windw"`,
				sc + ".checks[2].query: the query template renders to nothing",
				sc + `.checks[3].query: execute query template: template: query:1:2: executing "query" at <len 3>: error calling len: len of type int`,
			},
		},
		{
			name: "query is not $VAR-expanded",
			yaml: withScaling(t, `
checks:
  - {name: a, metric: query, query: '{{ $g := .Group }}{{ $g }} $HOME', target: {value: 5}}
`),
		},
		{
			name: "strategies: none, two",
			yaml: withScaling(t, `
checks:
  - {name: a, metric: cpu}
  - {name: b, metric: cpu, target: {value: 50}, threshold: {upper: 80, lower: 20}}
`),
			want: []string{
				sc + ".checks[0]: one of target, threshold or fixed is required (how the metric becomes a size)",
				sc + ".checks[1]: set exactly one of target, threshold or fixed, got target and threshold",
			},
		},
		{
			name: "target values",
			yaml: withScaling(t, `
checks:
  - {name: a, metric: query, query: x, target: {}}
  - {name: b, metric: query, query: x, target: {value: 0, tolerance: 1}}
  - {name: c, metric: memory, target: {value: 150, tolerance: 0}}
  - {name: d, metric: query, query: x, target: {value: Inf}}
  - {name: e, metric: query, query: x, target: {value: 1500, tolerance: 0.5}}
`),
			want: []string{
				sc + ".checks[0].target.value: is required (the value the metric should settle at)",
				sc + ".checks[1].target.value: must be greater than 0, got 0",
				sc + ".checks[1].target.tolerance: must be greater than 0 and less than 1 (a fraction of value), got 1",
				// On one line, the problems only the YAML shows come first.
				sc + ".checks[2].target.tolerance: must be greater than 0 and less than 1 (a fraction of value), got 0",
				sc + ".checks[2].target.value: must be a percentage in (0,100] for metric memory, got 150",
				sc + ".checks[3].target.value: must be greater than 0, got +Inf",
			},
		},
		{
			name: "threshold values",
			yaml: withScaling(t, `
checks:
  - {name: a, metric: cpu, threshold: {upper: 80}}
  - {name: b, metric: cpu, threshold: {upper: 80, lower: 20, step: 1, stepPercent: 10}}
  - {name: c, metric: cpu, threshold: {upper: 80, lower: 20, step: 0}}
  - {name: d, metric: cpu, threshold: {upper: 80, lower: 20, stepPercent: -5}}
  - {name: e, metric: cpu, threshold: {upper: NaN, lower: 20}}
  - {name: f, metric: cpu, threshold: {upper: 80, lower: 20, stepPercent: 50}}
`),
			want: []string{
				sc + ".checks[0].threshold.lower: is required (below it the check removes instances)",
				sc + ".checks[1].threshold: set step or stepPercent, not both",
				sc + ".checks[2].threshold.step: must be at least 1, got 0",
				sc + ".checks[3].threshold.stepPercent: must be greater than 0, got -5",
				sc + ".checks[4].threshold.upper: must be a number, got NaN",
			},
		},
		{
			name: "fixed values",
			yaml: withScaling(t, `
checks:
  - {name: a, fixed: {}}
  - {name: b, fixed: {size: -1}}
  - {name: c, onError: fail, fixed: {size: 1}}
  - {name: d, fixed: {size: 0}}
`),
			want: []string{
				sc + ".checks[0].fixed.size: is required (the size to recommend)",
				sc + ".checks[1].fixed.size: must not be negative, got -1",
				sc + ".checks[2].onError: fail has no effect on a fixed check: it reads no data",
			},
		},
		{
			name: "onError and fallback",
			yaml: withScaling(t, `
checks:
  - {name: a, metric: cpu, onError: ignore, target: {value: 50}}
  - {name: b, metric: cpu, fallback: 3, target: {value: 50}}
  - {name: c, metric: cpu, onError: fallback, target: {value: 50}}
  - {name: d, metric: cpu, onError: fallback, fallback: -1, target: {value: 50}}
  - {name: e, metric: cpu, onError: fallback, fallback: 0, target: {value: 50}}
  - {name: f, metric: cpu, onError: fail, target: {value: 50}}
`),
			want: []string{
				sc + `.checks[0].onError: unsupported onError "ignore" (allowed: hold, fail, fallback)`,
				sc + ".checks[1].fallback: is used only with onError: fallback",
				sc + ".checks[2].fallback: is required (the size to recommend while the data is unusable)",
				sc + ".checks[3].fallback: must not be negative, got -1",
			},
		},
		{
			name: "check durations",
			yaml: withScaling(t, `
checks:
  - {name: a, metric: cpu, window: 0, target: {value: 50}}
  - {name: b, metric: cpu, window: -5m, staleness: -1, target: {value: 50}}
  - {name: c, metric: cpu, staleness: soon, target: {value: 50}}
`),
			want: []string{
				sc + ".checks[0].window: must be greater than 0, got 0s (leave it out to use controller.reconciliation.interval)",
				sc + ".checks[1].window: must not be negative, got -5m",
				sc + ".checks[1].staleness: must not be negative, got -1",
				sc + `.checks[2].staleness: invalid duration "soon": use whole seconds (60) or a Go duration such as "90s" or "5m"`,
			},
		},
		{
			name: "a strategy that is not a mapping is reported once",
			yaml: withScaling(t, `
checks:
  - {name: a, metric: cpu, threshold: 80}
`),
			want: []string{sc + `.checks[0].threshold: expected a mapping (key: value), got "80"`},
		},
		{
			name: "rate limits",
			yaml: withScaling(t, `
scaleOut:
  rateLimit: {count: 2, percent: 50, period: 5m}
scaleIn:
  rateLimit: {count: 2}
`),
			want: []string{
				sc + ".scaleOut.rateLimit: set count or percent, not both",
				sc + ".scaleIn.rateLimit.period: is required (the span the limit applies to, e.g. 5m)",
			},
		},
		{
			name: "rate limit values",
			yaml: withScaling(t, `
scaleOut:
  rateLimit: {count: 0, period: 0}
scaleIn:
  rateLimit: {percent: 150, period: 10m}
`),
			want: []string{
				sc + ".scaleOut.rateLimit.count: must be at least 1, got 0",
				sc + ".scaleOut.rateLimit.period: must be greater than 0, got 0s",
				sc + ".scaleIn.rateLimit.percent: must be at most 100 (a percentage of the current size), got 150",
			},
		},
		{
			name: "rate limit with a period only, and a negative one",
			yaml: withScaling(t, `
scaleOut:
  rateLimit: {period: 5m}
scaleIn:
  rateLimit: {percent: 10, period: -5m}
`),
			want: []string{
				sc + ".scaleOut.rateLimit: set count (instances) or percent (of the current size), with period",
				sc + ".scaleIn.rateLimit.period: must not be negative, got -5m",
			},
		},
		{
			name: "scale-out growth above 100% is allowed",
			yaml: withScaling(t, `
scaleOut:
  rateLimit: {percent: 200, period: 5m}
`),
		},
		{
			name: "negative cooldowns and stabilization",
			yaml: withScaling(t, `
scaleOut: {cooldown: -1}
scaleIn: {cooldown: -2s, stabilizationWindow: -5m}
`),
			want: []string{
				sc + ".scaleOut.cooldown: must not be negative, got -1",
				sc + ".scaleIn.cooldown: must not be negative, got -2s",
				sc + ".scaleIn.stabilizationWindow: must not be negative, got -5m",
			},
		},
		{
			name: "cron and time zone, judged by the engine",
			yaml: withScaling(t, `
schedules:
  - {name: a, cron: "0 25 * * *", duration: 1h, minNodes: 2}
  - {name: b, cron: "@every 1h", duration: 1h, minNodes: 2}
  - {name: c, cron: "CRON_TZ=Europe/Paris 0 9 * * *", duration: 1h, minNodes: 2}
  - {name: d, cron: "0 9 * * *", timeZone: Mars/Olympus, duration: 1h, minNodes: 2}
  - {name: e, cron: "0 9 * * *", timeZone: Local, duration: 1h, minNodes: 2}
  - {name: f, cron: "0 0 30 2 *", duration: 1h, minNodes: 2}
  - {name: g, cron: "@daily", timeZone: America/New_York, duration: 1h, minNodes: 2}
`),
			want: []string{
				sc + `.schedules[0].cron: parse cron "0 25 * * *": end of range (25) above maximum (23): 25`,
				sc + ".schedules[1].cron: @every is not anchored to the clock: use a cron expression",
				sc + ".schedules[2].cron: cron must not carry a TZ= prefix: set timeZone instead",
				sc + `.schedules[3].timeZone: load time zone "Mars/Olympus": unknown time zone Mars/Olympus`,
				sc + `.schedules[4].timeZone: time zone "Local" depends on the host: name the zone`,
				sc + `.schedules[5].cron: cron "0 0 30 2 *" never fires`,
			},
		},
		{
			name: "schedule fields",
			yaml: withScaling(t, `
schedules:
  - {cron: "0 9 * * *", minNodes: 2}
  - {name: Night, cron: "0 22 * * *", duration: 0, maxNodes: 1}
  - {name: c, duration: 1h}
  - {name: c, cron: "0 9 * * *", duration: 1h, desired: 5}
  - {name: e, cron: "0 9 * * *", duration: 1h, minNodes: -1, maxNodes: -2}
`),
			want: []string{
				sc + ".schedules[0].name: is required (a unique name of lowercase letters, digits and '-')",
				sc + ".schedules[0].duration: is required (how long the schedule stays active, e.g. 8h)",
				sc + `.schedules[1].name: invalid schedule name "Night": use lowercase letters, digits and '-', at most 63 characters`,
				sc + ".schedules[1].duration: must be greater than 0, got 0s",
				sc + `.schedules[2].cron: is required (when the schedule starts, e.g. "0 9 * * 1-5")`,
				sc + ".schedules[2]: set at least one of minNodes, maxNodes or desired",
				sc + `.schedules[3].name: duplicate schedule name "c" (also schedules[2])`,
				sc + ".schedules[3].desired: desired (5) must be within minNodes and maxNodes [1, 3] while the schedule is active",
				sc + ".schedules[4].minNodes: must not be negative, got -1",
				sc + ".schedules[4].maxNodes: must not be negative, got -2",
			},
		},
		{
			name: "schedule bounds against the group's",
			yaml: withScaling(t, `
schedules:
  - {name: a, cron: "0 9 * * *", duration: 1h, minNodes: 5}
  - {name: b, cron: "0 9 * * *", duration: 1h, maxNodes: 0}
  - {name: c, cron: "0 9 * * *", duration: 1h, minNodes: 4, maxNodes: 8, desired: 9}
  - {name: d, cron: "0 9 * * *", duration: 1h, minNodes: 4, maxNodes: 8, desired: 8}
`),
			want: []string{
				sc + ".schedules[0]: minNodes (5) is greater than maxNodes (3) while the schedule is active",
				sc + ".schedules[1]: minNodes (1) is greater than maxNodes (0) while the schedule is active",
				sc + ".schedules[2].desired: desired (9) must be within minNodes and maxNodes [4, 8] while the schedule is active",
			},
		},
		{
			name: "schedule maxNodes above the static addresses",
			yaml: withScaling(t, `
schedules:
  - {name: a, cron: "0 9 * * *", duration: 1h, maxNodes: 5}
`, "        hosts: [local]", `        hosts: [local]
        networking:
          type: static
          subnet: 192.168.5.0/24
          gateway: 192.168.5.1
          addresses: [192.168.5.2-192.168.5.4]`),
			want: []string{sc + ".schedules[0].maxNodes: maxNodes (5) is larger than the 3 static addresses in networking.addresses"},
		},
		{
			name: "schedule sizes from unset variables",
			yaml: withScaling(t, `
schedules:
  - {name: a, cron: "0 9 * * *", duration: 1h, minNodes: $MIN, desired: 2}
`),
			want: []string{sc + ".schedules[0].minNodes: variable $MIN is not set"},
		},
		{
			name: "launch settings",
			yaml: withScaling(t, `
terminationPolicy: random
maxConcurrentLaunches: -1
launchBackoff: {after: 0, initial: 0}
`),
			want: []string{
				sc + `.terminationPolicy: unsupported termination policy "random" (allowed: oldest-first, newest-first, unhealthy-first)`,
				sc + ".maxConcurrentLaunches: must not be negative, got -1 (0 means no limit)",
				sc + ".launchBackoff.after: must be at least 1, got 0",
				sc + ".launchBackoff.initial: must be greater than 0, got 0s",
			},
		},
		{
			name: "launch backoff max below initial",
			yaml: withScaling(t, `
launchBackoff: {initial: 5m, max: 1m}
dryRun: maybe
`),
			want: []string{
				sc + ".launchBackoff.max: must be at least initial (5m0s), got 1m0s",
				sc + `.dryRun: expected true or false, got "maybe"`,
			},
		},
		{
			name: "checks alone size a group",
			yaml: withScaling(t, `
checks:
  - {name: base, fixed: {size: 2}}
`, noResourceTarget...),
		},
		{
			name: "schedules alone size a group",
			yaml: withScaling(t, `
schedules:
  - {name: day, cron: "0 8 * * *", duration: 12h, minNodes: 2}
`, noResourceTarget...),
		},
		{
			name: "empty checks and schedules size nothing",
			yaml: withScaling(t, `
checks: []
schedules: []
`, noResourceTarget...),
			want: []string{sc + ": nothing sizes the group: set at least one of resourceTarget, checks or schedules"},
		},
		{
			name: "a misspelt checks key is the one problem",
			yaml: withScaling(t, `
chekcs:
  - {name: base, fixed: {size: 2}}
`, noResourceTarget...),
			want: []string{sc + ".chekcs: unknown key (did you mean checks?)"},
		},
		{
			name: "a misspelt or broken key is the one problem, not the engine's view of its zero",
			yaml: withScaling(t, `
scaleOut:
  rateLimit: {cout: 2, period: 1m}
checks:
  - {name: a, metric: cpu, threshold: {uper: 80, lower: 20}}
  - {name: b, metric: cpu, threshold: {lower: 90}}
  - {name: c, metric: cpu, threshold: 80}
schedules:
  - {name: d, cron: "@daily", duration: 1h, maxNodes: x, desired: 9}
`),
			want: []string{
				sc + ".scaleOut.rateLimit.cout: unknown key (did you mean count?)",
				sc + ".checks[0].threshold.uper: unknown key (did you mean upper?)",
				sc + ".checks[1].threshold.upper: is required (above it the check adds instances)",
				sc + `.checks[2].threshold: expected a mapping (key: value), got "80"`,
				sc + `.schedules[0].maxNodes: expected a whole number, got "x"`,
			},
		},
		{
			name: "a broken maxNodes is not compared with anything",
			yaml: withScaling(t, `
schedules:
  - {name: a, cron: "@daily", duration: 1h, desired: 2}
`, "maxNodes: 3", "maxNodes: [3]"),
			want: []string{sc + ".maxNodes: expected a whole number, got a list"},
		},
		{
			name: "a broken resourceTarget does not leave the group unsized",
			yaml: withScaling(t, "", "          resourceTarget:\n            cpu: 50\n", "          resourceTarget: 50\n"),
			want: []string{sc + `.resourceTarget: expected a mapping (key: value), got "50"`},
		},
		{
			name: "a misspelt resourceTarget key is the one problem",
			yaml: withScaling(t, "", "            cpu: 50\n", "            cpuu: 50\n"),
			want: []string{sc + ".resourceTarget.cpuu: unknown key (did you mean cpu?)"},
		},
		{
			name: "a broken scaling block is the one problem",
			yaml: edit(t, "          minNodes: 1\n          maxNodes: 3\n          resourceTarget:\n            cpu: 50\n", "          - 1\n"),
			want: []string{sc + ": expected a mapping (key: value), got a list"},
		},
		{
			name: "a schedule's cron and time zone are judged apart",
			yaml: withScaling(t, `
schedules:
  - {name: a, cron: "bad", timeZone: Nowhere/X, duration: 1h, minNodes: 2}
`),
			want: []string{
				sc + `.schedules[0].timeZone: load time zone "Nowhere/X": unknown time zone Nowhere/X`,
				sc + `.schedules[0].cron: parse cron "bad": expected exactly 5 fields, found 1: [bad]`,
			},
		},
		{
			name: "zeros written where the engine reads 0 as not set",
			yaml: withScaling(t, `
increment: 0
scaleIn:
  rateLimit: {percent: 0, period: 1m}
checks:
  - {name: a, metric: cpu, fallback: 0, window: 0, target: {value: 50, tolerance: 0}}
  - {name: b, metric: cpu, threshold: {upper: 80, lower: 20, stepPercent: 0}}
  - {name: c, metric: cpu, threshold: {upper: 80, lower: 20, step: 0, stepPercent: 0}}
`),
			want: []string{
				sc + ".increment: must be at least 1, got 0",
				sc + ".scaleIn.rateLimit.percent: must be greater than 0, got 0",
				sc + ".checks[0].window: must be greater than 0, got 0s (leave it out to use controller.reconciliation.interval)",
				sc + ".checks[0].fallback: is used only with onError: fallback",
				sc + ".checks[0].target.tolerance: must be greater than 0 and less than 1 (a fraction of value), got 0",
				sc + ".checks[1].threshold.stepPercent: must be greater than 0, got 0",
				sc + ".checks[2].threshold: set step or stepPercent, not both",
			},
		},
		{
			name: "unknown keys list the new ones",
			yaml: withScaling(t, `
scaleIN: {cooldown: 1m}
frobnicate: 1
checks:
  - {name: a, metric: cpu, treshold: {upper: 80, lower: 20}}
schedules:
  - {name: a, cron: "@daily", duration: 1h, min: 2}
`),
			want: []string{
				sc + ".scaleIN: unknown key (did you mean scaleIn?)",
				sc + ".frobnicate: unknown key (allowed keys here: checks, cooldown, dryRun, increment, launchBackoff, maxConcurrentLaunches, maxNodes, minNodes, resourceTarget, scaleIn, scaleOut, schedules, terminationPolicy)",
				// The misspelt strategy is not also reported as missing.
				sc + ".checks[0].treshold: unknown key (did you mean threshold?)",
				sc + ".schedules[0].min: unknown key (allowed keys here: cron, desired, duration, maxNodes, minNodes, name, timeZone)",
				sc + ".schedules[0]: set at least one of minNodes, maxNodes or desired",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "testdata/config.yaml", env(tt.env))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded, want problems:\n%s", strings.Join(tt.want, "\n"))
			}
			got := problems(t, err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestScalingDefaults(t *testing.T) {
	y := withScaling(t, `
increment: 3
cooldown: 90s
scaleIn: {cooldown: 10m}
checks:
  - {name: load, metric: query, query: x, target: {value: 5}}
  - {name: queue, metric: query, query: x, window: 2m, onError: fail, threshold: {upper: 10, lower: 1}}
  - {name: burst, metric: cpu, threshold: {upper: 90, lower: 10, stepPercent: 20}}
  - {name: exact, metric: memory, target: {value: 70, tolerance: 0.25}}
schedules:
  - {name: day, cron: "0 8 * * *", duration: 12h, minNodes: 2}
`, "controller:\n", "controller:\n  reconciliation:\n    interval: 45s\n")
	cfg, err := Parse([]byte(y), "config.yaml", env(nil))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	s := cfg.Controller.Autoscale.Groups["web"].Scaling
	checks := []struct {
		name      string
		got, want any
	}{
		{"scaleOut.cooldown follows cooldown", s.ScaleOut.Cooldown.Duration, 90 * time.Second},
		{"scaleIn.cooldown as given", s.ScaleIn.Cooldown.Duration, 10 * time.Minute},
		{"scaleIn.stabilizationWindow", s.ScaleIn.StabilizationWindow.Duration, 5 * time.Minute},
		{"rate limits are off", []RateLimit{s.ScaleOut.RateLimit, s.ScaleIn.RateLimit}, []RateLimit{{}, {}}},
		// 45 s is less than two collection intervals (the default 30 s each).
		{"window covers two collection intervals", s.Checks[0].Window.Duration, time.Minute},
		{"window as given", s.Checks[1].Window.Duration, 2 * time.Minute},
		{"staleness is off", s.Checks[0].Staleness.Duration, time.Duration(0)},
		{"onError hold", s.Checks[0].OnError, "hold"},
		{"onError as given", s.Checks[1].OnError, "fail"},
		{"target tolerance", *s.Checks[0].Target, TargetStrategy{Value: 5, Tolerance: 0.1}},
		{"target tolerance as given", *s.Checks[3].Target, TargetStrategy{Value: 70, Tolerance: 0.25}},
		{"threshold step", *s.Checks[1].Threshold, ThresholdStrategy{Upper: 10, Lower: 1, Step: 1}},
		{"threshold stepPercent leaves step unset", *s.Checks[2].Threshold, ThresholdStrategy{Upper: 90, Lower: 10, StepPercent: 20}},
		{"timeZone", s.Schedules[0].TimeZone, "UTC"},
		{"terminationPolicy", s.TerminationPolicy, "newest-first"},
		{"maxConcurrentLaunches is the increment", s.MaxConcurrentLaunches, 3},
		{"launchBackoff", s.LaunchBackoff, LaunchBackoff{After: 3, Initial: Duration{30 * time.Second}, Max: Duration{10 * time.Minute}}},
		{"dryRun", s.DryRun, false},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}

	// Zero values given explicitly stay zero: they mean "off" or "no limit".
	cfg, err = Parse([]byte(withScaling(t, `
scaleIn: {stabilizationWindow: 0}
maxConcurrentLaunches: 0
dryRun: true
`)), "config.yaml", env(nil))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	s = cfg.Controller.Autoscale.Groups["web"].Scaling
	if s.ScaleIn.StabilizationWindow.Duration != 0 || s.MaxConcurrentLaunches != 0 || !s.DryRun {
		t.Errorf("explicit zeros: stabilizationWindow %s, maxConcurrentLaunches %d, dryRun %v", s.ScaleIn.StabilizationWindow, s.MaxConcurrentLaunches, s.DryRun)
	}
	// Without a cooldown anywhere, both directions get the default one.
	if s.ScaleOut.Cooldown.Duration != DefaultCooldown || s.ScaleIn.Cooldown.Duration != DefaultCooldown {
		t.Errorf("cooldowns = %s, %s; want %s", s.ScaleOut.Cooldown, s.ScaleIn.Cooldown, DefaultCooldown)
	}
}

func TestGroupFileCheckWindow(t *testing.T) {
	const doc = "version: v1alpha1\ngroups:\n  api:\n    image: a/b\n    name: tmpl\n    hosts: [local]\n" +
		"    scaling: {maxNodes: 2, checks: [{name: load, metric: cpu, target: {value: 50}}]}\n"
	cfg, err := Parse([]byte(edit(t, "controller:\n", "controller:\n  reconciliation:\n    interval: 20s\n")), "config.yaml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	groups, err := ParseGroupFile([]byte(doc), "group.yaml", env(nil), cfg)
	if err != nil {
		t.Fatalf("ParseGroupFile: %v", err)
	}
	if got := groups["api"].Scaling.Checks[0].Window.Duration; got != time.Minute {
		t.Errorf("window with the config = %s, want two collection intervals (1m), more than its reconciliation interval 20s", got)
	}

	// Without the config the window stays unset, and PolicySpec fills it in.
	groups, err = ParseGroupFile([]byte(doc), "group.yaml", env(nil), nil)
	if err != nil {
		t.Fatalf("ParseGroupFile: %v", err)
	}
	api := groups["api"]
	if got := api.Scaling.Checks[0].Window.Duration; got != 0 {
		t.Errorf("window without the config = %s, want 0", got)
	}
	if got := api.PolicySpec(time.Minute).Checks[0].Window; got != time.Minute {
		t.Errorf("PolicySpec window = %s, want 1m", got)
	}
}

// fullScaling uses every scaling key.
const fullScaling = `
minNodes: 1
maxNodes: 10
increment: 2
cooldown: 60s
resourceTarget: {cpu: 60, memory: 75}
scaleOut:
  cooldown: 30s
  rateLimit: {count: 2, period: 5m}
scaleIn:
  cooldown: 300s
  stabilizationWindow: 10m
  rateLimit: {percent: 25, period: 10m}
checks:
  - name: cpu-high
    metric: cpu
    window: 5m
    staleness: 3m
    threshold: {upper: 80, lower: 20, step: 1}
  - name: queue
    metric: query
    query: 'from(bucket: "q") |> range(start: -{{.Window}}) |> filter(fn: (r) => r.group == "{{.Group}}") |> mean()'
    onError: fallback
    fallback: 3
    threshold: {upper: 100, lower: 10, stepPercent: 20}
  - name: rps
    metric: query
    query: x
    onError: fail
    target: {value: 1000, tolerance: 0.2}
  - name: base
    fixed: {size: 3}
schedules:
  - name: business-hours
    cron: "0 9 * * 1-5"
    timeZone: Europe/Berlin
    duration: 8h
    minNodes: 4
    maxNodes: 10
    desired: 6
  - name: night
    cron: "@daily"
    duration: 6h
    maxNodes: 2
terminationPolicy: oldest-first
maxConcurrentLaunches: 2
launchBackoff: {after: 5, initial: 1m, max: 30m}
dryRun: true
`

func TestPolicySpec(t *testing.T) {
	y := edit(t, "          minNodes: 1\n          maxNodes: 3\n          resourceTarget:\n            cpu: 50\n",
		indent(fullScaling, "          "),
		"controller:\n", "controller:\n  reconciliation:\n    interval: 2m\n")
	cfg, err := Parse([]byte(y), "config.yaml", env(nil))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	web := cfg.Controller.Autoscale.Groups["web"]
	got := web.PolicySpec(cfg.Controller.Reconciliation.Interval.Duration)

	four, ten, six, two := 4, 10, 6, 2
	want := policy.Spec{
		Min: 1, Max: 10, Increment: 2,
		ScaleOutCooldown: 30 * time.Second, ScaleInCooldown: 5 * time.Minute, ScaleInStabilization: 10 * time.Minute,
		ScaleOutRate: policy.RateLimit{Count: 2, Period: 5 * time.Minute},
		ScaleInRate:  policy.RateLimit{Percent: 25, Period: 10 * time.Minute},
		Checks: []policy.Check{
			{Name: "cpu", Key: "resourceTarget.cpu", Metric: "cpu", Window: 2 * time.Minute, OnError: "hold",
				Strategy: policy.StrategySpec{Target: &policy.Target{Value: 60, Tolerance: 0.1}}},
			{Name: "memory", Key: "resourceTarget.memory", Metric: "memory", Window: 2 * time.Minute, OnError: "hold",
				Strategy: policy.StrategySpec{Target: &policy.Target{Value: 75, Tolerance: 0.1}}},
			{Name: "cpu-high", Key: "checks[0]", Metric: "cpu", Window: 5 * time.Minute, Staleness: 3 * time.Minute, OnError: "hold",
				Strategy: policy.StrategySpec{Threshold: &policy.Threshold{Upper: 80, Lower: 20, Step: 1}}},
			{Name: "queue", Key: "checks[1]", Metric: "query", Window: 2 * time.Minute, OnError: "fallback", Fallback: 3,
				Query:    `from(bucket: "q") |> range(start: -{{.Window}}) |> filter(fn: (r) => r.group == "{{.Group}}") |> mean()`,
				Strategy: policy.StrategySpec{Threshold: &policy.Threshold{Upper: 100, Lower: 10, StepPercent: 20}}},
			{Name: "rps", Key: "checks[2]", Metric: "query", Query: "x", Window: 2 * time.Minute, OnError: "fail",
				Strategy: policy.StrategySpec{Target: &policy.Target{Value: 1000, Tolerance: 0.2}}},
			{Name: "base", Key: "checks[3]", Window: 2 * time.Minute, OnError: "hold",
				Strategy: policy.StrategySpec{Fixed: &policy.Fixed{Size: 3}}},
		},
		Schedules: []policy.Schedule{
			{Name: "business-hours", Cron: "0 9 * * 1-5", TimeZone: "Europe/Berlin", Duration: 8 * time.Hour, Min: &four, Max: &ten, Desired: &six},
			{Name: "night", Cron: "@daily", TimeZone: "UTC", Duration: 6 * time.Hour, Max: &two},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PolicySpec:\n got %+v\nwant %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("the engine rejects the spec: %v", err)
	}

	s := web.Scaling
	if s.TerminationPolicy != string(spec.TerminateOldestFirst) || s.MaxConcurrentLaunches != 2 || !s.DryRun ||
		s.LaunchBackoff != (LaunchBackoff{After: 5, Initial: Duration{time.Minute}, Max: Duration{30 * time.Minute}}) {
		t.Errorf("workflow settings = %q, %d, %v, %+v", s.TerminationPolicy, s.MaxConcurrentLaunches, s.DryRun, s.LaunchBackoff)
	}

	// The spec shares no memory with the config: a caller may change either.
	*got.Schedules[0].Min = 99
	if *web.Scaling.Schedules[0].MinNodes != 4 {
		t.Error("PolicySpec's schedule bounds point into the config")
	}
}

// indent prefixes every non-empty line of s (a YAML snippet from column 0) with prefix.
func indent(s, prefix string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.Trim(s, "\n"), "\n") {
		if line != "" {
			b.WriteString(prefix + line)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func TestExampleProductionPolicy(t *testing.T) {
	cfg, err := parseExample(t, "production.yaml", productionEnv)
	if err != nil {
		t.Fatal(err)
	}
	web := cfg.Controller.Autoscale.Groups["web"]
	spec := web.PolicySpec(cfg.Controller.Reconciliation.Interval.Duration)
	if err := spec.Validate(); err != nil {
		t.Fatalf("the engine rejects production.yaml's web policy: %v", err)
	}
	var names []string
	for _, c := range spec.Checks {
		names = append(names, c.Name+"/"+c.Strategy.Kind())
	}
	if got := strings.Join(names, " "); got != "cpu/target memory/target requests-per-instance/threshold" {
		t.Errorf("checks = %s", got)
	}
	if len(spec.Schedules) != 1 || spec.Schedules[0].TimeZone != "Europe/Berlin" || spec.ScaleInStabilization != 10*time.Minute ||
		spec.ScaleInRate != (policy.RateLimit{Percent: 25, Period: 15 * time.Minute}) || web.Scaling.TerminationPolicy != "oldest-first" {
		t.Errorf("web policy = %+v, termination %s", spec, web.Scaling.TerminationPolicy)
	}
	summary := cfg.Summary()
	for _, want := range []string{
		"checks:     requests-per-instance (query, threshold 100..400)",
		`schedules:  business-hours ("0 8 * * 1-5" Europe/Berlin for 10h0m0s: min 4, desired 6)`,
		"scale-out:  cooldown 2m0s, at most 4 per 10m0s",
		"scale-in:   cooldown 10m0s, stabilization 10m0s, at most 25% per 15m0s, retire oldest-first",
		"launches:   2 at once, back off after 3 failures (30s to 10m0s)",
	} {
		if !strings.Contains(summary, want) {
			t.Errorf("Summary lacks %q:\n%s", want, summary)
		}
	}
	q, err := influxdb.RenderQuery(spec.Checks[2].Query, "web", spec.Checks[2].Window)
	if err != nil || !strings.Contains(q, `range(start: -5m)`) || !strings.Contains(q, `r.premiscale_group == "web"`) {
		t.Errorf("rendered query = %q, %v", q, err)
	}
}
