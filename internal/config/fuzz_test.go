package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/config"
)

// fuzzEnv is a fixed environment for $VAR expansion: some set, the rest unset.
func fuzzEnv(name string) (string, bool) {
	switch name {
	case "DB_USER", "DB_PASSWORD", "INFLUX_USER", "INFLUX_PASSWORD", "HOME":
		return "x", true
	}
	return "", false
}

// addFiles adds every file matching pattern to the corpus.
func addFiles(f *testing.F, pattern string) {
	f.Helper()
	paths, err := filepath.Glob(pattern)
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// FuzzParse feeds the config loader any bytes: it must return either a config that converts
// into group specs, or an error that is a *SyntaxError or a *ValidationError with a message
// for every problem. It must never panic.
func FuzzParse(f *testing.F) {
	addFiles(f, "testdata/*.yaml")
	addFiles(f, "testdata/invalid/*.yaml")
	addFiles(f, "../../deploy/examples/*.yaml")
	f.Add([]byte("version: v1alpha1\ncontroller: {autoscale: {groups: {web: {<<: *a}}}}"))
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("version: v1alpha1\ncontroller:\n  databases: {collectionInterval: 1e400}\n"))
	// Relative cloud-init files are looked for next to the (nonexistent) config file.
	source := filepath.Join(f.TempDir(), "config.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseWithin(t, 10*time.Second, data, source)
		checkParseResult(t, cfg != nil, err)
		if err == nil {
			if _, err := cfg.GroupSpecs(); err != nil {
				t.Fatalf("a config that loads does not convert to group specs: %v\n%s", err, data)
			}
		}
		groups, err := config.ParseGroupFile(data, source, fuzzEnv, cfg)
		checkParseResult(t, groups != nil, err)
	})
}

func checkParseResult(t *testing.T, ok bool, err error) {
	t.Helper()
	if ok == (err != nil) {
		t.Fatalf("Parse returned a result %v and an error %v: want exactly one", ok, err)
	}
	if err == nil {
		return
	}
	var syntax *config.SyntaxError
	var invalid *config.ValidationError
	switch {
	case errors.As(err, &syntax):
		if strings.TrimSpace(syntax.Message) == "" {
			t.Fatalf("syntax error without a message: %#v", syntax)
		}
	case errors.As(err, &invalid):
		if len(invalid.Problems) == 0 {
			t.Fatal("validation error without a problem")
		}
		for _, p := range invalid.Problems {
			if strings.TrimSpace(p.Message) == "" {
				t.Fatalf("problem without a message: %#v", p)
			}
		}
	default:
		t.Fatalf("error %T %v: want a *SyntaxError or a *ValidationError", err, err)
	}
}

// parseWithin parses data, failing the test when that takes longer than limit: a config file
// must not be able to hang the loader.
func parseWithin(t *testing.T, limit time.Duration, data []byte, source string) (*config.Config, error) {
	t.Helper()
	type result struct {
		cfg *config.Config
		err error
	}
	done := make(chan result, 1)
	go func() {
		cfg, err := config.Parse(data, source, fuzzEnv)
		done <- result{cfg, err}
	}()
	select {
	case r := <-done:
		return r.cfg, r.err
	case <-time.After(limit):
		t.Fatalf("Parse took longer than %s on %d bytes:\n%q", limit, len(data), data)
		return nil, nil
	}
}
