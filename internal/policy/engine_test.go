package policy

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// t0 is a Friday; 12:00 UTC is 13:00 in Berlin (CET, UTC+1).
var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func target(name, metric string, value float64) Check {
	return Check{Name: name, Metric: metric, Strategy: StrategySpec{Target: &Target{Value: value}}}
}

func baseSpec(mods ...func(*Spec)) Spec {
	s := Spec{Min: 1, Max: 10, Checks: []Check{target("cpu", MetricCPU, 50)}}
	for _, m := range mods {
		m(&s)
	}
	return s
}

func withChecks(cs ...Check) func(*Spec) { return func(s *Spec) { s.Checks = cs } }

func read(v float64) Reading { return Reading{Value: v, HasData: true, Newest: t0} }

func cpuAt(cur int, v float64) Inputs {
	return Inputs{Now: t0, Current: cur, Readings: map[string]Reading{"cpu": read(v)}}
}

func inputs(cur int, rs map[string]Reading) Inputs {
	return Inputs{Now: t0, Current: cur, Readings: rs}
}

func ptr(i int) *int { return &i }

type evalCase struct {
	name   string
	spec   Spec
	st     State
	in     Inputs
	action Action
	to     int
	winner string // checked when not empty
	failed bool
	reason []string // substrings the reason must contain
}

func runCases(t *testing.T, cases []evalCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			ev, _ := Evaluate(tt.spec, tt.st, tt.in)
			if ev.Action != tt.action || ev.To != tt.to {
				t.Fatalf("Evaluate = %s to %d, want %s to %d\nreason: %s", ev.Action, ev.To, tt.action, tt.to, ev.Reason)
			}
			if ev.From != max(tt.in.Current, 0) {
				t.Errorf("From = %d, want %d", ev.From, max(tt.in.Current, 0))
			}
			if ev.Failed != tt.failed {
				t.Errorf("Failed = %v, want %v (reason: %s)", ev.Failed, tt.failed, ev.Reason)
			}
			if tt.winner != "" && ev.Winner != tt.winner {
				t.Errorf("Winner = %q, want %q (reason: %s)", ev.Winner, tt.winner, ev.Reason)
			}
			if len(ev.Checks) != len(tt.spec.Checks) {
				t.Errorf("%d check results for %d checks", len(ev.Checks), len(tt.spec.Checks))
			}
			for i, c := range ev.Checks {
				if c.Name != tt.spec.Checks[i].Name {
					t.Errorf("check result %d is %q, want %q (spec order)", i, c.Name, tt.spec.Checks[i].Name)
				}
			}
			for _, want := range tt.reason {
				if !strings.Contains(ev.Reason, want) {
					t.Errorf("reason %q does not contain %q", ev.Reason, want)
				}
			}
		})
	}
}

func TestEvaluateStrategies(t *testing.T) {
	queue := func(upper, lower float64, count int, percent float64) Check {
		return Check{Name: "queue", Metric: MetricQuery, Strategy: StrategySpec{Threshold: &Threshold{Upper: upper, Lower: lower, Step: count, StepPercent: percent}}}
	}
	q := func(cur int, v float64) Inputs { return inputs(cur, map[string]Reading{"queue": read(v)}) }
	runCases(t, []evalCase{
		{name: "target: double load doubles", spec: baseSpec(), in: cpuAt(2, 100), action: ScaleOut, to: 4, winner: "cpu",
			reason: []string{"cpu 100.0% > target 50.0% → 4 (winner)", "scale-out 2 → 4"}},
		{name: "target: within tolerance holds", spec: baseSpec(), in: cpuAt(4, 54), action: Hold, to: 4,
			reason: []string{"cpu 54.0% within 10% of target 50.0% → hold 4", "holding at 4"}},
		// |55/50 − 1| is 0.10000000000000009 in float64.
		{name: "target: exactly at tolerance holds despite float error", spec: baseSpec(func(s *Spec) { s.Max = 20 }), in: cpuAt(10, 55), action: Hold, to: 10},
		{name: "target: just outside tolerance rounds up", spec: baseSpec(func(s *Spec) { s.Max = 20 }), in: cpuAt(10, 56), action: ScaleOut, to: 12,
			reason: []string{"→ 12"}},
		{name: "target: above max is capped", spec: baseSpec(), in: cpuAt(8, 100), action: ScaleOut, to: 10, reason: []string{"16 capped at max 10", "scale-out 8 → 10"}},
		// 5 × (8.4/6) is 7.000000000000001 in float64; the engine must ask for 7, not 8.
		{name: "target: no float overshoot", spec: baseSpec(withChecks(target("load", MetricQuery, 6))),
			in: inputs(5, map[string]Reading{"load": read(8.4)}), action: ScaleOut, to: 7},
		{name: "target: low load shrinks, rounding up", spec: baseSpec(), in: cpuAt(10, 44), action: ScaleIn, to: 9,
			reason: []string{"cpu 44.0% < target 50.0% → 9", "scale-in 10 → 9"}},
		{name: "target: shrink stops at min", spec: baseSpec(func(s *Spec) { s.Min = 2 }), in: cpuAt(4, 5), action: ScaleIn, to: 2,
			reason: []string{"→ 1", "1 raised to min 2"}},
		{name: "target: custom tolerance", spec: baseSpec(func(s *Spec) { s.Checks[0].Strategy.Target.Tolerance = 0.3 }), in: cpuAt(4, 60), action: Hold, to: 4,
			reason: []string{"within 30% of target"}},
		{name: "target: query values print plainly", spec: baseSpec(withChecks(target("rps", MetricQuery, 1000))),
			in: inputs(2, map[string]Reading{"rps": read(3000)}), action: ScaleOut, to: 6, reason: []string{"rps 3000 > target 1000 → 6"}},
		{name: "threshold: above upper adds the step", spec: baseSpec(withChecks(queue(100, 10, 2, 0))), in: q(3, 150), action: ScaleOut, to: 5,
			reason: []string{"queue 150 > upper 100 → +2 = 5"}},
		{name: "threshold: below lower removes the step", spec: baseSpec(withChecks(queue(100, 10, 2, 0))), in: q(5, 5), action: ScaleIn, to: 3,
			reason: []string{"queue 5 < lower 10 → −2 = 3"}},
		{name: "threshold: between holds", spec: baseSpec(withChecks(queue(100, 10, 2, 0))), in: q(5, 100), action: Hold, to: 5,
			reason: []string{"queue 100 within [10, 100] → hold 5"}},
		{name: "threshold: step percent rounds up", spec: baseSpec(withChecks(queue(100, 10, 0, 50))), in: q(5, 101), action: ScaleOut, to: 8,
			reason: []string{"+3 = 8"}},
		{name: "threshold: step percent is at least 1", spec: baseSpec(withChecks(queue(100, 10, 0, 10))), in: q(2, 101), action: ScaleOut, to: 3},
		{name: "threshold: step percent shrink", spec: baseSpec(withChecks(queue(100, 10, 0, 25))), in: q(8, 1), action: ScaleIn, to: 6},
		{name: "threshold: never below zero", spec: baseSpec(func(s *Spec) { s.Min = 0 }, withChecks(queue(100, 10, 5, 0))), in: q(2, 1), action: ScaleIn, to: 0},
		{name: "fixed: recommends its size without data", spec: baseSpec(withChecks(Check{Name: "night", Strategy: StrategySpec{Fixed: &Fixed{Size: 3}}})),
			in: inputs(5, nil), action: ScaleIn, to: 3, winner: "night", reason: []string{"night fixed size → 3 (winner)"}},
		{name: "fixed: grows too", spec: baseSpec(withChecks(Check{Name: "night", Strategy: StrategySpec{Fixed: &Fixed{Size: 3}}})),
			in: inputs(1, nil), action: ScaleOut, to: 3},
		{name: "no checks holds", spec: baseSpec(withChecks()), in: inputs(3, nil), action: Hold, to: 3, reason: []string{"no checks; holding at 3"}},
	})
}

func TestEvaluateCombination(t *testing.T) {
	two := baseSpec(withChecks(target("cpu", MetricCPU, 50), target("memory", MetricMemory, 50)))
	both := func(cur int, cpu, mem float64) Inputs {
		return inputs(cur, map[string]Reading{"cpu": read(cpu), "memory": read(mem)})
	}
	runCases(t, []evalCase{
		{name: "scale-out beats hold", spec: two, in: both(2, 100, 50), action: ScaleOut, to: 4, winner: "cpu"},
		{name: "scale-out beats scale-in", spec: two, in: both(4, 10, 75), action: ScaleOut, to: 6, winner: "memory"},
		{name: "hold beats scale-in", spec: two, in: both(4, 10, 50), action: Hold, to: 4, winner: "memory",
			reason: []string{"cpu 10.0% < target 50.0% → 1", "memory holds, and hold beats scale-in", "holding at 4"}},
		{name: "largest scale-out wins", spec: two, in: both(4, 75, 100), action: ScaleOut, to: 8, winner: "memory",
			reason: []string{"memory 100.0% > target 50.0% → 8 (winner)"}},
		{name: "all scale-in: least shrinking wins", spec: two, in: both(8, 25, 10), action: ScaleIn, to: 4, winner: "cpu",
			reason: []string{"cpu 25.0% < target 50.0% → 4 (winner)", "memory 10.0% < target 50.0% → 2;"}},
		{name: "tie goes to the first check", spec: two, in: both(2, 100, 100), action: ScaleOut, to: 4, winner: "cpu"},
		{name: "tie goes to the first check, other order",
			spec: baseSpec(withChecks(target("memory", MetricMemory, 50), target("cpu", MetricCPU, 50))),
			in:   both(2, 100, 100), action: ScaleOut, to: 4, winner: "memory"},
		{name: "fixed floor with metric above", spec: baseSpec(withChecks(Check{Name: "base", Strategy: StrategySpec{Fixed: &Fixed{Size: 3}}}, target("cpu", MetricCPU, 50))),
			in: cpuAt(3, 100), action: ScaleOut, to: 6, winner: "cpu"},
		{name: "fixed holds metric scale-in", spec: baseSpec(withChecks(Check{Name: "base", Strategy: StrategySpec{Fixed: &Fixed{Size: 3}}}, target("cpu", MetricCPU, 50))),
			in: cpuAt(3, 5), action: Hold, to: 3, winner: "base"},
	})
}

func TestEvaluateOnError(t *testing.T) {
	onErr := func(mode string, fallback int) func(*Spec) {
		return func(s *Spec) { s.Checks[0].OnError, s.Checks[0].Fallback = mode, fallback }
	}
	two := func(mods ...func(*Spec)) Spec {
		return baseSpec(append([]func(*Spec){withChecks(target("cpu", MetricCPU, 50), target("memory", MetricMemory, 50))}, mods...)...)
	}
	memOnly := func(cur int, mem float64) Inputs { return inputs(cur, map[string]Reading{"memory": read(mem)}) }
	runCases(t, []evalCase{
		{name: "hold is the default", spec: baseSpec(), in: inputs(4, nil), action: Hold, to: 4, reason: []string{"cpu no reading → hold 4"}},
		{name: "hold on no data", spec: baseSpec(onErr(OnErrorHold, 0)), in: inputs(4, map[string]Reading{"cpu": {}}), action: Hold, to: 4,
			reason: []string{"cpu no data → hold 4"}},
		{name: "hold on query error even with a value", spec: baseSpec(), in: inputs(4, map[string]Reading{"cpu": {Value: 1, HasData: true, Err: "timeout"}}),
			action: Hold, to: 4, reason: []string{"cpu error (timeout) → hold 4"}},
		{name: "hold on NaN", spec: baseSpec(), in: inputs(4, map[string]Reading{"cpu": {Value: nan(), HasData: true}}), action: Hold, to: 4,
			reason: []string{"invalid value NaN"}},
		{name: "missing check's hold blocks the other's scale-in", spec: two(), in: memOnly(4, 5), action: Hold, to: 4, winner: "cpu"},
		{name: "missing check does not block the other's scale-out", spec: two(), in: memOnly(2, 100), action: ScaleOut, to: 4, winner: "memory"},
		{name: "fail: no action even when another check wants more", spec: two(onErr(OnErrorFail, 0)), in: memOnly(2, 100),
			action: Hold, to: 2, winner: "cpu", failed: true, reason: []string{"cpu no reading → fail (onError fail)", "evaluation failed: no metric-driven change", "holding at 2"}},
		{name: "fail with data is ordinary", spec: baseSpec(onErr(OnErrorFail, 0)), in: cpuAt(2, 100), action: ScaleOut, to: 4},
		{name: "fail still corrects bounds", spec: baseSpec(onErr(OnErrorFail, 0), func(s *Spec) { s.Min = 2 }), in: inputs(0, nil),
			action: ScaleOut, to: 2, failed: true, reason: []string{"scale-out 0 → 2 to reach min 2"}},
		{name: "fallback scales out", spec: baseSpec(onErr(OnErrorFallback, 6)), in: inputs(3, nil), action: ScaleOut, to: 6,
			reason: []string{"cpu no reading → fallback 6 (winner)"}},
		{name: "fallback scales in when it is the only opinion", spec: baseSpec(onErr(OnErrorFallback, 2)), in: inputs(5, nil), action: ScaleIn, to: 2},
		{name: "fallback scale-in loses to a hold", spec: two(onErr(OnErrorFallback, 2)), in: memOnly(5, 50), action: Hold, to: 5, winner: "memory"},
		{name: "fallback is clamped", spec: baseSpec(onErr(OnErrorFallback, 50)), in: inputs(3, nil), action: ScaleOut, to: 10, reason: []string{"50 capped at max 10"}},
	})
}

func TestEvaluateStaleAndPartial(t *testing.T) {
	stale := func(d time.Duration) func(*Spec) { return func(s *Spec) { s.Checks[0].Staleness = d } }
	aged := func(cur int, v float64, age time.Duration) Inputs {
		return inputs(cur, map[string]Reading{"cpu": {Value: v, HasData: true, Newest: t0.Add(-age)}})
	}
	runCases(t, []evalCase{
		{name: "stale data holds", spec: baseSpec(stale(5 * time.Minute)), in: aged(4, 5, 6*time.Minute), action: Hold, to: 4,
			reason: []string{"cpu stale (newest point 6m0s old > 5m0s) → hold 4"}},
		{name: "stale data does not scale out either", spec: baseSpec(stale(5 * time.Minute)), in: aged(2, 100, 6*time.Minute), action: Hold, to: 2},
		{name: "data exactly at the limit is fresh", spec: baseSpec(stale(5 * time.Minute)), in: aged(4, 5, 5*time.Minute), action: ScaleIn, to: 1},
		{name: "no timestamp counts as stale", spec: baseSpec(stale(5 * time.Minute)), in: inputs(4, map[string]Reading{"cpu": {Value: 5, HasData: true}}),
			action: Hold, to: 4, reason: []string{"stale (no timestamp)"}},
		{name: "no staleness limit accepts old data", spec: baseSpec(), in: aged(4, 5, 24*time.Hour), action: ScaleIn, to: 1},
		{name: "stale with fallback", spec: baseSpec(stale(time.Minute), func(s *Spec) { s.Checks[0].OnError, s.Checks[0].Fallback = OnErrorFallback, 3 }),
			in: aged(6, 100, time.Hour), action: ScaleIn, to: 3},
		{name: "partial data never scales in", spec: baseSpec(), in: inputs(4, map[string]Reading{"cpu": {Value: 5, HasData: true, Partial: true}}),
			action: Hold, to: 4, reason: []string{"cpu 5.0% < target 50.0% → 1, but data is partial → hold 4"}},
		{name: "partial data scales out", spec: baseSpec(), in: inputs(2, map[string]Reading{"cpu": {Value: 100, HasData: true, Partial: true}}),
			action: ScaleOut, to: 4},
	})
}

func TestEvaluateStabilization(t *testing.T) {
	stab := func(s *Spec) { s.ScaleInStabilization = 5 * time.Minute }
	recs := func(rs ...TimedSize) State { return State{Recommendations: rs} }
	runCases(t, []evalCase{
		{name: "on: a recent high recommendation holds", spec: baseSpec(stab), st: recs(TimedSize{t0.Add(-2 * time.Minute), 6}), in: cpuAt(6, 10),
			action: Hold, to: 6, reason: []string{"held at 6 by scale-in stabilization (highest recommendation in the last 5m0s is 6)"}},
		{name: "on: scales in to the highest recommendation", spec: baseSpec(stab), st: recs(TimedSize{t0.Add(-4 * time.Minute), 4}, TimedSize{t0.Add(-1 * time.Minute), 3}),
			in: cpuAt(6, 10), action: ScaleIn, to: 4, reason: []string{"scale-in 6 → 4, limited by scale-in stabilization"}},
		{name: "on: recommendations outside the window are forgotten", spec: baseSpec(stab), st: recs(TimedSize{t0.Add(-6 * time.Minute), 6}),
			in: cpuAt(6, 10), action: ScaleIn, to: 2},
		{name: "on: a recommendation exactly window-old is forgotten", spec: baseSpec(stab), st: recs(TimedSize{t0.Add(-5 * time.Minute), 6}),
			in: cpuAt(6, 10), action: ScaleIn, to: 2},
		{name: "on: stabilized value above max is clamped", spec: baseSpec(stab, func(s *Spec) { s.Max = 5 }), st: recs(TimedSize{t0.Add(-time.Minute), 9}),
			in: cpuAt(5, 10), action: Hold, to: 5},
		{name: "on: does not slow scale-out", spec: baseSpec(stab), st: recs(TimedSize{t0.Add(-time.Minute), 2}), in: cpuAt(2, 100), action: ScaleOut, to: 4},
		{name: "off: the same history is ignored", spec: baseSpec(), st: recs(TimedSize{t0.Add(-2 * time.Minute), 6}), in: cpuAt(6, 10), action: ScaleIn, to: 2},
		{name: "on: does not delay an above-max correction", spec: baseSpec(stab, func(s *Spec) { s.Max = 4 }), st: recs(TimedSize{t0.Add(-time.Minute), 9}),
			in: cpuAt(6, 10), action: ScaleIn, to: 4, reason: []string{"scale-in 6 → 4 to reach max 4"}},
	})
}

func TestEvaluateCooldowns(t *testing.T) {
	cd := func(out, in time.Duration) func(*Spec) {
		return func(s *Spec) { s.ScaleOutCooldown, s.ScaleInCooldown = out, in }
	}
	ago := func(d time.Duration) time.Time { return t0.Add(-d) }
	runCases(t, []evalCase{
		{name: "scale-out waits for its cooldown", spec: baseSpec(cd(3*time.Minute, 0)), st: State{LastScaleOut: ago(time.Minute)}, in: cpuAt(2, 100),
			action: Hold, to: 2, reason: []string{"held at 2 by scale-out cooldown (2m0s left)"}},
		{name: "scale-out acts when its cooldown ends", spec: baseSpec(cd(3*time.Minute, 0)), st: State{LastScaleOut: ago(3 * time.Minute)}, in: cpuAt(2, 100),
			action: ScaleOut, to: 4},
		{name: "scale-out ignores the scale-in cooldown", spec: baseSpec(cd(0, 5*time.Minute)), st: State{LastScaleIn: ago(10 * time.Second)}, in: cpuAt(2, 100),
			action: ScaleOut, to: 4},
		{name: "scale-in waits for its cooldown", spec: baseSpec(cd(0, 5*time.Minute)), st: State{LastScaleIn: ago(time.Minute)}, in: cpuAt(6, 10),
			action: Hold, to: 6, reason: []string{"held at 6 by scale-in cooldown (4m0s left)"}},
		{name: "scale-in waits its cooldown after a scale-out too", spec: baseSpec(cd(0, 5*time.Minute)), st: State{LastScaleOut: ago(2 * time.Minute), LastScaleIn: ago(time.Hour)},
			in: cpuAt(6, 10), action: Hold, to: 6, reason: []string{"scale-in cooldown (3m0s left)"}},
		{name: "scale-in acts when both are past", spec: baseSpec(cd(time.Hour, 5*time.Minute)), st: State{LastScaleOut: ago(5 * time.Minute), LastScaleIn: ago(time.Hour)},
			in: cpuAt(6, 10), action: ScaleIn, to: 2},
		{name: "scale-out cooldown does not hold a scale-in", spec: baseSpec(cd(time.Hour, 0)), st: State{LastScaleOut: ago(time.Minute)}, in: cpuAt(6, 10),
			action: ScaleIn, to: 2},
		{name: "below min ignores cooldown", spec: baseSpec(cd(time.Hour, time.Hour), func(s *Spec) { s.Min = 2 }), st: State{LastScaleOut: t0, LastScaleIn: t0},
			in: inputs(0, nil), action: ScaleOut, to: 2, reason: []string{"scale-out 0 → 2 to reach min 2"}},
		{name: "above max ignores cooldown", spec: baseSpec(cd(time.Hour, time.Hour)), st: State{LastScaleOut: t0, LastScaleIn: t0},
			in: cpuAt(12, 100), action: ScaleIn, to: 10, reason: []string{"scale-in 12 → 10 to reach max 10"}},
		{name: "below min: bound is forced, the rest waits for cooldown", spec: baseSpec(cd(time.Hour, 0), func(s *Spec) { s.Min = 3 }),
			st: State{LastScaleOut: ago(time.Minute)}, in: cpuAt(1, 300), action: ScaleOut, to: 3, reason: []string{"scale-out 1 → 3 to reach min 3, limited by scale-out cooldown (59m0s left)"}},
		{name: "below min: bound and beyond without cooldown", spec: baseSpec(func(s *Spec) { s.Min = 3 }), in: cpuAt(1, 300), action: ScaleOut, to: 6,
			reason: []string{"scale-out 1 → 6 (min 3, then further as the checks ask)"}},
	})
}

func TestEvaluateIncrement(t *testing.T) {
	inc := func(n int) func(*Spec) { return func(s *Spec) { s.Increment = n } }
	runCases(t, []evalCase{
		{name: "caps growth", spec: baseSpec(inc(1)), in: cpuAt(2, 100), action: ScaleOut, to: 3, reason: []string{"scale-out 2 → 3, limited by increment 1"}},
		{name: "caps shrink", spec: baseSpec(inc(2)), in: cpuAt(8, 5), action: ScaleIn, to: 6},
		{name: "zero is unlimited", spec: baseSpec(func(s *Spec) { s.Max = 100 }), in: cpuAt(2, 500), action: ScaleOut, to: 20},
		{name: "caps a min correction", spec: baseSpec(inc(2), func(s *Spec) { s.Min = 3 }), in: inputs(0, nil), action: ScaleOut, to: 2,
			reason: []string{"scale-out 0 → 2 to reach min 3, limited by increment 2"}},
		{name: "caps a max correction", spec: baseSpec(inc(1)), in: cpuAt(12, 50), action: ScaleIn, to: 11, reason: []string{"to reach max 10"}},
		{name: "no effect on a small move", spec: baseSpec(inc(5)), in: cpuAt(2, 100), action: ScaleOut, to: 4},
	})
}

func TestEvaluateRateLimits(t *testing.T) {
	out := func(r RateLimit) func(*Spec) { return func(s *Spec) { s.ScaleOutRate = r } }
	in := func(r RateLimit) func(*Spec) { return func(s *Spec) { s.ScaleInRate = r } }
	changes := func(cs ...TimedDelta) State { return State{Changes: cs} }
	ago := func(d time.Duration) time.Time { return t0.Add(-d) }
	five := 5 * time.Minute
	runCases(t, []evalCase{
		{name: "count: used up holds", spec: baseSpec(out(RateLimit{Count: 1, Period: five})), st: changes(TimedDelta{ago(2 * time.Minute), 1}),
			in: cpuAt(3, 91), action: Hold, to: 3, reason: []string{"cpu 91.0% > target 50.0% → 6 (winner); held at 3 by scale-out rate limit 1 per 5m0s (1 used)"}},
		{name: "count: cuts to what is left", spec: baseSpec(out(RateLimit{Count: 3, Period: five})), st: changes(TimedDelta{ago(time.Minute), 1}),
			in: cpuAt(2, 200), action: ScaleOut, to: 4, reason: []string{"scale-out 2 → 4, limited by scale-out rate limit 3 per 5m0s (1 used)"}},
		{name: "count: changes a period old no longer count", spec: baseSpec(out(RateLimit{Count: 1, Period: five})), st: changes(TimedDelta{ago(five), 1}),
			in: cpuAt(2, 100), action: ScaleOut, to: 3},
		{name: "count: scale-ins do not use the scale-out budget", spec: baseSpec(out(RateLimit{Count: 2, Period: five})), st: changes(TimedDelta{ago(time.Minute), -3}),
			in: cpuAt(2, 100), action: ScaleOut, to: 4},
		{name: "percent: of current, rounded up", spec: baseSpec(out(RateLimit{Percent: 50, Period: five})), in: cpuAt(4, 200), action: ScaleOut, to: 6,
			reason: []string{"16 capped at max 10", "limited by scale-out rate limit 50% (2) per 5m0s (0 used)"}},
		{name: "percent: at least one", spec: baseSpec(out(RateLimit{Percent: 10, Period: five})), in: cpuAt(2, 200), action: ScaleOut, to: 3},
		{name: "percent: rounds up a fraction", spec: baseSpec(out(RateLimit{Percent: 30, Period: five})), in: cpuAt(5, 200), action: ScaleOut, to: 7},
		{name: "scale-in count", spec: baseSpec(in(RateLimit{Count: 1, Period: 10 * time.Minute})), in: cpuAt(6, 5), action: ScaleIn, to: 5,
			reason: []string{"scale-in rate limit 1 per 10m0s (0 used)"}},
		{name: "scale-in percent with budget used", spec: baseSpec(in(RateLimit{Percent: 25, Period: five})), st: changes(TimedDelta{ago(time.Minute), -1}, TimedDelta{ago(2 * time.Minute), 2}),
			in: cpuAt(8, 5), action: ScaleIn, to: 7},
		{name: "scale-in used up", spec: baseSpec(in(RateLimit{Count: 2, Period: five})), st: changes(TimedDelta{ago(time.Minute), -1}, TimedDelta{ago(2 * time.Minute), -1}),
			in: cpuAt(8, 5), action: Hold, to: 8, reason: []string{"held at 8 by scale-in rate limit 2 per 5m0s (2 used)"}},
		{name: "min correction ignores the rate limit", spec: baseSpec(out(RateLimit{Count: 1, Period: five}), func(s *Spec) { s.Min = 3 }),
			st: changes(TimedDelta{ago(time.Minute), 1}), in: inputs(0, nil), action: ScaleOut, to: 3},
		{name: "rate limit and increment together", spec: baseSpec(out(RateLimit{Count: 5, Period: five}), func(s *Spec) { s.Increment = 2 }),
			st: changes(TimedDelta{ago(time.Minute), 2}), in: cpuAt(2, 500), action: ScaleOut, to: 4,
			reason: []string{"limited by scale-out rate limit 5 per 5m0s (2 used) and increment 2"}},
	})
}

func TestEvaluateSchedules(t *testing.T) {
	// Weekdays 09:00–17:00 Berlin. On Friday 27 November 2026 Berlin is UTC+1.
	business := Schedule{Name: "business", Cron: "0 9 * * 1-5", TimeZone: "Europe/Berlin", Duration: 8 * time.Hour, Min: ptr(4)}
	sched := func(ss ...Schedule) func(*Spec) { return func(s *Spec) { s.Schedules = ss } }
	at := func(ts string, cur int, cpu float64) Inputs {
		now, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			t.Fatal(err)
		}
		return Inputs{Now: now, Current: cur, Readings: map[string]Reading{"cpu": {Value: cpu, HasData: true, Newest: now}}}
	}
	utc := business
	utc.TimeZone = ""
	peak := Schedule{Name: "peak", Cron: "0 12 * * *", Duration: time.Hour, Min: ptr(2), Max: ptr(3)}
	desired := Schedule{Name: "launch", Cron: "30 11 27 11 *", Duration: 2 * time.Hour, Desired: ptr(6)}
	big := Schedule{Name: "sale", Cron: "@daily", Duration: 24 * time.Hour, Max: ptr(20)}
	runCases(t, []evalCase{
		{name: "active raises min", spec: baseSpec(sched(business)), in: at("2026-11-27T08:00:00Z", 2, 50), action: ScaleOut, to: 4,
			reason: []string{"schedule business active until 2026-11-27T16:00:00Z: min 4", "scale-out 2 → 4 to reach min 4"}},
		{name: "not yet active (08:59 Berlin)", spec: baseSpec(sched(business)), in: at("2026-11-27T07:59:59Z", 2, 50), action: Hold, to: 2},
		{name: "time zone decides: UTC cron not yet fired", spec: baseSpec(sched(utc)), in: at("2026-11-27T08:30:00Z", 2, 50), action: Hold, to: 2},
		{name: "time zone decides: Berlin cron fired", spec: baseSpec(sched(business)), in: at("2026-11-27T08:30:00Z", 2, 50), action: ScaleOut, to: 4},
		{name: "summer time moves the fire time", spec: baseSpec(sched(business)), in: at("2026-07-03T07:00:00Z", 2, 50), action: ScaleOut, to: 4},
		{name: "still active one second before the end", spec: baseSpec(sched(business)), in: at("2026-11-27T15:59:59Z", 2, 50), action: ScaleOut, to: 4},
		{name: "expired at the end", spec: baseSpec(sched(business)), in: at("2026-11-27T16:00:00Z", 2, 50), action: Hold, to: 2},
		{name: "not on Saturday", spec: baseSpec(sched(business)), in: at("2026-11-28T10:00:00Z", 2, 50), action: Hold, to: 2},
		{name: "expired min lets metrics shrink", spec: baseSpec(sched(business)), in: at("2026-11-27T17:00:00Z", 4, 10), action: ScaleIn, to: 1},
		{name: "overlap: later schedule wins outright", spec: baseSpec(sched(business, peak)), in: at("2026-11-27T12:30:00Z", 5, 50), action: ScaleIn, to: 3,
			reason: []string{"schedule peak active", "scale-in 5 → 3 to reach max 3"}},
		{name: "overlap: order reversed", spec: baseSpec(sched(peak, business)), in: at("2026-11-27T12:30:00Z", 2, 50), action: ScaleOut, to: 4,
			reason: []string{"schedule business active"}},
		{name: "desired is a floor, forced past cooldown", spec: baseSpec(sched(desired), func(s *Spec) { s.ScaleOutCooldown = time.Hour }),
			st: State{LastScaleOut: t0}, in: at("2026-11-27T12:00:00Z", 3, 50), action: ScaleOut, to: 6,
			reason: []string{"desired ≥ 6", "scale-out 3 → 6 to reach schedule launch desired 6"}},
		{name: "desired: metrics may go above it", spec: baseSpec(sched(desired)), in: at("2026-11-27T12:00:00Z", 6, 100), action: ScaleOut, to: 10},
		{name: "desired: metrics may not go below it", spec: baseSpec(sched(desired)), in: at("2026-11-27T12:00:00Z", 8, 10), action: ScaleIn, to: 6,
			reason: []string{"2 raised to schedule launch desired 6"}},
		{name: "desired: at the floor holds", spec: baseSpec(sched(desired)), in: at("2026-11-27T12:00:00Z", 6, 10), action: Hold, to: 6},
		{name: "desired: gone after the window", spec: baseSpec(sched(desired)), in: at("2026-11-27T13:30:00Z", 6, 10), action: ScaleIn, to: 2},
		{name: "desired: only in its month", spec: baseSpec(sched(desired)), in: at("2026-12-27T12:00:00Z", 3, 50), action: Hold, to: 3},
		{name: "schedule may raise max above the spec", spec: baseSpec(sched(big)), in: at("2026-11-27T12:00:00Z", 8, 100), action: ScaleOut, to: 16},
		{name: "invalid schedule is ignored and named", spec: baseSpec(sched(Schedule{Name: "bad", Cron: "nope", Duration: time.Hour, Min: ptr(5)})),
			in: at("2026-11-27T12:00:00Z", 2, 50), action: Hold, to: 2, reason: []string{"schedule bad ignored"}},
	})
}

func TestEvaluateScheduleReported(t *testing.T) {
	s := baseSpec(func(s *Spec) {
		s.Schedules = []Schedule{{Name: "launch", Cron: "0 11 * * *", Duration: 2 * time.Hour, Min: ptr(2), Max: ptr(8), Desired: ptr(5)}}
	})
	ev, _ := Evaluate(s, State{}, cpuAt(5, 50))
	if ev.Schedule != "launch" || ev.Min != 2 || ev.Max != 8 || ev.Floor != 5 {
		t.Errorf("schedule %q bounds [%d, %d] floor %d, want launch [2, 8] floor 5", ev.Schedule, ev.Min, ev.Max, ev.Floor)
	}
	ev, _ = Evaluate(baseSpec(), State{}, cpuAt(5, 50))
	if ev.Schedule != "" || ev.Min != 1 || ev.Max != 10 || ev.Floor != 1 {
		t.Errorf("no schedule: %q [%d, %d] floor %d, want \"\" [1, 10] floor 1", ev.Schedule, ev.Min, ev.Max, ev.Floor)
	}
}

func TestEvaluateBounds(t *testing.T) {
	runCases(t, []evalCase{
		{name: "below min without data", spec: baseSpec(func(s *Spec) { s.Min = 2 }), in: inputs(0, nil), action: ScaleOut, to: 2,
			reason: []string{"cpu no reading → hold 0", "scale-out 0 → 2 to reach min 2"}},
		{name: "above max with load", spec: baseSpec(), in: cpuAt(12, 100), action: ScaleIn, to: 10, reason: []string{"24 capped at max 10", "scale-in 12 → 10 to reach max 10"}},
		{name: "above max and checks want fewer still", spec: baseSpec(), in: cpuAt(12, 10), action: ScaleIn, to: 3,
			reason: []string{"scale-in 12 → 3 (max 10, then further as the checks ask)"}},
		{name: "at max holds", spec: baseSpec(), in: cpuAt(10, 100), action: Hold, to: 10, reason: []string{"20 capped at max 10", "holding at 10"}},
		{name: "zero at min zero holds", spec: baseSpec(func(s *Spec) { s.Min = 0 }), in: cpuAt(0, 100), action: Hold, to: 0},
		{name: "negative current is treated as zero", spec: baseSpec(func(s *Spec) { s.Min = 1 }), in: inputs(-2, nil), action: ScaleOut, to: 1},
	})
}

// TestEvaluateState checks what Evaluate remembers: pruned, never aliased, JSON round-trips.
func TestEvaluateState(t *testing.T) {
	spec := baseSpec(func(s *Spec) {
		s.ScaleInStabilization = 5 * time.Minute
		s.ScaleOutRate = RateLimit{Count: 10, Period: 10 * time.Minute}
		s.ScaleInRate = RateLimit{Count: 10, Period: 3 * time.Minute}
	})
	st := State{
		LastScaleIn:     t0.Add(-time.Hour),
		Recommendations: []TimedSize{{t0.Add(-6 * time.Minute), 9}, {t0.Add(-time.Minute), 2}},
		Changes:         []TimedDelta{{t0.Add(-11 * time.Minute), 1}, {t0.Add(-9 * time.Minute), -1}},
	}
	before, _ := json.Marshal(st)
	ev, next := Evaluate(spec, st, cpuAt(2, 100))
	if ev.Action != ScaleOut || ev.To != 4 {
		t.Fatalf("Evaluate = %s to %d: %s", ev.Action, ev.To, ev.Reason)
	}
	want := State{
		LastScaleOut:    t0,
		LastScaleIn:     t0.Add(-time.Hour),
		Recommendations: []TimedSize{{t0.Add(-time.Minute), 2}, {t0, 4}},
		// Pruned to the longest period (10m), whichever direction.
		Changes: []TimedDelta{{t0.Add(-9 * time.Minute), -1}, {t0, 2}},
	}
	if !reflect.DeepEqual(next, want) {
		t.Errorf("next state\n got %+v\nwant %+v", next, want)
	}
	if after, _ := json.Marshal(st); string(after) != string(before) {
		t.Errorf("Evaluate changed its input state:\n%s\n%s", before, after)
	}

	raw, err := json.Marshal(next)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, next) {
		t.Errorf("JSON round trip\n got %+v\nwant %+v\n%s", back, next, raw)
	}
	if raw, _ := json.Marshal(State{}); string(raw) != "{}" {
		t.Errorf("zero State marshals to %s, want {}", raw)
	}

	// A hold changes nothing but the recommendations; without a window or a limit nothing is kept.
	_, next = Evaluate(baseSpec(), st, cpuAt(4, 50))
	if want := (State{LastScaleIn: st.LastScaleIn}); !reflect.DeepEqual(next, want) {
		t.Errorf("hold without window or limits: %+v, want %+v", next, want)
	}
}

// TestEvaluateDeterministic runs the same evaluation many times: map order must not leak into
// the decision or the reason.
func TestEvaluateDeterministic(t *testing.T) {
	var checks []Check
	readings := map[string]Reading{}
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		checks = append(checks, target(n, MetricCPU, 50))
		readings[n] = read(100)
	}
	spec := baseSpec(withChecks(checks...))
	first, _ := Evaluate(spec, State{}, inputs(2, readings))
	if first.Winner != "a" {
		t.Errorf("winner %q, want the first listed check a", first.Winner)
	}
	for range 50 {
		ev, _ := Evaluate(spec, State{}, inputs(2, readings))
		if !reflect.DeepEqual(ev, first) {
			t.Fatalf("evaluation differs between runs:\n%+v\n%+v", ev, first)
		}
	}
}

func nan() float64 { var z float64; return z / z }

func BenchmarkEvaluate(b *testing.B) {
	spec := baseSpec(func(s *Spec) {
		s.Checks = []Check{target("cpu", MetricCPU, 50), target("memory", MetricMemory, 70),
			{Name: "queue", Metric: MetricQuery, Strategy: StrategySpec{Threshold: &Threshold{Upper: 100, Lower: 10, Step: 2}}}}
		s.ScaleInStabilization = 5 * time.Minute
		s.ScaleOutRate = RateLimit{Count: 4, Period: 10 * time.Minute}
		s.ScaleInRate = RateLimit{Percent: 20, Period: 10 * time.Minute}
		s.ScaleInCooldown = 5 * time.Minute
	})
	readings := map[string]Reading{"cpu": read(80), "memory": read(40), "queue": read(50)}
	run := func(b *testing.B, spec Spec) {
		st := State{}
		for i := range 10 {
			st.Recommendations = append(st.Recommendations, TimedSize{t0.Add(-time.Duration(i) * 30 * time.Second), 5})
		}
		b.ReportAllocs()
		for b.Loop() {
			Evaluate(spec, st, inputs(5, readings))
		}
	}
	b.Run("checks", func(b *testing.B) { run(b, spec) })
	withSchedule := spec
	withSchedule.Schedules = []Schedule{{Name: "business", Cron: "0 9 * * 1-5", TimeZone: "Europe/Berlin", Duration: 8 * time.Hour, Min: ptr(4)}}
	b.Run("checks+schedule", func(b *testing.B) { run(b, withSchedule) })
}

func TestCeilIntAbsorbsFloatError(t *testing.T) {
	for _, tt := range []struct {
		x    float64
		want int
	}{{7.000000000000001, 7}, {7, 7}, {7.0001, 8}, {0.2, 1}, {0, 0}, {-0.5, 0}} {
		if got := ceilInt(tt.x); got != tt.want {
			t.Errorf("ceilInt(%v) = %d, want %d", tt.x, got, tt.want)
		}
	}
}
