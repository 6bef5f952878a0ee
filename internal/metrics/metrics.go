// Package metrics is where a check's metric comes from. Each metric name a check may use (cpu,
// memory, query) maps to a Source; the worker builds the map once (see influxdb.Sources) and
// the checks activity reads every check through it. A new kind of metric (Prometheus, say) is a
// new Source and a new name, with no change to the workflows.
package metrics

import (
	"context"
	"fmt"

	"github.com/premiscale/premiscale/internal/policy"
)

// Request asks for one check's reading for one group.
type Request struct {
	Group string
	Check policy.Check
	// Exclude lists instances whose samples must not count (still booting, retiring).
	Exclude []string
	// Running is how many instances should have reported; fewer makes a reading partial.
	Running int
}

// Source reads one kind of metric. A reading without data is not an error (HasData false);
// an error means the source could not be asked, and the check's onError rule applies.
type Source interface {
	Read(ctx context.Context, r Request) (policy.Reading, error)
}

// Sources maps metric names to their sources.
type Sources map[string]Source

// Read reads r's check from the source its metric names.
func (s Sources) Read(ctx context.Context, r Request) (policy.Reading, error) {
	src, ok := s[r.Check.Metric]
	if !ok {
		return policy.Reading{}, fmt.Errorf("check %s: no source for metric %q", r.Check.Name, r.Check.Metric)
	}
	reading, err := src.Read(ctx, r)
	if err != nil {
		return policy.Reading{}, fmt.Errorf("check %s: %w", r.Check.Name, err)
	}
	return reading, nil
}
