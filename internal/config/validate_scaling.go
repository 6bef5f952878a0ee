package config

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/premiscale/premiscale/internal/policy"
	"github.com/premiscale/premiscale/internal/spec"
)

// policyNamePattern keeps check and schedule names readable in decision logs and usable as keys.
var policyNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// validateScaling checks a group's scaling at p. group is the group's name, which query
// templates are tried with; staticAddrs is the size of the static address pool, or -1.
func validateScaling(r *report, p, group string, s Scaling, staticAddrs int64) {
	minOK, maxOK := true, true
	if s.MinNodes < 0 {
		r.add(p+".minNodes", "must not be negative, got %d", s.MinNodes)
		minOK = false
	}
	if s.MaxNodes < 1 {
		r.add(p+".maxNodes", "must be at least 1, got %d", s.MaxNodes)
		maxOK = false
	}
	minOK = minOK && r.ok(p+".minNodes")
	maxOK = maxOK && r.ok(p+".maxNodes")
	if minOK && maxOK && s.MinNodes > s.MaxNodes {
		r.add(p, "minNodes (%d) is greater than maxNodes (%d)", s.MinNodes, s.MaxNodes)
	}
	if maxOK && staticAddrs >= 0 && int64(s.MaxNodes) > staticAddrs {
		r.add(p+".maxNodes", "maxNodes (%d) is larger than the %d static addresses in networking.addresses", s.MaxNodes, staticAddrs)
	}
	if s.Increment < 1 {
		r.add(p+".increment", "must be at least 1, got %d", s.Increment)
	}
	notNegative(r, p+".cooldown", s.Cooldown)
	notNegative(r, p+".scaleOut.cooldown", s.ScaleOut.Cooldown)
	notNegative(r, p+".scaleIn.cooldown", s.ScaleIn.Cooldown)
	notNegative(r, p+".scaleIn.stabilizationWindow", s.ScaleIn.StabilizationWindow)
	validateRateLimit(r, p+".scaleOut.rateLimit", s.ScaleOut.RateLimit, false)
	validateRateLimit(r, p+".scaleIn.rateLimit", s.ScaleIn.RateLimit, true)

	rt := p + ".resourceTarget"
	for _, t := range []struct {
		name  string
		value float64
	}{{"cpu", s.ResourceTarget.CPU}, {"memory", s.ResourceTarget.Memory}} {
		if t.value != 0 && !(t.value > 0 && t.value <= 100) {
			r.add(rt+"."+t.name, "must be a percentage in (0,100], got %v", t.value)
		}
	}
	targetSet := s.ResourceTarget.CPU != 0 || s.ResourceTarget.Memory != 0
	switch {
	case targetSet || !r.ok(rt+".cpu", rt+".memory"):
	case r.present[rt]:
		r.add(rt, "at least one of cpu or memory (a utilisation percentage to aim for) must be set")
	case len(s.Checks) == 0 && len(s.Schedules) == 0 && r.ok(p+".checks", p+".schedules") &&
		!r.isMuted(rt) && !r.isMuted(p+".checks") && !r.isMuted(p+".schedules"):
		// (A misspelt key meant to size the group has been reported already.)
		r.add(p, "nothing sizes the group: set at least one of resourceTarget, checks or schedules")
	}

	// names maps each check name in use to the key that uses it.
	names := map[string]string{}
	if s.ResourceTarget.CPU != 0 {
		names[policy.MetricCPU] = "resourceTarget.cpu"
	}
	if s.ResourceTarget.Memory != 0 {
		names[policy.MetricMemory] = "resourceTarget.memory"
	}
	for i, c := range s.Checks {
		validateCheck(r, fmt.Sprintf("%s.checks[%d]", p, i), fmt.Sprintf("checks[%d]", i), group, c, names)
	}

	scheduleNames := map[string]string{}
	for i, sc := range s.Schedules {
		key := fmt.Sprintf("schedules[%d]", i)
		validateSchedule(r, p+"."+key, key, sc, scheduleNames, scheduleBounds{
			min: s.MinNodes, max: s.MaxNodes, minOK: minOK, maxOK: maxOK, staticAddrs: staticAddrs})
	}

	if !slices.Contains(spec.TerminationPolicies(), spec.TerminationPolicy(s.TerminationPolicy)) {
		r.add(p+".terminationPolicy", "unsupported termination policy %q (allowed: %s, %s, %s)", s.TerminationPolicy,
			spec.TerminateOldestFirst, spec.TerminateNewestFirst, spec.TerminateUnhealthyFirst)
	}
	if s.MaxConcurrentLaunches < 0 {
		r.add(p+".maxConcurrentLaunches", "must not be negative, got %d (0 means no limit)", s.MaxConcurrentLaunches)
	}
	lb := p + ".launchBackoff"
	if s.LaunchBackoff.After < 1 {
		r.add(lb+".after", "must be at least 1, got %d", s.LaunchBackoff.After)
	}
	if s.LaunchBackoff.Initial.Duration <= 0 {
		r.add(lb+".initial", "must be greater than 0, got %s", s.LaunchBackoff.Initial)
	} else if s.LaunchBackoff.Max.Duration < s.LaunchBackoff.Initial.Duration && r.ok(lb+".initial") {
		r.add(lb+".max", "must be at least initial (%s), got %s", s.LaunchBackoff.Initial, s.LaunchBackoff.Max)
	}
}

func notNegative(r *report, path string, d Duration) {
	if d.Duration < 0 {
		r.add(path, "must not be negative, got %s", d)
	}
}

// finite reports whether v is an ordinary number (YAML has .nan and .inf).
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// requiredKey reports a key that must be given (or whose variables were not set) and says
// whether its value is usable. It suits numbers, whose zero may be meant.
func requiredKey(r *report, path, what string) bool {
	if r.present[path] {
		return r.ok(path)
	}
	r.required(path, "", what)
	return false
}

// validateRateLimit checks a rate limit at rp; shrinking says it limits a scale-in, where more
// than 100% means nothing.
func validateRateLimit(r *report, rp string, rl RateLimit, shrinking bool) {
	countSet, percentSet := r.present[rp+".count"], r.present[rp+".percent"]
	switch {
	case countSet && percentSet:
		r.add(rp, "set count or percent, not both")
	case countSet:
		if rl.Count < 1 {
			r.add(rp+".count", "must be at least 1, got %d", rl.Count)
		}
	case percentSet:
		switch {
		case !(rl.Percent > 0) || !finite(rl.Percent):
			r.add(rp+".percent", "must be greater than 0, got %v", rl.Percent)
		case shrinking && rl.Percent > 100:
			r.add(rp+".percent", "must be at most 100 (a percentage of the current size), got %v", rl.Percent)
		}
	default:
		if r.present[rp] && r.ok(rp) {
			r.add(rp, "set count (instances) or percent (of the current size), with period")
		}
		return
	}
	if requiredKey(r, rp+".period", "the span the limit applies to, e.g. 5m") && rl.Period.Duration <= 0 {
		r.add(rp+".period", "must be greater than 0, got %s", rl.Period)
	}
}

// validateCheck checks the check at cp (key is its path under scaling, for messages). names
// holds the check names used so far and gains this one.
func validateCheck(r *report, cp, key, group string, c Check, names map[string]string) {
	if r.required(cp+".name", c.Name, "a unique name of lowercase letters, digits and '-'") {
		first, taken := names[c.Name]
		switch {
		case !policyNamePattern.MatchString(c.Name):
			r.add(cp+".name", "invalid check name %q: use lowercase letters, digits and '-', at most 63 characters", c.Name)
		case taken && strings.HasPrefix(first, "resourceTarget."):
			r.add(cp+".name", "check name %q is taken by the %s shorthand: rename the check or drop %s", c.Name, first, first)
		case taken:
			r.add(cp+".name", "duplicate check name %q (also %s)", c.Name, first)
		default:
			names[c.Name] = key
		}
	}

	var strategies []string
	for _, s := range []struct {
		key string
		set bool
	}{{"target", c.Target != nil}, {"threshold", c.Threshold != nil}, {"fixed", c.Fixed != nil}} {
		if s.set {
			strategies = append(strategies, s.key)
		}
	}
	switch len(strategies) {
	case 0:
		if r.ok(cp+".target", cp+".threshold", cp+".fixed") &&
			!r.isMuted(cp+".target") && !r.isMuted(cp+".threshold") && !r.isMuted(cp+".fixed") {
			r.add(cp, "one of target, threshold or fixed is required (how the metric becomes a size)")
		}
	case 1:
	default:
		r.add(cp, "set exactly one of target, threshold or fixed, got %s", strings.Join(strategies, " and "))
	}
	fixed := len(strategies) == 1 && c.Fixed != nil

	switch c.Metric {
	case policy.MetricCPU, policy.MetricMemory:
		if c.Query != "" {
			r.add(cp+".query", "is used only with metric: query, not %s", c.Metric)
		}
	case policy.MetricQuery:
		if r.required(cp+".query", c.Query, "a Flux query returning one number") {
			window := c.Window.Duration
			if window <= 0 {
				window = DefaultReconcileInterval
			}
			if _, err := RenderQuery(c.Query, group, window); err != nil {
				r.add(cp+".query", "%v", err)
			}
		}
	case "":
		if !fixed {
			r.required(cp+".metric", "", "cpu, memory or query")
		} else if c.Query != "" {
			r.add(cp+".query", "is used only with metric: query")
		}
	default:
		r.add(cp+".metric", "unsupported metric %q (allowed: cpu, memory, query)", c.Metric)
	}

	if c.Window.Duration <= 0 && r.present[cp+".window"] && r.ok(cp+".window") {
		r.add(cp+".window", "must be greater than 0, got %s (leave it out to use controller.reconciliation.interval)", c.Window)
	}
	notNegative(r, cp+".staleness", c.Staleness)

	switch c.OnError {
	case policy.OnErrorHold, policy.OnErrorFail, policy.OnErrorFallback:
		if fixed && c.OnError != policy.OnErrorHold {
			r.add(cp+".onError", "%s has no effect on a fixed check: it reads no data", c.OnError)
		}
	default:
		r.add(cp+".onError", "unsupported onError %q (allowed: hold, fail, fallback)", c.OnError)
	}
	switch {
	case c.OnError == policy.OnErrorFallback && !fixed:
		if requiredKey(r, cp+".fallback", "the size to recommend while the data is unusable") && c.Fallback < 0 {
			r.add(cp+".fallback", "must not be negative, got %d", c.Fallback)
		}
	case r.present[cp+".fallback"] && c.OnError != policy.OnErrorFallback:
		r.add(cp+".fallback", "is used only with onError: fallback")
	}

	metricIsPercent := c.Metric == policy.MetricCPU || c.Metric == policy.MetricMemory
	if t := c.Target; t != nil && r.ok(cp+".target") {
		tp := cp + ".target"
		if requiredKey(r, tp+".value", "the value the metric should settle at") {
			switch {
			case !(t.Value > 0) || !finite(t.Value):
				r.add(tp+".value", "must be greater than 0, got %v", t.Value)
			case metricIsPercent && t.Value > 100:
				r.add(tp+".value", "must be a percentage in (0,100] for metric %s, got %v", c.Metric, t.Value)
			}
		}
		if !(t.Tolerance > 0 && t.Tolerance < 1) && r.ok(tp+".tolerance") {
			r.add(tp+".tolerance", "must be greater than 0 and less than 1 (a fraction of value), got %v", t.Tolerance)
		}
	}
	if th := c.Threshold; th != nil && r.ok(cp+".threshold") {
		tp := cp + ".threshold"
		upperOK := requiredKey(r, tp+".upper", "above it the check adds instances")
		lowerOK := requiredKey(r, tp+".lower", "below it the check removes instances")
		for _, b := range []struct {
			key string
			v   float64
			ok  *bool
		}{{"upper", th.Upper, &upperOK}, {"lower", th.Lower, &lowerOK}} {
			if *b.ok && !finite(b.v) {
				r.add(tp+"."+b.key, "must be a number, got %v", b.v)
				*b.ok = false
			}
		}
		if upperOK && lowerOK && th.Upper <= th.Lower {
			r.add(tp, "upper (%v) must be greater than lower (%v)", th.Upper, th.Lower)
		}
		stepSet, percentSet := r.present[tp+".step"], r.present[tp+".stepPercent"]
		switch {
		case stepSet && percentSet:
			r.add(tp, "set step or stepPercent, not both")
		case percentSet:
			if !(th.StepPercent > 0) || !finite(th.StepPercent) {
				r.add(tp+".stepPercent", "must be greater than 0, got %v", th.StepPercent)
			}
		case th.Step < 1:
			r.add(tp+".step", "must be at least 1, got %d", th.Step)
		}
	}
	if f := c.Fixed; f != nil && r.ok(cp+".fixed") {
		if requiredKey(r, cp+".fixed.size", "the size to recommend") && f.Size < 0 {
			r.add(cp+".fixed.size", "must not be negative, got %d", f.Size)
		}
	}
}

// scheduleBounds are the group's own bounds, which a schedule's unset fields keep.
type scheduleBounds struct {
	min, max     int
	minOK, maxOK bool
	staticAddrs  int64
}

// validateSchedule checks the schedule at sp (key is its path under scaling, for messages).
// names holds the schedule names used so far and gains this one. The cron expression and the
// time zone are the engine's to judge (see checkPolicy).
func validateSchedule(r *report, sp, key string, sc Schedule, names map[string]string, b scheduleBounds) {
	if r.required(sp+".name", sc.Name, "a unique name of lowercase letters, digits and '-'") {
		first, taken := names[sc.Name]
		switch {
		case !policyNamePattern.MatchString(sc.Name):
			r.add(sp+".name", "invalid schedule name %q: use lowercase letters, digits and '-', at most 63 characters", sc.Name)
		case taken:
			r.add(sp+".name", "duplicate schedule name %q (also %s)", sc.Name, first)
		default:
			names[sc.Name] = key
		}
	}
	r.required(sp+".cron", sc.Cron, `when the schedule starts, e.g. "0 9 * * 1-5"`)
	if requiredKey(r, sp+".duration", "how long the schedule stays active, e.g. 8h") && sc.Duration.Duration <= 0 {
		r.add(sp+".duration", "must be greater than 0, got %s", sc.Duration)
	}

	lo, hi, loOK, hiOK := b.min, b.max, b.minOK, b.maxOK
	anySet := false
	for _, f := range []struct {
		key string
		v   *int
	}{{"minNodes", sc.MinNodes}, {"maxNodes", sc.MaxNodes}, {"desired", sc.Desired}} {
		path := sp + "." + f.key
		if len(r.unset[path]) > 0 {
			// The variable expanded to nothing, which decodes as 0: not what was written.
			r.add(path, "")
			continue
		}
		if f.v == nil {
			continue
		}
		anySet = true
		ok := r.ok(path)
		if *f.v < 0 {
			r.add(path, "must not be negative, got %d", *f.v)
			ok = false
		}
		switch f.key {
		case "minNodes":
			lo, loOK = *f.v, ok
		case "maxNodes":
			hi, hiOK = *f.v, ok
		}
	}
	if !anySet && r.ok(sp+".minNodes", sp+".maxNodes", sp+".desired") &&
		!r.isMuted(sp+".minNodes") && !r.isMuted(sp+".maxNodes") && !r.isMuted(sp+".desired") {
		r.add(sp, "set at least one of minNodes, maxNodes or desired")
	}
	if !loOK || !hiOK {
		return
	}
	if lo > hi {
		r.add(sp, "minNodes (%d) is greater than maxNodes (%d) while the schedule is active", lo, hi)
		return
	}
	if sc.MaxNodes != nil && b.staticAddrs >= 0 && int64(hi) > b.staticAddrs {
		r.add(sp+".maxNodes", "maxNodes (%d) is larger than the %d static addresses in networking.addresses", hi, b.staticAddrs)
	}
	if d := sc.Desired; d != nil && *d >= 0 && (*d < lo || *d > hi) && r.ok(sp+".desired") {
		r.add(sp+".desired", "desired (%d) must be within minNodes and maxNodes [%d, %d] while the schedule is active", *d, lo, hi)
	}
}
