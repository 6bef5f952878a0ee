package influxdb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// GroupMetric is a group's mean utilisation over a window.
type GroupMetric struct {
	// Value is the mean across instances of each instance's mean, so an instance sampled more
	// often does not weigh more.
	Value float64
	// Instances is how many instances had samples; 0 means no data in the window.
	Instances int
	// Points is how many samples went into Value.
	Points int
	// Newest is the time of the newest sample.
	Newest time.Time
}

// GroupMean returns the mean of field (FieldCPUPercent or FieldMemoryPercent) over the group's
// instances in the last window, leaving out the instances in exclude (those booting or
// retiring, say). A window with no samples is not an error: it gives Instances 0.
func (c *Client) GroupMean(ctx context.Context, group, field string, window time.Duration, exclude []string) (GroupMetric, error) {
	if window <= 0 {
		return GroupMetric{}, fmt.Errorf("mean %s of group %s: window %s is not positive", field, group, window)
	}
	flux := groupMeanFlux(c.bucket, group, field, window, exclude)
	res, err := c.querier.Query(ctx, flux)
	if err != nil {
		return GroupMetric{}, fmt.Errorf("mean %s of group %s over %s from InfluxDB %s: %w", field, group, window, c.baseURL, err)
	}
	defer res.Close()

	var m GroupMetric
	var sumOfMeans float64
	for res.Next() {
		rec := res.Record()
		sum, okSum := rec.ValueByKey("sum").(float64)
		count, okCount := rec.ValueByKey("count").(int64)
		newest, okNewest := rec.ValueByKey("newest").(time.Time)
		if !okSum || !okCount || !okNewest {
			return GroupMetric{}, fmt.Errorf("mean %s of group %s from InfluxDB %s: unexpected row %v", field, group, c.baseURL, rec.Values())
		}
		if count == 0 {
			continue
		}
		m.Instances++
		m.Points += int(count)
		sumOfMeans += sum / float64(count)
		if newest.After(m.Newest) {
			m.Newest = newest
		}
	}
	if err := res.Err(); err != nil {
		return GroupMetric{}, fmt.Errorf("mean %s of group %s over %s from InfluxDB %s: %w", field, group, window, c.baseURL, err)
	}
	if m.Instances > 0 {
		m.Value = sumOfMeans / float64(m.Instances)
	}
	return m, nil
}

// groupMeanFlux builds the query GroupMean runs: per instance, the sum, count and newest time
// of its samples. Averaging across instances happens in Go, which also sees the counts.
// Every value from outside goes in through fluxString.
func groupMeanFlux(bucket, group, field string, window time.Duration, exclude []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "from(bucket: %s)\n", fluxString(bucket))
	fmt.Fprintf(&b, "  |> range(start: -%dns)\n", window.Nanoseconds())
	fmt.Fprintf(&b, "  |> filter(fn: (r) => r._measurement == %s and r._field == %s and r.%s == %s)\n",
		fluxString(MeasurementDomain), fluxString(field), TagGroup, fluxString(group))
	if len(exclude) > 0 {
		conds := make([]string, len(exclude))
		for i, name := range exclude {
			conds[i] = fmt.Sprintf("r.%s != %s", TagInstance, fluxString(name))
		}
		fmt.Fprintf(&b, "  |> filter(fn: (r) => %s)\n", strings.Join(conds, " and "))
	}
	fmt.Fprintf(&b, "  |> group(columns: [%s])\n", fluxString(TagInstance))
	b.WriteString("  |> reduce(identity: {sum: 0.0, count: 0, newest: time(v: 0)}, fn: (r, accumulator) => ({\n")
	b.WriteString("       sum: accumulator.sum + float(v: r._value),\n")
	b.WriteString("       count: accumulator.count + 1,\n")
	b.WriteString("       newest: if r._time > accumulator.newest then r._time else accumulator.newest}))\n")
	return b.String()
}

// fluxString returns s as a Flux string literal. Besides quotes and backslashes, "$" is escaped
// (as the byte \x24) because "${" starts an interpolation; Flux rejects a bare "\$".
func fluxString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '$':
			b.WriteString(`\x24`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// QueryResult is the one number a user's Flux query returned.
type QueryResult struct {
	Value float64
	// HasData is false when the query returned no rows.
	HasData bool
	// Time is the row's _time, the time of the data; zero when the query dropped the column
	// (aggregates such as mean() do).
	Time time.Time
}

// Query runs a user's Flux query that yields a single number, and returns it with the time of
// its data when the result keeps _time. A query that yields no rows has no data; more than one
// row, or a value that is not a number, is an error.
func (c *Client) Query(ctx context.Context, flux string) (QueryResult, error) {
	res, err := c.querier.Query(ctx, flux)
	if err != nil {
		return QueryResult{}, fmt.Errorf("flux query on InfluxDB %s: %w", c.baseURL, err)
	}
	defer res.Close()
	var out QueryResult
	rows := 0
	for res.Next() {
		rows++
		if rows > 1 {
			continue
		}
		rec := res.Record()
		v, err := toFloat(rec.Value())
		if err != nil {
			return QueryResult{}, fmt.Errorf("flux query on InfluxDB %s: _value: %w", c.baseURL, err)
		}
		out.Value, out.HasData = v, true
		if t, ok := rec.ValueByKey("_time").(time.Time); ok {
			out.Time = t
		}
	}
	if err := res.Err(); err != nil {
		return QueryResult{}, fmt.Errorf("flux query on InfluxDB %s: %w", c.baseURL, err)
	}
	if rows > 1 {
		return QueryResult{}, fmt.Errorf("flux query on InfluxDB %s returned %d rows, want one number (end it with an aggregate such as group() |> mean())", c.baseURL, rows)
	}
	return out, nil
}

func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case int64:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case nil:
		return 0, errors.New("no value (is there a _value column?)")
	default:
		return 0, fmt.Errorf("%v (%T) is not a number", v, v)
	}
}
