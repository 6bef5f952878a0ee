package cloudinit

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
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

// networkConfig renders network-config (version 2) for n, or nil when the
// seed should carry none.
//
// Why not `match: {name: "e*"}` for dynamic networking: Debian 12's
// cloud-init (22.4.2) renders that as `iface primary inet dhcp` (ENI) or
// `Name=primary` (networkd), an interface that does not exist; only netplan
// honours the glob. Without a network-config cloud-init applies its fallback
// instead, which is DHCP on the first NIC matched by its MAC, on every
// renderer.
func networkConfig(n Network) ([]byte, error) {
	var mac string
	if n.MAC != "" {
		hw, err := net.ParseMAC(n.MAC)
		if err != nil || len(hw) != 6 {
			return nil, fmt.Errorf("network: MAC address %q is not a 48-bit MAC", n.MAC)
		}
		mac = hw.String()
	}
	var eth ethernet
	switch n.Type {
	case NetworkIgnore:
		return nil, nil
	case NetworkDynamic:
		if mac == "" {
			return nil, nil
		}
		eth = ethernet{DHCP4: true}
	case NetworkStatic:
		if mac == "" {
			return nil, fmt.Errorf("static network for %s needs the interface's MAC address: cloud-init renderers other than netplan cannot find an interface otherwise", n.Address)
		}
		var err error
		if eth, err = staticEthernet(n); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("network type %q is not dynamic, static or ignore", n.Type)
	}
	eth.Match = map[string]string{"macaddress": mac}
	return marshalYAML(netConfigV2{Version: 2, Ethernets: map[string]ethernet{netplanID: eth}})
}

func staticEthernet(n Network) (ethernet, error) {
	addr, err := netip.ParseAddr(n.Address)
	if err != nil || !addr.Is4() {
		return ethernet{}, fmt.Errorf("static network: address %q is not an IPv4 address", n.Address)
	}
	bits, err := prefixLength(n.Subnet)
	if err != nil {
		return ethernet{}, fmt.Errorf("static network: %w", err)
	}
	prefix := netip.PrefixFrom(addr, bits)
	eth := ethernet{Addresses: []string{prefix.String()}}
	if n.Gateway != "" {
		gw, err := netip.ParseAddr(n.Gateway)
		if err != nil || !gw.Is4() {
			return ethernet{}, fmt.Errorf("static network: gateway %q is not an IPv4 address", n.Gateway)
		}
		if !prefix.Masked().Contains(gw) || gw == addr {
			return ethernet{}, fmt.Errorf("static network: gateway %s is not another address of %s", gw, prefix.Masked())
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
		for _, s := range n.Nameservers {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil {
				return ethernet{}, fmt.Errorf("static network: nameserver %q is not an IP address", s)
			}
			ns.Addresses = append(ns.Addresses, a.String())
		}
		eth.Nameservers = ns
	}
	return eth, nil
}

// prefixLength reads an IPv4 subnet given as a dotted mask or a prefix length.
func prefixLength(subnet string) (int, error) {
	s := strings.TrimPrefix(strings.TrimSpace(subnet), "/")
	if s == "" {
		return 0, fmt.Errorf("subnet is empty")
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 32 {
			return 0, fmt.Errorf("subnet prefix length %d is not between 1 and 32", n)
		}
		return n, nil
	}
	mask, err := netip.ParseAddr(s)
	if err != nil || !mask.Is4() {
		return 0, fmt.Errorf("subnet %q is neither a dotted mask nor a prefix length", subnet)
	}
	b := mask.As4()
	ones, bits := net.IPv4Mask(b[0], b[1], b[2], b[3]).Size()
	if bits == 0 || ones == 0 {
		return 0, fmt.Errorf("subnet mask %s is not a contiguous netmask", subnet)
	}
	return ones, nil
}
