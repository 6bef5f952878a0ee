package activities

import (
	"context"

	"github.com/premiscale/premiscale/internal/metrics"
	"github.com/premiscale/premiscale/internal/policy"
)

// ReadChecks reads every check's metric over its window. A check whose read fails gets a
// reading with Err set rather than failing the activity: each check has its own onError rule.
func (a *Activities) ReadChecks(ctx context.Context, p ReadChecksParams) (map[string]policy.Reading, error) {
	out := make(map[string]policy.Reading, len(p.Checks))
	for _, c := range p.Checks {
		r, err := a.Metrics.Read(ctx, metrics.Request{Group: p.Group, Check: c, Exclude: p.Exclude, Running: p.Running})
		if err != nil {
			r = policy.Reading{Err: err.Error()}
			a.Logger.Warn("check could not be read", "group", p.Group, "check", c.Name, "error", err)
		}
		out[c.Name] = r
	}
	return out, nil
}
