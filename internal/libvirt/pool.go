package libvirt

import (
	"context"
	"errors"
	"fmt"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/premiscale/premiscale/internal/spec"
)

// saveTimeout bounds a managed save or its restore: they write or read the guest's memory,
// which takes far longer than an ordinary call (and a timed-out call drops the connection).
const saveTimeout = 10 * time.Minute

// ParkDomain puts a booted warm-pool member in its pool state: stopped (an ACPI shutdown with
// up to grace to power off, then destroyed), saved (libvirt's managed save: the guest's memory
// on disk, the domain shut off) or running (left as it is, started if it is not). It marks the
// domain as a pool member first, so the collector stops reporting it. It returns the state the
// domain is parked in: a domain asked to be saved that is found shut off without a saved image
// (a retry after it powered off, say) is stopped, and a resume boots it.
//
// It is idempotent: a domain already in its pool state is left there.
func (c *Conn) ParkDomain(ctx context.Context, name string, state spec.PoolState, grace time.Duration) (spec.PoolState, error) {
	unlock, err := c.names.lock(ctx, "domain/"+name)
	if err != nil {
		return "", fmt.Errorf("park domain %s on %s: %w", name, c.uri, err)
	}
	defer unlock()
	dom, cur, err := c.poolDomain(ctx, name)
	if err != nil {
		return "", err
	}
	if err := c.markPool(ctx, dom, cur.Active(), true); err != nil {
		return "", err
	}
	switch state {
	case spec.PoolRunning:
		if !cur.Active() {
			if err := do(ctx, c, "start domain "+name, func(l *golibvirt.Libvirt) error { return l.DomainCreate(dom) }); err != nil {
				return "", err
			}
		}
		return spec.PoolRunning, nil
	case spec.PoolSaved:
		if !cur.Active() {
			saved, err := c.hasManagedSave(ctx, dom)
			if err != nil {
				return "", err
			}
			if saved {
				return spec.PoolSaved, nil
			}
			return spec.PoolStopped, nil
		}
		_, err := callWithTimeout(ctx, c, "save domain "+name, saveTimeout, func(l *golibvirt.Libvirt) (struct{}, error) {
			return struct{}{}, l.DomainManagedSave(dom, 0)
		})
		if err != nil {
			return "", err
		}
		c.log.Info("saved domain", "domain", name)
		return spec.PoolSaved, nil
	case spec.PoolStopped:
		if cur == StateRunning || cur == StateShutdown {
			if cur, err = c.shutdownAndWait(ctx, dom, grace); err != nil {
				return "", err
			}
		}
		if cur.Active() {
			err := do(ctx, c, "destroy domain "+name, func(l *golibvirt.Libvirt) error { return l.DomainDestroy(dom) })
			if err != nil && !hasCode(err, golibvirt.ErrOperationInvalid) {
				return "", err
			}
		}
		c.log.Info("stopped domain", "domain", name)
		return spec.PoolStopped, nil
	}
	return "", fmt.Errorf("park domain %s on %s: unknown pool state %q", name, c.uri, state)
}

// Resumed says how ResumeDomain brought a warm-pool member back.
type Resumed string

// The ways a pool member comes back.
const (
	// ResumedRunning: it was running already (a running pool, or a retried resume).
	ResumedRunning Resumed = "running"
	// ResumedRestored: restored from its managed save image, memory intact.
	ResumedRestored Resumed = "restored"
	// ResumedBooted: started from its disk; the guest boots again.
	ResumedBooted Resumed = "booted"
)

// ResumeDomain brings a warm-pool member back into its group: starting a shut-off domain
// restores it from its managed save image where it has one, else boots it; a running one is
// left running. Then its metadata no longer marks it a pool member. A missing domain is an
// error wrapping ErrDomainGone.
func (c *Conn) ResumeDomain(ctx context.Context, name string) (Resumed, error) {
	unlock, err := c.names.lock(ctx, "domain/"+name)
	if err != nil {
		return "", fmt.Errorf("resume domain %s on %s: %w", name, c.uri, err)
	}
	defer unlock()
	dom, cur, err := c.poolDomain(ctx, name)
	if err != nil {
		return "", err
	}
	how := ResumedRunning
	if !cur.Active() {
		saved, err := c.hasManagedSave(ctx, dom)
		if err != nil {
			return "", err
		}
		how = ResumedBooted
		if saved {
			how = ResumedRestored
		}
		_, err = callWithTimeout(ctx, c, "start domain "+name, saveTimeout, func(l *golibvirt.Libvirt) (struct{}, error) {
			return struct{}{}, l.DomainCreate(dom)
		})
		if err != nil {
			// A concurrent start (a retried attempt) wins the race: that is success.
			if st, serr := c.domainState(ctx, dom); serr != nil || !st.Active() {
				return "", err
			}
		}
		c.log.Info("resumed domain", "domain", name, "how", how)
	}
	if err := c.markPool(ctx, dom, true, false); err != nil {
		return "", err
	}
	return how, nil
}

// ErrDomainGone is returned (wrapped) when a warm-pool member's domain no longer exists.
var ErrDomainGone = errors.New("domain is gone")

// poolDomain looks up a pool member's domain, refusing one that is not PremiScale's.
func (c *Conn) poolDomain(ctx context.Context, name string) (golibvirt.Domain, DomainState, error) {
	dom, found, err := c.lookupDomain(ctx, name)
	if err != nil {
		return dom, StateNoState, err
	}
	if !found {
		return dom, StateNoState, fmt.Errorf("domain %s on %s: %w", name, c.uri, ErrDomainGone)
	}
	if err := c.checkOwner(ctx, dom, ""); err != nil {
		return dom, StateNoState, err
	}
	cur, err := c.domainState(ctx, dom)
	if hasCode(err, golibvirt.ErrNoDomain) {
		return dom, StateNoState, fmt.Errorf("domain %s on %s: %w", name, c.uri, ErrDomainGone)
	}
	return dom, cur, err
}

func (c *Conn) hasManagedSave(ctx context.Context, dom golibvirt.Domain) (bool, error) {
	n, err := call(ctx, c, "look for the saved image of domain "+dom.Name, func(l *golibvirt.Libvirt) (int32, error) {
		return l.DomainHasManagedSaveImage(dom, 0)
	})
	return n == 1, err
}

// markPool sets or clears the pool mark in the domain's PremiScale metadata, in its persistent
// definition and, when it runs, in the live one too. The group and name stay as they are.
func (c *Conn) markPool(ctx context.Context, dom golibvirt.Domain, live, pool bool) error {
	meta, status, err := c.metadata(ctx, dom)
	if err != nil {
		return err
	}
	// A driver that cannot report metadata cannot keep the mark either: the collector of such
	// a host reports no PremiScale domain at all (see ListManagedDomains).
	if status != metaFound || (meta.Pool == "true") == pool {
		return nil
	}
	el, err := metadataElement(meta.Group, meta.Name, pool)
	if err != nil {
		return err
	}
	impact := golibvirt.DomainAffectConfig
	if live {
		impact |= golibvirt.DomainAffectLive
	}
	return do(ctx, c, "mark domain "+dom.Name+" in metadata", func(l *golibvirt.Libvirt) error {
		return l.DomainSetMetadata(dom, int32(golibvirt.DomainMetadataElement), golibvirt.OptString{el},
			golibvirt.OptString{metadataPrefix}, golibvirt.OptString{MetadataNamespace}, impact)
	})
}

// HasManagedSave says whether the named domain has a managed save image (a saved warm-pool
// member); false for a domain that does not exist.
func (c *Conn) HasManagedSave(ctx context.Context, name string) (bool, error) {
	dom, found, err := c.lookupDomain(ctx, name)
	if err != nil || !found {
		return false, err
	}
	return c.hasManagedSave(ctx, dom)
}
