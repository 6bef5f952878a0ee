package worker

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/premiscale/premiscale/workflows"
)

// recordDirEnv names a folder to save the replayed histories in, to refresh the recorded
// histories that workflows' replay test runs without any server:
//
//	PREMISCALE_RECORD_HISTORIES=$PWD/workflows/testdata/histories go test ./worker/
const recordDirEnv = "PREMISCALE_RECORD_HISTORIES"

// replay fetches a finished workflow's history from the server and replays it against the
// current workflow code: a non-deterministic change fails here, on a real history.
func replay(t *testing.T, tc client.Client, workflowID, saveAs string) {
	t.Helper()
	ctx := context.Background()
	hist := &historypb.History{}
	it := tc.GetWorkflowHistory(ctx, workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("read history of %s: %v", workflowID, err)
		}
		hist.Events = append(hist.Events, ev)
	}
	r := sdkworker.NewWorkflowReplayer()
	r.RegisterWorkflow(workflows.GroupWorkflow)
	r.RegisterWorkflow(workflows.InstanceWorkflow)
	if err := r.ReplayWorkflowHistory(tlog.NewStructuredLogger(quietLogger()), hist); err != nil {
		t.Errorf("replay of %s (%d events) failed: %v", workflowID, len(hist.Events), err)
	}
	if dir := os.Getenv(recordDirEnv); dir != "" && saveAs != "" {
		b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(hist)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, saveAs), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
