package main

import (
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
)

func TestImageHosts(t *testing.T) {
	tests := []struct {
		name   string
		hosts  []string
		images []state.HostImage
		want   string
	}{
		{"everywhere", []string{"a", "b"}, []state.HostImage{{Host: "a", State: state.ImageReady}, {Host: "b", State: state.ImageReady}}, "on a, b"},
		{"one copying, one missing", []string{"a", "b", "c"},
			[]state.HostImage{{Host: "a", State: state.ImageReady}, {Host: "b", State: state.ImageCopying}},
			"on a; copying to b; not yet on c (copied before the first launch there)"},
		{"nowhere", []string{"a"}, nil, "not yet on a (copied before the first launch there)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := groupctl.Status{GroupStatus: spec.GroupStatus{Hosts: tt.hosts}, Images: tt.images}
			if got := imageHosts(s); got != tt.want {
				t.Errorf("imageHosts = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRollProgress(t *testing.T) {
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.Local)
	tests := []struct {
		name string
		roll spec.RollStatus
		want string
	}{
		{"going", spec.RollStatus{Active: true, Reason: "launch spec changed", Total: 6, Replaced: 2, StartedAt: at},
			"2 of 6 replaced (launch spec changed, started 2026-11-29 12:00:00)"},
		{"stopped", spec.RollStatus{Active: true, Reason: "operator: group roll", Total: 3, Replaced: 1, StartedAt: at, Stopped: "web-5 failed: boot timeout"},
			"stopped after 1 of 3 replaced (operator: group roll, started 2026-11-29 12:00:00): web-5 failed: boot timeout; the old instances are kept"},
		{"done", spec.RollStatus{Reason: "operator: group roll", Total: 3, Replaced: 3, StartedAt: at},
			"done: 3 of 3 replaced (operator: group roll, started 2026-11-29 12:00:00)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rollProgress(tt.roll); got != tt.want {
				t.Errorf("rollProgress = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPoolSummary(t *testing.T) {
	tests := []struct {
		name string
		pool spec.PoolStatus
		want string
	}{
		{"filling", spec.PoolStatus{Size: 3, State: spec.PoolSaved, Ready: 2, Warming: 1, Taken: 5},
			"2 of 3 ready (saved), 1 warming; 5 taken so far"},
		{"reused", spec.PoolStatus{Size: 2, State: spec.PoolStopped, Ready: 2, ReuseOnScaleIn: true},
			"2 of 2 ready (stopped); scale-ins return instances to it; 0 taken so far"},
		{"removed", spec.PoolStatus{Ready: 1, Taken: 1}, "1 ready, being retired (the pool was removed); 1 taken so far"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := poolSummary(tt.pool); got != tt.want {
				t.Errorf("poolSummary = %q, want %q", got, tt.want)
			}
		})
	}
}
