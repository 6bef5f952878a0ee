//go:build benchscale

package bench

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/testservices"
)

// TestGroupsAtInterval measures the worker at rest, then runs N idle groups at once on one
// worker for each N of PREMISCALE_BENCH_GROUPS and prints how regularly they are evaluated
// (the spacing between a group's evaluations, p50 and p95, from the groups' histories), the
// history events an evaluation writes, and the CPU and memory of the worker and the Temporal
// server meanwhile.
//
// An idle group here has no instance and one cpu target check, read from InfluxDB at every
// evaluation; it holds. Knobs: PREMISCALE_BENCH_GROUPS (50,200,500), PREMISCALE_BENCH_INTERVAL
// (5s), PREMISCALE_BENCH_WINDOW (60s, after a warm-up of max(30s, 4 intervals)),
// PREMISCALE_BENCH_REST (20s, the at-rest measurement; 0 skips it), PREMISCALE_BENCH_WARMUP
// (the warm-up; longer keeps the start of hundreds of groups out of the window).
func TestGroupsAtInterval(t *testing.T) {
	counts := envInts(t, "PREMISCALE_BENCH_GROUPS", "50,200,500")
	interval := envDuration(t, "PREMISCALE_BENCH_INTERVAL", 5*time.Second)
	window := envDuration(t, "PREMISCALE_BENCH_WINDOW", time.Minute)
	rest := envDuration(t, "PREMISCALE_BENCH_REST", 20*time.Second)
	warmup := envDuration(t, "PREMISCALE_BENCH_WARMUP", max(30*time.Second, 4*interval))
	s := newStack(t)
	host := testservices.UniqueName(t, "h")

	if rest > 0 {
		wc := workerConfig{Host: host, TaskQueue: testservices.UniqueName(t, "tq"), Interval: interval}
		path, cfg := s.config(wc)
		w := s.startWorker(path, cfg)
		time.Sleep(5 * time.Second)
		smp := startSampler(map[string]int{"worker": w.pid()})
		time.Sleep(rest)
		report(t, "groups", "worker at rest (no group, one host, collector every 10 s) over %s: %s", rest, smp.stop()["worker"])
		w.stop()
	}
	for _, n := range counts {
		runGroups(t, s, host, n, interval, warmup, window)
	}
}

func runGroups(t *testing.T, s *stack, host string, n int, interval, warmup, window time.Duration) {
	t.Helper()
	wc := workerConfig{Host: host, TaskQueue: testservices.UniqueName(t, "tq"), Interval: interval}
	path, cfg := s.config(wc)
	w := s.startWorker(path, cfg)
	c := s.clients(cfg)
	prefix := testservices.UniqueName(t, "g")
	body := s.testDriverGroup(prefix, host, "{minNodes: 0, maxNodes: 2, resourceTarget: {cpu: 50}}", false)
	tmpl := s.groupSpec(wc, prefix, body)

	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	ctx := context.Background()
	started := time.Now()
	parallel(t, names, 8, func(name string) error {
		gs := tmpl
		gs.Name = name
		_, err := c.groups.Apply(ctx, gs)
		return err
	})
	startTook := time.Since(started)
	time.Sleep(warmup - startTook)
	from := time.Now()
	smp := startSampler(map[string]int{"worker": w.pid(), "temporal": s.temporalPid, "influxdb": pidOf("influxd"), "mariadb": pidOf("mariadbd")})
	time.Sleep(window)
	use := smp.stop()
	to := time.Now()

	// Every group's evaluations, from its history: an evaluation ends by starting the interval
	// timer.
	var mu sync.Mutex
	var spacings, firsts []time.Duration
	evaluations, events, stalled := 0, 0, 0
	steps := taskTimes{}
	parallel(t, names, 8, func(name string) error {
		evs, err := readHistory(c.temporal, spec.GroupWorkflowID(name))
		if err != nil {
			return err
		}
		st := evaluationsOf(evs, interval, from, to)
		mu.Lock()
		defer mu.Unlock()
		spacings = append(spacings, st.spacings...)
		evaluations += st.evaluations
		steps.merge(st.steps)
		events += st.events
		if st.evaluations < 2 {
			stalled++
		}
		if st.first > 0 {
			firsts = append(firsts, st.first)
		}
		return nil
	})
	if dir := os.Getenv("PREMISCALE_BENCH_DUMP"); dir != "" {
		// One group's history, to read what an evaluation does.
		evs := history(t, c.temporal, spec.GroupWorkflowID(names[0]))
		b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&historypb.History{Events: evs})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("group-%d.json", n)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sp := sortedCopy(spacings)
	fs := sortedCopy(firsts)
	perEval := 0.0
	if evaluations > 0 {
		perEval = float64(events) / float64(evaluations)
	}
	report(t, "groups", "%d groups at %s: spacing p50 %.2f s, p95 %.2f s, max %.2f s; %.1f evaluations/s; %d groups evaluated fewer than twice in %s; first evaluation after start p95 %.1f s (max %.1f s, starting all took %.1f s)",
		n, interval, percentile(sp, 50).Seconds(), percentile(sp, 95).Seconds(), percentile(sp, 100).Seconds(),
		float64(evaluations)/to.Sub(from).Seconds(), stalled, window, percentile(fs, 95).Seconds(), percentile(fs, 100).Seconds(), startTook.Seconds())
	report(t, "groups", "%d groups: %.1f history events per evaluation; worker %s; Temporal %s; InfluxDB %s; MariaDB %s",
		n, perEval, use["worker"], use["temporal"], use["influxdb"], use["mariadb"])
	report(t, "groups", "%d groups: tasks %s", n, steps)

	// The next count starts from a quiet server.
	parallel(t, names, 8, func(name string) error {
		err := c.temporal.TerminateWorkflow(ctx, spec.GroupWorkflowID(name), "", "benchmark done")
		if err != nil {
			t.Logf("terminate %s: %v", name, err)
		}
		return nil
	})
	w.stop()
}

// groupEvaluations is what a group's history says about its evaluations in a window.
type groupEvaluations struct {
	// spacings are the times between consecutive evaluations in the window, and the time
	// since the last one when that is longer than the interval (a group left waiting).
	spacings []time.Duration
	// evaluations and events counted in the window.
	evaluations, events int
	// first is from the workflow's start to its first evaluation.
	first time.Duration
	// steps are the waits and run times of its tasks in the window (see taskTimes).
	steps taskTimes
}

// taskTimes collects, per kind of task ("workflow task", an activity's name), how long tasks
// waited for a worker (scheduled to started) and ran (started to closed).
type taskTimes map[string]*[2][]time.Duration

func (tt taskTimes) add(kind string, wait, run time.Duration) {
	if tt[kind] == nil {
		tt[kind] = &[2][]time.Duration{}
	}
	tt[kind][0] = append(tt[kind][0], wait)
	tt[kind][1] = append(tt[kind][1], run)
}

func (tt taskTimes) merge(o taskTimes) {
	for k, v := range o {
		for i := range v[0] {
			tt.add(k, v[0][i], v[1][i])
		}
	}
}

// String lists each kind's count and its wait and run time percentiles.
func (tt taskTimes) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(tt)) {
		w, r := sortedCopy(tt[k][0]), sortedCopy(tt[k][1])
		parts = append(parts, fmt.Sprintf("%s ×%d waited p50 %.0f/p95 %.0f ms, ran p50 %.0f/p95 %.0f ms",
			k, len(w), ms(percentile(w, 50)), ms(percentile(w, 95)), ms(percentile(r, 50)), ms(percentile(r, 95))))
	}
	return strings.Join(parts, "; ")
}

// tasksOf collects the task times of events in [from, to]: workflow tasks and activities.
func tasksOf(evs []*historypb.HistoryEvent, from, to time.Time) taskTimes {
	tt := taskTimes{}
	scheduled := map[int64]time.Time{}
	started := map[int64]time.Time{}
	names := map[int64]string{}
	for _, ev := range evs {
		at := ev.GetEventTime().AsTime()
		switch ev.GetEventType() {
		case enums.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
			scheduled[ev.GetEventId()] = at
			names[ev.GetEventId()] = "workflow task"
		case enums.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			scheduled[ev.GetEventId()] = at
			names[ev.GetEventId()] = ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
		case enums.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			started[ev.GetWorkflowTaskStartedEventAttributes().GetScheduledEventId()] = at
		case enums.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			started[ev.GetActivityTaskStartedEventAttributes().GetScheduledEventId()] = at
		case enums.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, enums.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			id := ev.GetWorkflowTaskCompletedEventAttributes().GetScheduledEventId()
			if id == 0 {
				id = ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()
			}
			s, st := scheduled[id], started[id]
			if !s.IsZero() && !st.IsZero() && s.After(from) && at.Before(to) {
				tt.add(names[id], st.Sub(s), at.Sub(st))
			}
		}
	}
	return tt
}

func evaluationsOf(evs []*historypb.HistoryEvent, interval time.Duration, from, to time.Time) groupEvaluations {
	var out groupEvaluations
	var last time.Time
	for _, ev := range evs {
		at := ev.GetEventTime().AsTime()
		if ev.GetEventType() == enums.EVENT_TYPE_TIMER_STARTED &&
			ev.GetTimerStartedEventAttributes().GetStartToFireTimeout().AsDuration() == interval {
			if out.first == 0 {
				out.first = at.Sub(evs[0].GetEventTime().AsTime())
			}
			if at.After(from) && at.Before(to) {
				out.evaluations++
				if !last.IsZero() {
					out.spacings = append(out.spacings, at.Sub(last))
				}
			}
			if at.Before(to) {
				last = at
			}
		}
		if at.After(from) && at.Before(to) {
			out.events++
		}
	}
	out.steps = tasksOf(evs, from, to)
	if last.IsZero() {
		last = from
	}
	if gap := to.Sub(last); gap > interval {
		out.spacings = append(out.spacings, gap)
	}
	return out
}

// parallel calls f for every name, at most width at once, failing the test on the first error.
func parallel(t *testing.T, names []string, width int, f func(string) error) {
	t.Helper()
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, name := range names {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = f(name)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", names[i], err)
		}
	}
}
