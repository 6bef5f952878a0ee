package cloudinit

import (
	"bytes"
	"encoding/base64"
	"flag"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/premiscale/premiscale/internal/spec"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

const webTemplate = `#cloud-config
# {{.Group}} instance number {{.Index}}
hostname: {{.Name}}
packages: [nginx]
write_files:
  - path: /etc/motd
    content: "{{.Name}} of {{.Group}} at {{if .Address}}{{.Address}}{{else}}DHCP{{end}}\n"
runcmd:
  - [systemctl, enable, --now, nginx]
`

func baseParams() Params {
	return Params{
		Instance:          Instance{Name: "web-3", Group: "web", Index: 3},
		InstanceID:        "web-3-5f0c2a9e-7d1b-4c36-9a51-0b8e2f4d6c17",
		UserTemplate:      webTemplate,
		TemplateSource:    "controller.autoscale.groups.web.cloud-init",
		CheckinURL:        "http://10.0.2.2:8090/checkin/web-3/Zm9vYmFyYmF6",
		HeartbeatInterval: 30 * time.Second,
		Network:           spec.Network{Type: spec.NetworkDynamic},
		MAC:               "52:54:00:AB:CD:03",
	}
}

func staticParams() Params {
	p := baseParams()
	p.Instance = Instance{Name: "db-1", Group: "db", Index: 1, Address: "192.168.5.11"}
	p.InstanceID = "db-1-0f1e2d3c"
	p.TemplateSource = "controller.autoscale.groups.db.cloud-init"
	p.CheckinURL = "http://192.168.5.1:8090/checkin/db-1/a%2Fb"
	p.HeartbeatInterval = 0
	p.Network = spec.Network{
		Type:        spec.NetworkStatic,
		Subnet:      netip.MustParsePrefix("192.168.5.0/24"),
		Gateway:     netip.MustParseAddr("192.168.5.1"),
		Nameservers: []netip.Addr{netip.MustParseAddr("192.168.5.1"), netip.MustParseAddr("1.1.1.1")},
	}
	p.MAC = "52:54:00:00:00:11"
	return p
}

func ignoreParams() Params {
	p := baseParams()
	p.Instance = Instance{Name: "batch-7", Group: "batch", Index: 7}
	p.InstanceID = "batch-7-launch-1"
	p.UserTemplate = ""
	p.TemplateSource = ""
	p.CheckinURL = "https://premiscale.example.com/checkin/batch-7/tok"
	p.HeartbeatInterval = 0
	p.Network = spec.Network{Type: spec.NetworkIgnore}
	return p
}

func TestRenderGolden(t *testing.T) {
	cases := []struct {
		name string
		p    Params
	}{
		{"dynamic_heartbeat", baseParams()},
		{"static", staticParams()},
		{"ignore_no_template", ignoreParams()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seed, err := Render(c.p)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			checkGolden(t, c.name+".meta-data", seed.MetaData)
			checkGolden(t, c.name+".user-data", seed.UserData)
			if c.p.Network.Type == spec.NetworkIgnore {
				if seed.NetworkConfig != nil {
					t.Fatalf("network-config for ignore: want nil, got %q", seed.NetworkConfig)
				}
				return
			}
			checkGolden(t, c.name+".network-config", seed.NetworkConfig)

			again, err := Render(c.p)
			if err != nil {
				t.Fatalf("second Render: %v", err)
			}
			if !bytes.Equal(again.UserData, seed.UserData) {
				t.Fatal("user-data differs between two renders of the same params")
			}
		})
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (run go test -update if the change is intended)\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

type part struct {
	filename string
	ctype    string
	cte      string // Content-Transfer-Encoding
	body     []byte
}

// parseUserData reads the multipart user-data the way a MIME reader does.
func parseUserData(t *testing.T, data []byte) []part {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("read MIME message: %v", err)
	}
	if v := msg.Header.Get("MIME-Version"); v != "1.0" {
		t.Fatalf("MIME-Version = %q, want 1.0", v)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("Content-Type = %q (%v), want multipart/mixed", msg.Header.Get("Content-Type"), err)
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	var parts []part
	for {
		p, err := r.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("next part: %v", err)
		}
		var body []byte
		cte := p.Header.Get("Content-Transfer-Encoding")
		switch cte {
		case "7bit":
			body, err = io.ReadAll(p)
		case "base64":
			body, err = io.ReadAll(base64.NewDecoder(base64.StdEncoding, &crlfStripper{r: p}))
		default:
			t.Fatalf("part %s: Content-Transfer-Encoding %q", p.FileName(), cte)
		}
		if err != nil {
			t.Fatalf("read part: %v", err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		parts = append(parts, part{filename: p.FileName(), ctype: ct, cte: cte, body: body})
	}
	return parts
}

// crlfStripper drops the line breaks of a base64 body.
type crlfStripper struct{ r io.Reader }

func (c *crlfStripper) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	out := p[:0]
	for _, b := range p[:n] {
		if b != '\r' && b != '\n' {
			out = append(out, b)
		}
	}
	return len(out), err
}

type ourPart struct {
	MergeHow  string `yaml:"merge_how"`
	PhoneHome struct {
		URL   string   `yaml:"url"`
		Post  []string `yaml:"post"`
		Tries int      `yaml:"tries"`
	} `yaml:"phone_home"`
	WriteFiles []struct {
		Path    string `yaml:"path"`
		Content string `yaml:"content"`
	} `yaml:"write_files"`
	RunCmd [][]string `yaml:"runcmd"`
}

func TestUserDataParts(t *testing.T) {
	p := baseParams()
	seed, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	parts := parseUserData(t, seed.UserData)
	if len(parts) != 2 {
		t.Fatalf("got %d parts, want 2", len(parts))
	}
	if parts[0].filename != "user.cfg" || parts[1].filename != "premiscale.cfg" {
		t.Fatalf("part filenames %q, %q", parts[0].filename, parts[1].filename)
	}
	for _, pt := range parts {
		if pt.ctype != "text/cloud-config" {
			t.Fatalf("part %s has Content-Type %q", pt.filename, pt.ctype)
		}
	}
	wantUser := strings.NewReplacer("{{.Group}}", "web", "{{.Index}}", "3", "{{.Name}}", "web-3",
		"{{if .Address}}{{.Address}}{{else}}DHCP{{end}}", "DHCP").Replace(webTemplate)
	if string(parts[0].body) != wantUser {
		t.Fatalf("user part is not the rendered template untouched:\n%s\nwant:\n%s", parts[0].body, wantUser)
	}

	var ours ourPart
	if err := yaml.Unmarshal(parts[1].body, &ours); err != nil {
		t.Fatalf("PremiScale part is not YAML: %v", err)
	}
	if !bytes.HasPrefix(parts[1].body, []byte("#cloud-config\n")) {
		t.Fatal("PremiScale part does not start with #cloud-config")
	}
	if ours.MergeHow != "list(append)+dict(recurse_array,no_replace)+str()" {
		t.Fatalf("merge_how = %q", ours.MergeHow)
	}
	if ours.PhoneHome.URL != p.CheckinURL || ours.PhoneHome.Tries != 10 ||
		strings.Join(ours.PhoneHome.Post, ",") != "instance_id,hostname,fqdn" {
		t.Fatalf("phone_home = %+v", ours.PhoneHome)
	}
	if len(ours.WriteFiles) != 2 || ours.WriteFiles[0].Path != heartbeatService || ours.WriteFiles[1].Path != heartbeatTimer {
		t.Fatalf("write_files = %+v", ours.WriteFiles)
	}
	wantExec := `ExecStart=/usr/bin/curl -fsS -m 10 -X POST -H 'Content-Type: application/json' -d '{"heartbeat":true}' ` + p.CheckinURL + "\n"
	if !strings.Contains(ours.WriteFiles[0].Content, wantExec) {
		t.Fatalf("service unit lacks %q:\n%s", wantExec, ours.WriteFiles[0].Content)
	}
	for _, want := range []string{"OnBootSec=30s\n", "OnUnitActiveSec=30s\n", "WantedBy=timers.target\n"} {
		if !strings.Contains(ours.WriteFiles[1].Content, want) {
			t.Fatalf("timer unit lacks %q:\n%s", want, ours.WriteFiles[1].Content)
		}
	}
	if got := flatten(ours.RunCmd); got != "systemctl daemon-reload|systemctl enable --now premiscale-heartbeat.timer" {
		t.Fatalf("runcmd = %s", got)
	}
}

func flatten(cmds [][]string) string {
	var s []string
	for _, c := range cmds {
		s = append(s, strings.Join(c, " "))
	}
	return strings.Join(s, "|")
}

func TestHeartbeat(t *testing.T) {
	cases := []struct {
		name     string
		interval time.Duration
		url      string
		wantTime string // "" = no heartbeat
		wantURL  string
	}{
		{"off", 0, "http://h:1/c/x/t", "", ""},
		{"whole seconds", time.Minute, "http://h:1/c/x/t", "60s", "http://h:1/c/x/t"},
		{"rounded up", 1500 * time.Millisecond, "http://h:1/c/x/t", "2s", "http://h:1/c/x/t"},
		{"below a second", time.Millisecond, "http://h:1/c/x/t", "1s", "http://h:1/c/x/t"},
		{"systemd specifier escaped", time.Second, "http://h:1/c/x/a%2Fb", "1s", "http://h:1/c/x/a%%2Fb"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := ignoreParams()
			p.HeartbeatInterval = c.interval
			p.CheckinURL = c.url
			seed, err := Render(p)
			if err != nil {
				t.Fatal(err)
			}
			parts := parseUserData(t, seed.UserData)
			if len(parts) != 1 {
				t.Fatalf("got %d parts without a user template, want 1", len(parts))
			}
			var ours ourPart
			if err := yaml.Unmarshal(parts[0].body, &ours); err != nil {
				t.Fatal(err)
			}
			if ours.PhoneHome.URL != c.url {
				t.Fatalf("phone_home url = %q, want %q (unescaped)", ours.PhoneHome.URL, c.url)
			}
			if c.wantTime == "" {
				if len(ours.WriteFiles) != 0 || len(ours.RunCmd) != 0 {
					t.Fatalf("heartbeat off but write_files=%v runcmd=%v", ours.WriteFiles, ours.RunCmd)
				}
				return
			}
			if len(ours.WriteFiles) != 2 {
				t.Fatalf("write_files = %+v", ours.WriteFiles)
			}
			if !strings.HasSuffix(ours.WriteFiles[0].Content, "}' "+c.wantURL+"\n") {
				t.Fatalf("service ExecStart does not end with %q:\n%s", c.wantURL, ours.WriteFiles[0].Content)
			}
			for _, k := range []string{"OnBootSec=", "OnUnitActiveSec="} {
				if !strings.Contains(ours.WriteFiles[1].Content, k+c.wantTime+"\n") {
					t.Fatalf("timer lacks %s%s:\n%s", k, c.wantTime, ours.WriteFiles[1].Content)
				}
			}
		})
	}
}

func TestBoundaryFollowsContent(t *testing.T) {
	a, err := Render(baseParams())
	if err != nil {
		t.Fatal(err)
	}
	p := baseParams()
	p.UserTemplate += "timezone: UTC\n"
	b, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	boundary := func(ud []byte) string {
		line, _, _ := bytes.Cut(ud, []byte("\r\n"))
		_, params, err := mime.ParseMediaType(strings.TrimPrefix(string(line), "Content-Type: "))
		if err != nil {
			t.Fatal(err)
		}
		return params["boundary"]
	}
	if boundary(a.UserData) == boundary(b.UserData) {
		t.Fatal("different user parts gave the same boundary")
	}
}

func TestTemplateErrors(t *testing.T) {
	cases := []struct {
		name     string
		template string
		want     string
	}{
		{"unknown field", "#cloud-config\nhostname: x\nfqdn: {{.Nmae}}\n",
			"render controller.autoscale.groups.web.cloud-init: line 3: "},
		{"unknown function", "#cloud-config\n\n\n\nhostname: {{upper .Name}}\n",
			"render controller.autoscale.groups.web.cloud-init: line 5: function \"upper\" not defined"},
		{"unclosed action", "#cloud-config\nhostname: {{.Name\n",
			"render controller.autoscale.groups.web.cloud-init: line 3: unclosed action started at line 2"},
		{"unclosed if", "#cloud-config\n{{if .Address}}\naddress: {{.Address}}\n",
			"render controller.autoscale.groups.web.cloud-init: line 4: unexpected EOF"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := baseParams()
			p.UserTemplate = c.template
			_, err := Render(p)
			if err == nil {
				t.Fatal("Render succeeded")
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("error %q does not start with %q", err, c.want)
			}
			if strings.Contains(err.Error(), "template: user:") {
				t.Fatalf("error %q still carries text/template's internal name", err)
			}
		})
	}
	t.Run("unknown field names the field", func(t *testing.T) {
		p := baseParams()
		p.UserTemplate = "#cloud-config\nhostname: x\nfqdn: {{.Nmae}}\n"
		_, err := Render(p)
		want := "render controller.autoscale.groups.web.cloud-init: line 3: at <.Nmae>: can't evaluate field Nmae"
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("error %v, want it to start with %q", err, want)
		}
	})
}

func TestInvalidUserYAML(t *testing.T) {
	src := "render controller.autoscale.groups.web.cloud-init: "
	cases := []struct {
		name     string
		template string
		want     string
	}{
		{"no header", "hostname: {{.Name}}\n", src + "line 1: must start with \"#cloud-config\""},
		{"header not first", "\n#cloud-config\nhostname: x\n", src + "line 1: must start with"},
		{"jinja header", "## template: jinja\n#cloud-config\n", src + "line 1: must start with"},
		{"bad indentation after rendering", "#cloud-config\nusers:\n  - name: {{.Name}}\n   shell: /bin/sh\n",
			src + `line 4: invalid YAML after rendering ("   shell: /bin/sh"): did not find expected '-' indicator`},
		{"unterminated flow", "#cloud-config\nhostname: x\nbootcmd: [echo {{.Name}}\nfqdn: y\n",
			src + `line 3: invalid YAML after rendering ("bootcmd: [echo web-3"): did not find expected ',' or ']'`},
		{"multi-line flow before the error", "#cloud-config\npackages: [\n  nginx,\n  curl\n]\nhostname: {{.Name}}: x\n",
			src + `line 6: invalid YAML after rendering ("hostname: web-3: x"): mapping values are not allowed`},
		{"value breaks YAML", "#cloud-config\nhostname: {{.Name}}\nfqdn: \"{{.Name}}\n",
			src + `line 3: invalid YAML after rendering ("fqdn: \"web-3")`},
		{"tab indentation", "#cloud-config\nruncmd:\n\t- [ls]\n", src + "line 3: invalid YAML after rendering"},
		{"second document", "#cloud-config\nhostname: x\n---\nhostname: y\n", src + "line 3: a second YAML document"},
		{"list at top level", "#cloud-config\n- {{.Name}}\n", src + "line 2: the cloud-config must be a YAML mapping"},
		{"phone_home reserved", "#cloud-config\nhostname: x\nphone_home:\n  url: http://elsewhere/\n", src + "line 3: phone_home is reserved"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := baseParams()
			p.UserTemplate = c.template
			_, err := Render(p)
			if err == nil {
				t.Fatal("Render succeeded")
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("error %q does not start with %q", err, c.want)
			}
		})
	}
}

func TestEmptyUserPartIsDropped(t *testing.T) {
	for _, tmpl := range []string{"#cloud-config\n", "#cloud-config\n# nothing yet\n", "#cloud-config"} {
		p := baseParams()
		p.UserTemplate = tmpl
		seed, err := Render(p)
		if err != nil {
			t.Fatalf("%q: %v", tmpl, err)
		}
		parts := parseUserData(t, seed.UserData)
		if len(parts) != 1 || parts[0].filename != "premiscale.cfg" {
			t.Fatalf("%q: got %d parts, want PremiScale's only", tmpl, len(parts))
		}
	}
}

func TestNetworkConfig(t *testing.T) {
	type netCfg struct {
		Version   int `yaml:"version"`
		Ethernets map[string]struct {
			Match       map[string]string `yaml:"match"`
			DHCP4       bool              `yaml:"dhcp4"`
			Addresses   []string          `yaml:"addresses"`
			Gateway4    string            `yaml:"gateway4"`
			Routes      any               `yaml:"routes"`
			Nameservers struct {
				Addresses []string `yaml:"addresses"`
			} `yaml:"nameservers"`
		} `yaml:"ethernets"`
	}
	prefix := netip.MustParsePrefix
	cases := []struct {
		name     string
		net      spec.Network
		mac      string
		address  string
		wantNil  bool
		wantAddr string
		wantGW   string
	}{
		{name: "dynamic with MAC", net: spec.Network{Type: spec.NetworkDynamic}, mac: "52-54-00-AB-CD-EF"},
		{name: "dynamic without MAC uses cloud-init's fallback", net: spec.Network{Type: spec.NetworkDynamic}, wantNil: true},
		{name: "ignore", net: spec.Network{Type: spec.NetworkIgnore}, mac: "52:54:00:ab:cd:ef", wantNil: true},
		{name: "static /16", net: spec.Network{Type: spec.NetworkStatic, Subnet: prefix("10.1.0.0/16"), Gateway: netip.MustParseAddr("10.1.0.1")},
			mac: "52:54:00:ab:cd:ef", address: "10.1.2.3", wantAddr: "10.1.2.3/16", wantGW: "10.1.0.1"},
		{name: "static without gateway", net: spec.Network{Type: spec.NetworkStatic, Subnet: prefix("10.1.2.0/24")},
			mac: "52:54:00:ab:cd:ef", address: "10.1.2.3", wantAddr: "10.1.2.3/24"},
		{name: "static /20, subnet written unmasked", net: spec.Network{Type: spec.NetworkStatic, Subnet: prefix("172.16.9.0/20"), Gateway: netip.MustParseAddr("172.16.0.1")},
			mac: "52:54:00:ab:cd:ef", address: "172.16.9.9", wantAddr: "172.16.9.9/20", wantGW: "172.16.0.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := ignoreParams()
			p.Network, p.MAC, p.Instance.Address = c.net, c.mac, c.address
			seed, err := Render(p)
			if err != nil {
				t.Fatal(err)
			}
			if c.wantNil {
				if seed.NetworkConfig != nil {
					t.Fatalf("want no network-config, got:\n%s", seed.NetworkConfig)
				}
				return
			}
			var nc netCfg
			if err := yaml.Unmarshal(seed.NetworkConfig, &nc); err != nil {
				t.Fatal(err)
			}
			eth, ok := nc.Ethernets["primary"]
			if nc.Version != 2 || !ok || len(nc.Ethernets) != 1 {
				t.Fatalf("network-config:\n%s", seed.NetworkConfig)
			}
			if eth.Match["macaddress"] != "52:54:00:ab:cd:ef" {
				t.Fatalf("match = %v, want the normalised MAC", eth.Match)
			}
			if c.net.Type == spec.NetworkDynamic {
				if !eth.DHCP4 || len(eth.Addresses) != 0 {
					t.Fatalf("dynamic:\n%s", seed.NetworkConfig)
				}
				return
			}
			if eth.DHCP4 || len(eth.Addresses) != 1 || eth.Addresses[0] != c.wantAddr {
				t.Fatalf("addresses %v, want [%s]:\n%s", eth.Addresses, c.wantAddr, seed.NetworkConfig)
			}
			if eth.Gateway4 != c.wantGW || eth.Routes != nil {
				t.Fatalf("gateway4 %q routes %v, want gateway4 %q and no routes", eth.Gateway4, eth.Routes, c.wantGW)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	static := func(mod func(*Params)) Params {
		p := staticParams()
		mod(&p)
		return p
	}
	cases := []struct {
		name string
		p    Params
		want string
	}{
		{"static without MAC", static(func(p *Params) { p.MAC = "" }), "needs the interface's MAC address"},
		{"bad MAC", static(func(p *Params) { p.MAC = "52:54:00" }), "is not a 48-bit MAC"},
		{"no address", static(func(p *Params) { p.Instance.Address = "" }), `address "" is not an IPv4 address`},
		{"IPv6 address", static(func(p *Params) { p.Instance.Address = "fd00::5" }), "is not an IPv4 address"},
		{"address outside the subnet", static(func(p *Params) { p.Instance.Address = "192.168.6.11" }), "is not in subnet 192.168.5.0/24"},
		{"IPv6 subnet", static(func(p *Params) { p.Network.Subnet = netip.MustParsePrefix("fd00::/64") }), "is not an IPv4 subnet"},
		{"no subnet", static(func(p *Params) { p.Network.Subnet = netip.Prefix{} }), "is not an IPv4 subnet"},
		{"gateway outside subnet", static(func(p *Params) { p.Network.Gateway = netip.MustParseAddr("192.168.6.1") }), "is not another address of 192.168.5.0/24"},
		{"gateway is the address", static(func(p *Params) { p.Network.Gateway = netip.MustParseAddr("192.168.5.11") }), "is not another address"},
		{"unknown type", func() Params { p := baseParams(); p.Network.Type = "bridge"; return p }(), `network type "bridge"`},
		{"no name", func() Params { p := baseParams(); p.Instance.Name = ""; return p }(), "instance name is empty"},
		{"no instance id", func() Params { p := baseParams(); p.InstanceID = ""; return p }(), "instance-id is empty"},
		{"no check-in URL", func() Params { p := baseParams(); p.CheckinURL = ""; return p }(), "check-in URL is empty"},
		{"relative check-in URL", func() Params { p := baseParams(); p.CheckinURL = "/checkin/x"; return p }(), "want http(s)://host/"},
		{"quote in check-in URL", func() Params { p := baseParams(); p.CheckinURL = "http://h/c/x/a'b"; return p }(), "is not allowed"},
		{"space in check-in URL", func() Params { p := baseParams(); p.CheckinURL = "http://h/c/x/a b"; return p }(), "is not allowed"},
		{"dollar in check-in URL", func() Params { p := baseParams(); p.CheckinURL = "http://h/c/x/$TOKEN"; return p }(), `character '$' at 13 is not allowed`},
		{"negative heartbeat", func() Params { p := baseParams(); p.HeartbeatInterval = -time.Second; return p }(), "is negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Render(c.p)
			if err == nil {
				t.Fatal("Render succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestStaticAddressReachesTemplate(t *testing.T) {
	p := staticParams()
	seed, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	parts := parseUserData(t, seed.UserData)
	if !strings.Contains(string(parts[0].body), "db-1 of db at 192.168.5.11") {
		t.Fatalf("user part lacks the static address:\n%s", parts[0].body)
	}
}

func TestNonASCIIUserPartIsBase64(t *testing.T) {
	p := baseParams()
	p.UserTemplate = "#cloud-config\n# h\u00e9llo \u2713\nwrite_files:\n  - path: /etc/greeting\n    content: \"gr\u00fc\u00df {{.Name}}\\n\"\n"
	seed, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	if !isASCII(seed.UserData) {
		t.Fatal("user-data carries raw non-ASCII bytes; cloud-init would mangle them")
	}
	parts := parseUserData(t, seed.UserData)
	want := strings.ReplaceAll(p.UserTemplate, "{{.Name}}", "web-3")
	if string(parts[0].body) != want {
		t.Fatalf("user part after base64:\n%q\nwant\n%q", parts[0].body, want)
	}
	if parts[0].cte != "base64" || parts[1].cte != "7bit" {
		t.Fatalf("transfer encodings %q, %q: want base64 for the non-ASCII part, 7bit (readable) for PremiScale's", parts[0].cte, parts[1].cte)
	}
}

func TestRenderWithoutCheckin(t *testing.T) {
	p := Params{
		Instance:     Instance{Name: "web-1", Group: "web", Index: 1},
		InstanceID:   "web-1-abc",
		UserTemplate: "#cloud-config\nruncmd:\n  - [echo, \"{{.Name}}\"]\n",
		Network:      spec.Network{Type: spec.NetworkIgnore},
	}
	seed, err := Render(p)
	if err != nil {
		t.Fatalf("Render without a check-in URL: %v", err)
	}
	ud := string(seed.UserData)
	if !strings.Contains(ud, "[echo, \"web-1\"]") || strings.Contains(ud, "phone_home") {
		t.Errorf("user-data without check-in should hold the user's part and no phone_home:\n%s", ud)
	}
	p.UserTemplate = ""
	if seed, err = Render(p); err != nil || string(seed.UserData) != "#cloud-config\n" {
		t.Errorf("nothing to say: user-data %q, %v; want an empty #cloud-config", seed.UserData, err)
	}
}
