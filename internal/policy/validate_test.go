package policy

import (
	"strings"
	"testing"
	"time"
)

func validSpec() Spec {
	return Spec{
		Min: 1, Max: 10, Increment: 2,
		ScaleOutCooldown: time.Minute, ScaleInCooldown: 5 * time.Minute, ScaleInStabilization: 5 * time.Minute,
		ScaleOutRate: RateLimit{Count: 4, Period: 10 * time.Minute},
		ScaleInRate:  RateLimit{Percent: 20, Period: 10 * time.Minute},
		Checks: []Check{
			{Name: "cpu", Metric: MetricCPU, Window: 5 * time.Minute, Strategy: Strategy{Type: StrategyTarget, Target: 50, Tolerance: 0.15}},
			{Name: "memory", Metric: MetricMemory, Window: 5 * time.Minute, OnError: OnErrorFail, Strategy: Strategy{Type: StrategyTarget, Target: 70}},
			{Name: "queue", Metric: MetricQuery, OnError: OnErrorFallback, Fallback: 3, Staleness: 2 * time.Minute,
				Strategy: Strategy{Type: StrategyThreshold, Upper: 100, Lower: 10, StepPercent: 25}},
			{Name: "base", Strategy: Strategy{Type: StrategyFixed, Size: 2}},
		},
		Schedules: []Schedule{
			{Name: "business", Cron: "0 9 * * 1-5", TimeZone: "Europe/Berlin", Duration: 8 * time.Hour, Min: ptr(4), Desired: ptr(6)},
			{Name: "nightly", Cron: "@daily", Duration: time.Hour, Max: ptr(2)},
			{Name: "leap", Cron: "0 0 29 2 *", TimeZone: "America/New_York", Duration: 24 * time.Hour, Max: ptr(20)},
		},
	}
}

func TestValidateAcceptsAFullSpec(t *testing.T) {
	if err := validSpec().Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if err := (Spec{}).Validate(); err != nil {
		t.Fatalf("zero spec (a group fixed at 0 with no checks): %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Spec)
		want []string
	}{
		{"negative min", func(s *Spec) { s.Min = -1 }, []string{"min -1 is negative"}},
		{"max below min", func(s *Spec) { s.Max = 0 }, []string{"max 0 is below min 1"}},
		{"negative increment", func(s *Spec) { s.Increment = -1 }, []string{"increment -1 is negative"}},
		{"negative cooldown", func(s *Spec) { s.ScaleInCooldown = -time.Second }, []string{"scaleInCooldown -1s is negative"}},
		{"negative stabilization", func(s *Spec) { s.ScaleInStabilization = -time.Second }, []string{"scaleInStabilization -1s is negative"}},
		{"rate count and percent", func(s *Spec) { s.ScaleOutRate.Percent = 10 }, []string{"scaleOutRate: set count or percent, not both"}},
		{"rate without period", func(s *Spec) { s.ScaleInRate.Period = 0 }, []string{"scaleInRate: period is required"}},
		{"rate period alone", func(s *Spec) { s.ScaleInRate = RateLimit{Period: time.Minute} }, []string{"scaleInRate: period 1m0s without a count or percent"}},
		{"rate negative count", func(s *Spec) { s.ScaleOutRate.Count = -1 }, []string{"scaleOutRate: count -1 is negative"}},
		{"rate negative percent", func(s *Spec) { s.ScaleInRate.Percent = -5 }, []string{"scaleInRate: percent -5"}},
		{"duplicate check", func(s *Spec) { s.Checks[1].Name = "cpu" }, []string{`check "cpu": name is used twice`}},
		{"empty check name", func(s *Spec) { s.Checks[1].Name = "" }, []string{"check #2: name is empty"}},
		{"unknown metric", func(s *Spec) { s.Checks[0].Metric = "disk" }, []string{`check "cpu": metric "disk" is not cpu, memory or query`}},
		{"missing metric", func(s *Spec) { s.Checks[0].Metric = "" }, []string{`check "cpu": metric is required`}},
		{"unknown onError", func(s *Spec) { s.Checks[0].OnError = "ignore" }, []string{`check "cpu": onError "ignore" is not hold, fail or fallback`}},
		{"fallback without onError fallback", func(s *Spec) { s.Checks[0].Fallback = 3 }, []string{`check "cpu": fallback 3 is set but onError is not fallback`}},
		{"negative fallback", func(s *Spec) { s.Checks[2].Fallback = -1 }, []string{`check "queue": fallback -1 is negative`}},
		{"negative staleness", func(s *Spec) { s.Checks[2].Staleness = -time.Second }, []string{`check "queue": staleness -1s is negative`}},
		{"negative window", func(s *Spec) { s.Checks[0].Window = -time.Second }, []string{`check "cpu": window -1s is negative`}},
		{"missing strategy", func(s *Spec) { s.Checks[0].Strategy = Strategy{} }, []string{`check "cpu": strategy type is required`}},
		{"unknown strategy", func(s *Spec) { s.Checks[0].Strategy.Type = "pid" }, []string{`check "cpu": strategy type "pid" is not`}},
		{"zero target", func(s *Spec) { s.Checks[0].Strategy.Target = 0 }, []string{`check "cpu": target 0 must be above 0`}},
		{"cpu target above 100", func(s *Spec) { s.Checks[0].Strategy.Target = 150 }, []string{`check "cpu": target 150% is above 100%`}},
		{"tolerance of 1", func(s *Spec) { s.Checks[0].Strategy.Tolerance = 1 }, []string{`check "cpu": tolerance 1 must be in [0, 1)`}},
		{"threshold fields on target", func(s *Spec) { s.Checks[0].Strategy.Upper = 80 }, []string{`check "cpu": upper, lower, step and size do not apply to a target strategy`}},
		{"upper not above lower", func(s *Spec) { s.Checks[2].Strategy.Upper = 10 }, []string{`check "queue": upper 10 must be above lower 10`}},
		{"no step", func(s *Spec) { s.Checks[2].Strategy.StepPercent = 0 }, []string{`check "queue": stepCount or stepPercent is required`}},
		{"both steps", func(s *Spec) { s.Checks[2].Strategy.StepCount = 1 }, []string{`check "queue": set stepCount or stepPercent, not both`}},
		{"target on threshold", func(s *Spec) { s.Checks[2].Strategy.Target = 1 }, []string{`check "queue": target, tolerance and size do not apply`}},
		{"negative size", func(s *Spec) { s.Checks[3].Strategy.Size = -1 }, []string{`check "base": size -1 is negative`}},
		{"onError on fixed", func(s *Spec) { s.Checks[3].OnError = OnErrorFail }, []string{`check "base": onError fail has no effect`}},
		{"bad cron", func(s *Spec) { s.Schedules[0].Cron = "0 25 * * *" }, []string{`schedule "business": parse cron "0 25 * * *"`}},
		{"cron that never fires", func(s *Spec) { s.Schedules[0].Cron = "0 0 30 2 *" }, []string{`schedule "business": cron "0 0 30 2 *" never fires`}},
		{"TZ prefix", func(s *Spec) { s.Schedules[0].Cron = "TZ=0" }, []string{`schedule "business": cron must not carry a TZ= prefix`}},
		{"CRON_TZ prefix", func(s *Spec) { s.Schedules[0].Cron = "CRON_TZ=Europe/Paris 0 9 * * *" }, []string{"TZ= prefix"}},
		{"@every", func(s *Spec) { s.Schedules[1].Cron = "@every 1h" }, []string{`schedule "nightly": @every is not anchored`}},
		{"unknown zone", func(s *Spec) { s.Schedules[0].TimeZone = "Mars/Olympus" }, []string{`schedule "business": load time zone "Mars/Olympus"`}},
		{"Local zone", func(s *Spec) { s.Schedules[0].TimeZone = "Local" }, []string{`schedule "business": time zone "Local" depends on the host`}},
		{"zero duration", func(s *Spec) { s.Schedules[0].Duration = 0 }, []string{`schedule "business": duration 0s must be above 0`}},
		{"schedule min above max", func(s *Spec) { s.Schedules[0].Min = ptr(12) }, []string{`schedule "business": max 10 is below min 12 while active`}},
		{"schedule max below spec min", func(s *Spec) { s.Schedules[1].Max = ptr(0) }, []string{`schedule "nightly": max 0 is below min 1 while active`}},
		{"desired outside bounds", func(s *Spec) { s.Schedules[0].Desired = ptr(11) }, []string{`schedule "business": desired 11 is outside [4, 10]`}},
		{"negative desired", func(s *Spec) { s.Schedules[0].Desired = ptr(-1) }, []string{`schedule "business": desired -1 is negative`}},
		{"schedule sets nothing", func(s *Spec) { s.Schedules[1].Max = nil }, []string{`schedule "nightly": sets none of min, max and desired`}},
		{"duplicate schedule", func(s *Spec) { s.Schedules[1].Name = "business" }, []string{`schedule "business": name is used twice`}},
		{"empty schedule name", func(s *Spec) { s.Schedules[2].Name = "" }, []string{"schedule #3: name is empty"}},
		{"every problem at once", func(s *Spec) { s.Min = -1; s.Checks[0].Strategy.Target = 0; s.Schedules[0].Cron = "x" },
			[]string{"min -1 is negative", `check "cpu": target 0`, `schedule "business": parse cron "x"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			tt.mod(&s)
			err := s.Validate()
			if err == nil {
				t.Fatalf("Validate accepted the spec, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
