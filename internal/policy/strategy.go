package policy

import (
	"encoding/json"
	"strings"
)

// Strategy kinds: the key a strategy is written at in a check.
const (
	StrategyTarget    = "target"
	StrategyThreshold = "threshold"
	StrategyFixed     = "fixed"
)

// Strategy turns a check's reading into a recommended size. Each one is a small type in its own
// file, stored in a check through StrategySpec.
type Strategy interface {
	// Kind is the strategy's key in a check: target, threshold or fixed.
	Kind() string
	// ReadsData is false for a strategy that recommends without a measurement: missing data
	// cannot make it hold, and the caller need not read its check's metric.
	ReadsData() bool
	// Validate reports the strategy's problems, with paths relative to the strategy's own key
	// ("upper"; "" for the strategy as a whole). c is the check it belongs to.
	Validate(c Check) FieldErrors
	// Recommend turns a usable value (for a strategy that reads no data, whatever the caller
	// sent) into a size for a group of current instances, and says why in the words of c.
	// Holding recommends current.
	Recommend(c Check, value float64, current int) (size int, reason string)
}

// StrategySpec is how a check stores its strategy: exactly one field is set. It is a union of
// pointers rather than an interface value because policy.Spec travels in Temporal workflow
// history as JSON, and an interface cannot be decoded without knowing its type.
//
// A new strategy is a type in its own file, a field here and its line in slots.
type StrategySpec struct {
	Target    *Target    `json:",omitempty"`
	Threshold *Threshold `json:",omitempty"`
	Fixed     *Fixed     `json:",omitempty"`
}

// slot is one strategy a check may use, set or not.
type slot struct {
	kind string
	set  bool
	s    Strategy
}

// slots lists every strategy in a fixed order: the one place that enumerates them.
func (s StrategySpec) slots() []slot {
	return []slot{
		{StrategyTarget, s.Target != nil, s.Target},
		{StrategyThreshold, s.Threshold != nil, s.Threshold},
		{StrategyFixed, s.Fixed != nil, s.Fixed},
	}
}

// Get returns the strategy that is set, or nil when none is. Validate rejects a spec with more
// than one; should one reach here, the first in slots order wins.
func (s StrategySpec) Get() Strategy {
	for _, sl := range s.slots() {
		if sl.set {
			return sl.s
		}
	}
	return nil
}

// Kind is the kind of the strategy that is set, or "".
func (s StrategySpec) Kind() string {
	if st := s.Get(); st != nil {
		return st.Kind()
	}
	return ""
}

// kinds lists the strategy kinds, set or not, for messages.
func (s StrategySpec) kinds() []string {
	var out []string
	for _, sl := range s.slots() {
		out = append(out, sl.kind)
	}
	return out
}

// setKinds lists the kinds that are set.
func (s StrategySpec) setKinds() []string {
	var out []string
	for _, sl := range s.slots() {
		if sl.set {
			out = append(out, sl.kind)
		}
	}
	return out
}

// legacyStrategy is the flat shape StrategySpec replaced, which workflow histories written by
// earlier versions still hold:
// {"Type":"target","Target":60,"Tolerance":0.1,"Upper":0,"Lower":0,"StepCount":0,"StepPercent":0,"Size":0}.
type legacyStrategy struct {
	Type              string
	Target, Tolerance float64
	Upper, Lower      float64
	StepCount         int
	StepPercent       float64
	Size              int
}

// UnmarshalJSON reads both the current shape and the legacy flat one, so a group that was
// running when PremiScale was upgraded keeps its policy.
func (s *StrategySpec) UnmarshalJSON(b []byte) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil || keys == nil {
		// null, or not an object: let the ordinary decoder say what is wrong.
		type plain StrategySpec
		return json.Unmarshal(b, (*plain)(s))
	}
	legacy := false
	for k := range keys {
		if strings.EqualFold(k, "Type") {
			legacy = true
		}
	}
	if !legacy {
		type plain StrategySpec
		var p plain
		if err := json.Unmarshal(b, &p); err != nil {
			return err
		}
		*s = StrategySpec(p)
		return nil
	}
	var l legacyStrategy
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	*s = StrategySpec{}
	switch l.Type {
	case StrategyTarget:
		s.Target = &Target{Value: l.Target, Tolerance: l.Tolerance}
	case StrategyThreshold:
		s.Threshold = &Threshold{Upper: l.Upper, Lower: l.Lower, Step: l.StepCount, StepPercent: l.StepPercent}
	case StrategyFixed:
		s.Fixed = &Fixed{Size: l.Size}
	default:
		// Validation never let an unknown type into a spec. Were one there, the old engine held
		// on it; a check without a strategy holds too, where an error would stop the group.
	}
	return nil
}
