package spec

import (
	"strings"

	"go.temporal.io/sdk/temporal"
)

// DefaultTaskQueue is the shared task queue of workflows and database activities.
const DefaultTaskQueue = "premiscale"

// GroupWorkflowID is the workflow ID of a group: one running workflow per group.
func GroupWorkflowID(group string) string { return groupWorkflowPrefix + group }

// GroupFromWorkflowID returns the group a group workflow ID names.
func GroupFromWorkflowID(id string) (string, bool) {
	name, ok := strings.CutPrefix(id, groupWorkflowPrefix)
	return name, ok && name != ""
}

const groupWorkflowPrefix = "asg/"

// InstanceWorkflowID is the workflow ID of an instance.
func InstanceWorkflowID(instance string) string { return "vm/" + instance }

// HostTaskQueue is the task queue served only by the worker that runs the host's libvirt.
func HostTaskQueue(host string) string { return "premiscale-host-" + host }

// Signal, query and update names: the workflows' API to the CLI, the worker, the check-in
// server and each other.
const (
	// SignalSpec carries the config's Group spec (from a worker's start or `group create`),
	// applied at the next evaluation; an operator's overrides stay unless the config's own
	// value for them changed.
	SignalSpec = "spec"
	// SignalDelete asks a group to retire every instance and end.
	SignalDelete = "delete"
	// SignalInstanceStatus is sent by an InstanceWorkflow to its group on every state change.
	SignalInstanceStatus = "instance-status"
	// SignalInstanceStatuses carries several InstanceStatus reports at once ([]InstanceStatus):
	// a worker sends its instances' reports to one group together (see activities.ReportStatus).
	SignalInstanceStatuses = "instance-statuses"
	// SignalRetire asks an InstanceWorkflow to shut its VM down and remove it.
	SignalRetire = "retire"
	// SignalLost tells an InstanceWorkflow its host has been down longer than the group's
	// hostGracePeriod: it stops counting, and removes its VM when the host answers again.
	SignalLost = "lost"
	// SignalCheckin is sent by the check-in server to an InstanceWorkflow on the VM's first
	// check-in (cloud-init phone_home); its payload is a CheckinSignal.
	SignalCheckin = "checkin"
	// SignalTake tells a warm-pool member that a scale-out took it: it starts or restores its
	// VM and joins the group.
	SignalTake = "take"
	// SignalPark tells a running instance to leave the group for the warm pool (a scale-in of
	// a group with reuseOnScaleIn); its payload is the PoolState to park in.
	SignalPark = "park"
	// SignalPause stops a group from acting (it still evaluates and logs); SignalResume undoes it.
	SignalPause  = "pause"
	SignalResume = "resume"
	// UpdateScale sets a group's desired size and/or bounds (a ScaleRequest).
	UpdateScale = "scale"
	// UpdateSpec runs an operator's whole spec instead of the config's, or goes back to the
	// config's (a SpecRequest).
	UpdateSpec = "update-spec"
	// UpdateProtect sets or clears an instance's scale-in protection (a ProtectRequest).
	UpdateProtect = "protect"
	// UpdateRoll starts a rolling replacement of every instance of a group (a RollRequest).
	UpdateRoll = "roll"
	// QueryStatus returns a GroupStatus.
	QueryStatus = "status"
)

// Search attributes groups and instances set; a production namespace must have them registered
// (the dev server registers them at start, see testenv/temporal). Group workflows carry all but
// AttrHost; instance workflows carry AttrGroup and AttrHost, so one query lists a group's or a
// host's instances.
var (
	AttrGroup      = temporal.NewSearchAttributeKeyKeyword("PremiscaleGroup")
	AttrDesired    = temporal.NewSearchAttributeKeyInt64("PremiscaleDesired")
	AttrCurrent    = temporal.NewSearchAttributeKeyInt64("PremiscaleCurrent")
	AttrLastAction = temporal.NewSearchAttributeKeyKeyword("PremiscaleLastAction")
	AttrHost       = temporal.NewSearchAttributeKeyKeyword("PremiscaleHost")
)

// SearchAttributes are every search attribute PremiScale's workflows set: what
// `premiscale temporal setup` registers on a namespace and what the worker checks for at start.
// Add a new attribute here (and to testenv/temporal and internal/testservices).
var SearchAttributes = []temporal.SearchAttributeKey{AttrGroup, AttrDesired, AttrCurrent, AttrLastAction, AttrHost}
