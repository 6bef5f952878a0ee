// Package activities holds PremiScale's Temporal activities. Activities on the shared task
// queue (Activities) talk to MySQL and InfluxDB; activities on a host's own task queue
// (HostActivities) talk to that host's libvirt. Every activity is idempotent: Temporal may run
// it more than once, so each one converges on a state instead of performing a step.
package activities

import (
	"log/slog"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/premiscale/premiscale/internal/images"
	"github.com/premiscale/premiscale/internal/metrics"
	"github.com/premiscale/premiscale/internal/policy"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
)

// Activities run on the shared task queue.
type Activities struct {
	Store *state.Store
	// Metrics reads each check's metric from the source its metric names.
	Metrics metrics.Sources
	Logger  *slog.Logger
	// HostDownAfter: a host without proof of life for this long is down.
	HostDownAfter time.Duration
	// Temporal starts and signals workflows (StartWorkflows, SignalWorkflows, ReportStatus).
	Temporal client.Client
	// reports are the instances' reports on their way to their groups, records their state
	// records on their way to MySQL.
	reports batcher[spec.InstanceStatus]
	records batcher[state.Instance]
}

// ReadChecksParams asks for the readings of a group's checks.
type ReadChecksParams struct {
	Group  string
	Checks []policy.Check
	// Exclude lists instances whose samples must not count (still booting, retiring).
	Exclude []string
	// Running is how many instances should have reported; fewer makes a reading partial.
	Running int
}

// GroupRecord is a group's row in the state database.
type GroupRecord struct {
	Name       string
	Spec       spec.Group
	WorkflowID string
	At         time.Time
}

// InstanceRecord is one state transition of an instance.
type InstanceRecord struct {
	Name, Group, Host, State, Reason, Address string
	At                                        time.Time
}

// ScalingEventRecord is one entry of the decision log.
type ScalingEventRecord struct {
	Key      string
	Group    string
	At       time.Time
	From, To int
	// Metrics holds each check's input value.
	Metrics map[string]float64
	Reason  string
	Action  string
	// Outcome says what was done: acted, held, paused, dry-run, deleting.
	Outcome string
	// Winner names the check whose recommendation won.
	Winner string
	// Checks is every check's input and recommendation.
	Checks     []policy.CheckResult
	WorkflowID string
	RunID      string
}

// HostActivities run on one host's task queue, against that host's libvirt. One worker serves
// a host, so the host's launches all pass through one HostActivities.
type HostActivities struct {
	Host   string
	Hyper  Hypervisor
	Logger *slog.Logger
	// Allowance is what the host's config lets placement hand out of it.
	Allowance spec.Allowance
	// Images copies a group's base image onto the host before its first launch there; nil
	// leaves that to the operator.
	Images *images.Copier
	// placing guards room: a launch's room check and its reservation are one step on the host.
	placing sync.Mutex
	room    roomLedger
	// CheckinURL returns the URL, with its token, an instance's guest checks in at.
	CheckinURL func(instance string) string
}

// CreateInstanceParams describe the VM to create.
type CreateInstanceParams struct {
	Name, Group string
	Index       int
	// Address is the static address chosen for the instance, "" otherwise.
	Address string
	// InstanceID is cloud-init's instance-id: unique per launch, stable across retries.
	InstanceID string
	Launch     spec.Launch
	// Pool marks a warm-pool member: the collector reports no samples for it until a
	// scale-out takes it.
	Pool bool `json:",omitempty"`
}

// CreateInstanceResult says what the activity found or made.
type CreateInstanceResult struct {
	DomainCreated, VolumeCreated, SeedCreated bool
}

// DestroyInstanceParams describe the VM to remove.
type DestroyInstanceParams struct {
	Name, Pool string
	// Grace is how long a guest gets to shut down after the ACPI request before it is destroyed.
	Grace time.Duration
}

// DomainHealth is what libvirt says of an instance's domain.
type DomainHealth struct {
	Found bool
	State string
	// Foreign says a domain without PremiScale's metadata has the instance's name: the
	// instance's own domain is gone (Found is false), and that one is not ours to touch.
	Foreign bool `json:",omitempty"`
}

// ErrTypeBadLaunchSpec marks launch failures that no retry can fix (a template error, an
// invalid domain shape): the launch fails at once.
const ErrTypeBadLaunchSpec = "BadLaunchSpec"

// OverlayVolumeName is the name of an instance's root disk, derived so that a retry or a
// retirement finds it without any stored state.
func OverlayVolumeName(instance string) string { return instance + ".qcow2" }

// SeedVolumeName is the name of an instance's NoCloud seed volume.
func SeedVolumeName(instance string) string { return instance + "-seed.iso" }
