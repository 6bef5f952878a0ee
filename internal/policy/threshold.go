package policy

import (
	"fmt"
	"math"
)

// Threshold adds a step while the value is above Upper and removes one while it is below
// Lower. The step is Step instances or ceil(current × StepPercent / 100), at least 1; one of
// the two is set.
type Threshold struct {
	Upper, Lower float64
	Step         int
	StepPercent  float64
}

func (Threshold) Kind() string    { return StrategyThreshold }
func (Threshold) ReadsData() bool { return true }

func (t Threshold) Validate(Check) FieldErrors {
	var errs FieldErrors
	finite := true
	for _, b := range []struct {
		key string
		v   float64
	}{{"upper", t.Upper}, {"lower", t.Lower}} {
		if math.IsNaN(b.v) || math.IsInf(b.v, 0) {
			errs.add(b.key, "must be a number, got %v", b.v)
			finite = false
		}
	}
	if finite && t.Upper <= t.Lower {
		errs.relation("", []string{"upper", "lower"}, "upper (%v) must be greater than lower (%v)", t.Upper, t.Lower)
	}
	stepOK, percentOK := true, true
	if t.Step < 0 {
		errs.add("step", "must be at least 1, got %d", t.Step)
		stepOK = false
	}
	if t.StepPercent < 0 || math.IsNaN(t.StepPercent) || math.IsInf(t.StepPercent, 0) {
		errs.add("stepPercent", "must be greater than 0, got %v", t.StepPercent)
		percentOK = false
	}
	switch {
	case !stepOK || !percentOK:
	case t.Step > 0 && t.StepPercent > 0:
		errs.relation("", []string{"step", "stepPercent"}, "set step or stepPercent, not both")
	case t.Step == 0 && t.StepPercent == 0:
		errs.relation("", []string{"step", "stepPercent"}, "set step (instances) or stepPercent (of the current size)")
	}
	return errs
}

func (t Threshold) Recommend(c Check, value float64, current int) (int, string) {
	step := t.Step
	if step <= 0 {
		step = max(ceilInt(float64(current)*t.StepPercent/100), 1)
	}
	v := formatValue(c.Metric, value)
	switch {
	case value > t.Upper:
		size := current + step
		return size, fmt.Sprintf("%s %s > upper %s → +%d = %d", c.Name, v, formatValue(c.Metric, t.Upper), step, size)
	case value < t.Lower:
		size := max(current-step, 0)
		return size, fmt.Sprintf("%s %s < lower %s → −%d = %d", c.Name, v, formatValue(c.Metric, t.Lower), step, size)
	}
	return current, fmt.Sprintf("%s %s within [%s, %s] → hold %d", c.Name, v,
		formatValue(c.Metric, t.Lower), formatValue(c.Metric, t.Upper), current)
}
