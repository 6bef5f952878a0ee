package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/premiscale/premiscale/internal/spec"
)

// The operator's intent over the config, and its rules:
//
//   - group scale --min/--max set bound overrides, group update a whole-spec override. Each
//     lasts until the operator clears it (group scale --reset, group update --reset or with
//     the config's spec) or the config's own value for it changes; the config's spec sent
//     again unchanged (every worker start sends it) leaves them alone.
//   - group scale --desired sets a goal within the bounds in force. When the bounds move, a
//     goal outside them is clamped to the nearest bound, or dropped when that bound is the
//     group's size already; a goal not reached within goalTimeout is dropped.
//   - Every such change is said in the answer to the operator's request, in the log and, at
//     the next evaluation, in the decision log.

// Overrides are what an operator set over a group's config.
type Overrides struct {
	// Min and Max are bounds set with `group scale --min/--max`.
	Min *BoundOverride `json:",omitempty"`
	Max *BoundOverride `json:",omitempty"`
	// Spec is a whole spec sent with `group update`.
	Spec *SpecOverride `json:",omitempty"`
}

// BoundOverride is a bound an operator set.
type BoundOverride struct {
	Value int
	// Config is the config's value when the override was set: a config with another value
	// replaces the override.
	Config int
	At     time.Time
}

// SpecOverride is a whole spec an operator sent.
type SpecOverride struct {
	Spec spec.Group
	// Config is the fingerprint of the config's spec when the override was set: a config
	// with another spec replaces the override.
	Config string
	At     time.Time
}

// goalTimeout is how long an operator's desired size stays the goal without being reached:
// ten evaluations, and at least 15 minutes (slow boots under launch limits take a while).
func goalTimeout(interval time.Duration) time.Duration {
	return max(10*interval, 15*time.Minute)
}

// EffectiveSpec is the spec in force: the config's with the operator's overrides applied.
func (st *GroupState) EffectiveSpec() spec.Group {
	s := st.Spec
	if o := st.Overrides.Spec; o != nil {
		s = o.Spec
		s.Name = st.Spec.Name
	}
	if o := st.Overrides.Min; o != nil {
		s.Policy.Min = o.Value
	}
	if o := st.Overrides.Max; o != nil {
		s.Policy.Max = o.Value
	}
	return s
}

// refresh recomputes the spec in force after the config or an override changed.
func (g *group) refresh() {
	g.eff = g.st.EffectiveSpec()
	if g.fleet {
		g.trackLaunch()
	}
}

// fingerprint identifies a spec by its content. JSON encoding is deterministic (struct fields
// in order, map keys sorted), so equal specs have equal fingerprints; workflowcheck flags
// encoding/json for its internal type cache, which does not change the output.
func fingerprint[T any](s T) string {
	b, err := json.Marshal(s) //workflowcheck:ignore
	if err != nil {
		// A spec is plain data; this cannot happen, and an empty print matches nothing.
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// note records a change of the operator's intent for the log now and the decision log at the
// next evaluation, and returns it for an answer.
func (g *group) note(format string, args ...any) string {
	n := fmt.Sprintf(format, args...)
	// A bounded list: between two evaluations a handful of changes is plenty to tell.
	const maxNotes = 10
	g.st.Notes = append(g.st.Notes, n)
	if len(g.st.Notes) > maxNotes {
		g.st.Notes = g.st.Notes[len(g.st.Notes)-maxNotes:]
	}
	g.logger.Info("operator intent changed", "group", g.eff.Name, "note", n)
	return n
}

// mergeConfigSpec takes the config's spec. Overrides stay unless the config's own value for
// them changed, in which case the config, the newer word, wins. It returns what it changed.
func (g *group) mergeConfigSpec(ns spec.Group) []string {
	var notes []string
	o := &g.st.Overrides
	if b := o.Min; b != nil && ns.Policy.Min != b.Config {
		notes = append(notes, g.note("the config's minNodes changed (%d → %d): it replaces the operator's min %d", b.Config, ns.Policy.Min, b.Value))
		o.Min = nil
	}
	if b := o.Max; b != nil && ns.Policy.Max != b.Config {
		notes = append(notes, g.note("the config's maxNodes changed (%d → %d): it replaces the operator's max %d", b.Config, ns.Policy.Max, b.Value))
		o.Max = nil
	}
	if so := o.Spec; so != nil && fingerprint(ns) != so.Config {
		notes = append(notes, g.note("the config's spec changed: it replaces the operator's spec from group update at %s", so.At.UTC().Format(time.RFC3339)))
		o.Spec = nil
	}
	g.st.Spec = ns
	return append(notes, g.settle("the config's")...)
}

// settle recomputes the spec in force, drops the overrides that no longer fit with it (a min
// above the config's new max, a max beyond the static addresses), and fits a pending goal into
// the bounds. who says whose change it follows, for the notes.
func (g *group) settle(who string) []string {
	var notes []string
	o := &g.st.Overrides
	for {
		g.refresh()
		p := g.eff.Policy
		switch {
		case p.Min > p.Max && o.Min != nil:
			notes = append(notes, g.note("the operator's min %d is above the max %d in force: dropped", o.Min.Value, p.Max))
			o.Min = nil
			continue
		case p.Min > p.Max && o.Max != nil:
			notes = append(notes, g.note("the operator's max %d is below the min %d in force: dropped", o.Max.Value, p.Min))
			o.Max = nil
			continue
		case o.Max != nil && len(g.eff.StaticAddresses) > 0 && p.Max > len(g.eff.StaticAddresses):
			notes = append(notes, g.note("the operator's max %d is more than the %d static addresses: dropped", o.Max.Value, len(g.eff.StaticAddresses)))
			o.Max = nil
			continue
		}
		break
	}
	return append(notes, g.fitGoal(who)...)
}

// fitGoal clamps a pending desired size that the bounds in force no longer allow, or drops it
// when the bound it would be clamped to is the group's size already.
func (g *group) fitGoal(who string) []string {
	if !g.st.DesiredSet {
		return nil
	}
	lo, hi := g.eff.Policy.Min, g.eff.Policy.Max
	d := g.st.Desired
	to, bound := d, ""
	switch {
	case d > hi:
		to, bound = hi, fmt.Sprintf("above %s max %d", who, hi)
	case d < lo:
		to, bound = lo, fmt.Sprintf("below %s min %d", who, lo)
	default:
		return nil
	}
	if to == g.live() {
		g.st.DesiredSet = false
		return []string{g.note("desired size %d is %s, the group's size already: goal dropped", d, bound)}
	}
	g.st.Desired = to
	return []string{g.note("desired size %d is %s: clamped to %d", d, bound, to)}
}

// expireGoal drops an operator's goal the group did not reach in time.
func (g *group) expireGoal(now time.Time) {
	if !g.st.DesiredSet {
		return
	}
	if g.st.DesiredAt.IsZero() {
		// Set by a run that kept no time: the clock starts now.
		g.st.DesiredAt = now
		return
	}
	if limit := goalTimeout(g.eff.Interval); !now.Before(g.st.DesiredAt.Add(limit)) {
		g.st.DesiredSet = false
		g.note("desired size %d not reached within %s (the group has %d): goal dropped, the policy decides again", g.st.Desired, limit, g.live())
	}
}

// sources says where the values in force come from.
func (g *group) sources() spec.Sources {
	o := g.st.Overrides
	s := spec.Sources{Min: spec.SourceConfig, Max: spec.SourceConfig, Spec: spec.SourceConfig}
	if o.Spec != nil {
		s = spec.Sources{Min: spec.SourceUpdate, Max: spec.SourceUpdate, Spec: spec.SourceUpdate}
	}
	if o.Min != nil {
		s.Min = spec.SourceScale
	}
	if o.Max != nil {
		s.Max = spec.SourceScale
	}
	return s
}

// baseSpec is what bound overrides apply to: the operator's spec, else the config's.
func (g *group) baseSpec() spec.Group {
	if o := g.st.Overrides.Spec; o != nil {
		return o.Spec
	}
	return g.st.Spec
}

// setBound sets a bound override, or clears it when the value is the one it would override.
func setBound(b **BoundOverride, value, base, config int, at time.Time) {
	if value == base {
		*b = nil
		return
	}
	*b = &BoundOverride{Value: value, Config: config, At: at}
}

// scaleIntent applies a scale request under the intent rules and returns what else it
// changed.
func (g *group) scaleIntent(ctx workflow.Context, r spec.ScaleRequest) []string {
	now := workflow.Now(ctx)
	o := &g.st.Overrides
	var notes []string
	if r.Reset {
		if o.Min != nil || o.Max != nil {
			o.Min, o.Max = nil, nil
			g.refresh()
			from := "the config"
			if o.Spec != nil {
				from = "the spec of group update"
			}
			notes = append(notes, g.note("min and max back to %d and %d, from %s", g.eff.Policy.Min, g.eff.Policy.Max, from))
		}
		if g.st.DesiredSet {
			g.st.DesiredSet = false
			notes = append(notes, g.note("pending desired size %d dropped: the policy decides again", g.st.Desired))
		}
		if len(notes) == 0 {
			notes = append(notes, "nothing to reset: no min, max or desired size was set with group scale")
		}
		return append(notes, g.settle("the")...)
	}
	base := g.baseSpec().Policy
	if r.Min != nil {
		setBound(&o.Min, *r.Min, base.Min, g.st.Spec.Policy.Min, now)
	}
	if r.Max != nil {
		setBound(&o.Max, *r.Max, base.Max, g.st.Spec.Policy.Max, now)
	}
	if r.Desired != nil {
		g.st.Desired, g.st.DesiredSet, g.st.DesiredAt = *r.Desired, true, now
	}
	return append(notes, g.settle("the new")...)
}

// validateSpecUpdate checks a group update before anything is written.
func (g *group) validateSpecUpdate(_ workflow.Context, r spec.SpecRequest) error {
	switch {
	case g.st.Deleting:
		return fmt.Errorf("the group is being deleted")
	case r.Reset && r.Spec != nil:
		return fmt.Errorf("give a spec or reset, not both")
	case r.Reset && !g.intent:
		return fmt.Errorf("this run of group %s predates operator overrides; send the config's spec with group create instead", g.eff.Name)
	case r.Reset:
		return nil
	case r.Spec == nil:
		return fmt.Errorf("no spec given")
	}
	s := r.Spec
	switch {
	case s.Name != g.eff.Name:
		return fmt.Errorf("the spec is for group %q, not %q", s.Name, g.eff.Name)
	case s.Interval <= 0:
		return fmt.Errorf("the spec's reconciliation interval (%s) must be positive", s.Interval)
	case s.Policy.Min < 0 || s.Policy.Max < 1 || s.Policy.Min > s.Policy.Max:
		return fmt.Errorf("the spec's bounds (min %d, max %d) are not valid", s.Policy.Min, s.Policy.Max)
	case len(s.Hosts) == 0:
		return fmt.Errorf("the spec names no host")
	}
	return nil
}

// updateSpec runs an operator's spec instead of the config's, or goes back to the config's.
// It states the bounds too, so it replaces group scale's min and max.
func (g *group) updateSpec(ctx workflow.Context, r spec.SpecRequest) (spec.SpecResult, error) {
	if !g.intent {
		// Runs before the change knew no overrides: the spec replaced the config's, as the
		// spec signal did then.
		g.st.Spec = *r.Spec
		g.refresh()
		g.recordGroup(ctx)
		return spec.SpecResult{Source: spec.SourceConfig, Min: g.eff.Policy.Min, Max: g.eff.Policy.Max}, nil
	}
	o := &g.st.Overrides
	var notes []string
	if o.Min != nil || o.Max != nil {
		notes = append(notes, g.note("group update replaces group scale's min and max"))
		o.Min, o.Max = nil, nil
	}
	switch {
	case r.Reset || fingerprint(*r.Spec) == fingerprint(g.st.Spec):
		if o.Spec != nil {
			notes = append(notes, g.note("back to the config's spec"))
		}
		o.Spec = nil
	default:
		o.Spec = &SpecOverride{Spec: *r.Spec, Config: fingerprint(g.st.Spec), At: workflow.Now(ctx)}
		notes = append(notes, g.note("the operator's spec is in force instead of the config's"))
	}
	notes = append(notes, g.settle("the new")...)
	g.logger.Info("operator updated group spec", "group", g.eff.Name, "source", g.sources().Spec, "min", g.eff.Policy.Min, "max", g.eff.Policy.Max)
	g.recordGroup(ctx)
	return spec.SpecResult{Source: g.sources().Spec, Min: g.eff.Policy.Min, Max: g.eff.Policy.Max, Notes: notes}, nil
}

// takeNotes returns the notes gathered since the last evaluation and forgets them.
func (g *group) takeNotes() []string {
	n := g.st.Notes
	g.st.Notes = nil
	return n
}
