package workflows

import (
	"strings"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"

	"github.com/premiscale/premiscale/internal/spec"
)

// A group's metrics, as its workflow sees them, go out through the worker's metrics handler
// (internal/telemetry) to the worker's /metrics. Names and labels are those of
// deploy/grafana/README.md, which the dashboard uses; the SDK adds its own labels (namespace,
// task_queue, workflow_type).
//
// Recording them is safe in workflow code:
//   - The handler of workflow.GetMetricsHandler records nothing while the workflow replays
//     (go.temporal.io/sdk internal/common/metrics replayAwareHandler checks the replay flag at
//     every call), so an evaluation is counted once, by the worker that first runs it,
//     however often it is replayed later.
//   - Recording adds no command and no history event: the handler is a field of the workflow
//     environment (workflowEnvironmentImpl.GetMetricsHandler in internal_event_handlers.go),
//     outside the command state machine. So these calls need no GetVersion, and histories
//     recorded before them replay as they did.
const (
	metricEvaluations    = "premiscale_evaluations_total"
	metricDecisions      = "premiscale_decisions_total"
	metricGroupSize      = "premiscale_group_size"
	metricLaunches       = "premiscale_launches_total"
	metricLaunchFailures = "premiscale_launch_failures_total"
	metricRetirements    = "premiscale_retirements_total"
)

// Values of the reason label of premiscale_launch_failures_total.
const (
	// launchNoRoom: the host's worker found no room for the instance; the group places it again.
	launchNoRoom = "no_room"
	// launchError: creating the VM failed (image, volume, define, start).
	launchError = "launch_error"
	// launchBootTimeout: the VM did not check in within the boot timeout.
	launchBootTimeout = "boot_timeout"
	// launchOther: anything else, such as an instance workflow that could not start.
	launchOther = "other"
)

// groupMetrics records one group's metrics.
type groupMetrics struct{ h client.MetricsHandler }

func (g *group) metrics(ctx workflow.Context) groupMetrics {
	return groupMetrics{workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"group": g.eff.Name})}
}

// evaluated counts an evaluation and its decision, and sets the group's sizes after it.
func (m groupMetrics) evaluated(g *group) {
	m.h.Counter(metricEvaluations).Inc(1)
	d := g.st.LastDecision
	if d == nil {
		return
	}
	m.h.WithTags(map[string]string{"action": d.Action, "outcome": d.Outcome}).Counter(metricDecisions).Inc(1)
	for _, s := range []struct {
		kind string
		size int
	}{{"min", g.eff.Policy.Min}, {"max", g.eff.Policy.Max}, {"desired", d.To}, {"current", g.live()}} {
		m.h.WithTags(map[string]string{"kind": s.kind}).Gauge(metricGroupSize).Update(float64(s.size))
	}
}

// launched counts an instance launched on host.
func (m groupMetrics) launched(host string) {
	m.h.WithTags(map[string]string{"host": host}).Counter(metricLaunches).Inc(1)
}

// retired counts an instance on host the group retires.
func (m groupMetrics) retired(host string) {
	m.h.WithTags(map[string]string{"host": host}).Counter(metricRetirements).Inc(1)
}

// launchFailed counts an instance on host that failed before it ever ran.
func (m groupMetrics) launchFailed(host string, st spec.InstanceStatus) {
	m.h.WithTags(map[string]string{"host": host, "reason": launchFailureReason(st)}).Counter(metricLaunchFailures).Inc(1)
}

// launchFailureReason sorts a failed launch into a few reasons, a label with few values. The
// prefixes are those of the instance workflow's reasons (instance.go: launch, fail).
func launchFailureReason(st spec.InstanceStatus) string {
	switch {
	case st.NoRoom:
		return launchNoRoom
	case strings.HasPrefix(st.Reason, "launch failed"):
		return launchError
	case strings.HasPrefix(st.Reason, "no check-in within the boot timeout"):
		return launchBootTimeout
	}
	return launchOther
}
