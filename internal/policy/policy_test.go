package policy

import (
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	base := Policy{Min: 1, Max: 10, Increment: 10, Cooldown: time.Minute, Targets: map[string]float64{"cpu": 50}}
	with := func(f func(*Policy)) Policy {
		p := base
		p.Targets = map[string]float64{}
		for k, v := range base.Targets {
			p.Targets[k] = v
		}
		f(&p)
		return p
	}
	tests := []struct {
		name       string
		policy     Policy
		in         Input
		wantAction Action
		wantSize   int
		wantReason string
	}{
		{"double load doubles", base, Input{Now: now, Current: 2, Metrics: map[string]float64{"cpu": 100}}, ScaleOut, 4, "cpu 100.0% vs target 50% → 4"},
		{"within tolerance holds", base, Input{Now: now, Current: 4, Metrics: map[string]float64{"cpu": 54}}, Hold, 4, "within tolerance"},
		{"just outside tolerance rounds up", base, Input{Now: now, Current: 4, Metrics: map[string]float64{"cpu": 56}}, ScaleOut, 5, "→ 5"},
		{"low load shrinks", base, Input{Now: now, Current: 4, Metrics: map[string]float64{"cpu": 10}}, ScaleIn, 1, "scale-in 4 → 1"},
		{"clamped to max", base, Input{Now: now, Current: 8, Metrics: map[string]float64{"cpu": 100}}, ScaleOut, 10, "scale-out 8 → 10"},
		{"clamped to min", base, Input{Now: now, Current: 3, Metrics: map[string]float64{"cpu": 1}}, ScaleIn, 1, "→ 1"},
		{"at max holds", base, Input{Now: now, Current: 10, Metrics: map[string]float64{"cpu": 100}}, Hold, 10, "at a bound"},
		{"increment caps growth", with(func(p *Policy) { p.Increment = 1 }), Input{Now: now, Current: 2, Metrics: map[string]float64{"cpu": 100}}, ScaleOut, 3, "scale-out 2 → 3"},
		{"increment caps shrink", with(func(p *Policy) { p.Increment = 2 }), Input{Now: now, Current: 8, Metrics: map[string]float64{"cpu": 5}}, ScaleIn, 6, "scale-in 8 → 6"},
		{"cooldown holds", base, Input{Now: now, Current: 2, Metrics: map[string]float64{"cpu": 100}, LastAction: now.Add(-20 * time.Second)}, Hold, 2, "in cooldown for 40s more"},
		{"cooldown over acts", base, Input{Now: now, Current: 2, Metrics: map[string]float64{"cpu": 100}, LastAction: now.Add(-61 * time.Second)}, ScaleOut, 4, "→ 4"},
		{"below min ignores cooldown and metrics", with(func(p *Policy) { p.Min = 3 }), Input{Now: now, Current: 0, LastAction: now}, ScaleOut, 3, "below minimum size 3"},
		{"below min respects increment", with(func(p *Policy) { p.Min = 3; p.Increment = 2 }), Input{Now: now, Current: 0}, ScaleOut, 2, "scale-out 0 → 2"},
		{"above max shrinks", with(func(p *Policy) { p.Max = 2 }), Input{Now: now, Current: 5, Metrics: map[string]float64{"cpu": 100}}, ScaleIn, 2, "above maximum size 2"},
		{"no metrics holds", base, Input{Now: now, Current: 3}, Hold, 3, "no cpu metrics in the window; holding at 3"},
		{"largest of two metrics wins", with(func(p *Policy) { p.Targets["memory"] = 50 }), Input{Now: now, Current: 2, Metrics: map[string]float64{"cpu": 10, "memory": 150}}, ScaleOut, 6, "memory 150.0% vs target 50% → 6"},
		{"no scale in on partial data", with(func(p *Policy) { p.Targets["memory"] = 50 }), Input{Now: now, Current: 4, Metrics: map[string]float64{"cpu": 5}}, Hold, 4, "not scaling in on partial data"},
		{"scale out on partial data", with(func(p *Policy) { p.Targets["memory"] = 50 }), Input{Now: now, Current: 2, Metrics: map[string]float64{"cpu": 100}}, ScaleOut, 4, "no data for memory"},
		{"zero current at min zero holds", with(func(p *Policy) { p.Min = 0 }), Input{Now: now, Current: 0, Metrics: map[string]float64{"cpu": 100}}, Hold, 0, "holding"},
		{"custom tolerance", with(func(p *Policy) { p.Tolerance = 0.3 }), Input{Now: now, Current: 4, Metrics: map[string]float64{"cpu": 60}}, Hold, 4, "within tolerance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.policy, tt.in)
			if d.Action != tt.wantAction || d.Desired != tt.wantSize {
				t.Fatalf("Decide = %s to %d (%q), want %s to %d", d.Action, d.Desired, d.Reason, tt.wantAction, tt.wantSize)
			}
			if d.From != tt.in.Current {
				t.Errorf("From = %d, want %d", d.From, tt.in.Current)
			}
			if !strings.Contains(d.Reason, tt.wantReason) {
				t.Errorf("reason %q does not contain %q", d.Reason, tt.wantReason)
			}
		})
	}
}
