package activities

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
)

// graceRecorder is a hypervisor that remembers the grace RemoveDomain was given.
type graceRecorder struct {
	fakeHypervisor
	grace time.Duration
}

func (g *graceRecorder) RemoveDomain(ctx context.Context, name string, grace time.Duration) (bool, error) {
	g.grace = grace
	return g.fakeHypervisor.RemoveDomain(ctx, name, grace)
}

// TestDestroyInstanceResumesTheGracePeriod: an attempt that follows one cut short (its worker
// died) gives the guest what is left of the shutdown grace, not a new one.
func TestDestroyInstanceResumesTheGracePeriod(t *testing.T) {
	tests := []struct {
		name string
		// asked is how long ago an earlier attempt asked the guest to shut down; 0 = none did.
		asked            time.Duration
		wantMin, wantMax time.Duration
	}{
		{name: "first attempt", wantMin: time.Minute, wantMax: time.Minute},
		{name: "resumed 20s in", asked: 20 * time.Second, wantMin: 35 * time.Second, wantMax: 40 * time.Second},
		{name: "resumed after the grace", asked: 5 * time.Minute, wantMin: 0, wantMax: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			hv := &graceRecorder{}
			h := &HostActivities{Host: "kvm1", Hyper: hv, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			env.RegisterActivity(h)
			if tt.asked > 0 {
				env.SetHeartbeatDetails(DestroyProgress{ShutdownFrom: time.Now().Add(-tt.asked)})
			}
			if _, err := env.ExecuteActivity(h.DestroyInstance, DestroyInstanceParams{Name: "web-3", Pool: "images", Grace: time.Minute}); err != nil {
				t.Fatal(err)
			}
			if hv.grace < tt.wantMin || hv.grace > tt.wantMax {
				t.Errorf("grace %s, want between %s and %s", hv.grace, tt.wantMin, tt.wantMax)
			}
		})
	}
}
