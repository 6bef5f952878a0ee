package config

import (
	"fmt"
	"time"

	"github.com/premiscale/premiscale/internal/policy"
)

// PolicySpec is the group's scaling policy as the engine reads it: the one place that turns
// config types into a policy.Spec. resourceTarget's cpu and memory become target checks named
// "cpu" and "memory" (first, in that order), followed by the configured checks; each check
// records the key it was written at, so the engine's validation speaks of that key. A check
// without a window (a group file read without its configuration) gets reconcileInterval, as
// the resourceTarget checks always do.
func (g Group) PolicySpec(reconcileInterval time.Duration) policy.Spec {
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
	for _, t := range []struct {
		metric string
		value  float64
	}{{policy.MetricCPU, s.ResourceTarget.CPU}, {policy.MetricMemory, s.ResourceTarget.Memory}} {
		if t.value == 0 {
			continue
		}
		spec.Checks = append(spec.Checks, policy.Check{
			Name: t.metric, Key: "resourceTarget." + t.metric, Metric: t.metric, Window: reconcileInterval,
			OnError:  policy.OnErrorHold,
			Strategy: policy.StrategySpec{Target: &policy.Target{Value: t.value, Tolerance: DefaultTolerance}},
		})
	}
	for i, c := range s.Checks {
		pc := policy.Check{
			Name: c.Name, Key: fmt.Sprintf("checks[%d]", i), Metric: c.Metric, Query: c.Query,
			Window: c.Window.Duration, OnError: c.OnError, Fallback: c.Fallback, Staleness: c.Staleness.Duration,
			Strategy: c.strategy(),
		}
		if pc.Window == 0 {
			pc.Window = reconcileInterval
		}
		spec.Checks = append(spec.Checks, pc)
	}
	for _, sc := range s.Schedules {
		spec.Schedules = append(spec.Schedules, policy.Schedule{
			Name: sc.Name, Cron: sc.Cron, TimeZone: sc.TimeZone, Duration: sc.Duration.Duration,
			Min: copyInt(sc.MinNodes), Max: copyInt(sc.MaxNodes), Desired: copyInt(sc.Desired),
		})
	}
	return spec
}

func (rl RateLimit) policy() policy.RateLimit {
	return policy.RateLimit{Count: rl.Count, Percent: rl.Percent, Period: rl.Period.Duration}
}

// strategy is the check's strategy block as the engine stores it. Every block written is
// carried over, so the engine's validation sees a check with two.
func (c Check) strategy() policy.StrategySpec {
	var s policy.StrategySpec
	if t := c.Target; t != nil {
		s.Target = &policy.Target{Value: t.Value, Tolerance: t.Tolerance}
	}
	if t := c.Threshold; t != nil {
		s.Threshold = &policy.Threshold{Upper: t.Upper, Lower: t.Lower, Step: t.Step, StepPercent: t.StepPercent}
	}
	if f := c.Fixed; f != nil {
		s.Fixed = &policy.Fixed{Size: f.Size}
	}
	return s
}

func copyInt(p *int) *int {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
