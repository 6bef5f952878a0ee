package cloudinit

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// MaxPoolSize bounds what ExpandAddresses returns, so a typo such as
// "10.0.0.1-10.255.255.255" is an error rather than 16 million addresses.
const MaxPoolSize = 65536

// ErrNoFreeAddress is returned (wrapped) by NextFreeAddress when every address
// of the pool is in use.
var ErrNoFreeAddress = errors.New("no free static address")

// ExpandAddresses turns a group's networking.addresses ("192.168.5.2",
// "192.168.5.10-192.168.5.20") into the addresses they name, in order and
// without duplicates (an address named twice keeps its first place).
// Only IPv4 is accepted: the network-config PremiScale writes is IPv4 only.
func ExpandAddresses(specs []string) ([]netip.Addr, error) {
	var out []netip.Addr
	seen := make(map[netip.Addr]bool)
	add := func(a netip.Addr) error {
		if seen[a] {
			return nil
		}
		if len(out) == MaxPoolSize {
			return fmt.Errorf("more than %d static addresses", MaxPoolSize)
		}
		seen[a] = true
		out = append(out, a)
		return nil
	}
	for i, spec := range specs {
		first, last, err := parseSpec(spec)
		if err != nil {
			return nil, fmt.Errorf("addresses[%d]: %w", i, err)
		}
		for a := first; ; a = a.Next() {
			if err := add(a); err != nil {
				return nil, fmt.Errorf("addresses[%d] %q: %w", i, spec, err)
			}
			if a == last {
				break
			}
		}
	}
	return out, nil
}

// parseSpec reads "A" or "A-B" (inclusive) and checks both ends are IPv4
// and A <= B.
func parseSpec(spec string) (first, last netip.Addr, err error) {
	lo, hi, isRange := strings.Cut(spec, "-")
	first, err = parseIPv4(lo)
	if err != nil {
		return first, last, err
	}
	if !isRange {
		return first, first, nil
	}
	last, err = parseIPv4(hi)
	if err != nil {
		return first, last, err
	}
	if last.Less(first) {
		return first, last, fmt.Errorf("range %q is reversed: %s comes after %s", spec, first, last)
	}
	return first, last, nil
}

func parseIPv4(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, fmt.Errorf("%q is not an IP address", s)
	}
	if !a.Is4() {
		return a, fmt.Errorf("%s: only IPv4 static addresses are supported", s)
	}
	return a, nil
}

// NextFreeAddress returns the first address of pool that is not in inUse
// (addresses as stored, e.g. in the instances table; empty and unparsable
// entries are ignored). When every address is taken the error wraps
// ErrNoFreeAddress.
func NextFreeAddress(pool []netip.Addr, inUse []string) (netip.Addr, error) {
	used := make(map[netip.Addr]bool, len(inUse))
	for _, s := range inUse {
		if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil {
			used[a.Unmap()] = true
		}
	}
	for _, a := range pool {
		if !used[a.Unmap()] {
			return a, nil
		}
	}
	if len(pool) == 0 {
		return netip.Addr{}, fmt.Errorf("%w: the pool is empty", ErrNoFreeAddress)
	}
	distinct := make(map[netip.Addr]bool, len(pool))
	for _, a := range pool {
		distinct[a.Unmap()] = true
	}
	return netip.Addr{}, fmt.Errorf("%w (%d in use)", ErrNoFreeAddress, len(distinct))
}
