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

// evaluateCheck turns one check and its reading into an opinion: the rules on data (missing,
// stale, failed, partial) are here, what a usable value means is the check's strategy's.
// failed reports that an onError: fail check had no usable data.
func evaluateCheck(c Check, r Reading, ok bool, now time.Time, current int) (res CheckResult, failed bool) {
	res = CheckResult{Name: c.Name, Value: r.Value, Action: Hold, Recommended: current}
	s := c.Strategy.Get()
	if s != nil && !s.ReadsData() {
		// It needs no measurement, so missing data cannot make it hold.
		res.HasData = ok && r.HasData && r.Err == ""
		res.Recommended, res.Reason = s.Recommend(c, r.Value, current)
		res.Action = actionOf(current, res.Recommended)
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
	if s == nil {
		// Validate rejects a check without a strategy; holding is the safe reading of one.
		res.Reason = fmt.Sprintf("%s has no strategy → hold %d", c.Name, current)
		return res, false
	}
	res.Recommended, res.Reason = s.Recommend(c, r.Value, current)
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

// isPercent says whether a metric is a utilisation percentage.
func isPercent(metric string) bool { return metric == MetricCPU || metric == MetricMemory }

func formatValue(metric string, v float64) string {
	if isPercent(metric) {
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
