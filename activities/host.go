package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/premiscale/premiscale/internal/cloudinit"
	"github.com/premiscale/premiscale/internal/images"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
)

// Hypervisor is the part of a libvirt connection the host activities use.
type Hypervisor interface {
	EnsureOverlayVolume(ctx context.Context, pool, name, basePool, baseVolume string) (bool, error)
	UploadVolume(ctx context.Context, pool, name string, data []byte) error
	VolumeExists(ctx context.Context, pool, name string) (bool, error)
	EnsureDomainRunning(ctx context.Context, spec libvirt.DomainSpec) (bool, error)
	LookupDomain(ctx context.Context, name string) (libvirt.Domain, bool, error)
	HostInfo(ctx context.Context) (libvirt.HostInfo, error)
	ListManagedDomains(ctx context.Context) ([]libvirt.Domain, error)
	TemplateShape(ctx context.Context, template string) (vcpus, memoryMiB int, err error)
	// For copying base images onto the host.
	UploadVolumeFrom(ctx context.Context, pool, name string, size int64, r io.Reader) error
	DownloadVolume(ctx context.Context, pool, name string, w io.Writer) (int64, error)
	VolumeFileSize(ctx context.Context, pool, name string) (int64, error)
	RemoveDomain(ctx context.Context, name string, grace time.Duration) (bool, error)
	DeleteVolume(ctx context.Context, pool, name string) (bool, error)
	// For warm pools.
	ParkDomain(ctx context.Context, name string, state spec.PoolState, grace time.Duration) (spec.PoolState, error)
	ResumeDomain(ctx context.Context, name string) (libvirt.Resumed, error)
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

	// Heartbeats go on through every step, so that an attempt its worker lost (a worker that
	// died, a task the server handed to a poller that was gone) is retried after the
	// heartbeat timeout rather than the start-to-close timeout. The first goes out after a
	// quarter of that timeout: a launch done sooner (most) costs the server no heartbeat.
	var stepMu sync.Mutex
	step := "starting"
	setStep := func(s string) {
		stepMu.Lock()
		step = s
		stepMu.Unlock()
	}
	stop := keepHeartbeatingFrom(ctx, false, func() any { stepMu.Lock(); defer stepMu.Unlock(); return step })
	defer stop()
	if h.Images != nil {
		setStep("image")
		im := images.Image{Pool: l.ImagePool, Volume: l.ImageVolume, Source: l.ImageSource, SHA256: l.ImageSHA256}
		progress := func(n int64) { setStep(fmt.Sprintf("image: %d MiB copied", n>>20)) }
		if _, err := h.Images.Ensure(ctx, h.Host, h.Hyper, im, progress); err != nil {
			if errors.Is(err, images.ErrUnavailable) {
				return res, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadLaunchSpec, nil)
			}
			return res, err
		}
	}
	overlay := OverlayVolumeName(p.Name)
	setStep("volume")
	if res.VolumeCreated, err = h.Hyper.EnsureOverlayVolume(ctx, l.ImagePool, overlay, l.ImagePool, l.ImageVolume); err != nil {
		return res, launchError(fmt.Errorf("create disk of instance %s on host %s: %w", p.Name, h.Host, err))
	}
	disks := []libvirt.DiskSpec{{Pool: l.ImagePool, Volume: overlay, Target: "vda", Format: "qcow2"}}
	if seed != nil {
		name := SeedVolumeName(p.Name)
		setStep("seed")
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

	setStep("domain")
	dom := libvirt.DomainSpec{Name: p.Name, Group: p.Group, Domain: l.Domain, Disks: disks, MAC: mac, Template: l.Template, Pool: p.Pool}
	// Placement chose this host from a recent view of it; the check against what the host holds
	// now, with the room of launches under way reserved, makes "a launch never goes to a host
	// without room" hold when groups launch at the same moment.
	release, err := h.reserveRoom(ctx, p.Name, l)
	if err != nil {
		return res, err
	}
	res.DomainCreated, err = h.Hyper.EnsureDomainRunning(ctx, dom)
	release()
	if err != nil {
		return res, launchError(fmt.Errorf("create domain of instance %s on host %s: %w", p.Name, h.Host, err))
	}
	h.Logger.Info("instance created", "instance", p.Name, "group", p.Group, "host", h.Host,
		"domain_created", res.DomainCreated, "volume_created", res.VolumeCreated, "seed_created", res.SeedCreated)
	return res, nil
}

// ErrTypeNoCapacity marks a launch refused by its host's worker because the host has no room
// for the instance: placement saw room a moment before, another launch took it.
const ErrTypeNoCapacity = "NoCapacity"

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
//
// It heartbeats for as long as it runs, so that when its worker dies the attempt times out
// after the activity's heartbeat timeout (not its whole start-to-close timeout) and another
// attempt starts as soon as a worker serves the host again. The heartbeat carries when the
// guest was first asked to shut down: a resumed attempt gives it only what is left of the
// grace period, not a new one.
func (h *HostActivities) DestroyInstance(ctx context.Context, p DestroyInstanceParams) error {
	var progress DestroyProgress
	if activity.HasHeartbeatDetails(ctx) {
		if err := activity.GetHeartbeatDetails(ctx, &progress); err != nil {
			h.Logger.Warn("unreadable progress of an earlier attempt; starting over", "instance", p.Name, "error", err)
			progress = DestroyProgress{}
		}
	}
	now := time.Now()
	if progress.ShutdownFrom.IsZero() {
		progress.ShutdownFrom = now
	} else {
		h.Logger.Info("resuming the retirement of an instance", "instance", p.Name, "host", h.Host,
			"shutdown_requested", progress.ShutdownFrom, "attempt", activity.GetInfo(ctx).Attempt)
	}
	grace := max(0, p.Grace-now.Sub(progress.ShutdownFrom))
	stop := keepHeartbeating(ctx, progress)
	defer stop()

	if _, err := h.Hyper.RemoveDomain(ctx, p.Name, grace); errors.Is(err, libvirt.ErrForeignDomain) {
		// Someone else's domain took the instance's name: ours is gone, theirs stays.
		h.Logger.Warn("a domain without PremiScale's metadata has the instance's name; left alone", "instance", p.Name, "host", h.Host, "error", err)
	} else if err != nil {
		return fmt.Errorf("remove domain of instance %s on host %s: %w", p.Name, h.Host, err)
	}
	h.forgetDomain(p.Name)
	for _, vol := range []string{OverlayVolumeName(p.Name), SeedVolumeName(p.Name)} {
		if _, err := h.Hyper.DeleteVolume(ctx, p.Pool, vol); err != nil {
			return fmt.Errorf("delete volume %s of instance %s on host %s: %w", vol, p.Name, h.Host, err)
		}
	}
	h.Logger.Info("instance destroyed", "instance", p.Name, "host", h.Host)
	return nil
}

// DestroyProgress is what DestroyInstance's heartbeats carry to a later attempt.
type DestroyProgress struct {
	// ShutdownFrom is when the first attempt asked the guest to shut down.
	ShutdownFrom time.Time `json:"shutdownFrom"`
}

// keepHeartbeating records details now and then several times per heartbeat timeout until
// stop is called. The SDK batches the calls; a process that dies stops them, which is how its
// attempt is found dead.
func keepHeartbeating(ctx context.Context, details any) (stop func()) {
	return keepHeartbeatingFrom(ctx, true, func() any { return details })
}

// keepHeartbeatingFrom is keepHeartbeating with details that change: each heartbeat records
// what details returns then. now sends the first at once, else after the first period.
func keepHeartbeatingFrom(ctx context.Context, now bool, details func() any) (stop func()) {
	if now {
		activity.RecordHeartbeat(ctx, details())
	}
	period := activity.GetInfo(ctx).HeartbeatTimeout / 4
	if period <= 0 {
		period = 10 * time.Second
	}
	period = max(period, 100*time.Millisecond)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx, details())
			}
		}
	}()
	return func() { close(done); <-finished }
}

// DomainHealth reports whether the instance's domain exists and its state.
func (h *HostActivities) DomainHealth(ctx context.Context, name string) (DomainHealth, error) {
	d, found, err := h.Hyper.LookupDomain(ctx, name)
	if err != nil {
		return DomainHealth{}, fmt.Errorf("look up domain of instance %s on host %s: %w", name, h.Host, err)
	}
	if found && d.Foreign {
		return DomainHealth{Foreign: true}, nil
	}
	return DomainHealth{Found: found, State: string(d.State)}, nil
}
