package worker

import (
	"os"
	"testing"

	sdkworker "go.temporal.io/sdk/worker"
)

// TestMain turns the sticky workflow cache off, so every workflow task replays the whole
// history: any non-determinism in the workflows shows up in these tests as a failed task.
func TestMain(m *testing.M) {
	sdkworker.SetStickyWorkflowCacheSize(0)
	os.Exit(m.Run())
}
