package activities

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/premiscale/premiscale/internal/spec"
)

// Instances report their state changes to their group. Every signal to a workflow is a write
// the Temporal server makes to that workflow's history, one after another; a scale-out of a
// hundred instances sends one group a hundred reports within a second or two. ReportStatus
// sends the reports a worker has for one group together: a report that comes while a signal
// to its group is under way waits for it and goes with the others in the next one (the way a
// database commits a group of transactions), so a lone report goes at once and a burst costs a
// few signals.

// ReportParams is an instance's report to its group.
type ReportParams struct {
	GroupWorkflowID string
	Status          spec.InstanceStatus
}

// maxReportsPerSignal bounds what one signal carries (a report is a few hundred bytes).
const maxReportsPerSignal = 500

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

// reportBatcher holds, by group workflow ID, the reports waiting for the signal under way.
type reportBatcher struct {
	mu     sync.Mutex
	groups map[string]*reportQueue
}

type reportQueue struct {
	// next is the batch the next signal carries; nil when nothing waits.
	next *reportBatch
}

type reportBatch struct {
	statuses []spec.InstanceStatus
	// done is closed once the batch was sent, err is then the signal's outcome.
	done chan struct{}
	err  error
}

// join adds a report to the group's next batch and returns that batch. The first report for a
// group with no signal under way starts a sender, which sends batches with send until none is
// left.
func (r *reportBatcher) join(group string, st spec.InstanceStatus, send func([]spec.InstanceStatus) error) *reportBatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.groups == nil {
		r.groups = map[string]*reportQueue{}
	}
	q, sending := r.groups[group]
	if !sending {
		q = &reportQueue{}
		r.groups[group] = q
	}
	if q.next == nil || len(q.next.statuses) >= maxReportsPerSignal {
		if q.next != nil {
			// A full batch is left to the sender; this report starts one after it.
			go q.next.send(send)
		}
		q.next = &reportBatch{done: make(chan struct{})}
	}
	b := q.next
	b.statuses = append(b.statuses, st)
	if !sending {
		go r.sendAll(group, q, send)
	}
	return b
}

// sendAll sends the group's batches one signal after another until none waits.
func (r *reportBatcher) sendAll(group string, q *reportQueue, send func([]spec.InstanceStatus) error) {
	for {
		r.mu.Lock()
		b := q.next
		q.next = nil
		if b == nil {
			delete(r.groups, group)
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		b.send(send)
	}
}

func (b *reportBatch) send(send func([]spec.InstanceStatus) error) {
	b.err = send(b.statuses)
	close(b.done)
}
