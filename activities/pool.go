package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
)

// ErrTypeDomainGone marks a warm-pool member whose domain is no longer on its host: no retry
// brings it back, the member is replaced.
const ErrTypeDomainGone = "DomainGone"

// ErrTypeNoHeartbeat marks a resumed pool member whose guest did not call in in time.
const ErrTypeNoHeartbeat = "NoHeartbeat"

// ParkInstanceParams asks for a booted warm-pool member to be parked.
type ParkInstanceParams struct {
	Name  string
	State spec.PoolState
	// Grace is how long a guest parked as stopped gets to shut down before it is powered off.
	Grace time.Duration
}

// ParkInstance parks a booted warm-pool member in its pool state (stopped, saved with
// libvirt's managed save, or running) and returns the state it is parked in, which may be
// stopped for a member to be saved that was found shut off already. It heartbeats while the
// guest shuts down or its memory is written.
func (h *HostActivities) ParkInstance(ctx context.Context, p ParkInstanceParams) (spec.PoolState, error) {
	stop := keepHeartbeating(ctx, "parking")
	defer stop()
	parked, err := h.Hyper.ParkDomain(ctx, p.Name, p.State, p.Grace)
	if err != nil {
		return "", poolError(fmt.Errorf("park instance %s (%s) on host %s: %w", p.Name, p.State, h.Host, err))
	}
	h.Logger.Info("instance parked in the warm pool", "instance", p.Name, "host", h.Host, "state", parked)
	return parked, nil
}

// ResumeInstance brings a warm-pool member a scale-out took back: a saved one is restored, a
// stopped one boots, a running one is only unmarked. It returns how.
func (h *HostActivities) ResumeInstance(ctx context.Context, name string) (libvirt.Resumed, error) {
	stop := keepHeartbeating(ctx, "resuming")
	defer stop()
	how, err := h.Hyper.ResumeDomain(ctx, name)
	if err != nil {
		return "", poolError(fmt.Errorf("resume instance %s from the warm pool on host %s: %w", name, h.Host, err))
	}
	h.Logger.Info("instance resumed from the warm pool", "instance", name, "host", h.Host, "how", how)
	return how, nil
}

func poolError(err error) error {
	if errors.Is(err, libvirt.ErrDomainGone) {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeDomainGone, err)
	}
	return err
}

// AwaitHeartbeatParams asks to wait for an instance's guest to call in after Since.
type AwaitHeartbeatParams struct {
	Name string
	// Since is when the guest was started; a check-in or heartbeat after it proves it up.
	Since time.Time
	// Timeout counts from Since, so a retried attempt does not wait longer in all.
	Timeout time.Duration
	// Poll is the interval between reads of the state database; 0 means 500 ms.
	Poll time.Duration
}

// AwaitHeartbeat waits until the instance's guest checked in or sent a heartbeat after
// p.Since (a pool member booted again: its cloud-init does not phone home twice, its heartbeat
// timer does), polling the state database. It fails with ErrTypeNoHeartbeat once p.Timeout
// has passed since p.Since.
func (a *Activities) AwaitHeartbeat(ctx context.Context, p AwaitHeartbeatParams) (time.Time, error) {
	poll := p.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	deadline := p.Since.Add(p.Timeout)
	for {
		activity.RecordHeartbeat(ctx, nil)
		seen, err := a.InstanceLastSeen(ctx, p.Name)
		switch {
		case err != nil:
			// A short database outage is no reason to give up on the guest.
			a.Logger.Warn("could not read an instance's last heartbeat", "instance", p.Name, "error", err)
		case seen.After(p.Since):
			return seen, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("instance %s: no heartbeat within %s of its start from the warm pool", p.Name, p.Timeout), ErrTypeNoHeartbeat, nil)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(poll):
		}
	}
}
