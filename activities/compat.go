package activities

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/premiscale/premiscale/internal/spec"
)

// legacyLaunch is the shape CreateInstance's launch had before internal/spec (flat network and
// health fields). A CreateInstance task scheduled by an older worker may still be waiting in
// Temporal when a newer one picks it up, so the old shape is still read.
type legacyLaunch struct {
	NetworkType       string
	Subnet, Gateway   string
	Nameservers       []string
	Checkin           bool
	HeartbeatInterval time.Duration
}

// UnmarshalJSON reads CreateInstanceParams in the current shape or in the legacy one.
func (p *CreateInstanceParams) UnmarshalJSON(b []byte) error {
	type plain CreateInstanceParams
	if err := json.Unmarshal(b, (*plain)(p)); err != nil {
		return err
	}
	var old struct{ Launch legacyLaunch }
	if err := json.Unmarshal(b, &old); err != nil {
		return err
	}
	l := old.Launch
	if l.NetworkType == "" || p.Launch.Networking.Type != "" {
		return nil
	}
	n := spec.Network{Type: spec.NetworkType(l.NetworkType)}
	if l.Subnet != "" {
		prefix, err := netip.ParsePrefix(l.Subnet)
		if err != nil {
			return fmt.Errorf("legacy launch of %s: subnet: %w", p.Name, err)
		}
		n.Subnet = prefix
	}
	if l.Gateway != "" {
		gw, err := netip.ParseAddr(l.Gateway)
		if err != nil {
			return fmt.Errorf("legacy launch of %s: gateway: %w", p.Name, err)
		}
		n.Gateway = gw
	}
	for _, s := range l.Nameservers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("legacy launch of %s: nameserver: %w", p.Name, err)
		}
		n.Nameservers = append(n.Nameservers, a)
	}
	p.Launch.Networking = n
	p.Launch.Health.Checkin = l.Checkin
	p.Launch.Health.HeartbeatInterval = l.HeartbeatInterval
	return nil
}
