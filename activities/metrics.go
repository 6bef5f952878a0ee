package activities

import (
	"context"
	"fmt"
	"time"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/policy"
)

// metricFields maps a built-in check metric to its InfluxDB field.
var metricFields = map[string]string{
	policy.MetricCPU:    "cpu_percent",
	policy.MetricMemory: "memory_percent",
}

// ReadChecks reads every check's metric over its window. A check whose read fails gets a
// reading with Err set rather than failing the activity: each check has its own onError rule.
func (a *Activities) ReadChecks(ctx context.Context, p ReadChecksParams) (map[string]policy.Reading, error) {
	out := make(map[string]policy.Reading, len(p.Checks))
	for _, c := range p.Checks {
		r, err := a.readCheck(ctx, p, c)
		if err != nil {
			r = policy.Reading{Err: err.Error()}
			a.Logger.Warn("check could not be read", "group", p.Group, "check", c.Name, "error", err)
		}
		out[c.Name] = r
	}
	return out, nil
}

func (a *Activities) readCheck(ctx context.Context, p ReadChecksParams, c CheckQuery) (policy.Reading, error) {
	if c.Metric == policy.MetricQuery {
		flux, err := config.RenderQuery(c.Query, p.Group, c.Window)
		if err != nil {
			return policy.Reading{}, fmt.Errorf("check %s: %w", c.Name, err)
		}
		v, ok, err := a.Metrics.Query(ctx, flux)
		if err != nil {
			return policy.Reading{}, fmt.Errorf("check %s: run query: %w", c.Name, err)
		}
		// The query bounds its own time range, so what it returns is current by construction.
		return policy.Reading{Value: v, HasData: ok, Newest: time.Now()}, nil
	}
	field, ok := metricFields[c.Metric]
	if !ok {
		return policy.Reading{}, fmt.Errorf("check %s: unknown metric %q", c.Name, c.Metric)
	}
	m, err := a.Metrics.GroupMean(ctx, p.Group, field, c.Window, p.Exclude)
	if err != nil {
		return policy.Reading{}, fmt.Errorf("check %s: mean %s of group %s over %s: %w", c.Name, field, p.Group, c.Window, err)
	}
	return policy.Reading{
		Value: m.Value, HasData: m.Instances > 0, Newest: m.Newest,
		Partial: m.Instances > 0 && m.Instances < p.Running,
	}, nil
}
