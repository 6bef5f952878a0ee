// Package drift finds what went astray between a host's libvirt, the state database and the
// group workflows, and corrects it. A sweep of one host looks at the domains carrying
// PremiScale's metadata and the instance volumes in the groups' pools:
//
//   - an orphan — a managed domain or volume with no live instance behind it (a crash between
//     two steps, an operator's leftover, a host that came back after its instances were
//     replaced) — is removed once it has been an orphan for the grace period, or only reported
//     when drift is "report";
//   - a domain named like a live instance but without PremiScale's metadata is never touched,
//     and is reported;
//   - a domain whose metadata names a group this installation's state database does not know
//     (deleted groups included) belongs to another installation sharing the host: left alone.
//
// Every correction and report is a row in the group's decision log. An instance whose domain
// vanished or was shut off by hand is its InstanceWorkflow's to replace (its health checks).
package drift

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
)

// Hypervisor is what a sweep needs of the host's libvirt; *libvirt.Conn implements it.
type Hypervisor interface {
	ListManagedDomains(ctx context.Context) ([]libvirt.Domain, error)
	LookupDomain(ctx context.Context, name string) (libvirt.Domain, bool, error)
	RemoveDomain(ctx context.Context, name string, grace time.Duration) (bool, error)
	ListVolumes(ctx context.Context, pool string) ([]string, error)
	DeleteVolume(ctx context.Context, pool, name string) (bool, error)
}

// Store is what a sweep reads and writes in the state database; *state.Store implements it.
type Store interface {
	ListGroups(ctx context.Context) ([]state.GroupRecord, error)
	ListInstancesOnHost(ctx context.Context, host string) ([]state.Instance, error)
	GetInstance(ctx context.Context, name string) (state.Instance, bool, error)
	RecordScalingEvent(ctx context.Context, e state.ScalingEvent) (bool, error)
}

// Workflows says which instances a group's workflow still owns; nil leaves the workflows out
// (MySQL alone decides).
type Workflows interface {
	Instances(ctx context.Context, group string) (names []string, running bool, err error)
}

// Modes of a sweep.
const (
	Remove = "remove"
	Report = "report"
)

// Sweeper sweeps one host.
type Sweeper struct {
	Host      string
	Hyper     Hypervisor
	Store     Store
	Workflows Workflows
	// Grace is how long something stays an orphan before it is removed (or reported).
	Grace time.Duration
	// Mode is Remove or Report.
	Mode   string
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// firstSeen remembers when each orphan was first found; reported, what was reported.
	// A worker restart forgets both: an orphan then waits the grace period again.
	firstSeen map[string]time.Time
	reported  map[string]bool
}

// Finding is one thing a sweep found.
type Finding struct {
	Group, Name string
	// Kind is "domain", "volume" or "foreign domain".
	Kind string
	// Pool holds a volume.
	Pool   string
	Action string // "removed", "reported", or "" while the grace period runs
	Reason string
}

// key names what was found across sweeps.
func (f Finding) key() string {
	switch f.Kind {
	case "domain":
		return "domain/" + f.Name
	case "volume":
		return "volume/" + f.Pool + "/" + f.Name
	default:
		return "foreign/" + f.Name
	}
}

// Run sweeps every period until ctx ends.
func (s *Sweeper) Run(ctx context.Context, period time.Duration) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	var failing bool
	for {
		_, err := s.Sweep(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			failing = true
			s.Logger.Warn("drift sweep failed", "host", s.Host, "error", err)
		case err == nil && failing:
			failing = false
			s.Logger.Info("drift sweep works again", "host", s.Host)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Period is how often a host is swept: four times per grace period, at least every 5 s and at
// most every 5 minutes.
func Period(grace time.Duration) time.Duration {
	return min(max(grace/4, 5*time.Second), 5*time.Minute)
}

// instanceName is "<group>-<n>"; its volumes are "<instance>.qcow2" and "<instance>-seed.iso".
var volumeName = regexp.MustCompile(`^(.+-[0-9]+)(\.qcow2|-seed\.iso)$`)

// Sweep looks at the host once and acts on what it finds.
func (s *Sweeper) Sweep(ctx context.Context) ([]Finding, error) {
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	if s.firstSeen == nil {
		s.firstSeen, s.reported = map[string]time.Time{}, map[string]bool{}
	}
	groups, pools, err := s.groups(ctx)
	if err != nil {
		return nil, err
	}
	live, err := s.Store.ListInstancesOnHost(ctx, s.Host)
	if err != nil {
		return nil, err
	}
	liveHere := map[string]bool{}
	for _, in := range live {
		liveHere[in.Name] = true
	}
	owned := map[string]bool{} // by the group workflows
	var findings []Finding

	doms, err := s.Hyper.ListManagedDomains(ctx)
	if err != nil {
		return nil, err
	}
	domains := map[string]bool{}
	seen := map[string]bool{}
	for _, d := range doms {
		domains[d.Name] = true
		if liveHere[d.Name] || !slices.Contains(groups, d.Group) {
			// A group this installation does not know is another installation's to sweep.
			continue
		}
		keep, why, err := s.keep(ctx, d.Group, d.Name, owned)
		if err != nil {
			return findings, err
		}
		if keep {
			continue
		}
		f := Finding{Group: d.Group, Name: d.Name, Kind: "domain", Reason: why}
		key := f.key()
		seen[key] = true
		if s.due(key, now) {
			if s.Mode == Remove {
				if _, err := s.Hyper.RemoveDomain(ctx, d.Name, 0); err != nil {
					return findings, fmt.Errorf("remove orphan domain %s on host %s: %w", d.Name, s.Host, err)
				}
				f.Action = "removed"
			} else if !s.reported[key] {
				f.Action = "reported"
			}
		}
		findings = append(findings, s.log(ctx, f, now)...)
	}

	for _, pool := range pools {
		vols, err := s.Hyper.ListVolumes(ctx, pool)
		if err != nil {
			continue // a pool this host does not have
		}
		for _, v := range vols {
			m := volumeName.FindStringSubmatch(v)
			if m == nil || liveHere[m[1]] || domains[m[1]] {
				continue
			}
			group := groupOf(m[1], groups)
			if group == "" {
				continue // not named after an instance of a group PremiScale knows
			}
			keep, why, err := s.keep(ctx, group, m[1], owned)
			if err != nil {
				return findings, err
			}
			if keep {
				continue
			}
			f := Finding{Group: group, Name: v, Pool: pool, Kind: "volume", Reason: why}
			key := f.key()
			seen[key] = true
			// The volumes of an orphan domain removed earlier have been orphans as long as it.
			if first, ok := s.firstSeen["domain/"+m[1]]; ok {
				if cur, ok := s.firstSeen[key]; !ok || first.Before(cur) {
					s.firstSeen[key] = first
				}
			}
			if s.due(key, now) {
				if s.Mode == Remove {
					if _, err := s.Hyper.DeleteVolume(ctx, pool, v); err != nil {
						return findings, fmt.Errorf("remove orphan volume %s/%s on host %s: %w", pool, v, s.Host, err)
					}
					f.Action = "removed"
				} else if !s.reported[key] {
					f.Action = "reported"
				}
			}
			findings = append(findings, s.log(ctx, f, now)...)
		}
	}

	for _, in := range live {
		d, found, err := s.Hyper.LookupDomain(ctx, in.Name)
		if err != nil {
			return findings, err
		}
		if !found || !d.Foreign {
			continue
		}
		f := Finding{Group: in.Group, Name: in.Name, Kind: "foreign domain",
			Reason: "a domain with the name of live instance " + in.Name + " has no PremiScale metadata: not ours, left alone"}
		key := f.key()
		seen[key] = true
		if !s.reported[key] {
			f.Action = "reported"
		}
		findings = append(findings, s.log(ctx, f, now)...)
	}

	// What is no longer found starts its grace period afresh if it comes back.
	for key := range s.firstSeen {
		if !seen[key] {
			delete(s.firstSeen, key)
			delete(s.reported, key)
		}
	}
	return findings, nil
}

// keep says whether name is still wanted: live in MySQL on this host, or owned by its group's
// workflow. Otherwise it says why it is an orphan.
func (s *Sweeper) keep(ctx context.Context, group, name string, owned map[string]bool) (bool, string, error) {
	in, found, err := s.Store.GetInstance(ctx, name)
	if err != nil {
		return false, "", err
	}
	if found && !spec.IsEnded(in.State) && in.Host == s.Host {
		return true, "", nil
	}
	if s.Workflows != nil && group != "" {
		if _, asked := owned["group/"+group]; !asked {
			names, running, err := s.Workflows.Instances(ctx, group)
			if err != nil {
				return false, "", fmt.Errorf("ask group %s which instances it owns: %w", group, err)
			}
			owned["group/"+group] = running
			for _, n := range names {
				owned[n] = true
			}
		}
		if owned[name] {
			return true, "", nil
		}
	}
	switch {
	case !found:
		return false, "no instance of that name is recorded", nil
	case spec.IsEnded(in.State):
		return false, fmt.Sprintf("instance %s is %s", name, in.State), nil
	default:
		return false, fmt.Sprintf("instance %s lives on host %s", name, in.Host), nil
	}
}

// due starts an orphan's grace period when it is first found and says whether it has run out.
func (s *Sweeper) due(key string, now time.Time) bool {
	first, ok := s.firstSeen[key]
	if !ok {
		first = now
		s.firstSeen[key] = now
	}
	return now.Sub(first) >= s.Grace
}

// log writes a finding that was acted on (or reported for the first time) to the group's
// decision log and the worker's log, once.
func (s *Sweeper) log(ctx context.Context, f Finding, now time.Time) []Finding {
	if f.Action == "" {
		return []Finding{f}
	}
	key := f.key()
	first := s.firstSeen[key]
	if first.IsZero() {
		first = now
	}
	what := f.Kind + " " + f.Name
	if f.Pool != "" {
		what = f.Kind + " " + f.Pool + "/" + f.Name
	}
	reason := fmt.Sprintf("drift on host %s: %s %s: %s", s.Host, what, f.Action, f.Reason)
	if f.Kind != "foreign domain" {
		// (a foreign domain is reported once, with no grace period)
		reason = fmt.Sprintf("drift on host %s: orphan %s %s: %s (found %s ago)", s.Host, what, f.Action, f.Reason, now.Sub(first).Round(time.Second))
	}
	s.Logger.Warn("drift", "host", s.Host, "kind", f.Kind, "name", f.Name, "action", f.Action, "reason", f.Reason)
	_, err := s.Store.RecordScalingEvent(ctx, state.ScalingEvent{
		Key:   fmt.Sprintf("drift/%s/%s/%d", s.Host, key, first.UnixNano()),
		Group: f.Group, At: now, Action: "drift", Outcome: f.Action, Reason: reason,
	})
	if err != nil {
		s.Logger.Warn("could not record drift in the decision log", "host", s.Host, "name", f.Name, "error", err)
		return []Finding{f}
	}
	s.reported[key] = true
	return []Finding{f}
}

// groups returns the groups MySQL knows (deleted ones too: their leftovers are orphans) and the
// storage pools their images are in.
func (s *Sweeper) groups(ctx context.Context) ([]string, []string, error) {
	recs, err := s.Store.ListGroups(ctx)
	if err != nil {
		return nil, nil, err
	}
	var names, pools []string
	for _, g := range recs {
		names = append(names, g.Name)
		var gs spec.Group
		if json.Unmarshal(g.Spec, &gs) == nil && gs.Launch.ImagePool != "" && !slices.Contains(pools, gs.Launch.ImagePool) {
			pools = append(pools, gs.Launch.ImagePool)
		}
	}
	slices.Sort(pools)
	return names, pools, nil
}

// groupOf finds the group an instance name belongs to: the longest known group name that,
// followed by "-<n>", is the name.
func groupOf(instance string, groups []string) string {
	best := ""
	for _, g := range groups {
		if strings.HasPrefix(instance, g+"-") && len(g) > len(best) {
			if rest := instance[len(g)+1:]; rest != "" && strings.Trim(rest, "0123456789") == "" {
				best = g
			}
		}
	}
	return best
}
