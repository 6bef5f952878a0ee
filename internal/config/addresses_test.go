package config

import (
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
			wantErr: `addresses[1]: range "192.168.5.9-192.168.5.2" ends before it starts`},
		{name: "not an address", specs: []string{"192.168.5.300"}, wantErr: `addresses[0]: invalid IP address or range "192.168.5.300"`},
		{name: "CIDR is not accepted", specs: []string{"192.168.5.0/24"}, wantErr: "invalid IP address or range"},
		{name: "empty", specs: []string{""}, wantErr: `invalid IP address or range ""`},
		{name: "IPv6 rejected", specs: []string{"fd00::1"}, wantErr: "static addresses are IPv4 only"},
		{name: "IPv6 range rejected", specs: []string{"fd00::1-fd00::5"}, wantErr: "IPv4 only"},
		{name: "IPv4-mapped IPv6 rejected", specs: []string{"::ffff:10.0.0.1"}, wantErr: "IPv4 only"},
		{name: "mixed families", specs: []string{"10.0.0.1-fd00::1"}, wantErr: "IPv4 only"},
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
