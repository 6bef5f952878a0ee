package activities

import (
	"context"
	"fmt"
	"time"

	"github.com/premiscale/premiscale/internal/spec"
)

// Instances report their state changes to their group. Every signal to a workflow is a write
// the Temporal server makes to that workflow's history, one after another; a scale-out of a
// hundred instances sends one group a hundred reports within a second or two. ReportStatus
// sends the reports a worker has for one group together (see batcher).

// ReportParams is an instance's report to its group.
type ReportParams struct {
	GroupWorkflowID string
	Status          spec.InstanceStatus
}

// reportSendTimeout bounds one signal of a batch: a report whose activity gave up meanwhile is
// still sent with the others (the group bears a report twice).
const reportSendTimeout = 30 * time.Second

// ReportStatus delivers an instance's report to its group's current run, with the reports
// other instances of this worker send that group at the same time. It returns why the report
// cannot be delivered ("" when it was): the group is gone; an error when Temporal could not be
// reached, and is then retried (a group may hear a report twice, which it ignores).
func (a *Activities) ReportStatus(ctx context.Context, p ReportParams) (string, error) {
	b := a.reports.join(p.GroupWorkflowID, p.Status, func(statuses []spec.InstanceStatus) error {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportSendTimeout)
		defer cancel()
		return a.Temporal.SignalWorkflow(sctx, p.GroupWorkflowID, "", spec.SignalInstanceStatuses, statuses)
	})
	select {
	case <-b.done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	switch {
	case b.err == nil:
		return "", nil
	case permanent(b.err):
		return b.err.Error(), nil
	}
	return "", fmt.Errorf("report %s of instance %s to %s: %w", p.Status.State, p.Status.Name, p.GroupWorkflowID, b.err)
}
