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
// caps a worker at two tasks per round trip to the server: a scale-out of a hundred instances,
// or hundreds of groups, queue up behind them while the worker idles. Ten pollers per queue
// took a 0 → 100 scale-out on the test driver from 13-23 s to 7.5-11.5 s on the 2-core test
// machine; the SDK's autoscaling pollers did worse there (16 s, tasks waiting seconds for a
// poller), since the dev server sends no scaling hints. Twenty halved the time a launch's
// CreateInstance waited for a poller once instances started eagerly (about 1 s to 0.5 s at
// p50). The default execution slots (1,000 workflow tasks, activities and local activities
// at once) bound the work the pollers take.
func taskQueueOptions() sdkworker.Options {
	return sdkworker.Options{MaxConcurrentWorkflowTaskPollers: pollersPerQueue, MaxConcurrentActivityTaskPollers: pollersPerQueue}
}

const pollersPerQueue = 20

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
