package spec

import (
	"time"

	"github.com/premiscale/premiscale/internal/policy"
)

// InstanceState is where an instance is in its life, as the workflows track it and MySQL
// records it: launching → booting → running → retiring → terminated; failed marks one that
// never came up or broke; lost one whose host has been down longer than the group's
// hostGracePeriod (it no longer counts, and is destroyed when its host answers again).
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
)

// IsLive says whether an instance in this state counts toward its group's size.
func IsLive(s InstanceState) bool {
	return s == StateLaunching || s == StateBooting || s == StateRunning
}

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
	Reason     string        `json:"reason,omitempty"`
	Address    string        `json:"address,omitempty"`
	Protected  bool          `json:"protected,omitempty"`
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
}

// InstanceStatus is what an InstanceWorkflow tells its group.
type InstanceStatus struct {
	Name    string
	State   InstanceState
	Reason  string
	Address string
	// Replace asks the group to launch a replacement for a failed instance right away.
	Replace bool
}

// CheckinSignal is what a VM said when it first checked in.
type CheckinSignal struct {
	Address  string    `json:"address,omitempty"`
	Hostname string    `json:"hostname,omitempty"`
	At       time.Time `json:"at"`
}

// ScaleRequest is the argument of UpdateScale: any of a new desired size and new bounds.
type ScaleRequest struct {
	Desired *int `json:"desired,omitempty"`
	Min     *int `json:"min,omitempty"`
	Max     *int `json:"max,omitempty"`
}

// ScaleResult is what UpdateScale accepted.
type ScaleResult struct {
	Min, Max, Current int
	Desired           *int `json:",omitempty"`
}

// ProtectRequest is the argument of UpdateProtect.
type ProtectRequest struct {
	Instance  string `json:"instance"`
	Protected bool   `json:"protected"`
}
