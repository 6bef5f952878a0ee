package workflows

import (
	"errors"
	"fmt"

	"github.com/premiscale/premiscale/internal/spec"
	"go.temporal.io/sdk/workflow"
)

// registerHandlers sets up the status query and the operator updates. Validators run before
// anything is written to history, so a rejected request leaves no trace but its error.
func (g *group) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, spec.QueryStatus, func() (spec.GroupStatus, error) { return g.status(), nil }); err != nil {
		return fmt.Errorf("register status query: %w", err)
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, spec.UpdateScale, g.scale, workflow.UpdateHandlerOptions{Validator: g.validateScale})
	if err != nil {
		return fmt.Errorf("register %s update: %w", spec.UpdateScale, err)
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, spec.UpdateProtect, g.protect, workflow.UpdateHandlerOptions{Validator: g.validateProtect})
	if err != nil {
		return fmt.Errorf("register %s update: %w", spec.UpdateProtect, err)
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, spec.UpdateSpec, g.updateSpec, workflow.UpdateHandlerOptions{Validator: g.validateSpecUpdate})
	if err != nil {
		return fmt.Errorf("register %s update: %w", spec.UpdateSpec, err)
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, spec.UpdateRoll, g.roll, workflow.UpdateHandlerOptions{Validator: g.validateRoll})
	if err != nil {
		return fmt.Errorf("register %s update: %w", spec.UpdateRoll, err)
	}
	return nil
}

func (g *group) validateRoll(_ workflow.Context, _ spec.RollRequest) error {
	switch {
	case !g.fleet:
		return errors.New("this run of the group predates rolling replacements; it takes them after its next continue-as-new")
	case g.st.Deleting:
		return errors.New("the group is being deleted")
	case g.live() == 0:
		return errors.New("the group has no instances to replace")
	}
	return nil
}

// roll replaces every instance: a new launch generation, and a roll of all the older ones.
func (g *group) roll(_ workflow.Context, r spec.RollRequest) (spec.RollStatus, error) {
	reason := r.Reason
	if reason == "" {
		reason = "operator: group roll"
	}
	g.st.Generation++
	g.startRoll(reason)
	g.wake.SendAsync(struct{}{})
	return *g.rollStatus(), nil
}

// bounds are the bounds in force once r is applied.
func (g *group) bounds(r spec.ScaleRequest) (lo, hi int) {
	lo, hi = g.eff.Policy.Min, g.eff.Policy.Max
	if r.Min != nil {
		lo = *r.Min
	}
	if r.Max != nil {
		hi = *r.Max
	}
	return lo, hi
}

func (g *group) validateScale(_ workflow.Context, r spec.ScaleRequest) error {
	if g.st.Deleting {
		return errors.New("the group is being deleted")
	}
	if r.Reset {
		if r.Desired != nil || r.Min != nil || r.Max != nil {
			return errors.New("reset clears min, max and a pending desired size: give it alone")
		}
		if !g.intent {
			return fmt.Errorf("this run of group %s predates operator overrides: it has nothing to reset", g.eff.Name)
		}
		return nil
	}
	if r.Desired == nil && r.Min == nil && r.Max == nil {
		return errors.New("nothing to change: give a desired size, min or max")
	}
	lo, hi := g.bounds(r)
	switch {
	case lo < 0:
		return fmt.Errorf("min (%d) must not be negative", lo)
	case hi < 1:
		return fmt.Errorf("max (%d) must be at least 1", hi)
	case lo > hi:
		return fmt.Errorf("min (%d) is greater than max (%d)", lo, hi)
	case r.Desired != nil && (*r.Desired < lo || *r.Desired > hi):
		return fmt.Errorf("desired size %d is outside [%d, %d]; change the bounds with --min/--max", *r.Desired, lo, hi)
	case len(g.eff.StaticAddresses) > 0 && hi > len(g.eff.StaticAddresses):
		return fmt.Errorf("max (%d) is more than the group's %d static addresses", hi, len(g.eff.StaticAddresses))
	}
	return nil
}

func (g *group) scale(ctx workflow.Context, r spec.ScaleRequest) (spec.ScaleResult, error) {
	var notes []string
	if g.intent {
		notes = g.scaleIntent(ctx, r)
	} else {
		// Runs before the change wrote the bounds into the spec and kept a goal until reached.
		lo, hi := g.bounds(r)
		g.st.Spec.Policy.Min, g.st.Spec.Policy.Max = lo, hi
		if r.Desired != nil {
			g.st.Desired, g.st.DesiredSet = *r.Desired, true
		}
		g.refresh()
	}
	g.logger.Info("operator scaled group", "group", g.eff.Name, "min", g.eff.Policy.Min, "max", g.eff.Policy.Max, "desired", r.Desired, "reset", r.Reset)
	g.wake.SendAsync(struct{}{})
	res := spec.ScaleResult{Min: g.eff.Policy.Min, Max: g.eff.Policy.Max, Current: g.live(), Sources: g.sources(), Notes: notes}
	if !g.intent {
		res.Desired = r.Desired
	} else if g.st.DesiredSet {
		d := g.st.Desired
		res.Desired = &d
	}
	return res, nil
}

func (g *group) validateProtect(_ workflow.Context, r spec.ProtectRequest) error {
	for _, ref := range g.st.Instances {
		if ref.Name == r.Instance {
			if !spec.IsLive(ref.State) {
				return fmt.Errorf("instance %s is %s", r.Instance, ref.State)
			}
			return nil
		}
	}
	return fmt.Errorf("instance %s is not a live instance of group %s", r.Instance, g.eff.Name)
}

func (g *group) protect(_ workflow.Context, r spec.ProtectRequest) (spec.InstanceRef, error) {
	for i := range g.st.Instances {
		if g.st.Instances[i].Name == r.Instance {
			g.st.Instances[i].Protected = r.Protected
			g.logger.Info("instance scale-in protection changed", "instance", r.Instance, "protected", r.Protected)
			return g.st.Instances[i], nil
		}
	}
	return spec.InstanceRef{}, fmt.Errorf("instance %s is gone", r.Instance)
}
