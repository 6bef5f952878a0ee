package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/placement"
	"github.com/premiscale/premiscale/internal/spec"
)

// roomLedger is what PremiScale's domains hold on a host as its worker knows it: a listing of
// the host's domains, the domains the worker defined and removed since, and the launches under
// way. Listing the domains costs two libvirt calls per domain, so a launch that listed them all
// made a scale-out quadratic in the host's domains; with the ledger a launch lists them only
// when the listing is older than roomListingTTL, or before it refuses a launch.
//
// Only the host's own worker defines PremiScale domains there, so the ledger is exact but for
// what changes behind its back (a domain an operator removed counts until the next listing: a
// refusal is then checked against a fresh one). h.placing guards it.
type roomLedger struct {
	listedAt time.Time
	info     libvirt.HostInfo
	// held are the domains on the host, by name; reserved the launches between their room
	// check and their definition.
	held, reserved map[string]placement.Shape
}

// roomListingTTL is how long a listing of the host's domains stands in for a new one.
const roomListingTTL = 30 * time.Second

// reserveRoom checks that the host has room for the instance and holds it for the launch;
// release, once the definition is over, counts it as the domain's (whether or not it was
// defined: counting too much is safe, since a refusal lists the domains again). A domain that
// exists already (a retried launch) holds its room and passes. Launches on the host check
// their room one at a time; their definitions run side by side.
func (h *HostActivities) reserveRoom(ctx context.Context, name string, l spec.Launch) (release func(), err error) {
	if _, found, err := h.Hyper.LookupDomain(ctx, name); err != nil || found {
		return func() {}, err
	}
	shape := placement.Shape{VCPUs: l.Domain.VCPUs, MemoryMiB: int64(l.Domain.Memory)}
	if l.Template != "" && (shape.VCPUs == 0 || shape.MemoryMiB == 0) {
		vcpus, mem, err := h.Hyper.TemplateShape(ctx, l.Template)
		if err != nil {
			return nil, launchError(fmt.Errorf("create domain of instance %s on host %s: %w", name, h.Host, err))
		}
		if shape.VCPUs == 0 {
			shape.VCPUs = vcpus
		}
		if shape.MemoryMiB == 0 {
			shape.MemoryMiB = int64(mem)
		}
	}
	h.placing.Lock()
	defer h.placing.Unlock()
	r := &h.room
	if err := h.listRoom(ctx, time.Since(r.listedAt) > roomListingTTL); err != nil {
		return nil, fmt.Errorf("check room for instance %s on host %s: %w", name, h.Host, err)
	}
	_, err = placement.Pick(spec.PlacementPack, []placement.Host{h.roomHost()}, shape)
	if err != nil && time.Since(r.listedAt) > time.Second {
		// A refusal is made on a fresh listing.
		if lerr := h.listRoom(ctx, true); lerr != nil {
			return nil, fmt.Errorf("check room for instance %s on host %s: %w", name, h.Host, lerr)
		}
		_, err = placement.Pick(spec.PlacementPack, []placement.Host{h.roomHost()}, shape)
	}
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("launch instance %s: %v", name, err), ErrTypeNoCapacity, nil)
	}
	r.reserved[name] = shape
	return func() {
		h.placing.Lock()
		defer h.placing.Unlock()
		delete(r.reserved, name)
		r.held[name] = shape
	}, nil
}

// listRoom lists the host's capacity and domains when asked to, or when nothing was listed
// yet; h.placing is held.
func (h *HostActivities) listRoom(ctx context.Context, again bool) error {
	r := &h.room
	if r.held != nil && !again {
		return nil
	}
	at := time.Now()
	info, err := h.Hyper.HostInfo(ctx)
	if err != nil {
		return err
	}
	doms, err := h.Hyper.ListManagedDomains(ctx)
	if err != nil {
		return err
	}
	r.listedAt, r.info = at, info
	r.held = make(map[string]placement.Shape, len(doms))
	for _, d := range doms {
		r.held[d.Name] = placement.Shape{VCPUs: d.VCPUs, MemoryMiB: int64(d.MemoryMiB)}
	}
	if r.reserved == nil {
		r.reserved = map[string]placement.Shape{}
	}
	return nil
}

// roomHost is the host as placement sees it from the ledger; h.placing is held.
func (h *HostActivities) roomHost() placement.Host {
	r := &h.room
	host := placement.Host{Host: spec.Host{
		Name: h.Host, Up: true, CPUs: r.info.CPUs, MemoryMiB: int64(r.info.MemoryKiB / 1024), Allowance: h.Allowance,
	}}
	add := func(s placement.Shape) {
		host.UsedCPUs += s.VCPUs
		host.UsedMemoryMiB += s.MemoryMiB
	}
	for _, s := range r.held {
		add(s)
	}
	for name, s := range r.reserved {
		if _, listed := r.held[name]; !listed {
			add(s)
		}
	}
	return host
}

// forgetDomain takes a removed domain out of the ledger.
func (h *HostActivities) forgetDomain(name string) {
	h.placing.Lock()
	defer h.placing.Unlock()
	delete(h.room.held, name)
}
