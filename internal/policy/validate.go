package policy

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Validate reports every problem in the spec at once; each message names the field and the
// check or schedule it belongs to. Evaluate copes with an invalid spec (it holds or ignores
// what it cannot read), but a valid one is what it was written for.
func (s Spec) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if s.Min < 0 {
		bad("min %d is negative", s.Min)
	}
	if s.Max < s.Min {
		bad("max %d is below min %d", s.Max, s.Min)
	}
	if s.Increment < 0 {
		bad("increment %d is negative", s.Increment)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"scaleOutCooldown", s.ScaleOutCooldown},
		{"scaleInCooldown", s.ScaleInCooldown},
		{"scaleInStabilization", s.ScaleInStabilization},
	} {
		if d.v < 0 {
			bad("%s %s is negative", d.name, d.v)
		}
	}
	errs = append(errs, validateRate("scaleOutRate", s.ScaleOutRate)...)
	errs = append(errs, validateRate("scaleInRate", s.ScaleInRate)...)

	names := map[string]bool{}
	for i, c := range s.Checks {
		label := fmt.Sprintf("check %q", c.Name)
		switch {
		case c.Name == "":
			label = fmt.Sprintf("check #%d", i+1)
			bad("%s: name is empty", label)
		case names[c.Name]:
			bad("%s: name is used twice", label)
		}
		names[c.Name] = true
		errs = append(errs, validateCheck(label, c)...)
	}

	snames := map[string]bool{}
	for i, sc := range s.Schedules {
		label := fmt.Sprintf("schedule %q", sc.Name)
		switch {
		case sc.Name == "":
			label = fmt.Sprintf("schedule #%d", i+1)
			bad("%s: name is empty", label)
		case snames[sc.Name]:
			bad("%s: name is used twice", label)
		}
		snames[sc.Name] = true
		errs = append(errs, validateSchedule(label, sc, s)...)
	}
	return errors.Join(errs...)
}

func validateRate(name string, r RateLimit) []error {
	var errs []error
	switch {
	case r.Count < 0:
		errs = append(errs, fmt.Errorf("%s: count %d is negative", name, r.Count))
	case r.Percent < 0 || math.IsNaN(r.Percent) || math.IsInf(r.Percent, 0):
		errs = append(errs, fmt.Errorf("%s: percent %v must be a positive number", name, r.Percent))
	case r.Count > 0 && r.Percent > 0:
		errs = append(errs, fmt.Errorf("%s: set count or percent, not both", name))
	case r.Period < 0:
		errs = append(errs, fmt.Errorf("%s: period %s is negative", name, r.Period))
	case !r.IsZero() && r.Period == 0:
		errs = append(errs, fmt.Errorf("%s: period is required with a count or percent", name))
	case r.IsZero() && r.Period != 0:
		errs = append(errs, fmt.Errorf("%s: period %s without a count or percent limits nothing", name, r.Period))
	}
	return errs
}

func validateCheck(label string, c Check) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{label}, args...)...))
	}
	st := c.Strategy
	switch c.Metric {
	case MetricCPU, MetricMemory, MetricQuery:
	case "":
		if st.Type != StrategyFixed {
			bad("metric is required (cpu, memory or query)")
		}
	default:
		bad("metric %q is not cpu, memory or query", c.Metric)
	}
	if c.Window < 0 {
		bad("window %s is negative", c.Window)
	}
	if c.Staleness < 0 {
		bad("staleness %s is negative", c.Staleness)
	}
	switch c.OnError {
	case "", OnErrorHold, OnErrorFail:
		if c.Fallback != 0 {
			bad("fallback %d is set but onError is not fallback", c.Fallback)
		}
	case OnErrorFallback:
		if c.Fallback < 0 {
			bad("fallback %d is negative", c.Fallback)
		}
	default:
		bad("onError %q is not hold, fail or fallback", c.OnError)
	}

	percent := c.Metric == MetricCPU || c.Metric == MetricMemory
	targetSet := st.Target != 0 || st.Tolerance != 0
	thresholdSet := st.Upper != 0 || st.Lower != 0 || st.StepCount != 0 || st.StepPercent != 0
	sizeSet := st.Size != 0
	finite := func(name string, v float64) bool {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			bad("%s %v is not a number", name, v)
			return false
		}
		return true
	}
	switch st.Type {
	case StrategyTarget:
		if thresholdSet || sizeSet {
			bad("upper, lower, step and size do not apply to a target strategy")
		}
		if finite("target", st.Target) && st.Target <= 0 {
			bad("target %g must be above 0", st.Target)
		}
		if percent && st.Target > 100 {
			bad("target %g%% is above 100%%", st.Target)
		}
		if finite("tolerance", st.Tolerance) && (st.Tolerance < 0 || st.Tolerance >= 1) {
			bad("tolerance %g must be in [0, 1) (0 means %g)", st.Tolerance, DefaultTolerance)
		}
	case StrategyThreshold:
		if targetSet || sizeSet {
			bad("target, tolerance and size do not apply to a threshold strategy")
		}
		if finite("upper", st.Upper) && finite("lower", st.Lower) && st.Upper <= st.Lower {
			bad("upper %g must be above lower %g", st.Upper, st.Lower)
		}
		switch {
		case st.StepCount < 0 || st.StepPercent < 0:
			bad("step must not be negative")
		case st.StepCount > 0 && st.StepPercent > 0:
			bad("set stepCount or stepPercent, not both")
		case st.StepCount == 0 && !(st.StepPercent > 0):
			bad("stepCount or stepPercent is required")
		default:
			finite("stepPercent", st.StepPercent)
		}
	case StrategyFixed:
		if targetSet || thresholdSet {
			bad("target, tolerance, upper, lower and step do not apply to a fixed strategy")
		}
		if st.Size < 0 {
			bad("size %d is negative", st.Size)
		}
		if c.OnError != "" && c.OnError != OnErrorHold {
			bad("onError %s has no effect: a fixed strategy reads no data", c.OnError)
		}
	case "":
		bad("strategy type is required (target, threshold or fixed)")
	default:
		bad("strategy type %q is not target, threshold or fixed", st.Type)
	}
	return errs
}

func validateSchedule(label string, sc Schedule, s Spec) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{label}, args...)...))
	}
	if cs, err := parseCron(sc.Cron, sc.TimeZone); err != nil {
		bad("%v", err)
	} else if cs.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		// Any fixed instant does: robfig/cron searches five years ahead, which covers every
		// expression that fires at all (29 February included).
		bad("cron %q never fires", sc.Cron)
	}
	if sc.Duration <= 0 {
		bad("duration %s must be above 0", sc.Duration)
	}
	lo, hi := s.Min, s.Max
	for _, f := range []struct {
		name string
		v    *int
	}{{"min", sc.Min}, {"max", sc.Max}, {"desired", sc.Desired}} {
		if f.v != nil && *f.v < 0 {
			bad("%s %d is negative", f.name, *f.v)
		}
	}
	if sc.Min != nil {
		lo = *sc.Min
	}
	if sc.Max != nil {
		hi = *sc.Max
	}
	if hi < lo {
		bad("max %d is below min %d while active", hi, lo)
	}
	if sc.Desired != nil && (*sc.Desired < lo || *sc.Desired > hi) {
		bad("desired %d is outside [%d, %d] while active", *sc.Desired, lo, hi)
	}
	if sc.Min == nil && sc.Max == nil && sc.Desired == nil {
		bad("sets none of min, max and desired")
	}
	return errs
}
