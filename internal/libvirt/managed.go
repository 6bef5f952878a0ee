package libvirt

import (
	"context"
	"fmt"
	"slices"
	"strings"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// ListManagedDomains returns every domain (active or not) whose PremiScale
// metadata names a group, whatever the group, sorted by name. Unlike
// ListGroupDomains it has no group name to fall back on, so a domain whose
// metadata the driver cannot report (or that is malformed) is left out: the
// collector would not know which group to attribute its samples to.
func (c *Conn) ListManagedDomains(ctx context.Context) ([]Domain, error) {
	doms, err := call(ctx, c, "list domains", func(l *golibvirt.Libvirt) ([]golibvirt.Domain, error) {
		d, _, err := l.ConnectListAllDomains(1, golibvirt.ConnectListDomainsActive|golibvirt.ConnectListDomainsInactive)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("list PremiScale domains: %w", err)
	}
	var out []Domain
	for _, dom := range doms {
		meta, status, err := c.metadata(ctx, dom)
		if hasCode(err, golibvirt.ErrNoDomain) {
			continue // undefined while we were listing
		}
		if err != nil {
			return nil, fmt.Errorf("list PremiScale domains: %w", err)
		}
		switch {
		case status == metaAbsent:
			continue // not ours
		case status == metaUnreadable || meta.Group == "":
			c.log.Debug("domain left out of managed domains: no readable PremiScale group", "domain", dom.Name)
			continue
		}
		d, err := c.describe(ctx, dom)
		if hasCode(err, golibvirt.ErrNoDomain) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list PremiScale domains: %w", err)
		}
		d.Group, d.Pool = meta.Group, meta.Pool == "true"
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Domain) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
