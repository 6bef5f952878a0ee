package config

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/premiscale/premiscale/internal/influxdb"
	"github.com/premiscale/premiscale/internal/policy"
	"github.com/premiscale/premiscale/internal/spec"
)

// policyNamePattern keeps check and schedule names readable in decision logs and usable as keys.
var policyNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// validateScaling checks a group's scaling at p. group is the group's name, which query
// templates are tried with; staticAddrs is the size of the static address pool, or -1.
//
// The scaling policy's rules are the engine's (policy.Spec.Validate), run on the spec
// PolicySpec builds, with their paths put under p. What is checked here is what only the YAML
// shows: keys that must be written (a number left out reads as 0, which may be valid), zeros
// written where the spec reads 0 as "not set", name patterns and query templates; and the
// group's workflow settings, which are not part of the policy.
func validateScaling(r *report, p, group string, s Scaling, staticAddrs int64) {
	writtenZero(r, p+".increment", s.Increment == 0, "must be at least 1, got 0")
	validateRateLimitKeys(r, p+".scaleOut.rateLimit", s.ScaleOut.RateLimit)
	validateRateLimitKeys(r, p+".scaleIn.rateLimit", s.ScaleIn.RateLimit)
	rt := p + ".resourceTarget"
	if r.present[rt] && s.ResourceTarget.CPU == 0 && s.ResourceTarget.Memory == 0 && !r.shownUnder(rt, nil) {
		r.add(rt, "at least one of cpu or memory (a utilisation percentage to aim for) must be set")
	}
	for i, c := range s.Checks {
		validateCheckKeys(r, joinIndex(p+".checks", i), group, c)
	}
	for i, sc := range s.Schedules {
		validateScheduleKeys(r, joinIndex(p+".schedules", i), sc)
	}

	// The problems found so far are the file's own; the engine's are judged against them.
	known := map[string]bool{}
	for _, q := range r.problems {
		known[q.Path] = true
	}
	var opts []policy.ValidateOption
	if staticAddrs >= 0 {
		opts = append(opts, policy.StaticAddresses(int(min(staticAddrs, math.MaxInt))))
	}
	g := Group{Scaling: s}
	addPolicyProblems(r, p, known, g.PolicySpec(DefaultReconcileInterval).Validate(opts...))

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

// addPolicyProblems reports the engine's problems under the scaling key p, except those that
// are consequences of a problem the file has already shown (known holds the paths reported
// before the engine ran): a problem at a key that failed to decode (or under one that did), at
// a key a misspelt key meant, or at a key already reported; and a relation that reads such a
// key, or a key with such a problem under it.
func addPolicyProblems(r *report, p string, known map[string]bool, errs policy.FieldErrors) {
	under := func(path string) string {
		if path == "" {
			return p
		}
		return p + "." + path
	}
	for _, e := range errs {
		path := under(e.Path)
		if r.failedAbove(path, p) || r.isMuted(path) || known[path] {
			continue
		}
		consequence := false
		for _, k := range e.Involves {
			k = under(k)
			if r.failedAbove(k, p) || r.isMuted(k) || r.shownUnder(k, known) {
				consequence = true
				break
			}
		}
		if !consequence {
			r.add(path, "%s", e.Detail)
		}
	}
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

// shownUnder says whether path, or a key below it, failed to decode, was meant by a misspelt
// key, or is in known.
func (r *report) shownUnder(path string, known map[string]bool) bool {
	below := func(q string) bool {
		return q == path || strings.HasPrefix(q, path+".") || strings.HasPrefix(q, path+"[")
	}
	for q := range known {
		if below(q) {
			return true
		}
	}
	for q := range r.failed {
		if below(q) {
			return true
		}
	}
	for _, m := range r.muted {
		if below(m) {
			return true
		}
	}
	return false
}

// writtenZero reports a key written as 0 where the engine reads 0 as "not set" (no limit, the
// default), which the user cannot have meant.
func writtenZero(r *report, path string, zero bool, msg string) {
	if zero && r.present[path] && r.ok(path) {
		r.add(path, "%s", msg)
	}
}

// requiredKey reports a key that must be given (or whose variables were not set) and says
// whether its value is usable. It suits numbers, whose zero may be meant.
func requiredKey(r *report, path, what string) bool {
	if r.present[path] {
		return r.ok(path)
	}
	r.required(path, "", what)
	return false
}

// validateRateLimitKeys checks what the YAML of the rate limit at rp shows.
func validateRateLimitKeys(r *report, rp string, rl RateLimit) {
	countSet, percentSet := r.present[rp+".count"], r.present[rp+".percent"]
	if countSet && percentSet {
		// Written, even as 0, both are asked for.
		r.add(rp, "set count or percent, not both")
	} else {
		writtenZero(r, rp+".count", rl.Count == 0, "must be at least 1, got 0")
		writtenZero(r, rp+".percent", rl.Percent == 0, "must be greater than 0, got 0")
	}
	switch {
	case countSet || percentSet:
		// Written, even as 0, count or percent asks for a limit, which needs its period.
		if requiredKey(r, rp+".period", "the span the limit applies to, e.g. 5m") && rl.Period.Duration <= 0 {
			r.add(rp+".period", "must be greater than 0, got %s", rl.Period)
		}
	case r.present[rp] && !r.shownUnder(rp, nil):
		// (A misspelt count or percent has been reported already.)
		r.add(rp, "set count (instances) or percent (of the current size), with period")
	}
}

// validateCheckKeys checks what the YAML of the check at cp shows.
func validateCheckKeys(r *report, cp, group string, c Check) {
	if r.required(cp+".name", c.Name, "a unique name of lowercase letters, digits and '-'") && !policyNamePattern.MatchString(c.Name) {
		r.add(cp+".name", "invalid check name %q: use lowercase letters, digits and '-', at most 63 characters", c.Name)
	}
	if c.Metric == policy.MetricQuery && c.Query != "" {
		window := c.Window.Duration
		if window <= 0 {
			window = DefaultReconcileInterval
		}
		if _, err := influxdb.RenderQuery(c.Query, group, window); err != nil {
			r.add(cp+".query", "%v", err)
		}
	}
	writtenZero(r, cp+".window", c.Window.Duration == 0,
		"must be greater than 0, got 0s (leave it out to use controller.reconciliation.interval)")

	readsData := policy.Check{Strategy: c.strategy()}.ReadsData()
	switch {
	case c.OnError == policy.OnErrorFallback && readsData:
		requiredKey(r, cp+".fallback", "the size to recommend while the data is unusable")
	case c.OnError != policy.OnErrorFallback:
		// The engine sees only a fallback other than 0.
		writtenZero(r, cp+".fallback", c.Fallback == 0, "is used only with onError: fallback")
	}

	if t := c.Target; t != nil && r.ok(cp+".target") {
		tp := cp + ".target"
		requiredKey(r, tp+".value", "the value the metric should settle at")
		writtenZero(r, tp+".tolerance", t.Tolerance == 0,
			"must be greater than 0 and less than 1 (a fraction of value), got 0")
	}
	if th := c.Threshold; th != nil && r.ok(cp+".threshold") {
		tp := cp + ".threshold"
		requiredKey(r, tp+".upper", "above it the check adds instances")
		requiredKey(r, tp+".lower", "below it the check removes instances")
		if r.present[tp+".step"] && r.present[tp+".stepPercent"] {
			r.add(tp, "set step or stepPercent, not both")
		} else {
			writtenZero(r, tp+".step", th.Step == 0, "must be at least 1, got 0")
			writtenZero(r, tp+".stepPercent", th.StepPercent == 0, "must be greater than 0, got 0")
		}
	}
	if c.Fixed != nil && r.ok(cp+".fixed") {
		requiredKey(r, cp+".fixed.size", "the size to recommend")
	}
}

// validateScheduleKeys checks what the YAML of the schedule at sp shows.
func validateScheduleKeys(r *report, sp string, sc Schedule) {
	if r.required(sp+".name", sc.Name, "a unique name of lowercase letters, digits and '-'") && !policyNamePattern.MatchString(sc.Name) {
		r.add(sp+".name", "invalid schedule name %q: use lowercase letters, digits and '-', at most 63 characters", sc.Name)
	}
	requiredKey(r, sp+".duration", "how long the schedule stays active, e.g. 8h")
}

func joinIndex(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }
