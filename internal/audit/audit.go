// Package audit compares what the three records of a group say about its instances — the
// group's workflow (group status), MySQL and libvirt — instance by instance, and its decision
// log row by row. Outage and chaos tests run it once a group has settled: any difference is an
// instance duplicated, orphaned or lost, or a decision recorded twice.
package audit

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
)

// Instance is one instance as one record shows it.
type Instance struct {
	Name  string
	State string
}

// Report is the three records of one group at one moment.
type Report struct {
	Group string
	// Workflow is the instances the group tracks (group status).
	Workflow []Instance
	// Records is every instance MySQL has for the group, ended ones too.
	Records []Instance
	// Domains is every libvirt domain of the group, on every host, with libvirt's state.
	Domains []Instance
	// Volumes are the volumes (overlay and seed) found in the pool for the instances MySQL
	// knows: Name is the instance, State the volume's name.
	Volumes []Instance
	// Events is the group's decision log.
	Events []state.ScalingEvent
}

// An Anomaly is one difference between the records.
type Anomaly struct {
	Instance string
	// Kind is duplicated, orphaned, lost, mismatch or decision logged twice.
	Kind   string
	Detail string
}

func (a Anomaly) String() string {
	if a.Instance == "" {
		return fmt.Sprintf("%s: %s", a.Kind, a.Detail)
	}
	return fmt.Sprintf("%s %s: %s", a.Kind, a.Instance, a.Detail)
}

// Anomaly kinds.
const (
	Duplicated = "duplicated"
	Orphaned   = "orphaned"
	Lost       = "lost"
	Mismatch   = "mismatch"
	TwiceInLog = "decision logged twice"
)

// Compare lists every difference between r's records, for a group that has settled (nothing
// launching or retiring; a group still moving differs for a while by design):
//   - no instance appears twice in any record;
//   - every instance the group tracks has a live MySQL record, and a running one a running
//     domain and a running record (else it is lost, or the records disagree);
//   - every live MySQL record and every domain belongs to an instance the group tracks (else
//     it is orphaned), and an instance MySQL says ended has no volume left;
//   - no decision is in the log twice (the same evaluation under two keys).
func Compare(r Report) []Anomaly {
	var out []Anomaly
	add := func(name, kind, format string, args ...any) {
		out = append(out, Anomaly{Instance: name, Kind: kind, Detail: fmt.Sprintf(format, args...)})
	}
	workflow := index(r.Workflow, "the group's status", add)
	records := index(r.Records, "MySQL", add)
	domains := index(r.Domains, "libvirt", add)

	for _, in := range r.Workflow {
		rec, recorded := records[in.Name]
		dom, defined := domains[in.Name]
		switch {
		case !recorded:
			add(in.Name, Lost, "the group tracks it (%s) but MySQL has no record of it", in.State)
		case spec.IsEnded(rec.State):
			add(in.Name, Mismatch, "the group tracks it (%s) but MySQL says %s", in.State, rec.State)
		case in.State == spec.StateRunning && rec.State != spec.StateRunning:
			add(in.Name, Mismatch, "the group says running, MySQL says %s", rec.State)
		}
		if in.State == spec.StateRunning && (!defined || dom.State != string(libvirt.StateRunning)) {
			state := "no domain"
			if defined {
				state = "a domain " + dom.State
			}
			add(in.Name, Lost, "the group says running, libvirt has %s", state)
		}
	}
	for _, rec := range r.Records {
		if _, tracked := workflow[rec.Name]; tracked {
			continue
		}
		if !spec.IsEnded(rec.State) {
			add(rec.Name, Orphaned, "MySQL says %s but the group does not track it", rec.State)
		}
	}
	for _, dom := range r.Domains {
		if _, tracked := workflow[dom.Name]; !tracked {
			add(dom.Name, Orphaned, "libvirt has its domain (%s) but the group does not track it", dom.State)
		}
	}
	for _, vol := range r.Volumes {
		if rec, ok := records[vol.Name]; ok && spec.IsEnded(rec.State) {
			add(vol.Name, Orphaned, "volume %s is left of an instance MySQL says is %s", vol.State, rec.State)
		}
	}
	out = append(out, twiceLogged(r.Events)...)
	return out
}

// index maps names to instances, reporting names that appear twice.
func index(ins []Instance, where string, add func(name, kind, format string, args ...any)) map[string]Instance {
	m := make(map[string]Instance, len(ins))
	for _, in := range ins {
		if _, dup := m[in.Name]; dup {
			add(in.Name, Duplicated, "%s lists it twice", where)
		}
		m[in.Name] = in
	}
	return m
}

// twiceLogged finds decisions in the log twice: two rows under one key, or two rows for the
// same evaluation (the same time, sizes, action and reason) under different keys.
func twiceLogged(events []state.ScalingEvent) []Anomaly {
	var out []Anomaly
	keys := map[string]bool{}
	seen := map[string]bool{}
	for _, e := range events {
		if keys[e.Key] {
			out = append(out, Anomaly{Kind: TwiceInLog, Detail: fmt.Sprintf("two rows with key %s", e.Key)})
		}
		keys[e.Key] = true
		sig := fmt.Sprintf("%s|%d→%d|%s|%s", e.At.UTC().Format(time.RFC3339Nano), e.From, e.To, e.Action, e.Reason)
		if seen[sig] {
			out = append(out, Anomaly{Kind: TwiceInLog, Detail: fmt.Sprintf("at %s: %d → %d, %s", e.At.UTC().Format(time.RFC3339), e.From, e.To, e.Reason)})
		}
		seen[sig] = true
	}
	return out
}

// Sources are where Collect reads a group's records.
type Sources struct {
	// Status is the group's status, as `premiscale group status` shows it.
	Status func(ctx context.Context, group string) (spec.GroupStatus, error)
	Store  *state.Store
	// Hosts are the group's hosts' libvirt connections; Pool is the pool its volumes are in.
	Hosts []*libvirt.Conn
	Pool  string
}

// Collect reads the three records of group.
func Collect(ctx context.Context, src Sources, group string) (Report, error) {
	r := Report{Group: group}
	st, err := src.Status(ctx, group)
	if err != nil {
		return r, err
	}
	for _, in := range st.Instances {
		r.Workflow = append(r.Workflow, Instance{Name: in.Name, State: in.State})
	}
	recs, err := src.Store.ListInstances(ctx, group, true)
	if err != nil {
		return r, err
	}
	for _, rec := range recs {
		r.Records = append(r.Records, Instance{Name: rec.Name, State: rec.State})
	}
	for _, conn := range src.Hosts {
		doms, err := conn.ListGroupDomains(ctx, group)
		if err != nil {
			return r, err
		}
		for _, d := range doms {
			r.Domains = append(r.Domains, Instance{Name: d.Name, State: string(d.State)})
		}
		for _, rec := range recs {
			for _, vol := range []string{rec.Name + ".qcow2", rec.Name + "-seed.iso"} {
				ok, err := conn.VolumeExists(ctx, src.Pool, vol)
				if err != nil {
					return r, err
				}
				if ok {
					r.Volumes = append(r.Volumes, Instance{Name: rec.Name, State: vol})
				}
			}
		}
	}
	if r.Events, err = src.Store.ListScalingEvents(ctx, group, time.Time{}); err != nil {
		return r, err
	}
	return r, nil
}

// Settled says whether every instance the group tracks is running: the moment to Compare.
func (r Report) Settled() bool {
	return !slices.ContainsFunc(r.Workflow, func(in Instance) bool { return in.State != spec.StateRunning })
}

// Names lists the instances in a record, sorted, for messages.
func Names(ins []Instance) string {
	var names []string
	for _, in := range ins {
		names = append(names, in.Name+"("+in.State+")")
	}
	slices.Sort(names)
	return "[" + strings.Join(names, " ") + "]"
}

// StatusOf is a Sources.Status that asks the group's workflow through ctl.
func StatusOf(ctl *groupctl.Client) func(context.Context, string) (spec.GroupStatus, error) {
	return func(ctx context.Context, group string) (spec.GroupStatus, error) {
		s, err := ctl.Status(ctx, group)
		return s.GroupStatus, err
	}
}
