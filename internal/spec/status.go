package spec

import (
	"time"

	"github.com/premiscale/premiscale/internal/policy"
)

// InstanceState is where an instance is in its life, as the workflows track it and MySQL
// records it: launching → booting → running → retiring → terminated; failed marks one that
// never came up or broke; lost one whose host has been down longer than the group's
// hostGracePeriod (it no longer counts, and is destroyed when its host answers again).
// Members of a warm pool go warming → warm, and resuming → running once a scale-out takes them.
type InstanceState = string

// Instance states.
const (
	StateLaunching  InstanceState = "launching"
	StateBooting    InstanceState = "booting"
	StateRunning    InstanceState = "running"
	StateRetiring   InstanceState = "retiring"
	StateTerminated InstanceState = "terminated"
	StateFailed     InstanceState = "failed"
	StateLost       InstanceState = "lost"
	// StateWarming: a warm-pool member being created, booted once or parked.
	StateWarming InstanceState = "warming"
	// StateWarm: a warm-pool member parked (stopped, saved or running), ready to be taken.
	StateWarm InstanceState = "warm"
	// StateResuming: a warm-pool member a scale-out took, starting or restoring.
	StateResuming InstanceState = "resuming"
)

// IsLive says whether an instance in this state counts toward its group's size.
func IsLive(s InstanceState) bool {
	return s == StateLaunching || s == StateBooting || s == StateRunning || s == StateResuming
}

// InPool says whether an instance in this state is a member of its group's warm pool: it holds
// room on its host and counts toward maxNodes, but not toward the group's size or its metrics.
func InPool(s InstanceState) bool { return s == StateWarming || s == StateWarm }

// IsEnded says whether an instance in this state is gone for good.
func IsEnded(s InstanceState) bool { return s == StateTerminated || s == StateFailed }

// Outcomes of an evaluation, as the decision log records them.
const (
	OutcomeActed    = "acted"
	OutcomeHeld     = "held"
	OutcomePaused   = "paused"
	OutcomeDryRun   = "dry-run"
	OutcomeDeleting = "deleting"
)

// InstanceRef is the group's view of one of its instances.
type InstanceRef struct {
	Name       string        `json:"name"`
	Seq        int           `json:"seq"`
	Host       string        `json:"host"`
	State      InstanceState `json:"state"`
	LaunchedAt time.Time     `json:"launchedAt"`
	// Generation is the group's launch generation when the instance was launched: a change of
	// image, shape or cloud-init makes a new one, and a rolling replacement replaces the
	// instances of older ones.
	Generation int `json:"generation,omitempty"`
	// Rolled marks an instance a rolling replacement launched.
	Rolled    bool   `json:"rolled,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Address   string `json:"address,omitempty"`
	Protected bool   `json:"protected,omitempty"`
	// Replacement marks an instance launched to replace a failed one: if its launch fails,
	// the replacement is still owed.
	Replacement bool `json:"replacement,omitempty"`
	// Defined says a warm-pool member's domain exists on its host, whose capacity report then
	// holds its shape (before that, placement adds it as it does for a launching instance).
	Defined bool `json:"defined,omitempty"`
}

// LaunchHealth is the group's memory of failing launches.
type LaunchHealth struct {
	ConsecutiveFailures int       `json:"consecutiveFailures"`
	LastError           string    `json:"lastError,omitempty"`
	BlockedUntil        time.Time `json:"blockedUntil,omitzero"`
}

// DecisionRecord is one evaluation, as status shows it and the decision log records it.
type DecisionRecord struct {
	At          time.Time            `json:"at"`
	Action      string               `json:"action"`
	From        int                  `json:"from"`
	To          int                  `json:"to"`
	Recommended int                  `json:"recommended"`
	Winner      string               `json:"winner,omitempty"`
	Reason      string               `json:"reason"`
	Outcome     string               `json:"outcome"`
	Checks      []policy.CheckResult `json:"checks,omitempty"`
	// Repeats counts the evaluations since At that came to the same decision for the same
	// reason; they are not written to the decision log again.
	Repeats int `json:"repeats,omitempty"`
}

// RollStatus is a rolling replacement's progress.
type RollStatus struct {
	// Active is set while old instances remain to be replaced.
	Active bool   `json:"active"`
	Reason string `json:"reason"`
	// Total is how many instances were to be replaced when it started; Replaced how many of
	// them are gone, replaced by instances of the current generation.
	Total, Replaced int
	StartedAt       time.Time `json:"startedAt"`
	// Stopped says why the roll halted (a new instance failed to check in), "" while it goes.
	Stopped string `json:"stopped,omitempty"`
}

// GroupStatus is the answer to QueryStatus.
type GroupStatus struct {
	Group        string          `json:"group"`
	Min          int             `json:"min"`
	Max          int             `json:"max"`
	Desired      int             `json:"desired"`
	Current      int             `json:"current"`
	Deleting     bool            `json:"deleting"`
	Paused       bool            `json:"paused"`
	DryRun       bool            `json:"dryRun"`
	Instances    []InstanceRef   `json:"instances"`
	LastDecision *DecisionRecord `json:"lastDecision,omitempty"`
	Launches     LaunchHealth    `json:"launches"`
	Evaluations  int             `json:"evaluations"`
	// Sources say where min, max and the rest of the spec in force come from; Config holds
	// the config's own bounds, shown beside an operator's.
	Sources Sources `json:"sources"`
	Config  Bounds  `json:"config"`
	// Goal is an operator's desired size (group scale --desired) the group has not reached yet.
	Goal *Goal `json:"goal,omitempty"`
	// ReplacementsOwed counts failed instances whose replacements the limits (maxNodes,
	// maxConcurrentLaunches, a launch back-off, a pause) have held back so far.
	ReplacementsOwed int `json:"replacementsOwed"`
	// Roll is the last rolling replacement, nil when there was none.
	Roll *RollStatus `json:"roll,omitempty"`
	// Image is the base image in force, "pool/volume"; Hosts the hosts instances may go to.
	Image string   `json:"image,omitempty"`
	Hosts []string `json:"hosts,omitempty"`
	// Pool is the group's warm pool, nil when it has none.
	Pool *PoolStatus `json:"pool,omitempty"`
}

// Where a value in force comes from.
const (
	// SourceConfig: the config (as the worker or `group create` last sent it).
	SourceConfig = "config"
	// SourceScale: an operator's `group scale --min/--max`.
	SourceScale = "scale"
	// SourceUpdate: an operator's `group update`.
	SourceUpdate = "update"
)

// Sources say where the values in force come from: SourceConfig, SourceScale or SourceUpdate.
type Sources struct {
	Min  string `json:"min"`
	Max  string `json:"max"`
	Spec string `json:"spec"`
}

// Bounds are a minimum and a maximum size.
type Bounds struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// Goal is an operator's desired size not reached yet.
type Goal struct {
	Size  int       `json:"size"`
	SetAt time.Time `json:"setAt"`
	// Expires is when the goal is dropped if the group has not reached it by then.
	Expires time.Time `json:"expires"`
}

// InstanceStatus is what an InstanceWorkflow tells its group.
type InstanceStatus struct {
	Name    string
	State   InstanceState
	Reason  string
	Address string
	// Replace asks the group to launch a replacement for a failed instance right away.
	Replace bool
	// NoRoom says a launch failed because its host's worker found no room for it: no failure
	// of the launch (no back-off), and the group places it again.
	NoRoom bool `json:",omitempty"`
}

// CheckinSignal is what a VM said when it first checked in.
type CheckinSignal struct {
	Address  string    `json:"address,omitempty"`
	Hostname string    `json:"hostname,omitempty"`
	At       time.Time `json:"at"`
}

// ScaleRequest is the argument of UpdateScale: any of a new desired size and new bounds, or
// Reset alone.
type ScaleRequest struct {
	Desired *int `json:"desired,omitempty"`
	Min     *int `json:"min,omitempty"`
	Max     *int `json:"max,omitempty"`
	// Reset clears what group scale set: the min and max overrides and a pending desired size.
	Reset bool `json:"reset,omitempty"`
}

// ScaleResult is what UpdateScale accepted.
type ScaleResult struct {
	Min, Max, Current int
	// Desired is the pending goal after the request, if any.
	Desired *int `json:",omitempty"`
	Sources Sources
	// Notes say what else the request changed: a pending goal clamped or dropped, overrides
	// cleared.
	Notes []string `json:",omitempty"`
}

// SpecRequest is the argument of UpdateSpec: a whole spec to run instead of the config's, or
// Reset to go back to the config's.
type SpecRequest struct {
	Spec  *Group `json:"spec,omitempty"`
	Reset bool   `json:"reset,omitempty"`
}

// SpecResult is what UpdateSpec did.
type SpecResult struct {
	// Source is where the spec in force now comes from: SourceUpdate or SourceConfig (the
	// request was the config's spec, or Reset).
	Source string
	Min    int
	Max    int
	Notes  []string `json:",omitempty"`
}

// RollRequest is the argument of UpdateRoll.
type RollRequest struct {
	// Reason says why, for the decision log; "" gives "operator: group roll".
	Reason string `json:"reason,omitempty"`
}

// ProtectRequest is the argument of UpdateProtect.
type ProtectRequest struct {
	Instance  string `json:"instance"`
	Protected bool   `json:"protected"`
}
