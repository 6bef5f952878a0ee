package config

import (
	"slices"
	"strings"

	"github.com/premiscale/premiscale/internal/spec"
)

// validateWarmPool checks a group's warmPool at path p. The pool counts toward maxNodes, so a
// pool larger than any maxNodes the group can have could never fill.
func validateWarmPool(r *report, p string, w WarmPool, s Scaling) {
	if w.Size < 0 {
		r.add(p+".size", "must not be negative, got %d", w.Size)
	}
	states := spec.PoolStates()
	if !slices.Contains(states, spec.PoolState(w.State)) {
		names := make([]string, len(states))
		for i, st := range states {
			names[i] = string(st)
		}
		r.add(p+".state", "unsupported state %q (allowed: %s)", w.State, strings.Join(names, ", "))
	}
	most := s.MaxNodes
	for _, sc := range s.Schedules {
		if sc.MaxNodes != nil {
			most = max(most, *sc.MaxNodes)
		}
	}
	if w.Size > most && r.ok(p+".size") {
		r.add(p+".size", "is %d, more than maxNodes (%d): pool members count toward maxNodes, so the pool could never fill", w.Size, most)
	}
}

// warmPoolSpec is the pool a group's workflow runs; a group without one gets the zero value,
// so its spec stays what it was before pools existed.
func warmPoolSpec(w WarmPool) spec.WarmPool {
	if w.Size <= 0 {
		return spec.WarmPool{}
	}
	return spec.WarmPool{Size: w.Size, State: spec.PoolState(w.State), ReuseOnScaleIn: w.ReuseOnScaleIn}
}
