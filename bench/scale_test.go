//go:build benchscale

package bench

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/testservices"
)

// TestScaleOutIn scales one group on libvirt's test driver from 0 to N instances and back to
// 0, PREMISCALE_BENCH_RUNS times, and prints how long each took and the launches per second,
// then where one instance's time went (its history) and what the group's workflow did.
//
//	PREMISCALE_BENCH_INSTANCES (100), PREMISCALE_BENCH_RUNS (3)
func TestScaleOutIn(t *testing.T) {
	n := envInt(t, "PREMISCALE_BENCH_INSTANCES", 100)
	runs := envInt(t, "PREMISCALE_BENCH_RUNS", 3)
	s := newStack(t)
	host := testservices.UniqueName(t, "h")
	group := testservices.UniqueName(t, "scale")
	wc := workerConfig{Host: host, TaskQueue: testservices.UniqueName(t, "tq"), Interval: 10 * time.Second}
	path, cfg := s.config(wc)
	w := s.startWorker(path, cfg)
	c := s.clients(cfg)
	scaling := fmt.Sprintf("{minNodes: 0, maxNodes: %d, increment: %d, maxConcurrentLaunches: 0, cooldown: 0, scaleIn: {stabilizationWindow: 0}, resourceTarget: {cpu: 50}}", n, n)
	gs := s.groupSpec(wc, group, s.testDriverGroup(group, host, scaling, false))
	ctx := context.Background()
	if _, err := c.groups.Apply(ctx, gs); err != nil {
		t.Fatal(err)
	}
	c.waitStatus(t, group, 100*time.Millisecond, time.Minute, "first evaluation", func(st groupctl.Status) bool { return st.Evaluations > 0 })

	report(t, "scale", "one group, 0 → %d → 0 instances on test:///default, one worker (pid %d), Temporal at %s", n, w.pid(), s.temporalAddr)
	var ups, downs []time.Duration
	var firstOut [2]time.Time
	for run := 1; run <= runs; run++ {
		smp := startSampler(map[string]int{"worker": w.pid(), "temporal": s.temporalPid})
		start := time.Now()
		scale(t, c, group, n)
		c.waitStatus(t, group, 50*time.Millisecond, 10*time.Minute, fmt.Sprintf("%d running", n), allRunning(n))
		up := time.Since(start)
		if run == 1 {
			firstOut = [2]time.Time{start, time.Now()}
		}
		mid := time.Now()
		scale(t, c, group, 0)
		c.waitStatus(t, group, 50*time.Millisecond, 10*time.Minute, "no instance", func(st groupctl.Status) bool { return len(st.Instances) == 0 })
		down := time.Since(mid)
		use := smp.stop()
		ups, downs = append(ups, up), append(downs, down)
		report(t, "scale", "run %d: 0 → %d in %.1f s (%.1f launches/s), %d → 0 in %.1f s (%.1f retirements/s); worker %s; Temporal %s",
			run, n, up.Seconds(), float64(n)/up.Seconds(), n, down.Seconds(), float64(n)/down.Seconds(), use["worker"], use["temporal"])
		breakdown(t, c.temporal, spec.GroupWorkflowID(group), start, mid)
	}
	report(t, "scale", "0 → %d: %s; %d → 0: %s", n, spread(ups), n, spread(downs))

	// Where the time goes: one instance's history, and the group's workflow tasks during the
	// first scale-out.
	profileInstance(t, c.temporal, spec.InstanceWorkflowID(fmt.Sprintf("%s-%d", group, n/2)))
	profileGroup(t, c.temporal, spec.GroupWorkflowID(group), firstOut[0], firstOut[1])
}

func scale(t *testing.T, c *clients, group string, desired int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.groups.Scale(ctx, group, spec.ScaleRequest{Desired: &desired}); err != nil {
		t.Fatalf("scale %s to %d: %v", group, desired, err)
	}
}

func allRunning(n int) func(groupctl.Status) bool {
	return func(st groupctl.Status) bool {
		if len(st.Instances) != n {
			return false
		}
		for _, in := range st.Instances {
			if in.State != spec.StateRunning {
				return false
			}
		}
		return true
	}
}

// spread summarises repeated measurements: their range and median.
func spread(ds []time.Duration) string {
	s := sortedCopy(ds)
	return fmt.Sprintf("%.1f-%.1f s (median %.1f s, %d runs)", s[0].Seconds(), s[len(s)-1].Seconds(), s[len(s)/2].Seconds(), len(s))
}

// history reads every event of a workflow's latest run.
func history(t *testing.T, tc client.Client, id string) []*historypb.HistoryEvent {
	t.Helper()
	evs, err := readHistory(tc, id)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// readHistory reads every event of a workflow's latest run.
func readHistory(tc client.Client, id string) ([]*historypb.HistoryEvent, error) {
	var out []*historypb.HistoryEvent
	it := tc.GetWorkflowHistory(context.Background(), id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", id, err)
		}
		out = append(out, ev)
	}
	return out, nil
}

// profileInstance prints an instance workflow's events by type, its activities with their
// queue wait and run time, and the span from its start to running.
func profileInstance(t *testing.T, tc client.Client, id string) {
	t.Helper()
	evs := history(t, tc, id)
	if len(evs) == 0 {
		return
	}
	counts := map[string]int{}
	type act struct {
		name                       string
		scheduled, started, closed time.Time
	}
	acts := map[int64]*act{}
	var order []int64
	var running time.Time
	for _, ev := range evs {
		counts[strings.TrimPrefix(ev.GetEventType().String(), "EVENT_TYPE_")]++
		at := ev.GetEventTime().AsTime()
		switch ev.GetEventType() {
		case enums.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			acts[ev.GetEventId()] = &act{name: ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName(), scheduled: at}
			order = append(order, ev.GetEventId())
		case enums.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			if a := acts[ev.GetActivityTaskStartedEventAttributes().GetScheduledEventId()]; a != nil {
				a.started = at
			}
		case enums.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			if a := acts[ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()]; a != nil {
				a.closed = at
			}
		case enums.EVENT_TYPE_MARKER_RECORDED:
			if ev.GetMarkerRecordedEventAttributes().GetMarkerName() == "LocalActivity" {
				order = append(order, -ev.GetEventId())
				acts[-ev.GetEventId()] = &act{name: "(local activity)", scheduled: at, started: at, closed: at}
			}
		case enums.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
			if running.IsZero() {
				running = at
			}
		}
	}
	start := evs[0].GetEventTime().AsTime()
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", strings.ToLower(k), counts[k]))
	}
	report(t, "scale", "instance %s: %d events (%s)", id, len(evs), strings.Join(parts, ", "))
	for _, k := range order {
		a := acts[k]
		report(t, "scale", "  %-22s at +%4.0f ms: waited %4.0f ms for a worker, ran %4.0f ms",
			a.name, ms(a.scheduled.Sub(start)), ms(a.started.Sub(a.scheduled)), ms(a.closed.Sub(a.started)))
	}
	if !running.IsZero() {
		report(t, "scale", "  first report to the group at +%.0f ms", ms(running.Sub(start)))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// profileGroup prints what the group's workflow did between from and to: its workflow tasks,
// child starts and signals.
func profileGroup(t *testing.T, tc client.Client, id string, from, to time.Time) {
	t.Helper()
	counts := map[string]int{}
	for _, ev := range history(t, tc, id) {
		at := ev.GetEventTime().AsTime()
		if at.Before(from) || at.After(to) {
			continue
		}
		counts[strings.ToLower(strings.TrimPrefix(ev.GetEventType().String(), "EVENT_TYPE_"))]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
	}
	report(t, "scale", "group workflow during the first scale-out (%.1f s): %s", to.Sub(from).Seconds(), strings.Join(parts, ", "))
}

// breakdown prints where a scale-out's time went, from the histories: for each instance, from
// the scale request to its workflow's start, to its CreateInstance being scheduled, its wait for
// a host worker, its run, and from its end to the group hearing that the instance runs; p50,
// p95 and max over the instances.
func breakdown(t *testing.T, tc client.Client, groupID string, from, to time.Time) {
	t.Helper()
	heard := map[string]time.Time{}
	for _, ev := range history(t, tc, groupID) {
		a := ev.GetWorkflowExecutionSignaledEventAttributes()
		at := ev.GetEventTime().AsTime()
		if a == nil || at.Before(from) || at.After(to) {
			continue
		}
		// A report alone, or reports a worker sent together.
		var sts []spec.InstanceStatus
		switch a.GetSignalName() {
		case spec.SignalInstanceStatus:
			var st spec.InstanceStatus
			if err := converter.GetDefaultDataConverter().FromPayloads(a.GetInput(), &st); err == nil {
				sts = append(sts, st)
			}
		case spec.SignalInstanceStatuses:
			_ = converter.GetDefaultDataConverter().FromPayloads(a.GetInput(), &sts)
		}
		for _, st := range sts {
			if st.State == spec.StateRunning {
				heard[st.Name] = at
			}
		}
	}
	phases := []string{"request → workflow started", "started → CreateInstance scheduled", "CreateInstance waited for a worker", "CreateInstance ran", "CreateInstance done → group heard"}
	spans := make([][]time.Duration, len(phases))
	tasks := taskTimes{}
	var mu sync.Mutex
	names := slices.Collect(maps.Keys(heard))
	parallel(t, names, 8, func(name string) error {
		evs, err := readHistory(tc, spec.InstanceWorkflowID(name))
		if err != nil || len(evs) == 0 {
			return err
		}
		started := evs[0].GetEventTime().AsTime()
		var sched, run, done time.Time
		var id int64
		for _, ev := range evs {
			switch {
			case ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == "CreateInstance":
				sched, id = ev.GetEventTime().AsTime(), ev.GetEventId()
			case ev.GetActivityTaskStartedEventAttributes().GetScheduledEventId() == id && id != 0:
				run = ev.GetEventTime().AsTime()
			case ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId() == id && id != 0:
				done = ev.GetEventTime().AsTime()
			}
		}
		if done.IsZero() {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		tasks.merge(tasksOf(evs, from, to))
		for i, d := range []time.Duration{started.Sub(from), sched.Sub(started), run.Sub(sched), done.Sub(run), heard[name].Sub(done)} {
			spans[i] = append(spans[i], d)
		}
		return nil
	})
	var parts []string
	for i, ph := range phases {
		s := sortedCopy(spans[i])
		parts = append(parts, fmt.Sprintf("%s p50 %.2f/p95 %.2f/max %.2f s", ph, percentile(s, 50).Seconds(), percentile(s, 95).Seconds(), percentile(s, 100).Seconds()))
	}
	report(t, "scale", "  %d instances: %s", len(names), strings.Join(parts, "; "))
	report(t, "scale", "  their tasks: %s", tasks)
}
