package activities

import (
	"encoding/json"
	"net/netip"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/spec"
)

func TestCreateInstanceParamsReadsLegacyShape(t *testing.T) {
	// Recorded from a real history by the worker before internal/spec existed.
	hist, err := os.ReadFile("testdata/create-instance-v0.json")
	if err != nil {
		t.Fatal(err)
	}
	var got CreateInstanceParams
	if err := json.Unmarshal(hist, &got); err != nil {
		t.Fatal(err)
	}
	if got.Launch.Networking.Type != spec.NetworkIgnore || got.Launch.Health.HeartbeatInterval != 30*time.Second ||
		got.Launch.Domain.VCPUs != 1 || got.Launch.Domain.Memory != 128 || got.Launch.ImageVolume == "" {
		t.Errorf("legacy params decoded as %+v", got)
	}

	legacy := []byte(`{"Name":"web-1","Launch":{"NetworkType":"static","Subnet":"10.20.0.0/24","Gateway":"10.20.0.1","Checkin":true,"HeartbeatInterval":30000000000}}`)
	got = CreateInstanceParams{}
	if err := json.Unmarshal(legacy, &got); err != nil {
		t.Fatal(err)
	}
	want := spec.Network{Type: spec.NetworkStatic, Subnet: netip.MustParsePrefix("10.20.0.0/24"), Gateway: netip.MustParseAddr("10.20.0.1")}
	if !reflect.DeepEqual(got.Launch.Networking, want) || !got.Launch.Health.Checkin {
		t.Errorf("legacy static launch decoded as %+v", got.Launch)
	}

	// The current shape round-trips unchanged.
	cur := CreateInstanceParams{Name: "web-2", Launch: spec.Launch{Networking: want, Health: spec.Health{Checkin: true, BootTimeout: time.Minute}}}
	b, err := json.Marshal(cur)
	if err != nil {
		t.Fatal(err)
	}
	var back CreateInstanceParams
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, cur) {
		t.Errorf("round trip = %+v, %v; want %+v", back, err, cur)
	}
}
