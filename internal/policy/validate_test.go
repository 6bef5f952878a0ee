package policy

import (
	"math"
	"reflect"
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
			{Name: "cpu", Key: "resourceTarget.cpu", Metric: MetricCPU, Window: 5 * time.Minute,
				Strategy: StrategySpec{Target: &Target{Value: 50, Tolerance: 0.15}}},
			{Name: "memory", Key: "checks[0]", Metric: MetricMemory, Window: 5 * time.Minute, OnError: OnErrorFail,
				Strategy: StrategySpec{Target: &Target{Value: 70}}},
			{Name: "queue", Key: "checks[1]", Metric: MetricQuery, Query: "q", OnError: OnErrorFallback, Fallback: 3,
				Staleness: 2 * time.Minute, Strategy: StrategySpec{Threshold: &Threshold{Upper: 100, Lower: 10, StepPercent: 25}}},
			{Name: "base", Key: "checks[2]", Strategy: StrategySpec{Fixed: &Fixed{Size: 2}}},
		},
		Schedules: []Schedule{
			{Name: "business", Cron: "0 9 * * 1-5", TimeZone: "Europe/Berlin", Duration: 8 * time.Hour, Min: ptr(4), Desired: ptr(6)},
			{Name: "nightly", Cron: "@daily", Duration: time.Hour, Max: ptr(2)},
			{Name: "leap", Cron: "0 0 29 2 *", TimeZone: "America/New_York", Duration: 24 * time.Hour, Max: ptr(20)},
		},
	}
}

func TestValidateAcceptsAFullSpec(t *testing.T) {
	if errs := validSpec().Validate(); errs != nil {
		t.Fatalf("Validate: %v", errs)
	}
	if err := validSpec().Validate().Err(); err != nil {
		t.Fatalf("Err() of no problems = %v, want nil", err)
	}
	// A check without a key is reported at its index.
	s := validSpec()
	for i := range s.Checks {
		s.Checks[i].Key = ""
	}
	if errs := s.Validate(); errs != nil {
		t.Fatalf("Validate without keys: %v", errs)
	}
}

// fe is a problem without Involves; rel one with.
func fe(path, detail string) FieldError { return FieldError{Path: path, Detail: detail} }
func rel(path string, involves []string, detail string) FieldError {
	return FieldError{Path: path, Detail: detail, Involves: involves}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Spec)
		opts []ValidateOption
		want FieldErrors
	}{
		// The group's bounds and pace.
		{name: "negative min", mod: func(s *Spec) { s.Min = -1 },
			want: FieldErrors{fe("minNodes", "must not be negative, got -1")}},
		{name: "max of 0", mod: func(s *Spec) { s.Min = 0; s.Max = 0 },
			want: FieldErrors{fe("maxNodes", "must be at least 1, got 0")}},
		{name: "min above max", mod: func(s *Spec) { s.Min = 12 },
			want: FieldErrors{
				rel("", []string{"minNodes", "maxNodes"}, "minNodes (12) is greater than maxNodes (10)"),
				// The business schedule keeps the group's max of 10 while its min is 4.
				rel("schedules[1]", []string{"minNodes", "schedules[1].maxNodes"}, "minNodes (12) is greater than maxNodes (2) while the schedule is active"),
			}},
		{name: "a bad min is not also compared with max", mod: func(s *Spec) { s.Min = -1; s.Max = 0 },
			want: FieldErrors{fe("minNodes", "must not be negative, got -1"), fe("maxNodes", "must be at least 1, got 0")}},
		{name: "max above the static addresses", mod: func(s *Spec) { s.Schedules = s.Schedules[:2] }, opts: []ValidateOption{StaticAddresses(8)},
			want: FieldErrors{fe("maxNodes", "maxNodes (10) is larger than the 8 static addresses in networking.addresses")}},
		{name: "schedule max above the static addresses", mod: func(s *Spec) { s.Max = 6 }, opts: []ValidateOption{StaticAddresses(6)},
			want: FieldErrors{fe("schedules[2].maxNodes", "maxNodes (20) is larger than the 6 static addresses in networking.addresses")}},
		{name: "negative increment", mod: func(s *Spec) { s.Increment = -1 },
			want: FieldErrors{fe("increment", "must be at least 1, got -1")}},
		{name: "increment 0 is no cap", mod: func(s *Spec) { s.Increment = 0 }},
		{name: "negative durations", mod: func(s *Spec) {
			s.ScaleOutCooldown, s.ScaleInCooldown, s.ScaleInStabilization = -time.Second, -2*time.Second, -time.Minute
		}, want: FieldErrors{
			fe("scaleOut.cooldown", "must not be negative, got -1s"),
			fe("scaleIn.cooldown", "must not be negative, got -2s"),
			fe("scaleIn.stabilizationWindow", "must not be negative, got -1m0s"),
		}},
		{name: "nothing sizes the group", mod: func(s *Spec) { s.Checks, s.Schedules = nil, nil },
			want: FieldErrors{rel("", []string{"resourceTarget", "checks", "schedules"},
				"nothing sizes the group: set at least one of resourceTarget, checks or schedules")}},

		// Rate limits.
		{name: "rate count and percent", mod: func(s *Spec) { s.ScaleOutRate.Percent = 10 },
			want: FieldErrors{rel("scaleOut.rateLimit", []string{"scaleOut.rateLimit.count", "scaleOut.rateLimit.percent"}, "set count or percent, not both")}},
		{name: "rate without period", mod: func(s *Spec) { s.ScaleInRate.Period = 0 },
			want: FieldErrors{fe("scaleIn.rateLimit.period", "must be greater than 0 with a count or percent (the span the limit applies to, e.g. 5m), got 0s")}},
		{name: "rate period alone", mod: func(s *Spec) { s.ScaleInRate = RateLimit{Period: time.Minute} },
			want: FieldErrors{rel("scaleIn.rateLimit", []string{"scaleIn.rateLimit.count", "scaleIn.rateLimit.percent"}, "set count (instances) or percent (of the current size), with period")}},
		{name: "rate negative count and period", mod: func(s *Spec) { s.ScaleOutRate = RateLimit{Count: -1, Period: -time.Minute} },
			want: FieldErrors{fe("scaleOut.rateLimit.count", "must be at least 1, got -1"), fe("scaleOut.rateLimit.period", "must not be negative, got -1m0s")}},
		{name: "rate negative percent", mod: func(s *Spec) { s.ScaleInRate.Percent = -5 },
			want: FieldErrors{fe("scaleIn.rateLimit.percent", "must be greater than 0, got -5")}},
		{name: "scale-in rate above 100%", mod: func(s *Spec) { s.ScaleInRate.Percent = 150 },
			want: FieldErrors{fe("scaleIn.rateLimit.percent", "must be at most 100 (a percentage of the current size), got 150")}},
		{name: "scale-out rate above 100% grows fast", mod: func(s *Spec) { s.ScaleOutRate = RateLimit{Percent: 200, Period: time.Minute} }},

		// Checks: fields every check has.
		{name: "duplicate check", mod: func(s *Spec) { s.Checks[2].Name = "memory" },
			want: FieldErrors{fe("checks[1].name", `duplicate check name "memory" (also checks[0])`)}},
		{name: "name taken by a shorthand", mod: func(s *Spec) { s.Checks[1].Name = "cpu" },
			want: FieldErrors{fe("checks[0].name", `check name "cpu" is taken by the resourceTarget.cpu shorthand: rename the check or drop resourceTarget.cpu`)}},
		{name: "empty check name", mod: func(s *Spec) { s.Checks[1].Name = "" },
			want: FieldErrors{fe("checks[0].name", "is required (a name unique among the group's checks)")}},
		{name: "a check without a key is reported at its index", mod: func(s *Spec) { s.Checks[3].Key = ""; s.Checks[3].Strategy.Fixed.Size = -1 },
			want: FieldErrors{fe("checks[3].fixed.size", "must not be negative, got -1")}},
		{name: "unknown metric", mod: func(s *Spec) { s.Checks[1].Metric = "disk" },
			want: FieldErrors{fe("checks[0].metric", `unsupported metric "disk" (allowed: cpu, memory, query)`)}},
		{name: "missing metric", mod: func(s *Spec) { s.Checks[1].Metric = "" },
			want: FieldErrors{fe("checks[0].metric", "is required (cpu, memory or query)")}},
		{name: "query with a built-in metric", mod: func(s *Spec) { s.Checks[1].Query = "q" },
			want: FieldErrors{fe("checks[0].query", "is used only with metric: query, not memory")}},
		{name: "query without a metric", mod: func(s *Spec) { s.Checks[3].Query = "q" },
			want: FieldErrors{fe("checks[2].query", "is used only with metric: query")}},
		{name: "query check without a query", mod: func(s *Spec) { s.Checks[2].Query = "" },
			want: FieldErrors{fe("checks[1].query", "is required (a Flux query returning one number)")}},
		{name: "negative window and staleness", mod: func(s *Spec) { s.Checks[2].Window, s.Checks[2].Staleness = -time.Second, -time.Minute },
			want: FieldErrors{fe("checks[1].window", "must not be negative, got -1s"), fe("checks[1].staleness", "must not be negative, got -1m0s")}},
		{name: "unknown onError", mod: func(s *Spec) { s.Checks[1].OnError = "ignore" },
			want: FieldErrors{fe("checks[0].onError", `unsupported onError "ignore" (allowed: hold, fail, fallback)`)}},
		{name: "fallback without onError fallback", mod: func(s *Spec) { s.Checks[1].Fallback = 3 },
			want: FieldErrors{fe("checks[0].fallback", "is used only with onError: fallback")}},
		{name: "negative fallback", mod: func(s *Spec) { s.Checks[2].Fallback = -1 },
			want: FieldErrors{fe("checks[1].fallback", "must not be negative, got -1")}},
		{name: "onError on a check that reads no data", mod: func(s *Spec) { s.Checks[3].OnError = OnErrorFail },
			want: FieldErrors{fe("checks[2].onError", "fail has no effect on a fixed check: it reads no data")}},
		{name: "missing strategy", mod: func(s *Spec) { s.Checks[1].Strategy = StrategySpec{} },
			want: FieldErrors{rel("checks[0]", []string{"checks[0].target", "checks[0].threshold", "checks[0].fixed"},
				"one of target, threshold or fixed is required (how the metric becomes a size)")}},
		{name: "two strategies", mod: func(s *Spec) { s.Checks[1].Strategy.Fixed = &Fixed{Size: 1} },
			want: FieldErrors{fe("checks[0]", "set exactly one of target, threshold or fixed, got target and fixed")}},

		// Strategies, at the key of their block.
		{name: "zero target", mod: func(s *Spec) { s.Checks[2].Strategy = StrategySpec{Target: &Target{}} },
			want: FieldErrors{fe("checks[1].target.value", "must be greater than 0, got 0")}},
		{name: "infinite target", mod: func(s *Spec) { s.Checks[2].Strategy = StrategySpec{Target: &Target{Value: math.Inf(1)}} },
			want: FieldErrors{fe("checks[1].target.value", "must be greater than 0, got +Inf")}},
		{name: "percent target above 100", mod: func(s *Spec) { s.Checks[1].Strategy.Target.Value = 150 },
			want: FieldErrors{fe("checks[0].target.value", "must be a percentage in (0,100] for metric memory, got 150")}},
		{name: "tolerance of 1", mod: func(s *Spec) { s.Checks[1].Strategy.Target.Tolerance = 1 },
			want: FieldErrors{fe("checks[0].target.tolerance", "must be greater than 0 and less than 1 (a fraction of value), got 1")}},
		{name: "a shorthand's problems are at its key", mod: func(s *Spec) { s.Checks[0].Strategy.Target = &Target{Value: -5, Tolerance: 2} },
			want: FieldErrors{
				fe("resourceTarget.cpu", "must be a percentage in (0,100] for metric cpu, got -5"),
				fe("resourceTarget.cpu", "must be greater than 0 and less than 1 (a fraction of value), got 2"),
			}},
		{name: "upper not above lower", mod: func(s *Spec) { s.Checks[2].Strategy.Threshold.Upper = 10 },
			want: FieldErrors{rel("checks[1].threshold", []string{"checks[1].threshold.upper", "checks[1].threshold.lower"}, "upper (10) must be greater than lower (10)")}},
		{name: "upper not a number", mod: func(s *Spec) { s.Checks[2].Strategy.Threshold.Upper = nan() },
			want: FieldErrors{fe("checks[1].threshold.upper", "must be a number, got NaN")}},
		{name: "no step", mod: func(s *Spec) { s.Checks[2].Strategy.Threshold.StepPercent = 0 },
			want: FieldErrors{rel("checks[1].threshold", []string{"checks[1].threshold.step", "checks[1].threshold.stepPercent"},
				"set step (instances) or stepPercent (of the current size)")}},
		{name: "both steps", mod: func(s *Spec) { s.Checks[2].Strategy.Threshold.Step = 1 },
			want: FieldErrors{rel("checks[1].threshold", []string{"checks[1].threshold.step", "checks[1].threshold.stepPercent"}, "set step or stepPercent, not both")}},
		{name: "negative steps", mod: func(s *Spec) {
			s.Checks[2].Strategy.Threshold.Step = -1
			s.Checks[2].Strategy.Threshold.StepPercent = -5
		},
			want: FieldErrors{fe("checks[1].threshold.step", "must be at least 1, got -1"), fe("checks[1].threshold.stepPercent", "must be greater than 0, got -5")}},
		{name: "negative size", mod: func(s *Spec) { s.Checks[3].Strategy.Fixed.Size = -1 },
			want: FieldErrors{fe("checks[2].fixed.size", "must not be negative, got -1")}},

		// Schedules.
		{name: "bad cron", mod: func(s *Spec) { s.Schedules[0].Cron = "0 25 * * *" },
			want: FieldErrors{fe("schedules[0].cron", `parse cron "0 25 * * *": end of range (25) above maximum (23): 25`)}},
		{name: "cron that never fires", mod: func(s *Spec) { s.Schedules[0].Cron = "0 0 30 2 *" },
			want: FieldErrors{fe("schedules[0].cron", `cron "0 0 30 2 *" never fires`)}},
		{name: "TZ prefix", mod: func(s *Spec) { s.Schedules[0].Cron = "TZ=0" },
			want: FieldErrors{fe("schedules[0].cron", "cron must not carry a TZ= prefix: set timeZone instead")}},
		{name: "CRON_TZ prefix", mod: func(s *Spec) { s.Schedules[0].Cron = "CRON_TZ=Europe/Paris 0 9 * * *" },
			want: FieldErrors{fe("schedules[0].cron", "cron must not carry a TZ= prefix: set timeZone instead")}},
		{name: "@every", mod: func(s *Spec) { s.Schedules[1].Cron = "@every 1h" },
			want: FieldErrors{fe("schedules[1].cron", "@every is not anchored to the clock: use a cron expression")}},
		{name: "empty cron", mod: func(s *Spec) { s.Schedules[1].Cron = "" },
			want: FieldErrors{fe("schedules[1].cron", `is required (when the schedule starts, e.g. "0 9 * * 1-5")`)}},
		{name: "unknown zone", mod: func(s *Spec) { s.Schedules[0].TimeZone = "Mars/Olympus" },
			want: FieldErrors{fe("schedules[0].timeZone", `load time zone "Mars/Olympus": unknown time zone Mars/Olympus`)}},
		{name: "Local zone", mod: func(s *Spec) { s.Schedules[0].TimeZone = "Local" },
			want: FieldErrors{fe("schedules[0].timeZone", `time zone "Local" depends on the host: name the zone`)}},
		{name: "zero duration", mod: func(s *Spec) { s.Schedules[0].Duration = 0 },
			want: FieldErrors{fe("schedules[0].duration", "must be greater than 0, got 0s")}},
		{name: "schedule min above max", mod: func(s *Spec) { s.Schedules[0].Min = ptr(12) },
			want: FieldErrors{rel("schedules[0]", []string{"schedules[0].minNodes", "maxNodes"}, "minNodes (12) is greater than maxNodes (10) while the schedule is active")}},
		{name: "schedule max below the group's min", mod: func(s *Spec) { s.Schedules[1].Max = ptr(0) },
			want: FieldErrors{rel("schedules[1]", []string{"minNodes", "schedules[1].maxNodes"}, "minNodes (1) is greater than maxNodes (0) while the schedule is active")}},
		{name: "desired outside bounds", mod: func(s *Spec) { s.Schedules[0].Desired = ptr(11) },
			want: FieldErrors{rel("schedules[0].desired", []string{"schedules[0].minNodes", "maxNodes"}, "desired (11) must be within minNodes and maxNodes [4, 10] while the schedule is active")}},
		{name: "negative schedule sizes", mod: func(s *Spec) {
			s.Schedules[0].Min, s.Schedules[0].Max, s.Schedules[0].Desired = ptr(-1), ptr(-2), ptr(-3)
		},
			want: FieldErrors{
				fe("schedules[0].minNodes", "must not be negative, got -1"),
				fe("schedules[0].maxNodes", "must not be negative, got -2"),
				fe("schedules[0].desired", "must not be negative, got -3"),
			}},
		{name: "schedule sets nothing", mod: func(s *Spec) { s.Schedules[1].Max = nil },
			want: FieldErrors{rel("schedules[1]", []string{"schedules[1].minNodes", "schedules[1].maxNodes", "schedules[1].desired"}, "set at least one of minNodes, maxNodes or desired")}},
		{name: "duplicate schedule", mod: func(s *Spec) { s.Schedules[1].Name = "business" },
			want: FieldErrors{fe("schedules[1].name", `duplicate schedule name "business" (also schedules[0])`)}},
		{name: "empty schedule name", mod: func(s *Spec) { s.Schedules[2].Name = "" },
			want: FieldErrors{fe("schedules[2].name", "is required (a name unique among the group's schedules)")}},

		{name: "every problem at once, in the order of the fields",
			mod: func(s *Spec) { s.Min = -1; s.Checks[1].Strategy.Target.Value = 0; s.Schedules[0].Cron = "x" },
			want: FieldErrors{
				fe("minNodes", "must not be negative, got -1"),
				fe("checks[0].target.value", "must be a percentage in (0,100] for metric memory, got 0"),
				fe("schedules[0].cron", `parse cron "x": expected exactly 5 fields, found 1: [x]`),
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			tt.mod(&s)
			got := s.Validate(tt.opts...)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got:\n%s\nwant:\n%s", dump(got), dump(tt.want))
			}
			if len(tt.want) > 0 && got.Err() == nil {
				t.Error("Err() is nil for a spec with problems")
			}
		})
	}
}

func dump(es FieldErrors) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString(e.Error())
		if len(e.Involves) > 0 {
			b.WriteString("  (involves " + strings.Join(e.Involves, ", ") + ")")
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func TestFieldErrorsError(t *testing.T) {
	es := FieldErrors{fe("", "nothing sizes the group"), fe("maxNodes", "must be at least 1, got 0")}
	if got, want := es.Error(), "nothing sizes the group\nmaxNodes: must be at least 1, got 0"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
