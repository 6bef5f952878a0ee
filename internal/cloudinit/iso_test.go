package cloudinit

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestISORoundTrip(t *testing.T) {
	cases := []struct {
		name      string
		p         Params
		wantFiles []string
	}{
		{"dynamic_heartbeat", baseParams(), []string{"meta-data", "user-data", "network-config"}},
		{"static", staticParams(), []string{"meta-data", "user-data", "network-config"}},
		{"ignore_no_template", ignoreParams(), []string{"meta-data", "user-data"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seed, err := Render(c.p)
			if err != nil {
				t.Fatal(err)
			}
			iso, err := BuildISO(seed)
			if err != nil {
				t.Fatal(err)
			}
			label, files, err := ReadISO(iso)
			if err != nil {
				t.Fatal(err)
			}
			if label != "cidata" {
				t.Fatalf("label %q, want cidata", label)
			}
			if len(files) != len(c.wantFiles) {
				t.Fatalf("files %v, want %v", keys(files), c.wantFiles)
			}
			want := map[string][]byte{"meta-data": seed.MetaData, "user-data": seed.UserData, "network-config": seed.NetworkConfig}
			for _, name := range c.wantFiles {
				got, ok := files[name]
				if !ok {
					t.Fatalf("%s missing; files %v", name, keys(files))
				}
				if !bytes.Equal(got, want[name]) {
					t.Fatalf("%s differs after the round trip:\n%q\nwant\n%q", name, got, want[name])
				}
			}
			if _, err := exec.LookPath("isoinfo"); err == nil {
				t.Run("isoinfo", func(t *testing.T) { checkWithIsoinfo(t, iso, files) })
			}
		})
	}
}

// checkWithIsoinfo asks genisoimage's isoinfo, an independent ISO9660
// reader, for the volume id and each file's bytes.
func checkWithIsoinfo(t *testing.T, iso []byte, files map[string][]byte) {
	path := filepath.Join(t.TempDir(), "seed.iso")
	if err := os.WriteFile(path, iso, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "isoinfo", "-d", "-i", path).CombinedOutput()
	if err != nil {
		t.Fatalf("isoinfo -d: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Volume id: cidata\n") {
		t.Fatalf("isoinfo -d does not show Volume id: cidata:\n%s", out)
	}
	for name, want := range files {
		got, err := exec.CommandContext(ctx, "isoinfo", "-i", path, "-x", "/"+name+";1").Output()
		if err != nil {
			t.Fatalf("isoinfo -x %s: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("isoinfo extracts %s as %q, want %q", name, got, want)
		}
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestBuildISORequiresMetaAndUserData(t *testing.T) {
	for _, s := range []Seed{{UserData: []byte("x")}, {MetaData: []byte("x")}} {
		if _, err := BuildISO(s); err == nil {
			t.Fatalf("BuildISO(%+v) succeeded", s)
		}
	}
}

func TestReadISORejectsGarbage(t *testing.T) {
	if _, _, err := ReadISO(bytes.Repeat([]byte{0}, 40000)); err == nil {
		t.Fatal("ReadISO of zeros succeeded")
	}
	if _, _, err := ReadISO([]byte("short")); err == nil {
		t.Fatal("ReadISO of a short buffer succeeded")
	}
}
