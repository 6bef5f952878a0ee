package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const examples = "../../deploy/examples"

var productionEnv = map[string]string{
	"PREMISCALE_MYSQL_USER":      "premiscale",
	"PREMISCALE_MYSQL_PASSWORD":  "mysql-secret",
	"PREMISCALE_INFLUX_USER":     "premiscale",
	"PREMISCALE_INFLUX_PASSWORD": "influx-secret",
}

func parseExample(t *testing.T, name string, vars map[string]string) (*Config, error) {
	t.Helper()
	path := filepath.Join(examples, name)
	return Parse(mustRead(t, path), path, env(vars))
}

func TestExampleLocal(t *testing.T) {
	cfg, err := parseExample(t, "local.yaml", nil)
	if err != nil {
		t.Fatalf("local.yaml must validate with no environment:\n%v", err)
	}
	local, ok := cfg.Host("local")
	if !ok {
		t.Fatal("local.yaml has no host local")
	}
	if uri, err := local.LibvirtURI(); err != nil || uri != "qemu:///system" {
		t.Errorf("local URI = %q, %v", uri, err)
	}
	demo := cfg.Controller.Autoscale.Groups["demo"]
	if demo.ImagePool() != "premiscale" || demo.ImageVolume() != "debian-12-cloudinit.qcow2" || demo.Domain.Type != "qemu" || demo.Domain.Kernel == "" {
		t.Errorf("demo image = %q", demo.Image)
	}
	if !strings.HasPrefix(demo.CloudInit.Content, "#cloud-config\n") || !demo.Health.CheckinEnabled() {
		t.Errorf("demo cloud-init = %q", demo.CloudInit.Content)
	}
	if demo.Scaling.MinNodes != 1 || demo.Scaling.MaxNodes != 2 || demo.Scaling.ScaleIn.StabilizationWindow.Seconds() != 60 || demo.Scaling.ResourceTarget.CPU != 50 {
		t.Errorf("demo scaling = %+v", demo.Scaling)
	}
	if cfg.Controller.Reconciliation.Interval.Seconds() != 10 || cfg.Controller.Databases.CollectionInterval.Seconds() != 10 {
		t.Errorf("intervals = %s, %s", cfg.Controller.Reconciliation.Interval, cfg.Controller.Databases.CollectionInterval)
	}
}

func TestExampleProduction(t *testing.T) {
	cfg, err := parseExample(t, "production.yaml", productionEnv)
	if err != nil {
		t.Fatalf("production.yaml must validate with its variables set:\n%v", err)
	}
	if got := cfg.Controller.Databases.State.Connection.Credentials.Password; got != "mysql-secret" {
		t.Errorf("state password = %q", got)
	}
	web := cfg.Controller.Autoscale.Groups["web"]
	want, err := os.ReadFile(filepath.Join(examples, "web-cloud-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if web.CloudInit.Content != string(want) {
		t.Errorf("web cloud-init content was not read from web-cloud-config.yaml: %q", web.CloudInit.Content)
	}
	for _, name := range []string{"kvm1", "kvm2"} {
		h, _ := cfg.Host(name)
		uri, err := h.LibvirtURI()
		if err != nil || !strings.HasPrefix(uri, "qemu+ssh://premiscale@") || !strings.Contains(uri, "keyfile=/opt/premiscale/.ssh/id_ed25519") {
			t.Errorf("%s URI = %q, %v", name, uri, err)
		}
	}

	// Without the environment, the MySQL credentials' variables are reported; the InfluxDB ones
	// are written ${VAR:-} (auth may be off) and are empty.
	_, err = parseExample(t, "production.yaml", nil)
	got := problems(t, err)
	wantProblems := []string{
		"controller.databases.state.connection.credentials.username: variable $PREMISCALE_MYSQL_USER is not set",
		"controller.databases.state.connection.credentials.password: variable $PREMISCALE_MYSQL_PASSWORD is not set",
	}
	if strings.Join(got, "\n") != strings.Join(wantProblems, "\n") {
		t.Errorf("without env got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantProblems, "\n"))
	}
}

func TestExampleGroupFile(t *testing.T) {
	cfg, err := parseExample(t, "production.yaml", productionEnv)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(examples, "group-web.yaml")
	groups, err := ParseGroupFile(mustRead(t, path), path, env(productionEnv), cfg)
	if err != nil {
		t.Fatalf("group-web.yaml must validate against production.yaml:\n%v", err)
	}
	web, ok := groups["web"]
	if !ok || !strings.HasPrefix(web.CloudInit.Content, "#cloud-config") {
		t.Errorf("groups = %+v", groups)
	}

	// Against the demo config its hosts are unknown.
	local, err := parseExample(t, "local.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LoadGroupFile(path, local)
	if err == nil || !strings.Contains(err.Error(), `groups.web.hosts[0]: unknown host "kvm1" (defined hosts: local)`) {
		t.Errorf("LoadGroupFile against local.yaml: %v", err)
	}
}

func TestLoadExample(t *testing.T) {
	// Load reads the process environment; local.yaml uses no variables, so this is stable.
	cfg, err := Load(filepath.Join(examples, "local.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Version != Version {
		t.Errorf("version = %q", cfg.Version)
	}
}

// TestInvalidTestdata checks that each file under testdata/invalid/ produces the errors its
// "# want: " lines name (the CLI tests reuse these files).
func TestInvalidTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/invalid files: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data := mustRead(t, path)
			var wants []string
			for _, line := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(line, "# want: "); ok {
					wants = append(wants, w)
				}
			}
			if len(wants) == 0 {
				t.Fatalf("%s has no # want: line", path)
			}
			_, err := Load(path)
			if err == nil {
				t.Fatalf("Load(%s) succeeded", path)
			}
			for _, w := range wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}
