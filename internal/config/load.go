package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"gopkg.in/yaml.v3"
)

// Load reads, expands ($VAR from the process environment), defaults and validates the
// configuration file at path. Relative cloud-init files are found next to it.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path, os.LookupEnv)
}

// Parse does what Load does on data already read. source names the file in messages, and its
// folder is where relative cloud-init files are looked for. lookupEnv resolves $VARs (nil means
// os.LookupEnv).
//
// A file that is not YAML gives a *SyntaxError; anything else wrong gives a *ValidationError
// listing every problem found.
func Parse(data []byte, source string, lookupEnv func(string) (string, bool)) (*Config, error) {
	var cfg Config
	r, err := decodeFile(data, source, lookupEnv, &cfg)
	if err != nil {
		return nil, err
	}
	applyDefaults(r, &cfg)
	validateConfig(r, &cfg, filepath.Dir(source))
	if err := r.err(source); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// groupFile is what `premiscale group create -f` and `group update -f` read.
type groupFile struct {
	Version string           `yaml:"version"`
	Groups  map[string]Group `yaml:"groups"`
}

// LoadGroupFile reads a file holding `version: v1alpha1` and `groups: {<name>: <group>}`, with the
// same expansion, defaults and validation as the groups of a configuration file. Host names are
// checked against cfg's hosts (cfg may be nil to skip that check).
func LoadGroupFile(path string, cfg *Config) (map[string]Group, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read group file: %w", err)
	}
	return ParseGroupFile(data, path, os.LookupEnv, cfg)
}

// ParseGroupFile does what LoadGroupFile does on data already read; see Parse for source and lookupEnv.
func ParseGroupFile(data []byte, source string, lookupEnv func(string) (string, bool), cfg *Config) (map[string]Group, error) {
	var gf groupFile
	r, err := decodeFile(data, source, lookupEnv, &gf)
	if err != nil {
		return nil, err
	}
	var window time.Duration
	if cfg != nil {
		window = cfg.Controller.DefaultCheckWindow()
	}
	applyGroupDefaults(r, "groups", gf.Groups, window)
	validateVersion(r, "version", gf.Version)
	if len(gf.Groups) == 0 {
		r.add("groups", "at least one group is required")
	}
	var hosts []string
	if cfg != nil {
		hosts = make([]string, 0, len(cfg.Controller.Autoscale.Hosts))
		for _, h := range cfg.Controller.Autoscale.Hosts {
			hosts = append(hosts, h.Name)
		}
	}
	validateGroups(r, "groups", gf.Groups, hosts, filepath.Dir(source))
	if err := r.err(source); err != nil {
		return nil, err
	}
	return gf.Groups, nil
}

// decodeFile parses data as one YAML document and decodes it into out (a pointer to a struct),
// returning the report of what it found. Only a YAML syntax error or an empty file is returned
// as an error: decoding problems are in the report, next to the validation that follows.
func decodeFile(data []byte, source string, lookupEnv func(string) (string, bool), out any) (*report, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &SyntaxError{Source: source, Message: "the file is empty"}
		}
		line, msg := yamlSyntaxError(data, err)
		return nil, &SyntaxError{Source: source, Line: line, Message: msg}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			line, msg := yamlSyntaxError(data, err)
			return nil, &SyntaxError{Source: source, Line: line, Message: msg}
		}
		return nil, &SyntaxError{Source: source, Line: extra.Line,
			Message: "a second YAML document (---) starts here: a config file holds one"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, &SyntaxError{Source: source, Message: "the file is empty"}
		}
		root = root.Content[0]
	}
	if isNull(root) {
		return nil, &SyntaxError{Source: source, Line: root.Line, Message: "the file is empty"}
	}

	if root.Kind != yaml.MappingNode && root.Kind != yaml.AliasNode {
		return nil, &ValidationError{Source: source, Problems: []Problem{{Line: root.Line,
			Message: "the file must be a mapping (key: value) at the top level, got " + kindName(root)}}}
	}

	r := newReport()
	r.lines[""] = root.Line
	d := &decoder{r: r, lookupEnv: lookupEnv, aliases: map[*yaml.Node]bool{}}
	d.decode(root, reflect.ValueOf(out).Elem(), "", true)
	return r, nil
}
