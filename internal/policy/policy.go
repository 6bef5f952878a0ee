// Package policy holds the pure scaling decision: given a group's size, its metrics and its
// policy, what size should it be and why. It does no I/O and reads no clock, so the group
// workflow can call it directly and tests can feed it any history.
package policy

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// DefaultTolerance is the fraction around the target inside which target tracking holds.
const DefaultTolerance = 0.1

// Policy is a group's size bounds and target-tracking rule.
type Policy struct {
	Min, Max int
	// Increment caps how many instances one action adds or removes.
	Increment int
	// Cooldown is the quiet time after an action during which metric-driven actions wait.
	Cooldown time.Duration
	// Targets maps a metric name ("cpu", "memory") to its target utilisation in percent.
	Targets map[string]float64
	// Tolerance around the target; 0 means DefaultTolerance.
	Tolerance float64
}

// Input is what the group knows at one evaluation.
type Input struct {
	Now     time.Time
	Current int
	// Metrics maps a metric name to its mean over the window. A target without a value here
	// means the metric had no data.
	Metrics map[string]float64
	// LastAction is when the group last changed size; zero if never.
	LastAction time.Time
}

// Action is what a decision asks the group to do.
type Action string

const (
	Hold     Action = "hold"
	ScaleOut Action = "scale-out"
	ScaleIn  Action = "scale-in"
)

// Decision is the outcome of one evaluation.
type Decision struct {
	Action  Action
	From    int
	Desired int
	// Recommended is the size the metrics asked for before bounds, increment and cooldown.
	Recommended int
	Reason      string
}

// Decide computes the desired size. Bounds are enforced even during cooldown and without
// metrics, because a group outside [Min, Max] is wrong whatever the load says; everything
// else waits for data and for the cooldown to pass.
func Decide(p Policy, in Input) Decision {
	d := Decision{From: in.Current, Desired: in.Current, Recommended: in.Current, Action: Hold}
	if in.Current < p.Min {
		return p.step(d, p.Min, fmt.Sprintf("below minimum size %d", p.Min))
	}
	if in.Current > p.Max {
		return p.step(d, p.Max, fmt.Sprintf("above maximum size %d", p.Max))
	}

	names := make([]string, 0, len(p.Targets))
	for name := range p.Targets {
		names = append(names, name)
	}
	sort.Strings(names)

	tolerance := p.Tolerance
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	recommended := -1
	var parts, missing []string
	for _, name := range names {
		target := p.Targets[name]
		value, ok := in.Metrics[name]
		if !ok {
			missing = append(missing, name)
			continue
		}
		want := in.Current
		if ratio := value / target; math.Abs(ratio-1) > tolerance {
			want = int(math.Ceil(float64(in.Current) * ratio))
		}
		parts = append(parts, fmt.Sprintf("%s %.1f%% vs target %.0f%% → %d", name, value, target, want))
		// The largest recommendation wins: a group short on any one resource must grow.
		if want > recommended {
			recommended = want
		}
	}
	if recommended < 0 {
		if len(names) == 0 {
			d.Reason = "no metric targets set; holding"
		} else {
			d.Reason = fmt.Sprintf("no %s metrics in the window; holding at %d", strings.Join(missing, " or "), in.Current)
		}
		return d
	}
	d.Recommended = recommended
	reason := strings.Join(parts, "; ")
	if len(missing) > 0 {
		reason += fmt.Sprintf(" (no data for %s)", strings.Join(missing, ", "))
	}

	desired := min(max(recommended, p.Min), p.Max)
	if desired == in.Current {
		d.Reason = reason + "; within tolerance or at a bound, holding"
		return d
	}
	// Scaling in on partial data could remove capacity a resource without data needs.
	if desired < in.Current && len(missing) > 0 {
		d.Reason = reason + "; not scaling in on partial data"
		return d
	}
	if !in.LastAction.IsZero() && p.Cooldown > 0 {
		if wait := in.LastAction.Add(p.Cooldown).Sub(in.Now); wait > 0 {
			d.Reason = fmt.Sprintf("%s; in cooldown for %s more", reason, wait.Round(time.Second))
			return d
		}
	}
	return p.step(d, desired, reason)
}

// step moves toward desired by at most Increment.
func (p Policy) step(d Decision, desired int, reason string) Decision {
	inc := max(p.Increment, 1)
	switch {
	case desired > d.From:
		d.Desired = min(desired, d.From+inc)
		d.Action = ScaleOut
	case desired < d.From:
		d.Desired = max(desired, d.From-inc)
		d.Action = ScaleIn
	}
	if d.Recommended == d.From {
		d.Recommended = desired
	}
	d.Reason = fmt.Sprintf("%s; %s %d → %d", reason, d.Action, d.From, d.Desired)
	return d
}
