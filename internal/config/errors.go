package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one thing wrong with a configuration file.
type Problem struct {
	// Path is the dotted path of the offending key from the top of the file, e.g.
	// controller.autoscale.groups.web.scaling.minNodes or controller.autoscale.hosts[1].uri.
	Path string
	// Line is the line of the key in the file, or of its nearest parent when the key is missing.
	Line int
	// Message says what is wrong and, where it helps, what is allowed.
	Message string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// ValidationError collects every problem found in a configuration file, so a user can fix them
// all in one go instead of one per run.
type ValidationError struct {
	// Source is the file name given to Parse (or Load), for callers that print it.
	Source   string
	Problems []Problem
}

// Error prints one problem per line as "<path>: <message>".
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Detailed prints one problem per line prefixed with the file and line, as compilers do
// ("config.yaml:12: controller.mode: ..."), for editors and terminals that link them.
func (e *ValidationError) Detailed() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		if e.Source != "" {
			b.WriteString(e.Source)
			if p.Line > 0 {
				fmt.Fprintf(&b, ":%d", p.Line)
			}
			b.WriteString(": ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// SyntaxError is a file that is not valid YAML.
type SyntaxError struct {
	Source string
	// Line is 0 when the YAML parser did not say where the error is.
	Line    int
	Message string
}

func (e *SyntaxError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: line %d: %s", e.Source, e.Line, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Source, e.Message)
}

var yamlLineError = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// maxSearchLines bounds the files whose syntax error line is searched for (the search parses
// up to one prefix per line).
const maxSearchLines = 2000

// yamlSyntaxError turns a yaml.v3 parse error of data into a line and a message.
//
// yaml.v3 reports the line where the enclosing block starts, and for parser errors counts from
// 0, so "line 3" may mean a problem on line 9. The first line that no longer parses is found
// instead: the line after the longest prefix of data that is still valid YAML.
func yamlSyntaxError(data []byte, err error) (int, string) {
	line, msg := 0, strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineError.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	ends := lineEnds(data)
	if len(ends) > maxSearchLines {
		return line, msg
	}
	for k := len(ends) - 1; k >= 0; k-- {
		if parses(data[:ends[k]]) {
			return k + 1, msg
		}
	}
	return line, msg
}

// lineEnds lists where each line starts: ends[k] is the length of the first k lines.
func lineEnds(data []byte) []int {
	ends := []int{0}
	for i, c := range data {
		if c == '\n' && i+1 < len(data) {
			ends = append(ends, i+1)
		}
	}
	return ends
}

// parses says whether every YAML document in data parses.
func parses(data []byte) bool {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			return false
		}
	}
}

// report gathers problems while decoding and validating, together with what the decoder learnt
// about each path: its line, which variables left it empty, and whether decoding it failed (so
// validation does not pile a second, confusing message on the same key).
type report struct {
	problems []Problem
	lines    map[string]int
	// literal marks block scalars written with |, whose content starts on the line after the key.
	literal map[string]bool
	// emptyVars holds, for a value that expanded to "", the variables in it that are set to "",
	// so that a required key can say why it is empty.
	emptyVars map[string][]string
	failed    map[string]bool
	// muted holds the paths of keys a misspelt key meant: problems under them are consequences.
	muted []string
	// present holds the paths whose key was given with a non-empty value; defaults fill the rest.
	present map[string]bool
	// shorthand holds the paths of mappings written as their shorthand scalar.
	shorthand map[string]bool
}

func newReport() *report {
	return &report{
		lines:     map[string]int{},
		literal:   map[string]bool{},
		emptyVars: map[string][]string{},
		failed:    map[string]bool{},
		present:   map[string]bool{},
		shorthand: map[string]bool{},
	}
}

// line finds the line of path, or of its nearest ancestor when the key is absent.
func (r *report) line(path string) int {
	for {
		if l, ok := r.lines[path]; ok {
			return l
		}
		if path == "" {
			return 0
		}
		path = parentPath(path)
	}
}

func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

func (r *report) isMuted(path string) bool {
	for _, m := range r.muted {
		if path == m || strings.HasPrefix(path, m+".") || strings.HasPrefix(path, m+"[") {
			return true
		}
	}
	return false
}

// ok says whether none of paths failed to decode, for checks that combine several keys and
// would otherwise report the zero value a failed key was left at.
func (r *report) ok(paths ...string) bool {
	for _, p := range paths {
		if r.failed[p] {
			return false
		}
	}
	return true
}

// decodeProblem records a value that could not be decoded; later checks on the same path are muted.
func (r *report) decodeProblem(path, format string, args ...any) {
	r.failed[path] = true
	r.problems = append(r.problems, Problem{Path: path, Line: r.line(path), Message: fmt.Sprintf(format, args...)})
}

// add records a validation problem, unless the key failed to decode or is muted.
func (r *report) add(path, format string, args ...any) {
	if r.failed[path] || r.isMuted(path) {
		return
	}
	r.problems = append(r.problems, Problem{Path: path, Line: r.line(path), Message: fmt.Sprintf(format, args...)})
}

// required reports a missing value in a key that must be set, and says whether the value is
// usable. A value left empty by variables set to "" says so.
func (r *report) required(path, value, what string) bool {
	if r.failed[path] || r.isMuted(path) {
		return false
	}
	if value != "" {
		return true
	}
	msg := "is required"
	if what != "" {
		msg += " (" + what + ")"
	}
	r.add(path, "%s%s", msg, r.emptyNote(path))
	return false
}

// emptyNote is what a "required" message adds when variables set to "" left the keys at paths
// empty (", but variable $X is empty"), else "".
func (r *report) emptyNote(paths ...string) string {
	var vars []string
	for _, p := range paths {
		for _, v := range r.emptyVars[p] {
			if !slices.Contains(vars, v) {
				vars = append(vars, v)
			}
		}
	}
	if len(vars) == 0 {
		return ""
	}
	return ", but " + varsMessage(vars, "empty")
}

// varsMessage says that variables are in a state: "variable $A is not set",
// "variables $A, $B are empty".
func varsMessage(vars []string, state string) string {
	names := make([]string, len(vars))
	for i, v := range vars {
		names[i] = "$" + v
	}
	if len(names) == 1 {
		return fmt.Sprintf("variable %s is %s", names[0], state)
	}
	return fmt.Sprintf("variables %s are %s", strings.Join(names, ", "), state)
}

// err returns the collected problems in file order, or nil.
func (r *report) err(source string) error {
	if len(r.problems) == 0 {
		return nil
	}
	ps := append([]Problem(nil), r.problems...)
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
	return &ValidationError{Source: source, Problems: ps}
}
