package policy

import (
	"fmt"
	"math"
)

// Target tracks a value: desired = ceil(current × value / Value), holding while
// |value/Value − 1| ≤ Tolerance. Being proportional to current, it cannot grow a group from
// 0: Min, a schedule's Desired or a fixed check does that.
type Target struct {
	Value float64
	// Tolerance is a fraction of Value; 0 means DefaultTolerance.
	Tolerance float64
}

func (Target) Kind() string    { return StrategyTarget }
func (Target) ReadsData() bool { return true }

func (t Target) Validate(c Check) FieldErrors {
	var errs FieldErrors
	switch {
	case isPercent(c.Metric) && !(t.Value > 0 && t.Value <= 100):
		errs.add("value", "must be a percentage in (0,100] for metric %s, got %v", c.Metric, t.Value)
	case !(t.Value > 0) || math.IsInf(t.Value, 0):
		errs.add("value", "must be greater than 0, got %v", t.Value)
	}
	if !(t.Tolerance >= 0 && t.Tolerance < 1) {
		errs.add("tolerance", "must be greater than 0 and less than 1 (a fraction of value), got %v", t.Tolerance)
	}
	return errs
}

func (t Target) Recommend(c Check, value float64, current int) (int, string) {
	tolerance := t.Tolerance
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	v, target := formatValue(c.Metric, value), formatValue(c.Metric, t.Value)
	if math.Abs(value/t.Value-1) <= tolerance+epsilon {
		return current, fmt.Sprintf("%s %s within %g%% of target %s → hold %d", c.Name, v, tolerance*100, target, current)
	}
	// current × value / target rather than current × (value/target): fewer roundings.
	size := ceilInt(float64(current) * value / t.Value)
	rel := ">"
	if value < t.Value {
		rel = "<"
	}
	return size, fmt.Sprintf("%s %s %s target %s → %d", c.Name, v, rel, target, size)
}
