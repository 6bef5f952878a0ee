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
	return nil
}

func (g *group) bounds(r spec.ScaleRequest) (lo, hi int) {
	lo, hi = g.st.Spec.Policy.Min, g.st.Spec.Policy.Max
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
	case len(g.st.Spec.StaticAddresses) > 0 && hi > len(g.st.Spec.StaticAddresses):
		return fmt.Errorf("max (%d) is more than the group's %d static addresses", hi, len(g.st.Spec.StaticAddresses))
	}
	return nil
}

func (g *group) scale(ctx workflow.Context, r spec.ScaleRequest) (spec.ScaleResult, error) {
	lo, hi := g.bounds(r)
	g.st.Spec.Policy.Min, g.st.Spec.Policy.Max = lo, hi
	if r.Desired != nil {
		g.st.Desired, g.st.DesiredSet = *r.Desired, true
	}
	g.logger.Info("operator scaled group", "group", g.st.Spec.Name, "min", lo, "max", hi, "desired", r.Desired)
	g.wake.SendAsync(struct{}{})
	return spec.ScaleResult{Min: lo, Max: hi, Current: g.live(), Desired: r.Desired}, nil
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
	return fmt.Errorf("instance %s is not a live instance of group %s", r.Instance, g.st.Spec.Name)
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
