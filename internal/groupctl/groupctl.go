// Package groupctl drives autoscaling groups through Temporal: create or update, list, status
// and delete. The CLI and the worker both use it, so a group is started the same way whoever
// starts it.
package groupctl

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/workflows"
)

// Client is a group controller bound to one Temporal namespace and task queue.
type Client struct {
	Temporal  client.Client
	TaskQueue string
	// Store adds MySQL's instance records to Status; optional.
	Store *state.Store
}

// ApplyResult says what Apply did.
type ApplyResult struct {
	// Started is true when a new group workflow was started, false when a running one was
	// sent the new spec.
	Started bool
	RunID   string
}

// Apply starts the group's workflow, or sends the spec to the one already running as the
// config's spec. Starting a group that runs already is not an error: it is how a changed
// config reaches a running group. An operator's overrides on the running group stay, except
// those whose config value changed.
func (c *Client) Apply(ctx context.Context, gs spec.Group) (ApplyResult, error) {
	id := spec.GroupWorkflowID(gs.Name)
	running, err := c.isRunning(ctx, id)
	if err != nil {
		return ApplyResult{}, err
	}
	opts := client.StartWorkflowOptions{
		ID:                    id,
		TaskQueue:             c.TaskQueue,
		WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(spec.AttrGroup.ValueSet(gs.Name)),
	}
	opts.StaticSummary, opts.StaticDetails = workflows.GroupSummary(gs)
	// Signal-with-start is atomic: if another agent started the group a moment ago, the spec
	// is delivered to that run instead of failing.
	run, err := c.Temporal.SignalWithStartWorkflow(ctx, id, spec.SignalSpec, gs, opts,
		workflows.GroupWorkflow, workflows.NewGroupState(gs))
	if err != nil {
		return ApplyResult{}, fmt.Errorf("start group %s (workflow %s on task queue %s): %w", gs.Name, id, c.TaskQueue, err)
	}
	return ApplyResult{Started: !running, RunID: run.GetRunID()}, nil
}

func (c *Client) isRunning(ctx context.Context, id string) (bool, error) {
	desc, err := c.Temporal.DescribeWorkflowExecution(ctx, id, "")
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("describe workflow %s: %w", id, err)
	}
	return desc.GetWorkflowExecutionInfo().GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

// Status is a group's live status from its workflow, with MySQL's records of its instances.
type Status struct {
	spec.GroupStatus
	Records []state.Instance `json:"records,omitempty"`
	// Images are the copies of the group's base image on its hosts that the workers know of
	// (copied by PremiScale or found in a host's pool); a host without one has none yet.
	Images []state.HostImage `json:"images,omitempty"`
}

// ErrNotRunning is returned for a group that has no running workflow.
var ErrNotRunning = errors.New("group is not running")

// Status queries the group's workflow.
func (c *Client) Status(ctx context.Context, group string) (Status, error) {
	id := spec.GroupWorkflowID(group)
	if err := c.mustRun(ctx, group); err != nil {
		return Status{}, err
	}
	v, err := c.Temporal.QueryWorkflow(ctx, id, "", spec.QueryStatus)
	if err != nil {
		return Status{}, fmt.Errorf("query status of group %s: %w", group, err)
	}
	var s Status
	if err := v.Get(&s.GroupStatus); err != nil {
		return Status{}, fmt.Errorf("decode status of group %s: %w", group, err)
	}
	if c.Store != nil {
		recs, err := c.Store.ListInstances(ctx, group, false)
		if err != nil {
			return Status{}, fmt.Errorf("read instances of group %s: %w", group, err)
		}
		s.Records = recs
		if pool, volume, ok := strings.Cut(s.Image, "/"); ok {
			imgs, err := c.Store.ListHostImages(ctx, pool, volume)
			if err != nil {
				return Status{}, fmt.Errorf("read the image copies of group %s: %w", group, err)
			}
			for _, im := range imgs {
				if slices.Contains(s.Hosts, im.Host) {
					s.Images = append(s.Images, im)
				}
			}
		}
	}
	return s, nil
}

// Names returns the names of the running groups on the task queue, ordered, from Temporal's
// visibility store alone (no worker needs to answer, unlike List).
func (c *Client) Names(ctx context.Context) ([]string, error) {
	query := fmt.Sprintf("WorkflowType = 'GroupWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '%s'", c.TaskQueue)
	var names []string
	var token []byte
	for {
		resp, err := c.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list group workflows: %w", err)
		}
		for _, e := range resp.GetExecutions() {
			if name, ok := spec.GroupFromWorkflowID(e.GetExecution().GetWorkflowId()); ok {
				names = append(names, name)
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	sort.Strings(names)
	return names, nil
}

// List returns the status of every running group on the task queue, ordered by name.
func (c *Client) List(ctx context.Context) ([]Status, error) {
	names, err := c.Names(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(names))
	for _, name := range names {
		s, err := c.Status(ctx, name)
		if errors.Is(err, ErrNotRunning) {
			continue // ended between the list and the query
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Delete asks the group to retire every instance and end, and waits until it has.
func (c *Client) Delete(ctx context.Context, group string) error {
	id := spec.GroupWorkflowID(group)
	if err := c.mustRun(ctx, group); err != nil {
		return err
	}
	if err := c.Temporal.SignalWorkflow(ctx, id, "", spec.SignalDelete, nil); err != nil {
		return fmt.Errorf("signal group %s to delete: %w", group, err)
	}
	if err := c.Temporal.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
		return fmt.Errorf("wait for group %s to finish deleting: %w", group, err)
	}
	return nil
}

// Scale sets the group's desired size and/or bounds, or with Reset clears what an earlier
// Scale set. The workflow's validator rejects out-of-range requests before anything is
// recorded; its message is returned as is.
func (c *Client) Scale(ctx context.Context, group string, req spec.ScaleRequest) (spec.ScaleResult, error) {
	var res spec.ScaleResult
	err := c.update(ctx, group, spec.UpdateScale, req, &res)
	return res, err
}

// Protect sets or clears an instance's scale-in protection.
func (c *Client) Protect(ctx context.Context, group, instance string, protected bool) (spec.InstanceRef, error) {
	var res spec.InstanceRef
	err := c.update(ctx, group, spec.UpdateProtect, spec.ProtectRequest{Instance: instance, Protected: protected}, &res)
	return res, err
}

func (c *Client) update(ctx context.Context, group, name string, arg, result any) error {
	if err := c.mustRun(ctx, group); err != nil {
		return err
	}
	h, err := c.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: spec.GroupWorkflowID(group), UpdateName: name, Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return fmt.Errorf("group %s rejected %s: %w", group, name, err)
	}
	if err := h.Get(ctx, result); err != nil {
		return fmt.Errorf("group %s rejected %s: %w", group, name, err)
	}
	return nil
}

// Roll starts a rolling replacement of every instance of the group, whether or not its launch
// spec changed, and returns the roll's progress as it starts.
func (c *Client) Roll(ctx context.Context, group, reason string) (spec.RollStatus, error) {
	var res spec.RollStatus
	err := c.update(ctx, group, spec.UpdateRoll, spec.RollRequest{Reason: reason}, &res)
	return res, err
}

// Pause stops the group from acting; it keeps evaluating and logging what it would do.
func (c *Client) Pause(ctx context.Context, group string) error {
	return c.signal(ctx, group, spec.SignalPause)
}

// Resume lets a paused group act again.
func (c *Client) Resume(ctx context.Context, group string) error {
	return c.signal(ctx, group, spec.SignalResume)
}

func (c *Client) signal(ctx context.Context, group, name string) error {
	if err := c.mustRun(ctx, group); err != nil {
		return err
	}
	if err := c.Temporal.SignalWorkflow(ctx, spec.GroupWorkflowID(group), "", name, nil); err != nil {
		return fmt.Errorf("signal %s to group %s: %w", name, group, err)
	}
	return nil
}

func (c *Client) mustRun(ctx context.Context, group string) error {
	id := spec.GroupWorkflowID(group)
	running, err := c.isRunning(ctx, id)
	if err != nil {
		return err
	}
	if !running {
		return fmt.Errorf("group %s (workflow %s): %w", group, id, ErrNotRunning)
	}
	return nil
}

// Events returns the group's decision log since a time, oldest first.
func (c *Client) Events(ctx context.Context, group string, since time.Time) ([]state.ScalingEvent, error) {
	if c.Store == nil {
		return nil, errors.New("events need the state database")
	}
	return c.Store.ListScalingEvents(ctx, group, since)
}

// Update runs gs on the group instead of its config's spec, as an operator's override that
// lasts until the operator resets it or the config's spec changes (see UpdateSpec).
func (c *Client) Update(ctx context.Context, gs spec.Group) error {
	_, err := c.UpdateSpec(ctx, gs.Name, spec.SpecRequest{Spec: &gs})
	return err
}

// UpdateSpec sends a running group an operator's spec (or, with Reset, takes it back to the
// config's) and returns what the group did, with what else changed (bounds set with group
// scale cleared, a pending desired size clamped). The spec is applied at the next evaluation.
func (c *Client) UpdateSpec(ctx context.Context, group string, req spec.SpecRequest) (spec.SpecResult, error) {
	var res spec.SpecResult
	err := c.update(ctx, group, spec.UpdateSpec, req, &res)
	return res, err
}
