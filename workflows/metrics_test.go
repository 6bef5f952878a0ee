package workflows

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/premiscale/premiscale/internal/spec"
)

// metricsRecorder is a metrics handler that keeps every counter's sum and every gauge's last
// value, by name and tags ("name{k=v,...}", tags sorted).
type metricsRecorder struct {
	mu     sync.Mutex
	values map[string]float64
}

type taggedRecorder struct {
	r    *metricsRecorder
	tags map[string]string
}

func newMetricsRecorder() *metricsRecorder { return &metricsRecorder{values: map[string]float64{}} }

// with sets the recorder as the test suite's metrics handler.
func (r *metricsRecorder) with(s *testsuite.WorkflowTestSuite) {
	s.SetMetricsHandler(taggedRecorder{r: r, tags: map[string]string{}})
}

func (r *metricsRecorder) get(series string) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.values[series]
}

// sum adds up every series of the named metric whose tags include the given ones.
func (r *metricsRecorder) sum(name string, tags ...string) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	total := 0.0
	for series, v := range r.values {
		if !strings.HasPrefix(series, name+"{") {
			continue
		}
		ok := true
		for _, tag := range tags {
			ok = ok && strings.Contains(series[len(name):], tag)
		}
		if ok {
			total += v
		}
	}
	return total
}

func (t taggedRecorder) series(name string) string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(t.tags)) {
		kv = append(kv, k+"="+t.tags[k])
	}
	return name + "{" + strings.Join(kv, ",") + "}"
}

func (t taggedRecorder) WithTags(tags map[string]string) client.MetricsHandler {
	merged := maps.Clone(t.tags)
	maps.Copy(merged, tags)
	return taggedRecorder{r: t.r, tags: merged}
}

func (t taggedRecorder) Counter(name string) client.MetricsCounter {
	return recordFunc(func(v float64) { t.r.mu.Lock(); t.r.values[t.series(name)] += v; t.r.mu.Unlock() })
}

func (t taggedRecorder) Gauge(name string) client.MetricsGauge {
	return recordFunc(func(v float64) { t.r.mu.Lock(); t.r.values[t.series(name)] = v; t.r.mu.Unlock() })
}

func (t taggedRecorder) Timer(string) client.MetricsTimer { return client.MetricsNopHandler.Timer("") }

type recordFunc func(float64)

func (f recordFunc) Inc(n int64)      { f(float64(n)) }
func (f recordFunc) Update(v float64) { f(v) }

// TestGroupMetrics runs a group that grows to its maximum, shrinks and is deleted, and checks
// what it counted: every evaluation and its decision, the launches and retirements by host,
// and the sizes.
func TestGroupMetrics(t *testing.T) {
	f := newFakeFleet()
	f.setCPU(ptr(100))
	rec := newMetricsRecorder()
	env := newEnv(t, f, rec.with)
	var atMax, last spec.GroupStatus
	var sizesAtMax map[string]float64
	env.RegisterDelayedCallback(func() {
		atMax = queryStatus(t, env)
		sizesAtMax = map[string]float64{}
		for _, kind := range []string{"min", "max", "desired", "current"} {
			sizesAtMax[kind] = rec.sum(metricGroupSize, "kind="+kind)
		}
		f.setCPU(ptr(5))
	}, 4*time.Minute+45*time.Second)
	env.RegisterDelayedCallback(func() {
		last = queryStatus(t, env)
		env.SignalWorkflow(spec.SignalDelete, nil)
	}, 10*time.Minute)
	env.ExecuteWorkflow(GroupWorkflow, NewGroupState(testSpec()))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("group workflow failed: %v", err)
	}

	if atMax.Current != 4 {
		t.Fatalf("the group has %d instances at 4m45s, want 4 (its max)", atMax.Current)
	}
	if want := map[string]float64{"min": 1, "max": 4, "desired": 4, "current": 4}; !maps.Equal(sizesAtMax, want) {
		t.Errorf("group sizes at the max = %v, want %v", sizesAtMax, want)
	}
	evaluations := rec.sum(metricEvaluations, "group=web")
	if evaluations < float64(last.Evaluations) || evaluations == 0 {
		t.Errorf("%s = %v, want at least the %d evaluations before the delete", metricEvaluations, evaluations, last.Evaluations)
	}
	if d := rec.sum(metricDecisions, "group=web"); d != evaluations {
		t.Errorf("%s adds up to %v, want one per evaluation (%v)", metricDecisions, d, evaluations)
	}
	if n := rec.sum(metricDecisions, "action=scale-out", "outcome=acted"); n != 4 {
		t.Errorf("scale-outs acted on = %v, want 4: up to the minimum, then three on high CPU", n)
	}
	for _, host := range []string{"h1", "h2"} {
		if n := rec.get(metricLaunches + "{group=web,host=" + host + "}"); n != 2 {
			t.Errorf("launches on %s = %v, want 2 (instances are spread)", host, n)
		}
	}
	if n := rec.sum(metricRetirements, "group=web"); n != 4 {
		t.Errorf("retirements = %v, want 4: three scale-ins and the delete", n)
	}
	if n := rec.sum(metricLaunchFailures); n != 0 {
		t.Errorf("launch failures = %v, want none", n)
	}
	if n := rec.get(metricGroupSize + "{group=web,kind=current}"); n != 0 {
		t.Errorf("current size after the delete = %v, want 0", n)
	}
}

// TestLaunchFailureReasons fails launches in each way a group can see and checks the reason
// each is counted under.
func TestLaunchFailureReasons(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(*fakeFleet, *spec.Group)
		reason string
	}{
		{"launch error", func(f *fakeFleet, _ *spec.Group) { f.failNext = 5 }, launchError},
		{"no room", func(f *fakeFleet, _ *spec.Group) { f.noRoomNext = 1 }, launchNoRoom},
		{"boot timeout", func(_ *fakeFleet, gs *spec.Group) {
			gs.Launch.Health = spec.Health{Checkin: true, BootTimeout: 3 * time.Minute}
		}, launchBootTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeFleet()
			rec := newMetricsRecorder()
			env := newEnv(t, f, rec.with)
			gs := testSpec()
			tt.setup(f, &gs)
			env.RegisterDelayedCallback(func() { env.SignalWorkflow(spec.SignalDelete, nil) }, 4*time.Minute)
			env.ExecuteWorkflow(GroupWorkflow, NewGroupState(gs))
			if err := env.GetWorkflowError(); err != nil {
				t.Fatalf("group workflow failed: %v", err)
			}
			series := metricLaunchFailures + "{group=web,host=h1,reason=" + tt.reason + "}"
			if n := rec.get(series); n != 1 {
				t.Errorf("%s = %v, want 1; all: %v", series, n, rec.values)
			}
			if n := rec.sum(metricLaunchFailures); n != 1 {
				t.Errorf("%d launch failures counted, want 1", int(n))
			}
		})
	}
}
