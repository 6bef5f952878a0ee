package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// MaxPoolSize bounds a group's static address pool, so that a typo such as
// "10.0.0.1-10.255.255.255" is an error rather than 16 million addresses.
const MaxPoolSize = 65536

// ExpandAddresses turns a group's networking.addresses ("192.168.5.2", "192.168.5.10-192.168.5.20")
// into the addresses they name, in order and without duplicates (an address named twice keeps
// its first place). Only IPv4 is accepted: the network-config PremiScale writes is IPv4 only.
func ExpandAddresses(specs []string) ([]netip.Addr, error) {
	var out []netip.Addr
	seen := make(map[netip.Addr]bool)
	for i, s := range specs {
		first, last, err := ParseAddressRange(s)
		if err != nil {
			return nil, fmt.Errorf("addresses[%d]: %w", i, err)
		}
		for a := first; ; a = a.Next() {
			if !seen[a] {
				if len(out) == MaxPoolSize {
					return nil, fmt.Errorf("addresses[%d] %q: more than %d static addresses", i, s, MaxPoolSize)
				}
				seen[a] = true
				out = append(out, a)
			}
			if a == last {
				break
			}
		}
	}
	return out, nil
}

// ParseAddressRange reads "192.168.5.7" or "192.168.5.2-192.168.5.254" (inclusive, spaces
// around the dash allowed): both ends IPv4, the first not after the last.
func ParseAddressRange(s string) (first, last netip.Addr, err error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if first, err = parseIPv4(lo, s); err != nil {
		return first, last, err
	}
	if !isRange {
		return first, first, nil
	}
	if last, err = parseIPv4(hi, s); err != nil {
		return first, last, err
	}
	if last.Less(first) {
		return first, last, fmt.Errorf("range %q ends before it starts", s)
	}
	return first, last, nil
}

func parseIPv4(s, whole string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return a, fmt.Errorf("invalid IP address or range %q: use 192.168.5.7 or 192.168.5.2-192.168.5.254", whole)
	}
	if !a.Is4() {
		return a, fmt.Errorf("%s is not an IPv4 address: static addresses are IPv4 only (the network-config PremiScale writes has no IPv6)", a)
	}
	return a, nil
}
