package state_test

import (
	"errors"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
)

func TestHostProofsAndErrors(t *testing.T) {
	s, _ := openStore(t)
	defer s.Close()
	c := ctx(t)
	proof := state.HostProof{Name: "kvm1", Worker: "w1", CPUs: 16, MemoryMiB: 32768, FreeMemoryMiB: 20000,
		Allowance: spec.Allowance{CPUOvercommit: 4, MemoryOvercommit: 1, ReservedCPUs: 1, ReservedMemoryMiB: 1024},
		UsedCPUs:  6, UsedMemoryMiB: 6144, Domains: 3}
	if err := s.RecordHostProof(c, proof); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordHostError(c, "kvm2", "w2", errors.New("dial unix /run/libvirt/libvirt-sock: connection refused")); err != nil {
		t.Fatal(err)
	}
	hosts, err := s.ListHosts(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 2 || hosts[0].HostProof != proof || hosts[0].LastSeenAt == nil || hosts[0].Age < 0 || hosts[0].Age > 10*time.Second {
		t.Fatalf("hosts = %+v; want kvm1 as proved, seen just now", hosts)
	}
	if k2 := hosts[1]; k2.Name != "kvm2" || k2.LastSeenAt != nil || k2.LastError == "" || k2.LastErrorAt == nil {
		t.Errorf("kvm2 = %+v; want never seen, with its error", k2)
	}

	// A failure keeps the last proof of life; a later proof keeps the error for the record.
	time.Sleep(20 * time.Millisecond)
	if err := s.RecordHostError(c, "kvm1", "w1", errors.New("timeout")); err != nil {
		t.Fatal(err)
	}
	hosts, err = s.ListHosts(c, "kvm1")
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 1 || hosts[0].LastSeenAt == nil || hosts[0].Age < 20*time.Millisecond || hosts[0].LastError != "timeout" || hosts[0].CPUs != 16 {
		t.Errorf("kvm1 after an error = %+v", hosts)
	}
	if hosts, err := s.ListHosts(c, "kvm1 ", "nope"); err != nil || len(hosts) != 0 {
		t.Errorf("hosts named with a trailing space or unknown = %+v, %v; want none", hosts, err)
	}
}
