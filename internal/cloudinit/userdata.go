package cloudinit

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net/textproto"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

const cloudConfigHeader = "#cloud-config"

// premiscaleMergeHow makes cloud-init append PremiScale's runcmd and
// write_files to the user's instead of replacing them: a later part merges
// with "dict(replace)+list()+str()" by default, which would drop the user's
// lists. With dict(no_replace) a key the user already set keeps the user's
// value unless it is a list (recurse_array) or a mapping (always recursed),
// which is why Render refuses a user phone_home.
const premiscaleMergeHow = "list(append)+dict(recurse_array,no_replace)+str()"

// premiscaleHeader starts PremiScale's part. It holds no user values.
const premiscaleHeader = cloudConfigHeader + `
# PremiScale check-in. merge_how appends this part's lists (runcmd,
# write_files) to those of the group's own cloud-config instead of replacing them.
`

// Heartbeat unit paths inside the guest.
const (
	heartbeatService = "/etc/systemd/system/premiscale-heartbeat.service"
	heartbeatTimer   = "/etc/systemd/system/premiscale-heartbeat.timer"
)

// userTemplateName is the text/template name; errors carry it as
// "template: user:LINE:...", which templateError turns into the source name.
const userTemplateName = "user"

type phoneHome struct {
	URL   string   `yaml:"url"`
	Post  []string `yaml:"post,flow"`
	Tries int      `yaml:"tries"`
}

type writeFile struct {
	Path        string `yaml:"path"`
	Owner       string `yaml:"owner"`
	Permissions string `yaml:"permissions"`
	Content     string `yaml:"content"`
}

type premiscaleConfig struct {
	MergeHow   string      `yaml:"merge_how"`
	PhoneHome  phoneHome   `yaml:"phone_home"`
	WriteFiles []writeFile `yaml:"write_files,omitempty"`
	RunCmd     [][]string  `yaml:"runcmd,omitempty,flow"`
}

// userData assembles the multipart user-data: the rendered user part (if
// any), then PremiScale's part (if the instance checks in).
func userData(p Params, inst Instance) ([]byte, error) {
	user, err := renderUserPart(p, inst)
	if err != nil {
		return nil, err
	}
	var parts []mimePart
	if user != nil {
		parts = append(parts, mimePart{filename: "user.cfg", content: user})
	}
	// Without a check-in URL (a group with check-in off) the guest gets no PremiScale part.
	if p.CheckinURL != "" || p.HeartbeatInterval > 0 {
		ours, err := premiscalePart(p)
		if err != nil {
			return nil, fmt.Errorf("cloud-init seed for %s: %w", inst.Name, err)
		}
		parts = append(parts, mimePart{filename: "premiscale.cfg", content: ours})
	}
	if len(parts) == 0 {
		return []byte(cloudConfigHeader + "\n"), nil
	}
	return multipartArchive(parts)
}

// renderUserPart executes the group's template and checks that the result
// is still a single #cloud-config YAML mapping. It returns nil when there is
// no template or the template renders to an empty document (cloud-init
// would only warn about an empty part).
func renderUserPart(p Params, inst Instance) ([]byte, error) {
	if p.UserTemplate == "" {
		return nil, nil
	}
	src := p.TemplateSource
	if src == "" {
		src = "cloud-init template"
	}
	tmpl, err := template.New(userTemplateName).Option("missingkey=error").Parse(p.UserTemplate)
	if err != nil {
		return nil, templateError(src, err)
	}
	out := limitedBuffer{limit: maxUserPartBytes}
	if err := tmpl.Execute(&out, inst); err != nil {
		if out.full {
			return nil, fmt.Errorf("render %s: line %d: the cloud-config is larger than %d KiB after rendering (a loop in the template?)",
				src, bytes.Count(out.Bytes(), []byte("\n"))+1, maxUserPartBytes>>10)
		}
		return nil, templateError(src, err)
	}
	rendered := out.Bytes()
	first, _, _ := bytes.Cut(rendered, []byte("\n"))
	if strings.TrimRight(string(first), " \t\r") != cloudConfigHeader {
		return nil, fmt.Errorf("render %s: line 1: must start with %q after rendering, found %q",
			src, cloudConfigHeader, truncate(string(first), 40))
	}
	empty, err := checkUserYAML(rendered)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", src, err)
	}
	if empty {
		return nil, nil
	}
	return rendered, nil
}

// maxUserPartBytes bounds a rendered user part. A template can loop ({{range 1000000000}}):
// unbounded, it would fill the memory of every worker that launches the group's instances.
// No cloud-config needs a MiB.
const maxUserPartBytes = 1 << 20

// limitedBuffer is a bytes.Buffer that refuses writes beyond limit, which stops the template.
type limitedBuffer struct {
	bytes.Buffer
	limit int
	full  bool
}

var errUserPartTooLarge = errors.New("rendered cloud-config too large")

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if l.Len()+len(p) > l.limit {
		l.full = true
		return 0, errUserPartTooLarge
	}
	return l.Buffer.Write(p)
}

var (
	templateErrRE = regexp.MustCompile(`^template: ` + userTemplateName + `:(\d+)(?::\d+)?: (.*)$`)
	templateRefRE = regexp.MustCompile(`\b` + userTemplateName + `:(\d+)(?::\d+)?`)
	yamlErrRE     = regexp.MustCompile(`^yaml: (?:line \d+: )?(.*)$`)
)

// templateError rewrites text/template's "template: user:3:7: ..." as
// "render SOURCE: line 3: ...".
func templateError(src string, err error) error {
	msg := err.Error()
	if m := templateErrRE.FindStringSubmatch(msg); m != nil {
		// e.g. "unclosed action started at user:2"
		rest := templateRefRE.ReplaceAllString(m[2], "line $1")
		rest = strings.Replace(rest, `executing "`+userTemplateName+`" at `, "at ", 1)
		return fmt.Errorf("render %s: line %s: %s", src, m[1], rest)
	}
	return fmt.Errorf("render %s: %w", src, err)
}

// checkUserYAML reports whether the rendered user part is one YAML document
// holding a mapping (or nothing), as cloud-init requires, and that it leaves
// phone_home to PremiScale.
func checkUserYAML(data []byte) (empty bool, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		return false, yamlError(data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return false, fmt.Errorf("line %d: a second YAML document; cloud-init reads exactly one", extra.Line)
	} else if !errors.Is(err, io.EOF) {
		return false, yamlError(data, err)
	}
	if len(doc.Content) == 0 {
		return true, nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return true, nil
	}
	if root.Kind != yaml.MappingNode {
		return false, fmt.Errorf("line %d: the cloud-config must be a YAML mapping of module keys", root.Line)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := root.Content[i]; k.Value == "phone_home" {
			return false, fmt.Errorf("line %d: phone_home is reserved: PremiScale uses it for the instance's check-in", k.Line)
		}
	}
	return false, nil
}

// maxLocateLines bounds the quadratic search in yamlError.
const maxLocateLines = 2000

// yamlError names the line where data stops being valid YAML. yaml.v3's own
// "line N" is the 0-based line of the enclosing construct for parser errors
// (a flow sequence opened two lines earlier, say), so it is not used: the
// bad line is the one after the longest prefix of data that still parses.
func yamlError(data []byte, err error) error {
	msg := err.Error()
	if m := yamlErrRE.FindStringSubmatch(msg); m != nil {
		msg = m[1]
	}
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) > maxLocateLines {
		return fmt.Errorf("invalid YAML after rendering: %w", err)
	}
	for k := len(lines) - 1; k >= 0; k-- {
		var n yaml.Node
		if yaml.Unmarshal([]byte(strings.Join(lines[:k], "")), &n) == nil {
			return fmt.Errorf("line %d: invalid YAML after rendering (%q): %s",
				k+1, truncate(strings.TrimRight(lines[k], "\r\n"), 60), msg)
		}
	}
	return fmt.Errorf("invalid YAML after rendering: %s", msg)
}

// premiscalePart is PremiScale's own #cloud-config: phone_home to the
// check-in URL and, if asked, a systemd timer that POSTs heartbeats to it.
func premiscalePart(p Params) ([]byte, error) {
	if err := checkCheckinURL(p.CheckinURL); err != nil {
		return nil, err
	}
	if p.HeartbeatInterval < 0 {
		return nil, fmt.Errorf("heartbeat interval %s is negative", p.HeartbeatInterval)
	}
	cfg := premiscaleConfig{
		MergeHow: premiscaleMergeHow,
		PhoneHome: phoneHome{
			URL:   p.CheckinURL,
			Post:  []string{"instance_id", "hostname", "fqdn"},
			Tries: 10,
		},
	}
	if p.HeartbeatInterval > 0 {
		secs := int64(math.Ceil(p.HeartbeatInterval.Seconds()))
		cfg.WriteFiles = []writeFile{
			{Path: heartbeatService, Owner: "root:root", Permissions: "0644", Content: heartbeatServiceUnit(p.CheckinURL)},
			{Path: heartbeatTimer, Owner: "root:root", Permissions: "0644", Content: heartbeatTimerUnit(secs)},
		}
		cfg.RunCmd = [][]string{
			{"systemctl", "daemon-reload"},
			{"systemctl", "enable", "--now", "premiscale-heartbeat.timer"},
		}
	}
	body, err := marshalYAML(cfg)
	if err != nil {
		return nil, err
	}
	return append([]byte(premiscaleHeader), body...), nil
}

// checkCheckinURL makes sure the URL can sit unquoted on a systemd ExecStart
// line (no whitespace, quotes or backslashes; '%' is escaped there) and
// survives cc_phone_home, which expands $NAME in its url as a template and
// fails on any name but $INSTANCE_ID.
func checkCheckinURL(raw string) error {
	if raw == "" {
		return errors.New("check-in URL is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("check-in URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("check-in URL %q: want http(s)://host/...", raw)
	}
	if i := strings.IndexFunc(raw, func(r rune) bool {
		return r <= ' ' || r == 0x7f || r == '"' || r == '\'' || r == '\\' || r == '$'
	}); i >= 0 {
		return fmt.Errorf("check-in URL %q: character %q at %d is not allowed", raw, raw[i], i)
	}
	return nil
}

func heartbeatServiceUnit(checkinURL string) string {
	// systemd expands %specifiers on ExecStart lines.
	escaped := strings.ReplaceAll(checkinURL, "%", "%%")
	return `[Unit]
Description=PremiScale heartbeat
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=/usr/bin/curl -fsS -m 10 -X POST -H 'Content-Type: application/json' -d '{"heartbeat":true}' ` + escaped + `
`
}

func heartbeatTimerUnit(secs int64) string {
	s := strconv.FormatInt(secs, 10) + "s"
	// AccuracySec defaults to one minute, which would stretch short intervals.
	return `[Unit]
Description=PremiScale heartbeat every ` + s + `

[Timer]
OnBootSec=` + s + `
OnUnitActiveSec=` + s + `
AccuracySec=1s

[Install]
WantedBy=timers.target
`
}

type mimePart struct {
	filename string
	content  []byte
}

// multipartArchive writes parts as a multipart/mixed message of
// text/cloud-config parts. The boundary is derived from the content so the
// same parts always give the same bytes.
func multipartArchive(parts []mimePart) ([]byte, error) {
	boundary := deriveBoundary(parts)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if err := mw.SetBoundary(boundary); err != nil {
		return nil, fmt.Errorf("multipart boundary: %w", err)
	}
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", `text/cloud-config; charset="utf-8"`)
		h.Set("MIME-Version", "1.0")
		h.Set("Content-Disposition", `attachment; filename="`+p.filename+`"`)
		content := p.content
		if isASCII(content) {
			h.Set("Content-Transfer-Encoding", "7bit")
		} else {
			// cloud-init (22.4.2 measured) decodes a 7bit/8bit part through
			// latin-1 escapes, which mangles UTF-8 ("é" arrives as a lone
			// surrogate) and makes it drop the whole part as invalid YAML.
			// base64 hands it the exact bytes.
			h.Set("Content-Transfer-Encoding", "base64")
			content = base64Lines(content)
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(content); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.WriteString("Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\r\n")
	out.WriteString("MIME-Version: 1.0\r\n\r\n")
	out.Write(body.Bytes())
	return out.Bytes(), nil
}

// deriveBoundary hashes the parts; in the (astronomically unlikely) case
// that the boundary occurs in a part, it hashes again with a counter.
func deriveBoundary(parts []mimePart) string {
	for n := 0; ; n++ {
		h := sha256.New()
		fmt.Fprintf(h, "%d\n", n)
		for _, p := range parts {
			fmt.Fprintf(h, "%s\n%d\n", p.filename, len(p.content))
			h.Write(p.content)
		}
		b := "premiscale-" + hex.EncodeToString(h.Sum(nil))[:32]
		clash := false
		for _, p := range parts {
			if bytes.Contains(p.content, []byte(b)) {
				clash = true
				break
			}
		}
		if !clash {
			return b
		}
	}
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// base64Lines encodes b in lines of 76 characters, as MIME asks.
func base64Lines(b []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(b)
	var out bytes.Buffer
	for len(enc) > 76 {
		out.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	out.WriteString(enc + "\r\n")
	return out.Bytes()
}

func marshalYAML(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("marshal YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal YAML: %w", err)
	}
	return buf.Bytes(), nil
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "..."
}
