package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFillFromBuildInfo(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	tests := []struct {
		name            string
		version, commit string // as stamped with -ldflags
		info            debug.BuildInfo
		want            buildInfo
	}{
		{
			name:    "make build: ldflags win over the toolchain's information",
			version: "v1.2.0-3-gabc1234-dirty", commit: "abc1234ffff",
			info: debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20260101000000-abc1234fffff+dirty"}, Settings: vcs("abc1234ffff", "true")},
			want: buildInfo{Version: "v1.2.0-3-gabc1234-dirty", Commit: "abc1234ffff"},
		},
		{
			name:    "go install module@version: the module version, no VCS",
			version: "dev",
			info:    debug.BuildInfo{Main: debug.Module{Version: "v1.4.2"}},
			want:    buildInfo{Version: "v1.4.2"},
		},
		{
			name:    "go build in a clean checkout",
			version: "dev",
			info:    debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261127103005-ab4723eea8fd"}, Settings: vcs("ab4723eea8fd6bfd", "false")},
			want:    buildInfo{Version: "v0.0.0-20261127103005-ab4723eea8fd", Commit: "ab4723eea8fd6bfd"},
		},
		{
			name:    "go build in a modified checkout",
			version: "dev",
			info:    debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261127103005-ab4723eea8fd+dirty"}, Settings: vcs("ab4723eea8fd6bfd", "true")},
			want:    buildInfo{Version: "v0.0.0-20261127103005-ab4723eea8fd+dirty", Commit: "ab4723eea8fd6bfd", Modified: true},
		},
		{
			name:    "go build -buildvcs=false: nothing known",
			version: "dev",
			info:    debug.BuildInfo{Main: debug.Module{Version: "(devel)"}},
			want:    buildInfo{Version: "dev"},
		},
		{
			name:    "only the version stamped: the commit still comes from VCS",
			version: "v2.0.0",
			info:    debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("0123456789", "false")},
			want:    buildInfo{Version: "v2.0.0", Commit: "0123456789"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fillFromBuildInfo(buildInfo{Version: tt.version, Commit: tt.commit}, &tt.info)
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestBuildInfoWrite(t *testing.T) {
	var b bytes.Buffer
	bi := buildInfo{Version: "v1.0.0", Commit: "abc", Modified: true, GoVersion: "go1.26.8", Platform: "linux/amd64"}
	if err := bi.write(&b); err != nil {
		t.Fatal(err)
	}
	want := "premiscale v1.0.0\ncommit: abc (modified)\ngo: go1.26.8 linux/amd64\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

// repoRoot is the module root, two folders up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func gitOutput(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).Output()
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// versionOutput runs `bin --version` and `bin version` and checks they agree.
func versionOutput(t *testing.T, bin string) string {
	t.Helper()
	var outs []string
	for _, args := range [][]string{{"--version"}, {"version"}} {
		cmd := exec.Command(bin, args...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %s: %v", bin, args[0], err)
		}
		outs = append(outs, string(out))
	}
	if outs[0] != outs[1] {
		t.Errorf("--version and version disagree:\n%s\n%s", outs[0], outs[1])
	}
	return outs[0]
}

// TestMakeBuildStampsVersion builds the binary the way `make build` does (the Makefile itself,
// with its output redirected) and checks it reports git describe and the full commit.
func TestMakeBuildStampsVersion(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make is not installed: %v", err)
	}
	root := repoRoot(t)
	bin := filepath.Join(t.TempDir(), "premiscale")
	cmd := exec.Command("make", "--no-print-directory", "-C", root, "build", "BIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	// After the build: a file changed meanwhile would otherwise make the two disagree on -dirty.
	describe := gitOutput(t, root, "describe", "--tags", "--always", "--dirty")
	head := gitOutput(t, root, "rev-parse", "HEAD")
	want := "premiscale " + describe + "\ncommit: " + head + "\ngo: " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if got := versionOutput(t, bin); got != want {
		t.Errorf("make build binary says:\n%s\nwant:\n%s", got, want)
	}
}

// TestPlainBuildReadsBuildInfo builds with a bare `go build` (no -ldflags) and checks the
// binary reports what the toolchain recorded in it, as `go version -m` shows it. In a plain
// clone (CI) that must include the commit; the toolchain records none in a git worktree,
// whose .git is a file.
func TestPlainBuildReadsBuildInfo(t *testing.T) {
	root := repoRoot(t)
	bin := filepath.Join(t.TempDir(), "premiscale")
	// -buildvcs=true: the default (auto) stamps VCS information, but GOFLAGS may turn it off.
	cmd := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/premiscale")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	meta, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	recorded := map[string]string{}
	for _, line := range strings.Split(string(meta), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "mod":
			recorded["mod"] = f[2]
		case len(f) == 2 && f[0] == "build":
			if k, v, ok := strings.Cut(f[1], "="); ok {
				recorded[k] = v
			}
		}
	}
	got := versionOutput(t, bin)

	wantVersion := recorded["mod"]
	if wantVersion == "" || wantVersion == "(devel)" {
		wantVersion = "dev"
	}
	if !strings.HasPrefix(got, "premiscale "+wantVersion+"\n") {
		t.Errorf("version line of %q; want premiscale %s (go version -m:\n%s)", got, wantVersion, meta)
	}
	if fi, err := os.Stat(filepath.Join(root, ".git")); err == nil && fi.IsDir() {
		head := gitOutput(t, root, "rev-parse", "HEAD")
		if recorded["vcs.revision"] != head {
			t.Fatalf("go build in a plain clone recorded vcs.revision %q, want %s", recorded["vcs.revision"], head)
		}
	}
	wantCommit := "unknown"
	if rev := recorded["vcs.revision"]; rev != "" {
		wantCommit = rev
		if recorded["vcs.modified"] == "true" {
			wantCommit += " (modified)"
		}
	}
	if !strings.Contains(got, "\ncommit: "+wantCommit+"\n") {
		t.Errorf("got %q; want commit: %s", got, wantCommit)
	}
	if !strings.Contains(got, "\ngo: "+runtime.Version()+" ") {
		t.Errorf("got %q; want go: %s", got, runtime.Version())
	}
}
