package policy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// minute is one step of the trace: the group's total demand, in percent of one instance, and
// what the caller's query saw.
type minute struct {
	demand float64 // cpu = demand / current, at most 100%: adding instances spreads the load
	kind   string  // "ok", "missing", "error", "stale", "partial"
}

// traceSeries is 34 evaluations, one a minute:
//
//	0–4   steady 200 (4 instances at 50%)
//	5–6   spike to 400
//	7–13  back to 200
//	14–15 a two-minute dip to 50
//	16–17 back to 200
//	18–21 the load falls to 50, but the query returns nothing (18–19), fails (20), or
//	      sees only some instances (21, partial)
//	22–23 200 again, data back
//	24–27 low cpu from points 10 minutes old (the collector stalled): stale
//	28–33 the load really is 50, fresh data
func traceSeries() []minute {
	var s []minute
	add := func(n int, demand float64, kind string) {
		for range n {
			s = append(s, minute{demand, kind})
		}
	}
	add(5, 200, "ok")
	add(2, 400, "ok")
	add(7, 200, "ok")
	add(2, 50, "ok")
	add(2, 200, "ok")
	add(2, 50, "missing")
	add(1, 50, "error")
	add(1, 50, "partial")
	add(2, 200, "ok")
	add(4, 10, "stale")
	add(6, 50, "ok")
	return s
}

// runTrace evaluates the series once a minute, carrying State through JSON as the workflow
// does across continue-as-new, with Current following To.
func runTrace(t *testing.T, stabilization time.Duration) (sizes []int, reasons []string) {
	t.Helper()
	spec := Spec{
		Min: 1, Max: 10,
		ScaleInStabilization: stabilization,
		Checks: []Check{{Name: "cpu", Metric: MetricCPU, Window: time.Minute, Staleness: 3 * time.Minute,
			Strategy: StrategySpec{Target: &Target{Value: 50}}}},
	}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	current := 4
	var st State
	for i, m := range traceSeries() {
		now := start.Add(time.Duration(i) * time.Minute)
		r := Reading{Value: min(m.demand/float64(current), 100), HasData: true, Newest: now.Add(-20 * time.Second)}
		switch m.kind {
		case "missing":
			r = Reading{}
		case "error":
			r = Reading{Err: "query timed out"}
		case "stale":
			r.Newest = now.Add(-10 * time.Minute)
		case "partial":
			r.Partial = true
		}
		ev, next := Evaluate(spec, st, Inputs{Now: now, Current: current, Readings: map[string]Reading{"cpu": r}})
		raw, err := json.Marshal(next)
		if err != nil {
			t.Fatal(err)
		}
		st = State{}
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatal(err)
		}
		if (m.kind != "ok") && ev.To < current {
			t.Errorf("minute %d (%s): shrank %d → %d: %s", i, m.kind, current, ev.To, ev.Reason)
		}
		current = ev.To
		sizes = append(sizes, current)
		reasons = append(reasons, fmt.Sprintf("%2d %-7s %s", i, m.kind, ev.Reason))
	}
	return sizes, reasons
}

func TestTrace(t *testing.T) {
	tests := []struct {
		name          string
		stabilization time.Duration
		want          []int
	}{
		{
			// The dip at 14–15 is shorter than the window: no change. After the spike the group
			// waits until the spike's recommendations leave the window (minute 11). After the
			// stale stretch it waits a full window of fresh low data (minute 32).
			name:          "stabilization 300s",
			stabilization: 300 * time.Second,
			want: []int{
				4, 4, 4, 4, 4, // steady
				8, 8, // spike
				8, 8, 8, 8, 4, 4, 4, // back to 200: held until minute 11
				4, 4, // dip: ignored
				4, 4, // 200
				4, 4, 4, 4, // missing, error, partial
				4, 4, // 200
				4, 4, 4, 4, // stale
				4, 4, 4, 4, 1, 1, // fresh low load: after the window
			},
		},
		{
			// The same series without stabilization flaps: 4 → 1 → 4 on the dip. Missing and
			// stale data still never shrink it.
			name: "stabilization off",
			want: []int{
				4, 4, 4, 4, 4,
				8, 8,
				4, 4, 4, 4, 4, 4, 4,
				1, 1, // dip: shrinks at once
				2, 4, // and grows back, saturated at 100%, over two minutes
				4, 4, 4, 4,
				4, 4,
				4, 4, 4, 4,
				1, 1, 1, 1, 1, 1,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sizes, reasons := runTrace(t, tt.stabilization)
			if !reflect.DeepEqual(sizes, tt.want) {
				for _, r := range reasons {
					t.Log(r)
				}
				t.Fatalf("sizes\n got %v\nwant %v", sizes, tt.want)
			}
		})
	}
}
