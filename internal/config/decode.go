package config

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxNodes bounds how many nodes one document may expand to through aliases, so a file full of
// nested aliases ("billion laughs") fails instead of exhausting memory.
const maxNodes = 1_000_000

// decoder walks a yaml.v3 node tree against a Go struct by reflection, so that every key gets a
// dotted path and a line, unknown keys are caught, and $VARs are expanded in values only.
type decoder struct {
	r         *report
	lookupEnv func(string) (string, bool)
	visited   int
	// aliases holds the alias targets being decoded, to stop an anchor that contains itself.
	aliases map[*yaml.Node]bool
}

var durationType = reflect.TypeOf(Duration{})

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	default:
		return "something else"
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// decode fills v from n. expand is false below keys tagged expand:"false".
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, expand bool) {
	d.visited++
	if d.visited > maxNodes {
		if d.visited == maxNodes+1 {
			d.r.decodeProblem(path, "document is too large after expanding aliases")
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		if d.aliases[n.Alias] {
			d.r.decodeProblem(path, "alias *%s refers to itself", n.Value)
			return
		}
		d.aliases[n.Alias] = true
		defer delete(d.aliases, n.Alias)
		d.decode(n.Alias, v, path, expand)
		return
	}
	if isNull(n) {
		return
	}

	if v.Type() == durationType {
		s, ok := d.scalar(n, path, expand, "a duration")
		if !ok || s == "" {
			return
		}
		dur, err := parseDuration(s)
		if err != nil {
			d.r.decodeProblem(path, "%v", err)
			return
		}
		v.Set(reflect.ValueOf(Duration{dur}))
		return
	}

	switch v.Kind() {
	case reflect.Pointer:
		// An empty value (such as ${VAR:-}) leaves the pointer nil, as an absent key does.
		elem := reflect.New(v.Type().Elem())
		d.decode(n, elem.Elem(), path, expand)
		if d.r.present[path] || d.r.failed[path] {
			v.Set(elem)
		}
	case reflect.Struct:
		d.decodeStruct(n, v, path, expand)
	case reflect.Map:
		d.decodeMap(n, v, path, expand)
	case reflect.Slice:
		d.decodeSlice(n, v, path, expand)
	case reflect.String:
		if s, ok := d.scalar(n, path, expand, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		s, ok := d.scalar(n, path, expand, "a whole number")
		if !ok || s == "" {
			return
		}
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, v.Type().Bits())
		if err != nil {
			d.r.decodeProblem(path, "expected a whole number, got %q", s)
			return
		}
		v.SetInt(i)
	case reflect.Float32, reflect.Float64:
		s, ok := d.scalar(n, path, expand, "a number")
		if !ok || s == "" {
			return
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(s), v.Type().Bits())
		if err != nil {
			d.r.decodeProblem(path, "expected a number, got %q", s)
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		s, ok := d.scalar(n, path, expand, "true or false")
		if !ok || s == "" {
			return
		}
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			d.r.decodeProblem(path, "expected true or false, got %q", s)
			return
		}
		v.SetBool(b)
	default:
		// Only reachable if types.go gains a field of a kind this walker does not know.
		d.r.decodeProblem(path, "cannot decode into %s", v.Type())
	}
}

// scalar returns n's value with variables expanded, recording the path as present when the
// value is not empty. A variable that is not set is a problem at the key whatever the key: an
// empty value would quietly give the key its default (or leave it empty), which is never what
// a file that names a variable meant.
func (d *decoder) scalar(n *yaml.Node, path string, expand bool, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.r.decodeProblem(path, "expected %s, got %s", want, kindName(n))
		return "", false
	}
	s := n.Value
	if n.Style&yaml.LiteralStyle != 0 {
		d.r.literal[path] = true
	}
	if expand {
		x, err := expandVars(s, d.lookupEnv)
		if err != nil {
			d.r.decodeProblem(path, "%v", err)
			return "", false
		}
		if len(x.missing) > 0 {
			d.r.decodeProblem(path, "%s", varsMessage(x.missing, "not set"))
			return "", false
		}
		s = x.value
		if s == "" && len(x.empty) > 0 {
			d.r.emptyVars[path] = x.empty
		}
	}
	if s != "" {
		d.r.present[path] = true
	}
	return s, true
}

type pair struct{ key, value *yaml.Node }

// pairs lists a mapping's entries with << merge keys resolved: explicit keys win over merged
// ones, and earlier merge sources win over later ones, as YAML's merge key type says.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var explicit, merged []pair
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && (k.Tag == "!!merge" || (k.Value == "<<" && k.Style == 0)) {
			merged = append(merged, d.mergeSources(val, path)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.r.failed[path] = true
			d.r.problems = append(d.r.problems, Problem{Path: path, Line: k.Line,
				Message: fmt.Sprintf("keys must be plain strings, got %s", kindName(k))})
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p := joinPath(path, k.Value)
			d.r.problems = append(d.r.problems, Problem{Path: p, Line: k.Line,
				Message: fmt.Sprintf("duplicate key (first given at line %d)", first)})
			continue
		}
		seen[k.Value] = k.Line
		explicit = append(explicit, pair{k, val})
	}
	for _, p := range merged {
		if _, dup := seen[p.key.Value]; dup {
			continue
		}
		seen[p.key.Value] = p.key.Line
		explicit = append(explicit, p)
	}
	return explicit
}

func (d *decoder) mergeSources(n *yaml.Node, path string) []pair {
	switch {
	case n.Kind == yaml.AliasNode:
		if d.aliases[n.Alias] {
			d.r.decodeProblem(path, "alias *%s refers to itself", n.Value)
			return nil
		}
		d.aliases[n.Alias] = true
		defer delete(d.aliases, n.Alias)
		return d.mergeSources(n.Alias, path)
	case n.Kind == yaml.MappingNode:
		return d.pairs(n, path)
	case n.Kind == yaml.SequenceNode:
		var out []pair
		seen := map[string]bool{}
		for _, item := range n.Content {
			for _, p := range d.mergeSources(item, path) {
				if !seen[p.key.Value] {
					seen[p.key.Value] = true
					out = append(out, p)
				}
			}
		}
		return out
	default:
		d.r.decodeProblem(path, "<< must merge a mapping or a list of mappings, got %s", kindName(n))
		return nil
	}
}

type fieldInfo struct {
	index  int
	name   string
	expand bool
	// shorthand marks the field a scalar written in place of the whole mapping goes to
	// (`image: pool/vol` for `image: {volume: pool/vol}`).
	shorthand bool
}

func structFields(t reflect.Type) (map[string]fieldInfo, []string) {
	fields := map[string]fieldInfo{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = fieldInfo{index: i, name: name, expand: f.Tag.Get("expand") != "false",
			shorthand: slices.Contains(strings.Split(opts, ","), "shorthand")}
		names = append(names, name)
	}
	return fields, names
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, expand bool) {
	fields, names := structFields(v.Type())
	if n.Kind == yaml.ScalarNode {
		for _, f := range fields {
			if f.shorthand {
				// The scalar is that one field, reported at the struct's own key.
				d.decode(n, v.Field(f.index), path, expand && f.expand)
				d.r.present[joinPath(path, f.name)] = d.r.present[path]
				d.r.shorthand[path] = true
				return
			}
		}
	}
	if n.Kind != yaml.MappingNode {
		d.r.decodeProblem(path, "expected a mapping (key: value), got %s", kindName(n))
		return
	}
	d.r.present[path] = true
	var meant []string
	for _, p := range d.pairs(n, path) {
		key := p.key.Value
		child := joinPath(path, key)
		d.r.lines[child] = p.key.Line
		f, ok := fields[key]
		if !ok {
			best, hint := suggest(key, names)
			d.r.decodeProblem(child, "unknown key (%s)", hint)
			if best != "" {
				meant = append(meant, best)
			}
			continue
		}
		d.decode(p.value, v.Field(f.index), child, expand && f.expand)
	}
	// A misspelt key leaves the key it meant missing; saying so again for everything under it
	// would bury the one message that matters.
	for _, key := range meant {
		if child := joinPath(path, key); !d.r.present[child] {
			d.r.muted = append(d.r.muted, child)
		}
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string, expand bool) {
	if n.Kind != yaml.MappingNode {
		d.r.decodeProblem(path, "expected a mapping (name: value), got %s", kindName(n))
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		d.r.decodeProblem(path, "cannot decode into %s", v.Type())
		return
	}
	d.r.present[path] = true
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	for _, p := range d.pairs(n, path) {
		child := joinPath(path, p.key.Value)
		d.r.lines[child] = p.key.Line
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(p.value, elem, child, expand)
		v.SetMapIndex(reflect.ValueOf(p.key.Value).Convert(v.Type().Key()), elem)
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string, expand bool) {
	if n.Kind != yaml.SequenceNode {
		d.r.decodeProblem(path, "expected a list, got %s", kindName(n))
		return
	}
	d.r.present[path] = true
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		child := fmt.Sprintf("%s[%d]", path, i)
		d.r.lines[child] = item.Line
		d.decode(item, s.Index(i), child, expand)
	}
	v.Set(s)
}

// suggest finds the allowed key closest to a misspelt one; it returns that key ("" if none is
// close) and a hint naming it or listing the allowed keys.
func suggest(key string, allowed []string) (string, string) {
	best, bestDist := "", -1
	for _, a := range allowed {
		if strings.EqualFold(a, key) {
			return a, "did you mean " + a + "?"
		}
		dist := levenshtein(strings.ToLower(key), strings.ToLower(a))
		if bestDist < 0 || dist < bestDist {
			best, bestDist = a, dist
		}
	}
	if best != "" && bestDist <= max(2, len(key)/3) && bestDist < len(key) {
		return best, "did you mean " + best + "?"
	}
	sorted := append([]string(nil), allowed...)
	sort.Strings(sorted)
	return "", "allowed keys here: " + strings.Join(sorted, ", ")
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// expansion is a value after expandVars, with what it learnt about the variables used.
type expansion struct {
	value string
	// missing names the variables written without a default that are not set, in order.
	missing []string
	// empty names the variables written without a default that are set to "", in order.
	empty []string
}

// varSyntaxHint ends every message about a malformed variable reference.
const varSyntaxHint = "write $NAME, ${NAME} or ${NAME:-default}, and $$ for a literal $"

// expandVars replaces variable references in s:
//
//   - $NAME and ${NAME} become NAME's value; a NAME that is not set is listed in missing (and
//     expands to nothing, for the caller to report), one set to "" is listed in empty.
//   - ${NAME:-default} becomes NAME's value when it is set and not empty, else default. The
//     default is literal text up to the first }: it is not expanded (a $ followed by a name or {
//     in it is an error, since nesting is not supported), except that $$ is a literal $.
//   - $$ is a literal $, and a $ not followed by a name or { is kept as is.
//
// NAME is letters, digits and _, not starting with a digit.
func expandVars(s string, lookupEnv func(string) (string, bool)) (expansion, error) {
	if !strings.Contains(s, "$") {
		return expansion{value: s}, nil
	}
	var x expansion
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		next := s[i+1]
		switch {
		case next == '$':
			b.WriteByte('$')
			i++
		case next == '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return expansion{}, fmt.Errorf("unterminated ${ in %q (%s)", s, varSyntaxHint)
			}
			ref := s[i : i+3+end]
			name, def, hasDefault, err := parseBraced(s[i+2:i+2+end], ref)
			if err != nil {
				return expansion{}, err
			}
			i += 2 + end
			if hasDefault {
				if val, _ := lookupEnv(name); val != "" {
					b.WriteString(val)
				} else {
					b.WriteString(def)
				}
				continue
			}
			b.WriteString(x.lookup(name, lookupEnv))
		case isVarStart(next):
			j := i + 1
			for j < len(s) && isVarChar(s[j]) {
				j++
			}
			b.WriteString(x.lookup(s[i+1:j], lookupEnv))
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	x.value = b.String()
	return x, nil
}

// lookup returns name's value, noting it in missing or empty when it is unset or "".
func (x *expansion) lookup(name string, lookupEnv func(string) (string, bool)) string {
	val, ok := lookupEnv(name)
	switch {
	case !ok:
		if !slices.Contains(x.missing, name) {
			x.missing = append(x.missing, name)
		}
	case val == "":
		if !slices.Contains(x.empty, name) {
			x.empty = append(x.empty, name)
		}
	}
	return val
}

// parseBraced reads what is between ${ and } (ref is the whole reference, for messages): a name,
// optionally followed by :- and a default.
func parseBraced(inner, ref string) (name, def string, hasDefault bool, err error) {
	j := 0
	for j < len(inner) && isVarChar(inner[j]) {
		j++
	}
	name, rest := inner[:j], inner[j:]
	if !isVarName(name) {
		return "", "", false, fmt.Errorf("invalid variable name in %s: use letters, digits and _, not starting with a digit (%s)", ref, varSyntaxHint)
	}
	if rest == "" {
		return name, "", false, nil
	}
	def, ok := strings.CutPrefix(rest, ":-")
	if !ok {
		return "", "", false, fmt.Errorf("unsupported variable reference %s (%s)", ref, varSyntaxHint)
	}
	var b strings.Builder
	for k := 0; k < len(def); k++ {
		if def[k] != '$' || k+1 == len(def) {
			b.WriteByte(def[k])
			continue
		}
		switch next := def[k+1]; {
		case next == '$':
			b.WriteByte('$')
			k++
		case next == '{' || isVarStart(next):
			return "", "", false, fmt.Errorf("the default in %s is literal text: variables in it are not expanded (write $$ for a literal $)", ref)
		default:
			b.WriteByte('$')
		}
	}
	return name, b.String(), true, nil
}

func isVarChar(c byte) bool {
	return isVarStart(c) || (c >= '0' && c <= '9')
}

func isVarStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isVarName(s string) bool {
	if s == "" || !isVarStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isVarChar(s[i]) {
			return false
		}
	}
	return true
}
