package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/premiscale/premiscale/internal/policy"
)

// PolicySpec is the group's scaling policy as the engine reads it. resourceTarget's cpu and
// memory become target checks named "cpu" and "memory" (first, in that order), followed by the
// configured checks. A check without a window (a group file read without its configuration)
// gets reconcileInterval, as the resourceTarget checks always do.
func (g Group) PolicySpec(reconcileInterval time.Duration) policy.Spec {
	spec, _ := g.policySpec(reconcileInterval)
	return spec
}

// policySpec also returns, for each of the spec's checks, the key under scaling it came from,
// so the engine's complaints can be reported where the user wrote the thing.
func (g Group) policySpec(reconcileInterval time.Duration) (policy.Spec, []string) {
	s := g.Scaling
	spec := policy.Spec{
		Min:                  s.MinNodes,
		Max:                  s.MaxNodes,
		Increment:            s.Increment,
		ScaleOutCooldown:     s.ScaleOut.Cooldown.Duration,
		ScaleInCooldown:      s.ScaleIn.Cooldown.Duration,
		ScaleInStabilization: s.ScaleIn.StabilizationWindow.Duration,
		ScaleOutRate:         s.ScaleOut.RateLimit.policy(),
		ScaleInRate:          s.ScaleIn.RateLimit.policy(),
	}
	var keys []string
	for _, t := range []struct {
		metric string
		value  float64
	}{{policy.MetricCPU, s.ResourceTarget.CPU}, {policy.MetricMemory, s.ResourceTarget.Memory}} {
		if t.value == 0 {
			continue
		}
		spec.Checks = append(spec.Checks, policy.Check{
			Name: t.metric, Metric: t.metric, Window: reconcileInterval, OnError: policy.OnErrorHold,
			Strategy: policy.Strategy{Type: policy.StrategyTarget, Target: t.value, Tolerance: DefaultTolerance},
		})
		keys = append(keys, "resourceTarget."+t.metric)
	}
	for i, c := range s.Checks {
		pc := policy.Check{
			Name: c.Name, Metric: c.Metric, Query: c.Query, Window: c.Window.Duration,
			OnError: c.OnError, Fallback: c.Fallback, Staleness: c.Staleness.Duration,
			Strategy: c.strategy(),
		}
		if pc.Window == 0 {
			pc.Window = reconcileInterval
		}
		spec.Checks = append(spec.Checks, pc)
		keys = append(keys, fmt.Sprintf("checks[%d]", i))
	}
	for _, sc := range s.Schedules {
		spec.Schedules = append(spec.Schedules, policy.Schedule{
			Name: sc.Name, Cron: sc.Cron, TimeZone: sc.TimeZone, Duration: sc.Duration.Duration,
			Min: copyInt(sc.MinNodes), Max: copyInt(sc.MaxNodes), Desired: copyInt(sc.Desired),
		})
	}
	return spec, keys
}

func (rl RateLimit) policy() policy.RateLimit {
	return policy.RateLimit{Count: rl.Count, Percent: rl.Percent, Period: rl.Period.Duration}
}

// strategy is the check's strategy; validation rejects a check with more than one, and the
// first of target, threshold, fixed wins should an unvalidated one reach here.
func (c Check) strategy() policy.Strategy {
	switch {
	case c.Target != nil:
		return policy.Strategy{Type: policy.StrategyTarget, Target: c.Target.Value, Tolerance: c.Target.Tolerance}
	case c.Threshold != nil:
		return policy.Strategy{Type: policy.StrategyThreshold, Upper: c.Threshold.Upper, Lower: c.Threshold.Lower,
			StepCount: c.Threshold.Step, StepPercent: c.Threshold.StepPercent}
	case c.Fixed != nil:
		return policy.Strategy{Type: policy.StrategyFixed, Size: c.Fixed.Size}
	}
	return policy.Strategy{}
}

// strategyKey names the check's strategy key, "" when none is set.
func (c Check) strategyKey() string {
	switch {
	case c.Target != nil:
		return "target"
	case c.Threshold != nil:
		return "threshold"
	case c.Fixed != nil:
		return "fixed"
	}
	return ""
}

func copyInt(p *int) *int {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// RenderQuery expands a query check's template for a group: {{.Group}} is the group's name and
// {{.Window}} the window as a Flux duration literal ("5m", "1h30m"), so `range(start:
// -{{.Window}})` reads the window. A key that does not exist is an error, not an empty string.
func RenderQuery(query, group string, window time.Duration) (string, error) {
	t, err := template.New("query").Option("missingkey=error").Parse(query)
	if err != nil {
		return "", fmt.Errorf("parse query template: %w", err)
	}
	var b strings.Builder
	if err := t.Execute(&b, map[string]any{"Group": group, "Window": fluxDuration(window)}); err != nil {
		return "", fmt.Errorf("execute query template: %w", err)
	}
	if strings.TrimSpace(b.String()) == "" {
		return "", errors.New("the query template renders to nothing")
	}
	return b.String(), nil
}

// fluxDuration writes d as a Flux duration literal. Go's own form does not do: "1.5s" and
// "5m0s" are not how Flux spells 1500ms and 5m.
func fluxDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}, {time.Microsecond, "us"}, {time.Nanosecond, "ns"}} {
		if n := d / u.unit; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10) + u.name)
			d -= n * u.unit
		}
	}
	return b.String()
}

// checkPolicy runs the engine's own validation on the group's spec, and reports each of its
// complaints at the key it is about. The config checks above it say most of the same things in
// the config's words; the engine's version of a problem already reported there (at that key or
// under it) is dropped. What is left is what only the engine knows, cron syntax and time zones
// above all, and whatever rule it gains later.
func checkPolicy(r *report, p string, g Group) {
	if !r.ok(p) {
		return
	}
	spec, keys := g.policySpec(0)
	err := spec.Validate()
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		key, msg := policyErrorKey(spec, keys, g.Scaling.Checks, e.Error())
		path := p
		if key != "" {
			path = p + "." + key
		}
		if r.reportedUnder(path) || r.failedAbove(path, p) {
			continue
		}
		r.add(path, "%s", msg)
	}
}

// reportedUnder says whether a problem was reported at path or at a key below it.
func (r *report) reportedUnder(path string) bool {
	for _, q := range r.problems {
		if q.Path == path || strings.HasPrefix(q.Path, path+".") || strings.HasPrefix(q.Path, path+"[") {
			return true
		}
	}
	return false
}

// failedAbove says whether path or a key above it, up to top, failed to decode: its value is
// then a zero the user did not write.
func (r *report) failedAbove(path, top string) bool {
	for {
		if r.failed[path] {
			return true
		}
		if path == top || path == "" {
			return false
		}
		path = parentPath(path)
	}
}

// The engine names a check or schedule as `check "name"` or, when the name is empty, `check #n`
// (1-based), followed by ": " and the complaint.
var engineLabel = regexp.MustCompile(`^(check|schedule) (?:#(\d+)|("(?:[^"\\]|\\.)*")): (.*)$`)

// policyErrorKey maps one message of policy.Spec.Validate to the key under scaling it is about
// ("" for scaling itself) and the message without the engine's label. checkKeys holds the key
// each of spec.Checks came from. A message it cannot place lands on the nearest key it can: the
// check or schedule, else scaling.
func policyErrorKey(spec policy.Spec, checkKeys []string, checks []Check, msg string) (string, string) {
	m := engineLabel.FindStringSubmatch(msg)
	if m == nil {
		return scalingErrorKey(msg)
	}
	kind, detail := m[1], m[4]
	index := -1
	if m[2] != "" {
		n, _ := strconv.Atoi(m[2])
		index = n - 1
	} else if name, err := strconv.Unquote(m[3]); err == nil {
		index = uniqueIndex(kind, spec, name)
	}

	if kind == "schedule" {
		if index < 0 || index >= len(spec.Schedules) {
			return "schedules", msg
		}
		key := fmt.Sprintf("schedules[%d]", index)
		if field := scheduleField(detail); field != "" {
			return key + "." + field, detail
		}
		return key, detail
	}

	if index < 0 || index >= len(checkKeys) {
		return "checks", msg
	}
	key := checkKeys[index]
	if strings.HasPrefix(key, "resourceTarget.") {
		// The shorthand has one value; whatever the engine says is about it.
		return key, detail
	}
	var c Check
	if i := index - (len(checkKeys) - len(checks)); i >= 0 && i < len(checks) {
		c = checks[i]
	}
	if field := checkField(detail, c); field != "" {
		return key + "." + field, detail
	}
	return key, detail
}

// uniqueIndex finds the check or schedule called name, or -1 when there is none or more than
// one (then the duplicate is the problem, and config validation names it).
func uniqueIndex(kind string, spec policy.Spec, name string) int {
	index := -1
	n := len(spec.Checks)
	if kind == "schedule" {
		n = len(spec.Schedules)
	}
	for i := 0; i < n; i++ {
		got := ""
		if kind == "schedule" {
			got = spec.Schedules[i].Name
		} else {
			got = spec.Checks[i].Name
		}
		if got != name {
			continue
		}
		if index >= 0 {
			return -1
		}
		index = i
	}
	return index
}

// firstWord is the engine message's subject: "window 1s is negative" → "window".
func firstWord(s string) string {
	end := strings.IndexAny(s, " :,")
	if end < 0 {
		return s
	}
	return s[:end]
}

func scalingErrorKey(msg string) (string, string) {
	word := firstWord(msg)
	detail := strings.TrimPrefix(strings.TrimPrefix(msg, word), ":")
	detail = strings.TrimSpace(detail)
	switch word {
	case "min":
		return "minNodes", msg
	case "increment":
		return "increment", msg
	case "scaleOutCooldown":
		return "scaleOut.cooldown", msg
	case "scaleInCooldown":
		return "scaleIn.cooldown", msg
	case "scaleInStabilization":
		return "scaleIn.stabilizationWindow", msg
	case "scaleOutRate":
		return "scaleOut.rateLimit", detail
	case "scaleInRate":
		return "scaleIn.rateLimit", detail
	}
	// "max N is below min M", and anything new.
	return "", msg
}

func checkField(detail string, c Check) string {
	switch word := firstWord(detail); word {
	case "name", "metric", "query", "window", "staleness", "onError", "fallback":
		return word
	case "target", "tolerance", "upper", "lower", "step", "stepCount", "stepPercent", "size", "set":
		// Strategy fields: the engine's names differ from the config's, so point at the
		// strategy key the user wrote.
		return c.strategyKey()
	}
	return ""
}

func scheduleField(detail string) string {
	switch word := firstWord(detail); word {
	case "name":
		return "name"
	case "parse", "cron", "@every":
		return "cron"
	case "load", "time":
		return "timeZone"
	case "duration":
		return "duration"
	case "desired":
		return "desired"
	case "min", "max":
		if strings.Contains(detail, "is negative") {
			return word + "Nodes"
		}
	}
	return ""
}
