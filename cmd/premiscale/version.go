package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// commit is set at build time with -ldflags "-X main.commit=..." (make build does, beside
// main.version). Builds that do not stamp it (go install, go build) fall back to the VCS
// information the Go toolchain records in the binary.
var commit string

// buildInfo is what `premiscale version` and `premiscale --version` print.
type buildInfo struct {
	Version string
	Commit  string
	// Modified reports uncommitted changes in the tree the binary was built from, as far as
	// the toolchain recorded it (make build carries it in Version instead: git describe --dirty).
	Modified  bool
	GoVersion string
	Platform  string
}

// currentBuildInfo prefers the values stamped with -ldflags and fills the rest from the
// toolchain's build information: the module version (`go install …@v1.2.3`, or a
// pseudo-version derived from the VCS tag for a local build) and vcs.revision/vcs.modified.
func currentBuildInfo() buildInfo {
	bi := buildInfo{
		Version:   version,
		Commit:    commit,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return bi
	}
	return fillFromBuildInfo(bi, info)
}

// fillFromBuildInfo completes what -ldflags left unset; it is separate so tests can hand it
// build information of every shape.
func fillFromBuildInfo(bi buildInfo, info *debug.BuildInfo) buildInfo {
	stamped := bi.Version != "" && bi.Version != "dev"
	if !stamped && info.Main.Version != "" && info.Main.Version != "(devel)" {
		bi.Version = info.Main.Version
	}
	var revision string
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if bi.Commit == "" {
		bi.Commit = revision
		bi.Modified = modified
	}
	if bi.Version == "" {
		bi.Version = "dev"
	}
	return bi
}

func (bi buildInfo) write(w io.Writer) error {
	commit := bi.Commit
	switch {
	case commit == "":
		commit = "unknown"
	case bi.Modified:
		commit += " (modified)"
	}
	_, err := fmt.Fprintf(w, "premiscale %s\ncommit: %s\ngo: %s %s\n", bi.Version, commit, bi.GoVersion, bi.Platform)
	return err
}

func printVersion(w io.Writer) error {
	return currentBuildInfo().write(w)
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version of this binary",
		Example: `  premiscale version
  premiscale --version`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return printVersion(cmd.OutOrStdout())
		},
	}
}
