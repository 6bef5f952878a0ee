// Package hostwatch proves a hypervisor host alive: a worker reaches the host's libvirt at a
// short period and records, in the state database, that it answered, its capacity, and what
// PremiScale's domains hold on it. The group workflows judge from these proofs which hosts are
// up (internal/state Host.Spec) and where a new instance fits (internal/placement).
package hostwatch

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
)

// Hypervisor is the part of a libvirt connection a probe uses.
type Hypervisor interface {
	HostInfo(ctx context.Context) (libvirt.HostInfo, error)
	FreeMemoryBytes(ctx context.Context) (uint64, error)
	ListManagedDomains(ctx context.Context) ([]libvirt.Domain, error)
	VolumeExists(ctx context.Context, pool, name string) (bool, error)
}

// Recorder keeps proofs of life and what images hosts have; *state.Store implements it.
type Recorder interface {
	RecordHostProof(ctx context.Context, p state.HostProof) error
	RecordHostError(ctx context.Context, name, worker string, cause error) error
	ListGroups(ctx context.Context) ([]state.GroupRecord, error)
	NoteHostImage(ctx context.Context, host, pool, volume string, present bool) error
}

// Prober proves one host alive, every Period, until its context ends.
type Prober struct {
	Host  string
	Hyper Hypervisor
	Store Recorder
	// Allowance is what the host's config lets placement hand out of it, recorded with
	// each proof so that every workflow reads it with the host's capacity.
	Allowance spec.Allowance
	// Worker names this worker in the records (host name and pid).
	Worker string
	Period time.Duration
	Logger *slog.Logger
	// OnProof, when set, hears what each probe measured; OnError, the dependency each failed
	// probe failed on, named as /readyz names it: "libvirt/<host>" or "mysql". Both are for
	// the worker's metrics and must be quick.
	OnProof func(state.HostProof)
	OnError func(dependency string)
}

// Run probes until ctx ends. An outage (of the host, or of the state database) is logged
// once when it starts and once when it ends, not at every probe.
func (p *Prober) Run(ctx context.Context) {
	var failing string
	var since time.Time
	tick := time.NewTicker(p.Period)
	defer tick.Stop()
	for {
		err := p.Probe(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && failing == "":
			failing, since = err.Error(), time.Now()
			p.Logger.Warn("host unreachable", "host", p.Host, "error", err)
		case err == nil && failing != "":
			p.Logger.Info("host reachable again", "host", p.Host, "after", time.Since(since).Round(time.Second))
			failing = ""
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Probe reaches the host once and records what it found, or why it could not.
func (p *Prober) Probe(ctx context.Context) error {
	proof, err := p.measure(ctx)
	if err != nil {
		p.failed(ctx, "libvirt/"+p.Host)
		if rerr := p.Store.RecordHostError(ctx, p.Host, p.Worker, err); rerr != nil && ctx.Err() == nil {
			p.failed(ctx, "mysql")
			return fmt.Errorf("%w; and recording that failed: %w", err, rerr)
		}
		return err
	}
	if p.OnProof != nil {
		p.OnProof(proof)
	}
	if err := p.Store.RecordHostProof(ctx, proof); err != nil {
		p.failed(ctx, "mysql")
		return err
	}
	// What images the host has is for status only: failing to tell is no sign of an outage.
	if err := p.noteImages(ctx); err != nil {
		p.Logger.Debug("could not note the host's images", "host", p.Host, "error", err)
	}
	return nil
}

// failed tells OnError of a failed call, unless the probe failed because it was stopped.
func (p *Prober) failed(ctx context.Context, dependency string) {
	if p.OnError != nil && ctx.Err() == nil {
		p.OnError(dependency)
	}
}

// noteImages records which base images of the groups placed on the host its pools hold, so
// that `group status` can say which hosts have a group's image.
func (p *Prober) noteImages(ctx context.Context) error {
	groups, err := p.Store.ListGroups(ctx)
	if err != nil {
		return err
	}
	seen := map[[2]string]bool{}
	for _, g := range groups {
		if g.DeletedAt != nil {
			continue
		}
		var gs spec.Group
		if err := json.Unmarshal(g.Spec, &gs); err != nil || !slices.Contains(gs.Hosts, p.Host) {
			continue
		}
		key := [2]string{gs.Launch.ImagePool, gs.Launch.ImageVolume}
		if key[0] == "" || key[1] == "" || seen[key] {
			continue
		}
		seen[key] = true
		ok, err := p.Hyper.VolumeExists(ctx, key[0], key[1])
		if err != nil {
			continue // a pool the host lacks, say: the launch says what is wrong
		}
		if err := p.Store.NoteHostImage(ctx, p.Host, key[0], key[1], ok); err != nil {
			return err
		}
	}
	return nil
}

func (p *Prober) measure(ctx context.Context) (state.HostProof, error) {
	info, err := p.Hyper.HostInfo(ctx)
	if err != nil {
		return state.HostProof{}, fmt.Errorf("host %s: %w", p.Host, err)
	}
	free, err := p.Hyper.FreeMemoryBytes(ctx)
	if err != nil {
		return state.HostProof{}, fmt.Errorf("host %s: %w", p.Host, err)
	}
	doms, err := p.Hyper.ListManagedDomains(ctx)
	if err != nil {
		return state.HostProof{}, fmt.Errorf("host %s: %w", p.Host, err)
	}
	proof := state.HostProof{
		Name: p.Host, Worker: p.Worker,
		CPUs: info.CPUs, MemoryMiB: int64(info.MemoryKiB / 1024), FreeMemoryMiB: int64(free >> 20),
		Allowance: p.Allowance, Domains: len(doms),
	}
	for _, d := range doms {
		proof.UsedCPUs += d.VCPUs
		proof.UsedMemoryMiB += int64(d.MemoryMiB)
	}
	return proof, nil
}

// Period is how often a worker proves its hosts alive: four times within downAfter, so one
// slow or lost probe does not make a host look down, and never more than once a second.
func Period(downAfter time.Duration) time.Duration {
	return max(downAfter/4, time.Second)
}
