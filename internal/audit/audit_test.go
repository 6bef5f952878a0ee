package audit

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/state"
)

func ins(pairs ...string) []Instance {
	var out []Instance
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, Instance{Name: pairs[i], State: pairs[i+1]})
	}
	return out
}

func TestCompare(t *testing.T) {
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	agreeing := Report{
		Workflow: ins("g-2", "running", "g-3", "running"),
		Records:  ins("g-1", "terminated", "g-2", "running", "g-3", "running"),
		Domains:  ins("g-2", "running", "g-3", "running"),
		Volumes:  ins("g-2", "g-2.qcow2", "g-3", "g-3.qcow2"),
		Events: []state.ScalingEvent{
			{Key: "a/r/1", At: at, From: 0, To: 2, Action: "scale-out", Reason: "below min"},
			{Key: "a/r/2", At: at.Add(time.Minute), From: 2, To: 3, Action: "scale-out", Reason: "cpu 90 > 50"},
		},
	}
	tests := []struct {
		name   string
		change func(r *Report)
		want   []string // each anomaly, as String() begins
	}{
		{"agreeing records", func(*Report) {}, nil},
		{"an instance twice in libvirt", func(r *Report) { r.Domains = append(r.Domains, Instance{"g-2", "running"}) },
			[]string{"duplicated g-2: libvirt lists it twice"}},
		{"a domain the group does not track", func(r *Report) { r.Domains = append(r.Domains, Instance{"g-4", "running"}) },
			[]string{"orphaned g-4: libvirt has its domain"}},
		{"a live record the group does not track", func(r *Report) { r.Records = append(r.Records, Instance{"g-4", "launching"}) },
			[]string{"orphaned g-4: MySQL says launching"}},
		{"a running instance without a domain", func(r *Report) { r.Domains = r.Domains[:1] },
			[]string{"lost g-3: the group says running, libvirt has no domain"}},
		{"a running instance whose domain is off", func(r *Report) { r.Domains[1].State = "shutoff" },
			[]string{"lost g-3: the group says running, libvirt has a domain shutoff"}},
		{"a tracked instance MySQL ended", func(r *Report) { r.Records[2].State = "failed" },
			[]string{"mismatch g-3: the group tracks it (running) but MySQL says failed", "orphaned g-3: volume g-3.qcow2 is left"}},
		{"a tracked instance MySQL never heard of", func(r *Report) { r.Records = r.Records[:2] },
			[]string{"lost g-3: the group tracks it (running) but MySQL has no record"}},
		{"a retired instance's disk left behind", func(r *Report) { r.Volumes = append(r.Volumes, Instance{"g-1", "g-1.qcow2"}) },
			[]string{"orphaned g-1: volume g-1.qcow2 is left"}},
		{"one evaluation logged under two keys", func(r *Report) {
			e := r.Events[1]
			e.Key = "a/r/2-again"
			r.Events = append(r.Events, e)
		}, []string{"decision logged twice: at 2026-11-29T12:01:00Z: 2 → 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := agreeing
			r.Workflow, r.Records, r.Domains, r.Volumes = slices.Clone(r.Workflow), slices.Clone(r.Records), slices.Clone(r.Domains), slices.Clone(r.Volumes)
			r.Events = slices.Clone(r.Events)
			tt.change(&r)
			got := Compare(r)
			if len(got) != len(tt.want) {
				t.Fatalf("Compare = %v, want %d anomalies %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i].String(), w) {
					t.Errorf("anomaly %d = %q, want it to begin %q", i, got[i], w)
				}
			}
		})
	}
}

func TestSettled(t *testing.T) {
	if !(Report{Workflow: ins("g-1", "running")}).Settled() {
		t.Error("all running is settled")
	}
	if (Report{Workflow: ins("g-1", "running", "g-2", "launching")}).Settled() {
		t.Error("an instance launching is not settled")
	}
}
