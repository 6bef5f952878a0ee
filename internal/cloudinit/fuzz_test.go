package cloudinit

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// renderErrorRE is how every error about the user's template begins: the source, then the line.
var renderErrorRE = regexp.MustCompile(`^render controller\.autoscale\.groups\.web\.cloud-init: line [1-9][0-9]*: `)

// FuzzRender renders any user template into a seed: the result is an error naming the
// template's source and the line, or a seed whose user-data is a MIME archive of #cloud-config
// parts — the user's, then PremiScale's — and whose meta-data names the instance. It never
// panics. testdata/fuzz/FuzzRender holds the inputs that found bugs.
func FuzzRender(f *testing.F) {
	f.Add(webTemplate)
	f.Add("#cloud-config\n")
	f.Add("#cloud-config\nruncmd: [[echo, \"{{.Nmae}}\"]]\n")
	f.Add("#cloud-config\n{{if .Address}}\n")
	f.Add("#cloud-config\nhostname: {{.Name}}\n---\nx: 1\n")
	f.Add("#cloud-config\nphone_home: {url: http://x}\n")
	f.Add("#cloud-config\na: [1, 2\nb: 3\n")
	f.Add("#!/bin/sh\necho hi\n")
	f.Add("#cloud-config\nwrite_files: [{path: /x, content: \"\u00e9t\u00e9 {{.Index}}\"}]\n")
	f.Add("#cloud-config\n{{range 3}}- {{.}}\n{{end}}")
	f.Add("{{/* a comment */}}#cloud-config\n{{template \"user\"}}")
	f.Fuzz(func(t *testing.T, tmpl string) {
		p := baseParams()
		p.UserTemplate = tmpl
		seed, err := Render(p)
		if err != nil {
			if !renderErrorRE.MatchString(err.Error()) {
				t.Fatalf("error %q: want it to name the template and the line (%s)", err, renderErrorRE)
			}
			return
		}
		parts := parseUserData(t, seed.UserData)
		if len(parts) == 0 || len(parts) > 2 || parts[len(parts)-1].filename != "premiscale.cfg" {
			t.Fatalf("user-data parts %d, the last %q: want the user's (if any), then PremiScale's", len(parts), parts[len(parts)-1].filename)
		}
		for _, pt := range parts {
			if !bytes.HasPrefix(pt.body, []byte(cloudConfigHeader)) {
				t.Fatalf("part %s does not start with %s:\n%s", pt.filename, cloudConfigHeader, pt.body)
			}
			var doc yaml.Node
			if err := yaml.Unmarshal(pt.body, &doc); err != nil || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
				t.Fatalf("part %s is not a YAML mapping (%v):\n%s", pt.filename, err, pt.body)
			}
			if pt.filename == "user.cfg" {
				for i := 0; i < len(doc.Content[0].Content); i += 2 {
					if doc.Content[0].Content[i].Value == "phone_home" {
						t.Fatalf("the user's part sets phone_home, which is PremiScale's:\n%s", pt.body)
					}
				}
			}
		}
		if len(parts) == 2 && parts[0].filename != "user.cfg" {
			t.Fatalf("first part %q, want user.cfg", parts[0].filename)
		}
		var meta struct {
			InstanceID    string `yaml:"instance-id"`
			LocalHostname string `yaml:"local-hostname"`
		}
		if err := yaml.Unmarshal(seed.MetaData, &meta); err != nil || meta.InstanceID != p.InstanceID || meta.LocalHostname != p.Instance.Name {
			t.Fatalf("meta-data %q (%v)", seed.MetaData, err)
		}
	})
}

// A template that loops into a huge cloud-config is refused once it passes the bound, rather
// than filling the worker's memory.
func TestRenderedUserPartIsBounded(t *testing.T) {
	p := baseParams()
	p.UserTemplate = "#cloud-config\nbootcmd:\n{{range 100000000}}  - [echo, {{.}}]\n{{end}}"
	_, err := Render(p)
	if err == nil || !renderErrorRE.MatchString(err.Error()) || !strings.Contains(err.Error(), "larger than 1024 KiB after rendering") {
		t.Fatalf("Render = %v; want an error naming the template, the line and the size", err)
	}
	p.UserTemplate = "#cloud-config\nbootcmd:\n{{range 1000}}  - [echo, {{.}}]\n{{end}}"
	if _, err := Render(p); err != nil {
		t.Fatalf("a loop of a thousand lines: %v", err)
	}
}
