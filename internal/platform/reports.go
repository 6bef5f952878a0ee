package platform

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"time"

	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
)

// The snapshots the link puts in the outbox, and the outbox's limit. Decisions and instance
// changes are added by internal/state itself, in the writes that make them.

// reportStatus puts a group's status in the outbox whenever it differs from the one reported
// last (evaluation counts and decision repeats aside: they change every interval), and a
// removal when a group is gone. Snapshots of one group coalesce: the outbox holds at most one.
func (l *Link) reportStatus(ctx context.Context) {
	last := map[string][32]byte{}
	failing := false
	for {
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		list, err := l.cfg.Groups.List(lctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				l.log.Warn("cannot read group status for the platform; trying again", "error", err)
			}
			failing = true
		default:
			failing = false
			seen := map[string]bool{}
			added := false
			for _, s := range list {
				gs := s.GroupStatus
				seen[gs.Group] = true
				d := statusDigest(gs)
				if prev, ok := last[gs.Group]; ok && prev == d {
					continue
				}
				if l.snapshot(ctx, TypeGroupStatus, "group/"+gs.Group, gs) {
					last[gs.Group], added = d, true
				}
			}
			for g := range last {
				if !seen[g] && l.snapshot(ctx, TypeGroupRemoved, "group/"+g, GroupRemoved{Group: g}) {
					delete(last, g)
					added = true
				}
			}
			if added {
				l.notify()
			}
		}
		if !sleep(ctx, l.opts.StatusInterval) {
			return
		}
	}
}

// statusDigest identifies what a status says, without the counters that move every interval.
func statusDigest(s spec.GroupStatus) [32]byte {
	s.Evaluations = 0
	if s.LastDecision != nil {
		d := *s.LastDecision
		d.Repeats = 0
		s.LastDecision = &d
	}
	b, _ := json.Marshal(s)
	return sha256.Sum256(b)
}

// snapshot replaces the outbox's pending snapshot under key, and says whether it is in the
// outbox now (not when the installation has no registration, or on an error).
func (l *Link) snapshot(ctx context.Context, typ, key string, payload any) bool {
	raw, err := json.Marshal(payload)
	if err != nil {
		l.log.Error("cannot encode a snapshot", "type", typ, "error", err)
		return false
	}
	added, err := l.cfg.Store.EnqueueSnapshot(ctx, state.OutboxEvent{ID: newID(typ), Type: typ, Key: key, At: time.Now(), Payload: raw})
	if err != nil && ctx.Err() == nil {
		l.log.Warn("cannot add a snapshot to the outbox", "type", typ, "key", key, "error", err)
	}
	return err == nil && added
}

// reportCapacity puts the capacity of the hosts this agent serves in the outbox, every
// CapacityInterval when it changed. Every agent does it for its own hosts (the outbox is
// shared), whichever holds the link.
func (l *Link) reportCapacity(ctx context.Context) {
	last := map[string]HostCapacity{}
	for {
		added := false
		for name, h := range l.cfg.Hosts {
			hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			c, err := hostCapacity(hctx, name, h)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					l.log.Debug("cannot read host capacity", "host", name, "error", err)
				}
				continue
			}
			if prev, ok := last[name]; ok && prev == c {
				continue
			}
			if l.snapshot(ctx, TypeHostCapacity, "host/"+name, c) {
				last[name], added = c, true
			}
		}
		if added {
			l.notify()
		}
		if !sleep(ctx, l.opts.CapacityInterval) {
			return
		}
	}
}

func hostCapacity(ctx context.Context, name string, h Host) (HostCapacity, error) {
	info, err := h.HostInfo(ctx)
	if err != nil {
		return HostCapacity{}, err
	}
	free, err := h.FreeMemoryBytes(ctx)
	if err != nil {
		return HostCapacity{}, err
	}
	doms, err := h.ListManagedDomains(ctx)
	if err != nil {
		return HostCapacity{}, err
	}
	return HostCapacity{Host: name, Model: info.Model, CPUs: info.CPUs, MHz: info.MHz,
		MemoryBytes: info.MemoryKiB * 1024, FreeMemoryBytes: free, Domains: len(doms)}, nil
}

// keepOutbox holds the outbox to MaxOutboxEvents: when the platform has been away so long that
// more events wait, the oldest are dropped, never silently: the drop is counted in MySQL,
// logged, and reported to the platform in an "outbox.overflow" event (hello carries the
// total too). It also forgets applied command ids after CommandRetention.
func (l *Link) keepOutbox(ctx context.Context) {
	lastPrune := time.Time{}
	for {
		dropped, total, err := l.cfg.Store.TrimOutbox(ctx, l.opts.MaxOutboxEvents)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				l.log.Warn("cannot trim the platform outbox", "error", err)
			}
		case dropped > 0:
			l.log.Warn("the platform outbox was over its limit: dropped its oldest events", "dropped", dropped, "dropped_total", total, "limit", l.opts.MaxOutboxEvents)
			// A snapshot: it does not count toward the limit, and a later one (whose total
			// includes these) replaces it.
			if l.snapshot(ctx, TypeOutboxOverflow, "outbox/overflow", Overflow{Dropped: dropped, Total: total, Limit: l.opts.MaxOutboxEvents}) {
				l.notify()
			}
		}
		if time.Since(lastPrune) > time.Hour {
			if n, err := l.cfg.Store.PruneCommands(ctx, time.Now().Add(-l.opts.CommandRetention)); err != nil {
				if ctx.Err() == nil {
					l.log.Warn("cannot prune applied platform commands", "error", err)
				}
			} else {
				lastPrune = time.Now()
				if n > 0 {
					l.log.Info("forgot applied platform commands", "count", n, "older_than", l.opts.CommandRetention.String())
				}
			}
		}
		if !sleep(ctx, l.opts.TrimInterval) {
			return
		}
	}
}
