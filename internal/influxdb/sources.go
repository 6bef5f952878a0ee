package influxdb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/premiscale/premiscale/internal/metrics"
	"github.com/premiscale/premiscale/internal/policy"
)

// Sources are the metric sources InfluxDB serves: the group's mean cpu and memory utilisation,
// written by the collector, and the users' own Flux queries.
func Sources(c *Client) metrics.Sources {
	return metrics.Sources{
		policy.MetricCPU:    groupMean{c, FieldCPUPercent},
		policy.MetricMemory: groupMean{c, FieldMemoryPercent},
		policy.MetricQuery:  fluxQuery{c},
	}
}

// groupMean reads a built-in metric: the mean of a collector field across the group's
// instances over the check's window.
type groupMean struct {
	c     *Client
	field string
}

func (m groupMean) Read(ctx context.Context, r metrics.Request) (policy.Reading, error) {
	g, err := m.c.GroupMean(ctx, r.Group, m.field, r.Check.Window, r.Exclude)
	if err != nil {
		return policy.Reading{}, err
	}
	return policy.Reading{
		Value: g.Value, HasData: g.Instances > 0, Newest: g.Newest,
		Partial: g.Instances > 0 && g.Instances < r.Running,
	}, nil
}

// fluxQuery runs a query check's Flux template.
type fluxQuery struct{ c *Client }

func (q fluxQuery) Read(ctx context.Context, r metrics.Request) (policy.Reading, error) {
	flux, err := RenderQuery(r.Check.Query, r.Group, r.Check.Window)
	if err != nil {
		return policy.Reading{}, err
	}
	res, err := q.c.Query(ctx, flux)
	if err != nil {
		return policy.Reading{}, err
	}
	if res.HasData && res.Time.IsZero() && r.Check.Staleness > 0 {
		// Stamping the result with the time of the query would make a point an hour old look
		// fresh; only the data's own time can be judged against staleness.
		return policy.Reading{}, fmt.Errorf("the query's result has no _time, so its age cannot be judged against staleness %s: "+
			"keep the time of the data in the result (selectors such as last() and max() keep it; aggregates such as mean() drop it, see the README)",
			r.Check.Staleness)
	}
	return policy.Reading{Value: res.Value, HasData: res.HasData, Newest: res.Time}, nil
}

// RenderQuery expands a query check's template for a group: {{.Group}} is the group's name and
// {{.Window}} the window as a Flux duration literal ("5m", "1h30m"), so `range(start:
// -{{.Window}})` reads the window. A key that does not exist is an error, not an empty string.
func RenderQuery(query, group string, window time.Duration) (string, error) {
	t, err := template.New("query").Option("missingkey=error").Parse(query)
	if err != nil {
		return "", fmt.Errorf("parse query template: %w", err)
	}
	var b strings.Builder
	if err := t.Execute(&b, map[string]any{"Group": group, "Window": fluxDuration(window)}); err != nil {
		return "", fmt.Errorf("execute query template: %w", err)
	}
	if strings.TrimSpace(b.String()) == "" {
		return "", errors.New("the query template renders to nothing")
	}
	return b.String(), nil
}

// fluxDuration writes d as a Flux duration literal. Go's own form does not do: "1.5s" and
// "5m0s" are not how Flux spells 1500ms and 5m.
func fluxDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}, {time.Microsecond, "us"}, {time.Nanosecond, "ns"}} {
		if n := d / u.unit; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10) + u.name)
			d -= n * u.unit
		}
	}
	return b.String()
}
