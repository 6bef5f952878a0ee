package workflows

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
)

// TestReplayRecordedHistories replays histories recorded from real runs on the Temporal dev
// server (see worker/replay_test.go for how to refresh them). A change to the workflows that
// would break running groups on upgrade fails here.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded histories in testdata/histories (%v)", err)
	}
	logger := tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflow(GroupWorkflow)
			r.RegisterWorkflow(InstanceWorkflow)
			if err := r.ReplayWorkflowHistoryFromJSONFile(logger, path); err != nil {
				t.Fatalf("replay %s: %v", path, err)
			}
		})
	}
}
