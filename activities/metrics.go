package activities

import (
	"context"
	"fmt"
)

// metricFields maps a policy metric name to its InfluxDB field.
var metricFields = map[string]string{
	"cpu":    "cpu_percent",
	"memory": "memory_percent",
}

// QueryGroupMetrics reads the group's mean utilisation per metric over the window.
// A metric with no samples is left out of Values: the decision treats that as missing data.
func (a *Activities) QueryGroupMetrics(ctx context.Context, q MetricsQuery) (MetricsResult, error) {
	res := MetricsResult{Values: map[string]float64{}, Instances: map[string]int{}}
	for _, name := range q.Metrics {
		field, ok := metricFields[name]
		if !ok {
			return res, fmt.Errorf("query metrics of group %s: unknown metric %q", q.Group, name)
		}
		m, err := a.Metrics.GroupMean(ctx, q.Group, field, q.Window, q.Exclude)
		if err != nil {
			return res, fmt.Errorf("query %s of group %s over %s: %w", name, q.Group, q.Window, err)
		}
		res.Instances[name] = m.Instances
		if m.Instances > 0 {
			res.Values[name] = m.Value
		}
	}
	return res, nil
}
