package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/premiscale/premiscale/internal/libvirt"
)

// Hypervisor is the part of a libvirt connection the host activities use.
type Hypervisor interface {
	EnsureOverlayVolume(ctx context.Context, pool, name, basePool, baseVolume string) (bool, error)
	EnsureDomainRunning(ctx context.Context, spec libvirt.DomainSpec) (bool, error)
	RemoveDomain(ctx context.Context, name string, grace time.Duration) (bool, error)
	DeleteVolume(ctx context.Context, pool, name string) (bool, error)
}

// CreateInstance makes the instance's overlay disk and its domain, and starts it. Both steps
// are "ensure" operations, so a retry after a crash finds what the first attempt made.
func (h *HostActivities) CreateInstance(ctx context.Context, p CreateInstanceParams) (CreateInstanceResult, error) {
	var res CreateInstanceResult
	volume := OverlayVolumeName(p.Name)
	activity.RecordHeartbeat(ctx, "volume")
	created, err := h.Hyper.EnsureOverlayVolume(ctx, p.ImagePool, volume, p.ImagePool, p.ImageVolume)
	if err != nil {
		return res, fmt.Errorf("create disk of instance %s on host %s: %w", p.Name, h.Host, err)
	}
	res.VolumeCreated = created

	activity.RecordHeartbeat(ctx, "domain")
	spec := libvirt.DomainSpec{
		Name:      p.Name,
		Group:     p.Group,
		Type:      p.Domain.Type,
		VCPUs:     p.Domain.VCPUs,
		MemoryMiB: p.Domain.Memory,
		Arch:      p.Domain.Arch,
		Machine:   p.Domain.Machine,
		Disks:     []libvirt.DiskSpec{{Pool: p.ImagePool, Volume: volume, Target: "vda"}},
		Kernel:    p.Domain.Kernel,
		Initrd:    p.Domain.Initrd,
		Cmdline:   p.Domain.Cmdline,
		Network:   p.Domain.Network,
	}
	created, err = h.Hyper.EnsureDomainRunning(ctx, spec)
	if err != nil {
		return res, fmt.Errorf("create domain of instance %s on host %s: %w", p.Name, h.Host, err)
	}
	res.DomainCreated = created
	h.Logger.Info("instance created", "instance", p.Name, "group", p.Group, "host", h.Host,
		"domain_created", res.DomainCreated, "volume_created", res.VolumeCreated)
	return res, nil
}

// DestroyInstance shuts the domain down (destroying it after the grace period), undefines it
// and deletes its volumes. Whatever is already gone is skipped.
func (h *HostActivities) DestroyInstance(ctx context.Context, p DestroyInstanceParams) error {
	if _, err := h.Hyper.RemoveDomain(ctx, p.Name, p.Grace); err != nil {
		return fmt.Errorf("remove domain of instance %s on host %s: %w", p.Name, h.Host, err)
	}
	if _, err := h.Hyper.DeleteVolume(ctx, p.Pool, OverlayVolumeName(p.Name)); err != nil {
		return fmt.Errorf("delete disk of instance %s on host %s: %w", p.Name, h.Host, err)
	}
	h.Logger.Info("instance destroyed", "instance", p.Name, "host", h.Host)
	return nil
}
