package policy

import "time"

// Metric names a check can read. cpu and memory are the group's built-in means (percent);
// query is a user Flux query the caller runs and reduces to one value.
const (
	MetricCPU    = "cpu"
	MetricMemory = "memory"
	MetricQuery  = "query"
)

// What a check does when its data is missing, stale or failed.
const (
	OnErrorHold     = "hold"
	OnErrorFail     = "fail"
	OnErrorFallback = "fallback"
)

// Spec is a group's whole scaling policy. The caller fills defaults before Evaluate (a zero
// duration, rate limit or increment means "off"/"unlimited" here), and should Validate it once
// when it changes rather than on every evaluation.
type Spec struct {
	Min, Max int
	// Increment caps how many instances one evaluation adds or removes; 0 = unlimited.
	Increment                         int
	ScaleOutCooldown, ScaleInCooldown time.Duration
	// ScaleInStabilization makes a scale-in go no lower than the highest recommendation seen in
	// this window, so a short dip does not shrink the group; 0 = off.
	ScaleInStabilization      time.Duration
	ScaleOutRate, ScaleInRate RateLimit
	Checks                    []Check
	Schedules                 []Schedule
}

// RateLimit allows at most Count instances, or Percent of the current size (rounded up, at
// least 1), to be added (or removed) per Period. Count and Percent are exclusive; the zero
// value is unlimited.
type RateLimit struct {
	Count   int
	Percent float64
	Period  time.Duration
}

// IsZero reports whether the limit is off.
func (r RateLimit) IsZero() bool { return r.Count == 0 && r.Percent == 0 }

// Check is one opinion about the group's size.
type Check struct {
	// Name is unique within the group; it keys Inputs.Readings and names the check in reasons.
	Name string
	// Key is where the check was written, relative to the group's scaling block, so Validate
	// reports its problems there: a list entry ("checks[2]") has its fields below it
	// ("checks[2].threshold.upper"); any other key is a shorthand written as one value
	// ("resourceTarget.cpu"), and every problem with the check is reported at the key itself.
	// Empty means "checks[i]", i being the check's index in Spec.Checks.
	Key string `json:",omitempty"`
	// Metric is cpu, memory or query. A check whose strategy reads no data may leave it empty.
	Metric string
	// Query is the Flux query of a "query" check, a text/template over {{.Group}} and
	// {{.Window}}; the caller runs it and passes the number it returns as the Reading.
	Query string
	// Window is the span the caller averages the metric over; the engine does not use it.
	Window   time.Duration
	Strategy StrategySpec
	// OnError is hold (the default), fail or fallback.
	OnError string
	// Fallback is the size a fallback check recommends when its data is unusable.
	Fallback int
	// Staleness: data whose newest point is older than this counts as missing; 0 = no limit.
	Staleness time.Duration
}

// ReadsData says whether the check needs its metric read: false when its strategy recommends
// without data (a fixed size).
func (c Check) ReadsData() bool {
	s := c.Strategy.Get()
	return s == nil || s.ReadsData()
}

// Schedule overrides the bounds while active: from each cron fire time for Duration. Nil
// fields keep the Spec's value. When several schedules are active, the one latest in
// Spec.Schedules wins outright (its nil fields fall back to the Spec, not to other schedules).
//
// Desired is a floor for as long as the schedule is active, enforced like Min (regardless of
// data, cooldowns and rate limits; Increment still paces it): checks may grow the group above
// it but not shrink it below. We chose that over AWS's one-shot "set desired capacity at the
// start": a one-shot value needs per-fire state and is undone by the first scale-in a few minutes
// later unless the checks agree, while "have at least 10 from 9 to 17" is what people mean.
// Desired differs from Min only in what Evaluation reports: Min stays the bound, Floor shows it.
type Schedule struct {
	Name string
	// Cron is a standard 5-field expression or a descriptor such as @daily; @every and
	// TZ= prefixes are rejected (use TimeZone).
	Cron string
	// TimeZone is an IANA name the cron fields are read in; empty means UTC.
	TimeZone          string
	Duration          time.Duration
	Min, Max, Desired *int
}

// Reading is what the caller measured for one check.
type Reading struct {
	Value   float64
	HasData bool
	// Err is the query's failure, if any; a non-empty Err makes the reading unusable.
	Err string
	// Newest is the time of the newest point, judged against Check.Staleness.
	Newest time.Time
	// Partial is set when some instances had no data: the mean may hide idle or busy ones.
	Partial bool
}

// Inputs is what the group knows at one evaluation.
type Inputs struct {
	Now time.Time
	// Current counts every instance that counts toward capacity, booting ones included, so
	// an evaluation during boot does not order the same instances again.
	Current  int
	Readings map[string]Reading
}

// State is what Evaluate needs from earlier evaluations. It is JSON-serialisable so the
// workflow can carry it across continue-as-new; the caller stores what Evaluate returns.
type State struct {
	LastScaleOut time.Time `json:"lastScaleOut,omitzero"`
	LastScaleIn  time.Time `json:"lastScaleIn,omitzero"`
	// Recommendations holds one entry per evaluation within the stabilization window.
	Recommendations []TimedSize `json:"recommendations,omitempty"`
	// Changes holds every size change within the longest rate-limit period.
	Changes []TimedDelta `json:"changes,omitempty"`
}

// TimedSize is a recommendation made at a time.
type TimedSize struct {
	At   time.Time `json:"at"`
	Size int       `json:"size"`
}

// TimedDelta is a size change made at a time: positive out, negative in.
type TimedDelta struct {
	At    time.Time `json:"at"`
	Delta int       `json:"delta"`
}

// CheckResult is one check's opinion at one evaluation.
type CheckResult struct {
	Name string
	// Value is the reading's value; HasData is false when the reading was missing, stale or
	// failed (then Value is whatever the caller sent).
	Value       float64
	HasData     bool
	Action      Action
	Recommended int
	Reason      string
}

// Evaluation is the outcome of one evaluation, with everything needed to explain it.
type Evaluation struct {
	Action   Action
	From, To int
	// Winner is the check whose recommendation the combination chose (for a hold, the first
	// check that held; for a failed evaluation, the first failing check).
	Winner string
	Reason string
	// Checks is in Spec.Checks order.
	Checks []CheckResult
	// Recommended is the combined recommendation of the checks, before bounds and limits.
	Recommended int
	// Min and Max are the effective bounds (after schedules). Floor is the size the group is
	// raised to regardless of data: Min, or the active schedule's Desired when higher.
	Min, Max, Floor int
	// Schedule is the active schedule's name, if any.
	Schedule string
	// Failed is set when an onError: fail check had no usable data: no metric-driven change
	// is made, and the caller reports it. Bounds are still corrected.
	Failed bool
}
