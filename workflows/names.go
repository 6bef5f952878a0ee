// Package workflows holds PremiScale's Temporal workflows: GroupWorkflow keeps an autoscaling
// group at its desired size, InstanceWorkflow owns one VM from launch to retirement. Workflow
// code here must stay deterministic: workflow.Now, timers and selectors only, no map iteration
// that affects commands, no I/O (workflowcheck and the replay tests guard this).
package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
)

// Signal, query and update names; they are the workflows' API to the CLI, the worker and each other.
const (
	// SignalSpec carries a new GroupSpec, applied at the next evaluation.
	SignalSpec = "spec"
	// SignalDelete asks a group to retire every instance and end.
	SignalDelete = "delete"
	// SignalInstanceStatus is sent by an InstanceWorkflow to its group on every state change.
	SignalInstanceStatus = "instance-status"
	// SignalRetire asks an InstanceWorkflow to shut its VM down and remove it.
	SignalRetire = "retire"
	// SignalCheckin is sent by the check-in server to an InstanceWorkflow on the VM's first
	// check-in (cloud-init phone_home); its payload is a CheckinSignal.
	SignalCheckin = "checkin"
	// SignalPause stops a group from acting (it still evaluates and logs); SignalResume undoes it.
	SignalPause  = "pause"
	SignalResume = "resume"
	// UpdateScale sets a group's desired size and/or bounds (a ScaleRequest).
	UpdateScale = "scale"
	// UpdateProtect sets or clears an instance's scale-in protection (a ProtectRequest).
	UpdateProtect = "protect"
	// QueryStatus returns a GroupStatus.
	QueryStatus = "status"
)

// DefaultTaskQueue is the shared task queue of workflows and database activities.
const DefaultTaskQueue = "premiscale"

// GroupWorkflowID is the workflow ID of a group: one running workflow per group.
func GroupWorkflowID(group string) string { return "asg/" + group }

// InstanceWorkflowID is the workflow ID of an instance.
func InstanceWorkflowID(instance string) string { return "vm/" + instance }

// HostTaskQueue is the task queue served only by the worker that runs the host's libvirt.
func HostTaskQueue(host string) string { return "premiscale-host-" + host }

// Search attributes the dev server registers at start (testenv/temporal) and groups upsert.
var (
	AttrGroup      = temporal.NewSearchAttributeKeyKeyword("PremiscaleGroup")
	AttrDesired    = temporal.NewSearchAttributeKeyInt64("PremiscaleDesired")
	AttrCurrent    = temporal.NewSearchAttributeKeyInt64("PremiscaleCurrent")
	AttrLastAction = temporal.NewSearchAttributeKeyKeyword("PremiscaleLastAction")
)

// Instance states, as the workflows track them and MySQL records them.
const (
	StateLaunching  = "launching"
	StateBooting    = "booting"
	StateRunning    = "running"
	StateRetiring   = "retiring"
	StateTerminated = "terminated"
	StateFailed     = "failed"
)

// CheckinSignal is what a VM said when it first checked in.
type CheckinSignal struct {
	Address  string    `json:"address,omitempty"`
	Hostname string    `json:"hostname,omitempty"`
	At       time.Time `json:"at"`
}
