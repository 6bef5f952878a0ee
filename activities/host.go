package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/premiscale/premiscale/internal/cloudinit"
	"github.com/premiscale/premiscale/internal/libvirt"
)

// Hypervisor is the part of a libvirt connection the host activities use.
type Hypervisor interface {
	EnsureOverlayVolume(ctx context.Context, pool, name, basePool, baseVolume string) (bool, error)
	UploadVolume(ctx context.Context, pool, name string, data []byte) error
	VolumeExists(ctx context.Context, pool, name string) (bool, error)
	EnsureDomainRunning(ctx context.Context, spec libvirt.DomainSpec) (bool, error)
	LookupDomain(ctx context.Context, name string) (libvirt.Domain, bool, error)
	RemoveDomain(ctx context.Context, name string, grace time.Duration) (bool, error)
	DeleteVolume(ctx context.Context, pool, name string) (bool, error)
}

// CreateInstance makes the instance's seed, its overlay disk and its domain, and starts it.
// The seed is rendered first, so a template error fails the launch before anything exists.
// Every step is an "ensure", so a retry after a crash finds what the first attempt made.
func (h *HostActivities) CreateInstance(ctx context.Context, p CreateInstanceParams) (CreateInstanceResult, error) {
	var res CreateInstanceResult
	l := p.Launch
	// The seed's network-config finds the NIC by this MAC; a template's NIC gets it too.
	var mac string
	if l.Domain.Network != "" || l.Template != "" {
		mac = libvirt.InstanceMAC(p.Name)
	}
	seed, err := h.seed(p, mac)
	if err != nil {
		// The message carries the cause once; as the error's cause too it would be repeated.
		return res, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("render the seed of instance %s: %v", p.Name, err), ErrTypeBadLaunchSpec, nil)
	}

	overlay := OverlayVolumeName(p.Name)
	activity.RecordHeartbeat(ctx, "volume")
	if res.VolumeCreated, err = h.Hyper.EnsureOverlayVolume(ctx, l.ImagePool, overlay, l.ImagePool, l.ImageVolume); err != nil {
		return res, launchError(fmt.Errorf("create disk of instance %s on host %s: %w", p.Name, h.Host, err))
	}
	disks := []libvirt.DiskSpec{{Pool: l.ImagePool, Volume: overlay, Target: "vda", Format: "qcow2"}}
	if seed != nil {
		name := SeedVolumeName(p.Name)
		activity.RecordHeartbeat(ctx, "seed")
		exists, err := h.Hyper.VolumeExists(ctx, l.ImagePool, name)
		if err != nil {
			return res, fmt.Errorf("look up seed of instance %s on host %s: %w", p.Name, h.Host, err)
		}
		// The seed is a pure function of the launch, so an existing one from an earlier
		// attempt is the same and is kept.
		if !exists {
			if err := h.Hyper.UploadVolume(ctx, l.ImagePool, name, seed); err != nil {
				return res, launchError(fmt.Errorf("upload seed of instance %s on host %s: %w", p.Name, h.Host, err))
			}
			res.SeedCreated = true
		}
		disks = append(disks, libvirt.DiskSpec{Pool: l.ImagePool, Volume: name, Target: "vdb", Format: "raw", ReadOnly: true})
	}

	activity.RecordHeartbeat(ctx, "domain")
	dom := libvirt.DomainSpec{Name: p.Name, Group: p.Group, Domain: l.Domain, Disks: disks, MAC: mac, Template: l.Template}
	if res.DomainCreated, err = h.Hyper.EnsureDomainRunning(ctx, dom); err != nil {
		return res, launchError(fmt.Errorf("create domain of instance %s on host %s: %w", p.Name, h.Host, err))
	}
	h.Logger.Info("instance created", "instance", p.Name, "group", p.Group, "host", h.Host,
		"domain_created", res.DomainCreated, "volume_created", res.VolumeCreated, "seed_created", res.SeedCreated)
	return res, nil
}

// launchError is the error of a launch step: non-retryable when what the launch asks for is
// wrong (libvirt.ErrInvalidSpec: a base image, pool, template, kernel or disk that does not
// exist, a definition libvirt refuses), so the launch fails at once and the group's back-off
// applies instead of retries that cannot work.
func launchError(err error) error {
	if errors.Is(err, libvirt.ErrInvalidSpec) {
		// The message carries the cause once; as the error's cause too it would be repeated.
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadLaunchSpec, nil)
	}
	return err
}

// seed renders and packs the instance's NoCloud seed, or returns nil when the group has
// neither cloud-init nor check-in.
func (h *HostActivities) seed(p CreateInstanceParams, mac string) ([]byte, error) {
	l := p.Launch
	if l.CloudInit == "" && !l.Health.Checkin {
		return nil, nil
	}
	params := cloudinit.Params{
		Instance:       cloudinit.Instance{Name: p.Name, Group: p.Group, Index: p.Index, Address: p.Address},
		InstanceID:     p.InstanceID,
		UserTemplate:   l.CloudInit,
		TemplateSource: "controller.autoscale.groups." + p.Group + ".cloud-init",
		Network:        l.Networking,
		MAC:            mac,
	}
	if l.Health.Checkin {
		params.CheckinURL = h.CheckinURL(p.Name)
		params.HeartbeatInterval = l.Health.HeartbeatInterval
	}
	seed, err := cloudinit.Render(params)
	if err != nil {
		return nil, err
	}
	return cloudinit.BuildISO(seed)
}

// DestroyInstance shuts the domain down (destroying it after the grace period), undefines it
// and deletes its volumes. Whatever is already gone is skipped.
func (h *HostActivities) DestroyInstance(ctx context.Context, p DestroyInstanceParams) error {
	if _, err := h.Hyper.RemoveDomain(ctx, p.Name, p.Grace); err != nil {
		return fmt.Errorf("remove domain of instance %s on host %s: %w", p.Name, h.Host, err)
	}
	for _, vol := range []string{OverlayVolumeName(p.Name), SeedVolumeName(p.Name)} {
		if _, err := h.Hyper.DeleteVolume(ctx, p.Pool, vol); err != nil {
			return fmt.Errorf("delete volume %s of instance %s on host %s: %w", vol, p.Name, h.Host, err)
		}
	}
	h.Logger.Info("instance destroyed", "instance", p.Name, "host", h.Host)
	return nil
}

// DomainHealth reports whether the instance's domain exists and its state.
func (h *HostActivities) DomainHealth(ctx context.Context, name string) (DomainHealth, error) {
	d, found, err := h.Hyper.LookupDomain(ctx, name)
	if err != nil {
		return DomainHealth{}, fmt.Errorf("look up domain of instance %s on host %s: %w", name, h.Host, err)
	}
	return DomainHealth{Found: found, State: string(d.State)}, nil
}
