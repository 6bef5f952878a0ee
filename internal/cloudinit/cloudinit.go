// Package cloudinit renders the NoCloud seed of one PremiScale instance
// (meta-data, user-data and network-config) and packs it into the ISO9660
// volume labelled "cidata" that cloud-init looks for.
//
// The user-data is a MIME multipart archive: the group's own #cloud-config,
// rendered as a Go template but otherwise untouched, followed by PremiScale's
// part, which makes the instance check in (cloud-init phone_home) and, when
// asked, send heartbeats.
package cloudinit

import (
	"errors"
	"fmt"
	"time"

	"github.com/premiscale/premiscale/internal/spec"
)

// Instance is what a group's cloud-init template may use:
// {{.Name}} {{.Group}} {{.Index}} {{.Address}}.
type Instance struct {
	Name  string
	Group string
	Index int
	// Address is the instance's static IP, "" when it has none.
	Address string
}

// Params is everything one instance's seed is made from.
type Params struct {
	Instance Instance
	// InstanceID is unique per launch (meta-data instance-id): cloud-init runs
	// its per-instance modules again whenever it changes.
	InstanceID string
	// UserTemplate is the group's #cloud-config, a text/template rendered with
	// Instance; "" means no user part.
	UserTemplate string
	// TemplateSource names the template in errors, e.g.
	// "controller.autoscale.groups.web.cloud-init".
	TemplateSource string
	// CheckinURL is the full check-in URL with the per-instance token.
	CheckinURL string
	// HeartbeatInterval is how often the instance POSTs a heartbeat to
	// CheckinURL; 0 means no heartbeat.
	HeartbeatInterval time.Duration
	// Network is the group's networking; a static instance's address is Instance.Address.
	Network spec.Network
	// MAC is the hardware address of the instance's interface, as the domain defines it.
	// cloud-init's ENI, networkd and sysconfig renderers (Debian, RHEL...) can only find an
	// interface by its MAC: a v2 name glob is honoured by netplan alone. Static networking
	// requires it; dynamic networking without it leaves the choice to cloud-init's fallback.
	MAC string
}

// Seed is the content of the NoCloud seed's files.
type Seed struct {
	MetaData      []byte
	UserData      []byte
	NetworkConfig []byte // nil: no network-config file
}

// Render builds the seed of one instance. It does no I/O.
func Render(p Params) (Seed, error) {
	if p.Instance.Name == "" {
		return Seed{}, errors.New("cloud-init seed: instance name is empty")
	}
	if p.InstanceID == "" {
		return Seed{}, fmt.Errorf("cloud-init seed for %s: instance-id is empty", p.Instance.Name)
	}
	net, err := networkConfig(p.Network, p.MAC, p.Instance.Address)
	if err != nil {
		return Seed{}, fmt.Errorf("cloud-init seed for %s: %w", p.Instance.Name, err)
	}
	inst := p.Instance
	meta, err := metaData(p.InstanceID, inst.Name)
	if err != nil {
		return Seed{}, fmt.Errorf("cloud-init seed for %s: %w", inst.Name, err)
	}
	user, err := userData(p, inst)
	if err != nil {
		return Seed{}, err
	}
	return Seed{MetaData: meta, UserData: user, NetworkConfig: net}, nil
}

func metaData(instanceID, hostname string) ([]byte, error) {
	return marshalYAML(struct {
		InstanceID    string `yaml:"instance-id"`
		LocalHostname string `yaml:"local-hostname"`
	}{instanceID, hostname})
}
