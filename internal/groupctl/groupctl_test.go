package groupctl_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/testservices"
	"github.com/premiscale/premiscale/workflows"
)

// seen is what the stand-in group workflow was sent.
type seen struct {
	ConfigSpecs []string
	Scales      []spec.ScaleRequest
	SpecUpdates []spec.SpecRequest
}

// standIn answers like a group workflow, under its name, and remembers what reached it: the
// test is about what groupctl sends (signal or update, which name), on the real server.
func standIn(ctx workflow.Context, st workflows.GroupState) error {
	var s seen
	s.ConfigSpecs = append(s.ConfigSpecs, st.Spec.Name)
	if err := workflow.SetQueryHandler(ctx, spec.QueryStatus, func() (seen, error) { return s, nil }); err != nil {
		return err
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, spec.UpdateScale,
		func(_ workflow.Context, r spec.ScaleRequest) (spec.ScaleResult, error) {
			s.Scales = append(s.Scales, r)
			return spec.ScaleResult{Min: 1, Max: 3, Notes: []string{"noted"}}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(_ workflow.Context, r spec.ScaleRequest) error {
			if r.Reset && r.Max != nil {
				return errors.New("give it alone")
			}
			return nil
		}})
	if err != nil {
		return err
	}
	err = workflow.SetUpdateHandler(ctx, spec.UpdateSpec, func(_ workflow.Context, r spec.SpecRequest) (spec.SpecResult, error) {
		s.SpecUpdates = append(s.SpecUpdates, r)
		source := spec.SourceUpdate
		if r.Reset {
			source = spec.SourceConfig
		}
		return spec.SpecResult{Source: source}, nil
	})
	if err != nil {
		return err
	}
	specs := workflow.GetSignalChannel(ctx, spec.SignalSpec)
	for {
		var g spec.Group
		specs.Receive(ctx, &g)
		s.ConfigSpecs = append(s.ConfigSpecs, g.Name+"@"+g.Interval.String())
	}
}

func TestClientSendsWhatTheGroupExpects(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tc, err := client.DialContext(ctx, client.Options{HostPort: testservices.TemporalAddress(t),
		Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	queue := testservices.UniqueName(t, "groupctl")
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(standIn, workflow.RegisterOptions{Name: "GroupWorkflow"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ctl := &groupctl.Client{Temporal: tc, TaskQueue: queue}
	name := testservices.UniqueName(t, "g")
	gs := spec.Group{Name: name, Interval: time.Minute}
	defer func() { _ = tc.TerminateWorkflow(context.Background(), spec.GroupWorkflowID(name), "", "test over") }()

	if res, err := ctl.Apply(ctx, gs); err != nil || !res.Started {
		t.Fatalf("Apply of a new group: %+v, %v", res, err)
	}
	// A running group gets the config's spec as a signal, never as an operator's update.
	gs.Interval = 2 * time.Minute
	if res, err := ctl.Apply(ctx, gs); err != nil || res.Started {
		t.Fatalf("Apply of a running group: %+v, %v", res, err)
	}
	if res, err := ctl.Scale(ctx, name, spec.ScaleRequest{Reset: true}); err != nil || len(res.Notes) != 1 {
		t.Errorf("Scale reset: %+v, %v", res, err)
	}
	if _, err := ctl.Scale(ctx, name, spec.ScaleRequest{Reset: true, Max: new(int)}); err == nil || !strings.Contains(err.Error(), "give it alone") {
		t.Errorf("a rejected scale: %v, want the validator's message", err)
	}
	if err := ctl.Update(ctx, gs); err != nil {
		t.Errorf("Update: %v", err)
	}
	if res, err := ctl.UpdateSpec(ctx, name, spec.SpecRequest{Reset: true}); err != nil || res.Source != spec.SourceConfig {
		t.Errorf("UpdateSpec reset: %+v, %v", res, err)
	}

	v, err := tc.QueryWorkflow(ctx, spec.GroupWorkflowID(name), "", spec.QueryStatus)
	if err != nil {
		t.Fatal(err)
	}
	var got seen
	if err := v.Get(&got); err != nil {
		t.Fatal(err)
	}
	// Signal-with-start delivers the spec on start too.
	wantSpecs := []string{name, name + "@1m0s", name + "@2m0s"}
	if strings.Join(got.ConfigSpecs, " ") != strings.Join(wantSpecs, " ") {
		t.Errorf("config specs received %v, want %v", got.ConfigSpecs, wantSpecs)
	}
	if len(got.Scales) != 1 || !got.Scales[0].Reset {
		t.Errorf("scales received %+v, want one reset", got.Scales)
	}
	if len(got.SpecUpdates) != 2 || got.SpecUpdates[0].Spec == nil || got.SpecUpdates[0].Spec.Interval != 2*time.Minute || !got.SpecUpdates[1].Reset {
		t.Errorf("spec updates received %+v, want the operator's spec then a reset", got.SpecUpdates)
	}
	if _, err := ctl.Scale(ctx, "nosuch"+name, spec.ScaleRequest{Reset: true}); !errors.Is(err, groupctl.ErrNotRunning) {
		t.Errorf("Scale of a group that does not run: %v, want ErrNotRunning", err)
	}
}
