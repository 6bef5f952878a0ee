package cloudinit

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/premiscale/premiscale/internal/spec"
)

// netplanID is the v2 "device configuration ID" of the instance's interface.
// With a match: rule it is an opaque label for netplan, but cloud-init's
// other renderers use it as the interface name unless they find the
// interface by MAC (cloud-init >= 22.2), which is why every config written
// here matches on macaddress.
const netplanID = "primary"

type netConfigV2 struct {
	Version   int                 `yaml:"version"`
	Ethernets map[string]ethernet `yaml:"ethernets"`
}

type ethernet struct {
	Match       map[string]string `yaml:"match"`
	DHCP4       bool              `yaml:"dhcp4,omitempty"`
	Addresses   []string          `yaml:"addresses,omitempty"`
	Gateway4    string            `yaml:"gateway4,omitempty"`
	Nameservers *nameservers      `yaml:"nameservers,omitempty"`
}

type nameservers struct {
	Addresses []string `yaml:"addresses"`
}

// networkConfig renders network-config (version 2) for the instance's interface, found by mac,
// or nil when the seed should carry none. address is a static instance's IPv4 address.
//
// Why not `match: {name: "e*"}` for dynamic networking: Debian 12's
// cloud-init (22.4.2) renders that as `iface primary inet dhcp` (ENI) or
// `Name=primary` (networkd), an interface that does not exist; only netplan
// honours the glob. Without a network-config cloud-init applies its fallback
// instead, which is DHCP on the first NIC matched by its MAC, on every
// renderer.
func networkConfig(n spec.Network, mac, address string) ([]byte, error) {
	if mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil || len(hw) != 6 {
			return nil, fmt.Errorf("network: MAC address %q is not a 48-bit MAC", mac)
		}
		mac = hw.String()
	}
	var eth ethernet
	switch n.Type {
	case spec.NetworkIgnore:
		return nil, nil
	case spec.NetworkDynamic:
		if mac == "" {
			return nil, nil
		}
		eth = ethernet{DHCP4: true}
	case spec.NetworkStatic:
		if mac == "" {
			return nil, fmt.Errorf("static network for %s needs the interface's MAC address: cloud-init renderers other than netplan cannot find an interface otherwise", address)
		}
		var err error
		if eth, err = staticEthernet(n, address); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("network type %q is not dynamic, static or ignore", n.Type)
	}
	eth.Match = map[string]string{"macaddress": mac}
	return marshalYAML(netConfigV2{Version: 2, Ethernets: map[string]ethernet{netplanID: eth}})
}

func staticEthernet(n spec.Network, address string) (ethernet, error) {
	addr, err := netip.ParseAddr(address)
	if err != nil || !addr.Is4() {
		return ethernet{}, fmt.Errorf("static network: address %q is not an IPv4 address", address)
	}
	if !n.Subnet.IsValid() || !n.Subnet.Addr().Is4() {
		return ethernet{}, fmt.Errorf("static network: subnet %q is not an IPv4 subnet", n.Subnet)
	}
	subnet := n.Subnet.Masked()
	if !subnet.Contains(addr) {
		return ethernet{}, fmt.Errorf("static network: address %s is not in subnet %s", addr, subnet)
	}
	eth := ethernet{Addresses: []string{netip.PrefixFrom(addr, subnet.Bits()).String()}}
	if gw := n.Gateway; gw.IsValid() {
		if !gw.Is4() || !subnet.Contains(gw) || gw == addr {
			return ethernet{}, fmt.Errorf("static network: gateway %s is not another address of %s", gw, subnet)
		}
		// gateway4, although netplan calls it deprecated, rather than
		// routes: cloud-init 22.4.2 (Debian 12) renders gateway4 as ENI's
		// own "gateway" option but a route as "post-up route add ... || true",
		// which needs net-tools (absent from minimal images) and fails
		// silently; and it aborts init-local on `to: default` for every
		// renderer but netplan.
		eth.Gateway4 = gw.String()
	}
	if len(n.Nameservers) > 0 {
		ns := &nameservers{}
		for _, a := range n.Nameservers {
			ns.Addresses = append(ns.Addresses, a.String())
		}
		eth.Nameservers = ns
	}
	return eth, nil
}
