package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
)

// RecordGroup upserts the group's row with its current spec.
func (a *Activities) RecordGroup(ctx context.Context, r GroupRecord) error {
	spec, err := json.Marshal(r.Spec)
	if err != nil {
		return fmt.Errorf("encode spec of group %s: %w", r.Name, err)
	}
	return a.Store.UpsertGroup(ctx, state.GroupRecord{
		Name: r.Name, Spec: spec, WorkflowID: r.WorkflowID, CreatedAt: r.At, UpdatedAt: r.At,
	})
}

// MarkGroupDeleted records that the group was deleted.
func (a *Activities) MarkGroupDeleted(ctx context.Context, r GroupRecord) error {
	return a.Store.MarkGroupDeleted(ctx, r.Name, r.At)
}

// RecordInstance upserts an instance's state; the store keeps terminated instances terminated.
// The records this worker's instances make at the same moment are written in one transaction
// (see batcher): a scale-out's hundred instances record each state change within a second. A
// record whose batch failed is written again alone, so that one bad record fails only itself.
func (a *Activities) RecordInstance(ctx context.Context, r InstanceRecord) error {
	inst := state.Instance{
		Name: r.Name, Group: r.Group, Host: r.Host, State: r.State, Reason: r.Reason,
		Address: r.Address, CreatedAt: r.At,
	}
	at := r.At
	switch r.State {
	case spec.StateRunning:
		inst.LastSeenAt = &at
	case spec.StateTerminated, spec.StateFailed:
		inst.TerminatedAt = &at
	}
	b := a.records.join("", inst, func(batch []state.Instance) error {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordSendTimeout)
		defer cancel()
		return a.Store.UpsertInstances(sctx, batch)
	})
	select {
	case <-b.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if b.err == nil {
		return nil
	}
	return a.Store.UpsertInstance(ctx, inst)
}

// recordSendTimeout bounds one batch's transaction, which the records behind it wait for.
const recordSendTimeout = 10 * time.Second

// RecordScalingEvent appends to the decision log; a retry with the same key adds nothing.
func (a *Activities) RecordScalingEvent(ctx context.Context, e ScalingEventRecord) error {
	checks, err := json.Marshal(e.Checks)
	if err != nil {
		return fmt.Errorf("encode checks of the %s decision: %w", e.Group, err)
	}
	_, err = a.Store.RecordScalingEvent(ctx, state.ScalingEvent{
		Key: e.Key, Group: e.Group, At: e.At, From: e.From, To: e.To, Metrics: e.Metrics,
		Reason: e.Reason, Action: e.Action, Outcome: e.Outcome, Winner: e.Winner, Checks: checks,
		WorkflowID: e.WorkflowID, RunID: e.RunID,
	})
	return err
}

// LastInstanceSequence returns the highest instance number the group has ever used, so a
// re-created group does not reuse the names of instances recorded as terminated.
func (a *Activities) LastInstanceSequence(ctx context.Context, group string) (int, error) {
	insts, err := a.Store.ListInstances(ctx, group, true)
	if err != nil {
		return 0, fmt.Errorf("list instances of group %s: %w", group, err)
	}
	last := 0
	for _, in := range insts {
		if n, ok := sequenceOf(group, in.Name); ok && n > last {
			last = n
		}
	}
	return last, nil
}

func sequenceOf(group, name string) (int, bool) {
	suffix, ok := strings.CutPrefix(name, group+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(suffix)
	return n, err == nil && n > 0
}

// InstanceLastSeen returns when the instance last checked in or sent a heartbeat (zero if never).
func (a *Activities) InstanceLastSeen(ctx context.Context, name string) (time.Time, error) {
	in, found, err := a.Store.GetInstance(ctx, name)
	if err != nil {
		return time.Time{}, fmt.Errorf("read instance %s: %w", name, err)
	}
	if !found || in.LastSeenAt == nil {
		return time.Time{}, nil
	}
	return *in.LastSeenAt, nil
}

// EventRepeats says how many evaluations repeated a decision-log row, and when the last was.
type EventRepeats struct {
	Key     string
	Repeats int
	LastAt  time.Time
}

// RecordEventRepeats records the repeats of a decision-log row; running it twice is harmless.
func (a *Activities) RecordEventRepeats(ctx context.Context, r EventRepeats) error {
	return a.Store.SetScalingEventRepeats(ctx, r.Key, r.Repeats, r.LastAt)
}
