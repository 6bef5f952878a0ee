package policy

import (
	"fmt"
	"strings"
	"time"
)

// Evaluate decides the group's next size. It reads no clock (in.Now is the time), uses no
// randomness, reads in.Readings only by check name and never mutates st, so a Temporal workflow
// can call it and replay it. The one read outside its arguments: a schedule whose TimeZone is
// not UTC loads that zone (time.LoadLocation: the host's zoneinfo, else the copy embedded by
// time/tzdata). That is stable on a host; two hosts only disagree if their tz databases
// disagree about that zone at that instant.
//
// The order of the rules:
//
//  1. Each check gives an opinion (see evaluateCheck). Unusable data follows the check's
//     OnError; partial data never scales in.
//  2. The opinions combine the safe way (see combine). An onError: fail check with no data makes
//     the evaluation Failed: no metric-driven change at all.
//  3. The active schedule replaces Min/Max; its Desired is a floor while it is active.
//  4. Bounds: a group outside [floor, Max] is moved back whatever the data, cooldowns,
//     stabilization and rate limits say (those guard against acting on noisy metrics; a bound
//     is not a metric), and even when Failed, because a group at 0 with a failing query would
//     otherwise never reach its minimum. The recommendation is clamped to [floor, Max].
//  5. A metric-driven scale-out beyond the bound correction waits for ScaleOutCooldown after the
//     last scale-out and is cut to the scale-out rate limit.
//  6. A metric-driven scale-in beyond it goes no lower than the highest recommendation in the
//     stabilization window (this one included), waits ScaleInCooldown after the last change in
//     EITHER direction (instances just added are still booting and not yet taking load, so
//     shrinking right after growing is the classic flap), and is cut to the scale-in rate limit.
//  7. Increment caps the whole move, bound corrections included.
//
// The returned State assumes the caller applies To. Every change, whatever caused it, counts
// toward cooldowns and rate limits, so "at most N per period" stays true of what happened.
// Every evaluation records its combined recommendation (current when holding or failed), so a
// missing-data stretch also delays the next scale-in by the stabilization window.
func Evaluate(spec Spec, st State, in Inputs) (Evaluation, State) {
	now, cur := in.Now, max(in.Current, 0)
	b := resolveBounds(spec, now)
	ev := Evaluation{Action: Hold, From: cur, To: cur, Min: b.min, Max: b.max, Floor: b.floor, Schedule: b.schedule}

	ev.Checks = make([]CheckResult, len(spec.Checks))
	failed := -1
	for i, c := range spec.Checks {
		r, ok := in.Readings[c.Name]
		res, fail := evaluateCheck(c, r, ok, now, cur)
		ev.Checks[i] = res
		if fail && failed < 0 {
			failed = i
		}
	}
	action, want, winner := combine(ev.Checks, cur)
	if failed >= 0 {
		action, want, winner, ev.Failed = Hold, cur, failed, true
	}
	if winner >= 0 {
		ev.Winner = ev.Checks[winner].Name
	}
	ev.Recommended = want

	next := State{LastScaleOut: st.LastScaleOut, LastScaleIn: st.LastScaleIn}
	if w := spec.ScaleInStabilization; w > 0 {
		next.Recommendations = keepSizesAfter(st.Recommendations, now.Add(-w))
		next.Recommendations = append(next.Recommendations, TimedSize{At: now, Size: want})
	}
	if p := max(spec.ScaleOutRate.Period, spec.ScaleInRate.Period); p > 0 {
		next.Changes = keepDeltasAfter(st.Changes, now.Add(-p))
	}

	d := decider{spec: spec, st: next, now: now, cur: cur, b: b}
	forced := clamp(cur, b.floor, b.max)
	bounded := clamp(want, b.floor, b.max)
	to := forced
	switch {
	case bounded > forced:
		to = d.gateOut(forced, bounded)
	case bounded < forced:
		to = d.gateIn(forced, bounded)
	}
	if inc := spec.Increment; inc > 0 && (to > cur+inc || to < cur-inc) {
		to = clamp(to, cur-inc, cur+inc)
		d.limits = append(d.limits, fmt.Sprintf("increment %d", inc))
	}

	ev.To, ev.Action = to, actionOf(cur, to)
	switch ev.Action {
	case ScaleOut:
		next.LastScaleOut = now
	case ScaleIn:
		next.LastScaleIn = now
	}
	if ev.Action != Hold && max(spec.ScaleOutRate.Period, spec.ScaleInRate.Period) > 0 {
		next.Changes = append(next.Changes, TimedDelta{At: now, Delta: to - cur})
	}
	ev.Reason = d.reason(ev, action, want, bounded, forced, winner)
	return ev, next
}

// decider carries one evaluation's context through the gates and collects why it was limited.
type decider struct {
	spec   Spec
	st     State // already pruned
	now    time.Time
	cur    int
	b      bounds
	limits []string
}

func (d *decider) gateOut(forced, bounded int) int {
	if wait := d.st.LastScaleOut.Add(d.spec.ScaleOutCooldown).Sub(d.now); !d.st.LastScaleOut.IsZero() && d.spec.ScaleOutCooldown > 0 && wait > 0 {
		d.limits = append(d.limits, fmt.Sprintf("scale-out cooldown (%s left)", wait.Round(time.Second)))
		return forced
	}
	return d.rateLimit(d.spec.ScaleOutRate, "scale-out", 1, forced, bounded)
}

func (d *decider) gateIn(forced, bounded int) int {
	if w := d.spec.ScaleInStabilization; w > 0 {
		highest := bounded
		for _, r := range d.st.Recommendations {
			highest = max(highest, r.Size)
		}
		if stab := clamp(highest, d.b.floor, d.b.max); stab > bounded {
			bounded = stab
			d.limits = append(d.limits, fmt.Sprintf("scale-in stabilization (highest recommendation in the last %s is %d)", w, highest))
			if bounded >= forced {
				return forced
			}
		}
	}
	last := d.st.LastScaleIn
	if d.st.LastScaleOut.After(last) {
		last = d.st.LastScaleOut
	}
	if wait := last.Add(d.spec.ScaleInCooldown).Sub(d.now); !last.IsZero() && d.spec.ScaleInCooldown > 0 && wait > 0 {
		d.limits = append(d.limits, fmt.Sprintf("scale-in cooldown (%s left)", wait.Round(time.Second)))
		return forced
	}
	return d.rateLimit(d.spec.ScaleInRate, "scale-in", -1, forced, bounded)
}

// rateLimit cuts the metric-driven move from forced toward bounded to what the limit has left
// in its period. sign is +1 for scale-out, −1 for scale-in.
func (d *decider) rateLimit(r RateLimit, name string, sign, forced, bounded int) int {
	if r.IsZero() || r.Period <= 0 {
		return bounded
	}
	limit := r.Count
	desc := fmt.Sprintf("%d per %s", r.Count, r.Period)
	if limit <= 0 {
		limit = max(ceilInt(float64(d.cur)*r.Percent/100), 1)
		desc = fmt.Sprintf("%g%% (%d) per %s", r.Percent, limit, r.Period)
	}
	used := 0
	since := d.now.Add(-r.Period)
	for _, c := range d.st.Changes {
		if c.At.After(since) && c.Delta*sign > 0 {
			used += c.Delta * sign
		}
	}
	left := max(limit-used, 0)
	if want := (bounded - forced) * sign; want > left {
		d.limits = append(d.limits, fmt.Sprintf("%s rate limit %s (%d used)", name, desc, used))
		return forced + left*sign
	}
	return bounded
}

// reason writes the one sentence the decision log and the CLI show.
func (d *decider) reason(ev Evaluation, action Action, want, bounded, forced, winner int) string {
	var parts []string
	for i, c := range ev.Checks {
		s := c.Reason
		if i == winner && action != Hold {
			s += " (winner)"
		}
		parts = append(parts, s)
	}
	if len(ev.Checks) == 0 {
		parts = append(parts, "no checks")
	}
	parts = append(parts, d.b.notes...)
	switch {
	case ev.Failed:
		parts = append(parts, "evaluation failed: no metric-driven change")
	case action == Hold && winner >= 0 && anyAction(ev.Checks, ScaleIn):
		parts = append(parts, fmt.Sprintf("%s holds, and hold beats scale-in", ev.Checks[winner].Name))
	}
	if action != Hold && bounded != want {
		switch {
		case want > d.b.max:
			parts = append(parts, fmt.Sprintf("%d capped at max %d", want, d.b.max))
		case want < d.b.floor:
			parts = append(parts, fmt.Sprintf("%d raised to %s", want, d.floorName()))
		}
	}

	var s string
	switch {
	case ev.To == ev.From && len(d.limits) > 0:
		s = fmt.Sprintf("held at %d by %s", ev.To, strings.Join(d.limits, " and "))
	case ev.To == ev.From:
		s = fmt.Sprintf("holding at %d", ev.To)
	default:
		s = fmt.Sprintf("%s %d → %d", ev.Action, ev.From, ev.To)
		if forced != ev.From {
			bound := fmt.Sprintf("max %d", d.b.max)
			if forced > ev.From {
				bound = d.floorName()
			}
			if ev.To == forced || (forced > ev.From) != (ev.To > forced) {
				s += " to reach " + bound
			} else {
				s += fmt.Sprintf(" (%s, then further as the checks ask)", bound)
			}
		}
		if len(d.limits) > 0 {
			s += ", limited by " + strings.Join(d.limits, " and ")
		}
	}
	return strings.Join(append(parts, s), "; ")
}

func (d *decider) floorName() string {
	if d.b.desired > d.b.min {
		return fmt.Sprintf("schedule %s desired %d", d.b.schedule, d.b.floor)
	}
	return fmt.Sprintf("min %d", d.b.floor)
}

func anyAction(rs []CheckResult, a Action) bool {
	for _, r := range rs {
		if r.Action == a {
			return true
		}
	}
	return false
}

func clamp(v, lo, hi int) int { return min(max(v, lo), hi) }

// keepSizesAfter copies the entries newer than t, so the caller's State is never aliased.
func keepSizesAfter(in []TimedSize, t time.Time) []TimedSize {
	var out []TimedSize
	for _, r := range in {
		if r.At.After(t) {
			out = append(out, r)
		}
	}
	return out
}

func keepDeltasAfter(in []TimedDelta, t time.Time) []TimedDelta {
	var out []TimedDelta
	for _, c := range in {
		if c.At.After(t) {
			out = append(out, c)
		}
	}
	return out
}
