package policy

import (
	"fmt"
	"math"
	"time"
)

// epsilon absorbs float error in ceil and tolerance comparisons: 10 × 1.1 is 11.000000000000002
// in float64, and a naive ceil would ask for a twelfth instance.
const epsilon = 1e-9

func ceilInt(x float64) int { return int(math.Ceil(x - epsilon)) }

// evaluateCheck turns one check and its reading into an opinion. failed reports that an
// onError: fail check had no usable data.
func evaluateCheck(c Check, r Reading, ok bool, now time.Time, current int) (res CheckResult, failed bool) {
	res = CheckResult{Name: c.Name, Value: r.Value, Action: Hold, Recommended: current}
	if c.Strategy.Type == StrategyFixed {
		// A fixed size needs no measurement, so missing data cannot make it hold.
		res.HasData = ok && r.HasData && r.Err == ""
		res.Recommended = max(c.Strategy.Size, 0)
		res.Action = actionOf(current, res.Recommended)
		res.Reason = fmt.Sprintf("%s fixed size → %d", c.Name, res.Recommended)
		return res, false
	}
	if problem := unusable(c, r, ok, now); problem != "" {
		switch c.OnError {
		case OnErrorFail:
			res.Reason = fmt.Sprintf("%s %s → fail (onError fail)", c.Name, problem)
			return res, true
		case OnErrorFallback:
			res.Recommended = max(c.Fallback, 0)
			res.Action = actionOf(current, res.Recommended)
			res.Reason = fmt.Sprintf("%s %s → fallback %d", c.Name, problem, res.Recommended)
		default:
			res.Reason = fmt.Sprintf("%s %s → hold %d", c.Name, problem, current)
		}
		return res, false
	}
	res.HasData = true
	value := formatValue(c.Metric, r.Value)
	s := c.Strategy
	switch s.Type {
	case StrategyTarget:
		tolerance := s.Tolerance
		if tolerance <= 0 {
			tolerance = DefaultTolerance
		}
		target := formatValue(c.Metric, s.Target)
		if math.Abs(r.Value/s.Target-1) <= tolerance+epsilon {
			res.Reason = fmt.Sprintf("%s %s within %g%% of target %s → hold %d", c.Name, value, tolerance*100, target, current)
			return res, false
		}
		// current × value / target rather than current × (value/target): fewer roundings.
		res.Recommended = ceilInt(float64(current) * r.Value / s.Target)
		rel := ">"
		if r.Value < s.Target {
			rel = "<"
		}
		res.Reason = fmt.Sprintf("%s %s %s target %s → %d", c.Name, value, rel, target, res.Recommended)
	case StrategyThreshold:
		step := s.StepCount
		if step <= 0 {
			step = max(ceilInt(float64(current)*s.StepPercent/100), 1)
		}
		switch {
		case r.Value > s.Upper:
			res.Recommended = current + step
			res.Reason = fmt.Sprintf("%s %s > upper %s → +%d = %d", c.Name, value, formatValue(c.Metric, s.Upper), step, res.Recommended)
		case r.Value < s.Lower:
			res.Recommended = max(current-step, 0)
			res.Reason = fmt.Sprintf("%s %s < lower %s → −%d = %d", c.Name, value, formatValue(c.Metric, s.Lower), step, res.Recommended)
		default:
			res.Reason = fmt.Sprintf("%s %s within [%s, %s] → hold %d", c.Name, value,
				formatValue(c.Metric, s.Lower), formatValue(c.Metric, s.Upper), current)
			return res, false
		}
	default:
		// Validate rejects unknown types; holding is the safe reading of a spec it did not see.
		res.Reason = fmt.Sprintf("%s unknown strategy %q → hold %d", c.Name, s.Type, current)
		return res, false
	}
	res.Action = actionOf(current, res.Recommended)
	if res.Action == ScaleIn && r.Partial {
		// A mean over the instances that reported can look idle while silent ones are busy.
		res.Reason += fmt.Sprintf(", but data is partial → hold %d", current)
		res.Recommended, res.Action = current, Hold
	}
	return res, false
}

// unusable says why a reading cannot be trusted, or "" if it can.
func unusable(c Check, r Reading, ok bool, now time.Time) string {
	switch {
	case !ok:
		return "no reading"
	case r.Err != "":
		return "error (" + r.Err + ")"
	case !r.HasData:
		return "no data"
	case math.IsNaN(r.Value) || math.IsInf(r.Value, 0):
		return fmt.Sprintf("invalid value %v", r.Value)
	case c.Staleness > 0 && r.Newest.IsZero():
		return "stale (no timestamp)"
	case c.Staleness > 0 && now.Sub(r.Newest) > c.Staleness:
		return fmt.Sprintf("stale (newest point %s old > %s)", now.Sub(r.Newest).Round(time.Second), c.Staleness)
	}
	return ""
}

func formatValue(metric string, v float64) string {
	if metric == MetricCPU || metric == MetricMemory {
		return fmt.Sprintf("%.1f%%", v)
	}
	return fmt.Sprintf("%.4g", v)
}

func actionOf(from, to int) Action {
	switch {
	case to > from:
		return ScaleOut
	case to < from:
		return ScaleIn
	}
	return Hold
}

// combine picks one recommendation the safe way: any scale-out beats hold, hold beats scale-in;
// the largest scale-out wins; if every check wants to scale in, the least shrinking wins. Ties
// go to the check listed first, so the winner does not depend on anything but the spec.
func combine(results []CheckResult, current int) (action Action, recommended int, winner int) {
	winner = -1
	for _, want := range []Action{ScaleOut, Hold, ScaleIn} {
		for i, r := range results {
			if r.Action == want && (winner < 0 || r.Recommended > results[winner].Recommended) {
				winner = i
			}
		}
		if winner >= 0 {
			if want == Hold {
				// Every hold recommends current; the first holder is the one to name.
				return Hold, current, winner
			}
			return want, results[winner].Recommended, winner
		}
	}
	return Hold, current, -1
}
