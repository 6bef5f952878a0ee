package policy

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// FieldError is one problem with a spec, at the key it is about.
type FieldError struct {
	// Path is the key relative to the group's scaling block, in the configuration's names:
	// "maxNodes", "scaleIn.rateLimit.percent", "checks[2].threshold.upper",
	// "schedules[0].timeZone", "resourceTarget.cpu"; "" is the block itself.
	Path string
	// Detail says what is wrong, with the value and what is allowed; it does not repeat Path.
	Detail string
	// Involves lists the other keys a relation between fields read (minNodes and maxNodes for
	// "minNodes is greater than maxNodes"). A caller that knows one of them to be unreliable,
	// say it failed to parse and was left at zero, can drop the problem as a consequence.
	Involves []string `json:",omitempty"`
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Detail
	}
	return e.Path + ": " + e.Detail
}

// FieldErrors is every problem Validate found, in the order of the spec's fields. A non-empty
// one is an error; Validate returns nil when there is nothing wrong.
type FieldErrors []FieldError

// Error prints one problem per line.
func (es FieldErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns es as an error, or nil when it is empty (a nil FieldErrors in an error variable
// would not be a nil error).
func (es FieldErrors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

func (es *FieldErrors) add(path, format string, args ...any) {
	*es = append(*es, FieldError{Path: path, Detail: fmt.Sprintf(format, args...)})
}

// relation adds a problem at path that comes from the keys in involves together.
func (es *FieldErrors) relation(path string, involves []string, format string, args ...any) {
	*es = append(*es, FieldError{Path: path, Detail: fmt.Sprintf(format, args...), Involves: involves})
}

// under adds sub's problems with their paths below prefix; with flat set, at prefix itself.
func (es *FieldErrors) under(prefix string, flat bool, sub FieldErrors) {
	for _, e := range sub {
		e.Path = joinKey(prefix, e.Path, flat)
		inv := make([]string, len(e.Involves))
		for i, k := range e.Involves {
			inv[i] = joinKey(prefix, k, flat)
		}
		if len(inv) == 0 {
			inv = nil
		}
		e.Involves = inv
		*es = append(*es, e)
	}
}

func joinKey(prefix, key string, flat bool) string {
	switch {
	case flat || key == "":
		return prefix
	case prefix == "":
		return key
	}
	return prefix + "." + key
}

// ValidateOption tells Validate about the group's surroundings.
type ValidateOption func(*validateOptions)

type validateOptions struct {
	// staticAddresses is the size of the group's static address pool, or -1 for no limit.
	staticAddresses int
}

// StaticAddresses says the group takes its addresses from a static pool of n, which caps
// maxNodes and every schedule's maxNodes.
func StaticAddresses(n int) ValidateOption {
	return func(o *validateOptions) { o.staticAddresses = n }
}

// Validate reports every problem in the spec at once, each at the key it is about (see
// FieldError). Evaluate copes with an invalid spec (it holds or ignores what it cannot read),
// but a valid one is what it was written for.
func (s Spec) Validate(opts ...ValidateOption) FieldErrors {
	o := validateOptions{staticAddresses: -1}
	for _, opt := range opts {
		opt(&o)
	}
	var errs FieldErrors

	minOK, maxOK := s.Min >= 0, s.Max >= 1
	if !minOK {
		errs.add("minNodes", "must not be negative, got %d", s.Min)
	}
	if !maxOK {
		errs.add("maxNodes", "must be at least 1, got %d", s.Max)
	}
	if minOK && maxOK && s.Min > s.Max {
		errs.relation("", []string{"minNodes", "maxNodes"}, "minNodes (%d) is greater than maxNodes (%d)", s.Min, s.Max)
	}
	if maxOK && o.staticAddresses >= 0 && s.Max > o.staticAddresses {
		errs.add("maxNodes", "maxNodes (%d) is larger than the %d static addresses in networking.addresses", s.Max, o.staticAddresses)
	}
	if s.Increment < 0 {
		// 0 is no cap here, but a configuration cannot say it: the message speaks to both.
		errs.add("increment", "must be at least 1, got %d", s.Increment)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"scaleOut.cooldown", s.ScaleOutCooldown},
		{"scaleIn.cooldown", s.ScaleInCooldown},
		{"scaleIn.stabilizationWindow", s.ScaleInStabilization},
	} {
		if d.v < 0 {
			errs.add(d.key, "must not be negative, got %s", d.v)
		}
	}
	errs.under("scaleOut.rateLimit", false, s.ScaleOutRate.validate(false))
	errs.under("scaleIn.rateLimit", false, s.ScaleInRate.validate(true))

	if len(s.Checks) == 0 && len(s.Schedules) == 0 {
		errs.relation("", []string{"resourceTarget", "checks", "schedules"},
			"nothing sizes the group: set at least one of resourceTarget, checks or schedules")
	}

	names := map[string]string{}
	for i, c := range s.Checks {
		key := c.Key
		if key == "" {
			key = fmt.Sprintf("checks[%d]", i)
		}
		errs = append(errs, c.validate(key, names)...)
	}

	b := groupBounds{min: s.Min, max: s.Max, minOK: minOK, maxOK: maxOK, static: o.staticAddresses}
	scheduleNames := map[string]string{}
	for i, sc := range s.Schedules {
		errs = append(errs, sc.validate(fmt.Sprintf("schedules[%d]", i), scheduleNames, b)...)
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// validate checks a rate limit; shrinking says it limits a scale-in, where more than 100%
// means nothing. Paths are relative to the limit.
func (r RateLimit) validate(shrinking bool) FieldErrors {
	var errs FieldErrors
	countOK, percentOK := r.Count >= 0, true
	if !countOK {
		errs.add("count", "must be at least 1, got %d", r.Count)
	}
	switch {
	case r.Percent < 0 || math.IsNaN(r.Percent) || math.IsInf(r.Percent, 0):
		errs.add("percent", "must be greater than 0, got %v", r.Percent)
		percentOK = false
	case shrinking && r.Percent > 100:
		errs.add("percent", "must be at most 100 (a percentage of the current size), got %v", r.Percent)
	}
	if countOK && percentOK && r.Count > 0 && r.Percent > 0 {
		errs.relation("", []string{"count", "percent"}, "set count or percent, not both")
	}
	switch {
	case r.Period < 0:
		errs.add("period", "must not be negative, got %s", r.Period)
	case !r.IsZero() && r.Period == 0:
		errs.add("period", "must be greater than 0 with a count or percent (the span the limit applies to, e.g. 5m), got %s", r.Period)
	case r.IsZero() && r.Period > 0:
		errs.relation("", []string{"count", "percent"}, "set count (instances) or percent (of the current size), with period")
	}
	return errs
}

// validate checks the check written at key. names maps the check names used so far to the
// key that used them, and gains this one.
func (c Check) validate(key string, names map[string]string) FieldErrors {
	var errs FieldErrors
	shorthand := !strings.HasSuffix(key, "]")
	at := func(field string) string { return joinKey(key, field, shorthand) }

	if c.Name == "" {
		errs.add(at("name"), "is required (a name unique among the group's checks)")
	} else if first, taken := names[c.Name]; taken {
		if strings.HasSuffix(first, "]") {
			errs.add(at("name"), "duplicate check name %q (also %s)", c.Name, first)
		} else {
			errs.add(at("name"), "check name %q is taken by the %s shorthand: rename the check or drop %s", c.Name, first, first)
		}
	} else {
		names[c.Name] = key
	}

	s := c.Strategy.Get()
	readsData := c.ReadsData()
	switch c.Metric {
	case MetricCPU, MetricMemory:
		if c.Query != "" {
			errs.add(at("query"), "is used only with metric: query, not %s", c.Metric)
		}
	case MetricQuery:
		if c.Query == "" {
			errs.add(at("query"), "is required (a Flux query returning one number)")
		}
	case "":
		if readsData {
			errs.add(at("metric"), "is required (cpu, memory or query)")
		} else if c.Query != "" {
			errs.add(at("query"), "is used only with metric: query")
		}
	default:
		errs.add(at("metric"), "unsupported metric %q (allowed: cpu, memory, query)", c.Metric)
	}
	if c.Window < 0 {
		errs.add(at("window"), "must not be negative, got %s", c.Window)
	}
	if c.Staleness < 0 {
		errs.add(at("staleness"), "must not be negative, got %s", c.Staleness)
	}

	switch c.OnError {
	case "", OnErrorHold, OnErrorFail, OnErrorFallback:
		if !readsData && c.OnError != "" && c.OnError != OnErrorHold {
			errs.add(at("onError"), "%s has no effect on a %s check: it reads no data", c.OnError, s.Kind())
		}
	default:
		errs.add(at("onError"), "unsupported onError %q (allowed: hold, fail, fallback)", c.OnError)
	}
	switch {
	case c.OnError == OnErrorFallback && readsData:
		if c.Fallback < 0 {
			errs.add(at("fallback"), "must not be negative, got %d", c.Fallback)
		}
	case c.Fallback != 0 && c.OnError != OnErrorFallback:
		errs.add(at("fallback"), "is used only with onError: fallback")
	}

	switch set := c.Strategy.setKinds(); len(set) {
	case 0:
		kinds := c.Strategy.kinds()
		involves := make([]string, len(kinds))
		for i, k := range kinds {
			involves[i] = at(k)
		}
		errs.relation(key, involves, "one of %s is required (how the metric becomes a size)", orList(kinds))
	case 1:
		errs.under(at(s.Kind()), shorthand, s.Validate(c))
	default:
		errs.add(key, "set exactly one of %s, got %s", orList(c.Strategy.kinds()), strings.Join(set, " and "))
	}
	return errs
}

// orList writes "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// groupBounds are the group's own bounds, which a schedule's unset fields keep.
type groupBounds struct {
	min, max     int
	minOK, maxOK bool
	static       int
}

// validate checks the schedule written at key. names maps the schedule names used so far to
// the key that used them, and gains this one.
func (sc Schedule) validate(key string, names map[string]string, b groupBounds) FieldErrors {
	var errs FieldErrors
	at := func(field string) string { return joinKey(key, field, false) }
	if sc.Name == "" {
		errs.add(at("name"), "is required (a name unique among the group's schedules)")
	} else if first, taken := names[sc.Name]; taken {
		errs.add(at("name"), "duplicate schedule name %q (also %s)", sc.Name, first)
	} else {
		names[sc.Name] = key
	}

	loc, err := loadZone(sc.TimeZone)
	if err != nil {
		errs.add(at("timeZone"), "%v", err)
	}
	if sc.Cron == "" {
		errs.add(at("cron"), `is required (when the schedule starts, e.g. "0 9 * * 1-5")`)
	} else if cs, err := parseCronExpr(sc.Cron); err != nil {
		errs.add(at("cron"), "%v", err)
	} else if loc != nil {
		cs.Location = loc
		if cs.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
			// Any fixed instant does: robfig/cron searches five years ahead, which covers every
			// expression that fires at all (29 February included).
			errs.add(at("cron"), "cron %q never fires", sc.Cron)
		}
	}
	if sc.Duration <= 0 {
		errs.add(at("duration"), "must be greater than 0, got %s", sc.Duration)
	}

	// lo and hi are the bounds while the schedule is active, and the keys they come from.
	lo, hi, loOK, hiOK := b.min, b.max, b.minOK, b.maxOK
	loKey, hiKey := "minNodes", "maxNodes"
	for _, f := range []struct {
		key string
		v   *int
	}{{"minNodes", sc.Min}, {"maxNodes", sc.Max}, {"desired", sc.Desired}} {
		if f.v == nil {
			continue
		}
		ok := *f.v >= 0
		if !ok {
			errs.add(at(f.key), "must not be negative, got %d", *f.v)
		}
		switch f.key {
		case "minNodes":
			lo, loOK, loKey = *f.v, ok, at(f.key)
		case "maxNodes":
			hi, hiOK, hiKey = *f.v, ok, at(f.key)
		}
	}
	if sc.Min == nil && sc.Max == nil && sc.Desired == nil {
		errs.relation(key, []string{at("minNodes"), at("maxNodes"), at("desired")}, "set at least one of minNodes, maxNodes or desired")
	}
	if !loOK || !hiOK {
		return errs
	}
	bounds := []string{loKey, hiKey}
	if lo > hi {
		errs.relation(key, bounds, "minNodes (%d) is greater than maxNodes (%d) while the schedule is active", lo, hi)
		return errs
	}
	if sc.Max != nil && b.static >= 0 && hi > b.static {
		errs.add(at("maxNodes"), "maxNodes (%d) is larger than the %d static addresses in networking.addresses", hi, b.static)
	}
	if d := sc.Desired; d != nil && *d >= 0 && (*d < lo || *d > hi) {
		errs.relation(at("desired"), bounds, "desired (%d) must be within minNodes and maxNodes [%d, %d] while the schedule is active", *d, lo, hi)
	}
	return errs
}
