package cloudinit

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestExpandAddresses(t *testing.T) {
	cases := []struct {
		name    string
		specs   []string
		want    []netip.Addr
		wantErr string
	}{
		{name: "nothing", specs: nil, want: nil},
		{name: "single", specs: []string{"192.168.5.2"}, want: addrs("192.168.5.2")},
		{name: "range", specs: []string{"192.168.5.2-192.168.5.5"},
			want: addrs("192.168.5.2", "192.168.5.3", "192.168.5.4", "192.168.5.5")},
		{name: "one-address range", specs: []string{"10.0.0.9-10.0.0.9"}, want: addrs("10.0.0.9")},
		{name: "range over an octet", specs: []string{"10.0.0.254-10.0.1.1"},
			want: addrs("10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1")},
		{name: "spaces around the dash", specs: []string{" 10.0.0.1 - 10.0.0.2 "}, want: addrs("10.0.0.1", "10.0.0.2")},
		{name: "order kept, duplicates dropped", specs: []string{"10.0.0.5", "10.0.0.1-10.0.0.3", "10.0.0.2", "10.0.0.5-10.0.0.6"},
			want: addrs("10.0.0.5", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.6")},
		{name: "reversed range", specs: []string{"10.0.0.1", "192.168.5.9-192.168.5.2"},
			wantErr: `addresses[1]: range "192.168.5.9-192.168.5.2" is reversed`},
		{name: "not an address", specs: []string{"192.168.5.300"}, wantErr: `addresses[0]: "192.168.5.300" is not an IP address`},
		{name: "CIDR is not accepted", specs: []string{"192.168.5.0/24"}, wantErr: "is not an IP address"},
		{name: "empty", specs: []string{""}, wantErr: `"" is not an IP address`},
		{name: "IPv6 rejected", specs: []string{"fd00::1"}, wantErr: "only IPv4 static addresses are supported"},
		{name: "IPv6 range rejected", specs: []string{"fd00::1-fd00::5"}, wantErr: "only IPv4"},
		{name: "IPv4-mapped IPv6 rejected", specs: []string{"::ffff:10.0.0.1"}, wantErr: "only IPv4"},
		{name: "mixed families", specs: []string{"10.0.0.1-fd00::1"}, wantErr: "only IPv4"},
		{name: "too many", specs: []string{"10.0.0.0-10.255.255.255"}, wantErr: "more than 65536 static addresses"},
		{name: "range ending at the top of IPv4", specs: []string{"255.255.255.254-255.255.255.255"},
			want: addrs("255.255.255.254", "255.255.255.255")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ExpandAddresses(c.specs)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestExpandAddressesLimit(t *testing.T) {
	got, err := ExpandAddresses([]string{"10.0.0.0-10.0.255.255"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != MaxPoolSize {
		t.Fatalf("got %d addresses, want %d", len(got), MaxPoolSize)
	}
	if _, err := ExpandAddresses([]string{"10.0.0.0-10.0.255.255", "10.1.0.0"}); err == nil {
		t.Fatal("one address past the limit was accepted")
	}
}

func TestNextFreeAddress(t *testing.T) {
	pool := addrs("192.168.5.2", "192.168.5.3", "192.168.5.4")
	cases := []struct {
		name    string
		pool    []netip.Addr
		inUse   []string
		want    string
		wantErr string
	}{
		{name: "first", pool: pool, want: "192.168.5.2"},
		{name: "skips used", pool: pool, inUse: []string{"192.168.5.2", "192.168.5.3"}, want: "192.168.5.4"},
		{name: "hole in the middle", pool: pool, inUse: []string{"192.168.5.4", "192.168.5.2"}, want: "192.168.5.3"},
		{name: "foreign and blank entries ignored", pool: pool, inUse: []string{"", "10.0.0.1", "not-an-ip", " 192.168.5.2 "}, want: "192.168.5.3"},
		{name: "IPv4-mapped in-use entry counts", pool: pool, inUse: []string{"::ffff:192.168.5.2"}, want: "192.168.5.3"},
		{name: "exhausted", pool: pool, inUse: []string{"192.168.5.4", "192.168.5.3", "192.168.5.2", "10.0.0.1"},
			wantErr: "no free static address (3 in use)"},
		{name: "empty pool", pool: nil, wantErr: "no free static address: the pool is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := NextFreeAddress(c.pool, c.inUse)
			if c.wantErr != "" {
				if err == nil || err.Error() != c.wantErr {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				if !errors.Is(err, ErrNoFreeAddress) {
					t.Fatalf("error %v does not wrap ErrNoFreeAddress", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

// TestNextFreeAddressNeverReturnsInUse allocates a whole pool one address at
// a time, in a scrambled order of releases, and checks each answer.
func TestNextFreeAddressNeverReturnsInUse(t *testing.T) {
	pool, err := ExpandAddresses([]string{"10.9.0.1-10.9.0.40"})
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	list := func() []string {
		var s []string
		for a := range used {
			s = append(s, a)
		}
		return s
	}
	for step := 0; step < 200; step++ {
		if step%7 == 3 && len(used) > 0 {
			for a := range used { // release one (map order: any)
				delete(used, a)
				break
			}
			continue
		}
		a, err := NextFreeAddress(pool, list())
		if len(used) == len(pool) {
			if !errors.Is(err, ErrNoFreeAddress) {
				t.Fatalf("step %d: full pool gave %v, %v", step, a, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d: %v with %d of %d used", step, err, len(used), len(pool))
		}
		if used[a.String()] {
			t.Fatalf("step %d: returned %s, which is in use", step, a)
		}
		for _, p := range pool { // and it is the first free one
			if p == a {
				break
			}
			if !used[p.String()] {
				t.Fatalf("step %d: returned %s but %s comes first and is free", step, a, p)
			}
		}
		used[a.String()] = true
	}
}
