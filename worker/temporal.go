package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	sdkworker "go.temporal.io/sdk/worker"

	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/temporalclient"
)

// taskQueueOptions tune the Temporal workers. The SDK's default of two pollers per task queue
// caps a worker at two tasks per round trip to the server: hundreds of groups, or a scale-out
// of a hundred instances, queue up behind them while the worker idles. Autoscaling pollers
// follow the backlog (up to the SDK's default of 100), and the default execution slots (1,000
// workflow tasks, activities and local activities) bound the work they take.
func taskQueueOptions() sdkworker.Options {
	return sdkworker.Options{
		WorkflowTaskPollerBehavior: sdkworker.NewPollerBehaviorAutoscaling(sdkworker.PollerBehaviorAutoscalingOptions{}),
		ActivityTaskPollerBehavior: sdkworker.NewPollerBehaviorAutoscaling(sdkworker.PollerBehaviorAutoscalingOptions{}),
	}
}

// checkSearchAttributes fails start-up when the namespace lacks one of PremiScale's search
// attributes: the workflows set them, and a workflow task that sets an unregistered one fails
// and is retried for ever, so every group would stop without a word. Where the attributes
// cannot be listed (an API key without the right to), the worker says so and goes on.
func (w *Worker) checkSearchAttributes(ctx context.Context) error {
	ns := w.cfg.Controller.Temporal.Namespace
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := temporalclient.CheckAttributes(ctx, w.temporal, ns, spec.SearchAttributes)
	if errors.Is(err, temporalclient.ErrCannotCheck) {
		w.log.Warn("could not check the namespace's search attributes; if one is missing, groups stop at their first evaluation", "namespace", ns, "error", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("Temporal at %s: %w", w.cfg.Controller.Temporal.Address, err)
	}
	return nil
}
