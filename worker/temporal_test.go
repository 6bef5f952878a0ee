package worker

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/operatorservice/v1"

	"github.com/premiscale/premiscale/internal/temporalclient"
	"github.com/premiscale/premiscale/internal/testservices"
)

// A namespace without PremiScale's search attributes would fail every group's workflow task in
// a loop: the worker refuses to start on it and says what to run.
func TestWorkerRefusesANamespaceWithoutTheSearchAttributes(t *testing.T) {
	f := newFixture(t, "{minNodes: 0, maxNodes: 1, resourceTarget: {cpu: 50}}")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tc, err := temporalclient.Dial(ctx, f.cfg.Controller.Temporal, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	ns := testservices.UniqueName(t, "ns")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = tc.OperatorService().DeleteNamespace(ctx, &operatorservice.DeleteNamespaceRequest{Namespace: ns})
	})
	if _, err := temporalclient.Setup(ctx, tc, temporalclient.SetupOptions{Namespace: ns, CreateNamespace: true, Retention: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	f.cfg.Controller.Temporal.Namespace = ns
	w, err := New(f.cfg, Options{Logger: quietLogger(), StartGroups: true})
	if err != nil {
		t.Fatal(err)
	}
	err = w.Run(ctx)
	for _, want := range []string{"namespace " + ns + " lacks the search attributes", "PremiscaleHost (Keyword)", "run `premiscale temporal setup`"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("worker on a namespace without search attributes stopped with %v, want an error saying %q", err, want)
		}
	}
}
