package worker

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/influxdb"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"
)

// The scaling policy as the README describes it, through the real path: the config loader, a
// running worker, InfluxDB and the decision log in MySQL.

// writePoint writes one point of measurement "requests" for the fixture's group, at at.
func (f *fixture) writePoint(value float64, at time.Time) {
	f.t.Helper()
	ts := f.cfg.Controller.Databases.Timeseries.Connection
	line := fmt.Sprintf("requests,group=%s value=%g %d", f.group, value, at.UnixNano())
	resp, err := http.Post(ts.URL+"/write?db="+ts.Database, "text/plain", strings.NewReader(line))
	if err != nil {
		f.t.Fatalf("write point: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		f.t.Fatalf("write point: HTTP %d", resp.StatusCode)
	}
}

// requestsCheck is a query check on the fixture's "requests" points; last() keeps the point's
// own time, so staleness is judged by it.
func requestsCheck(db string, extra string) string {
	query := fmt.Sprintf(`from(bucket: \"%s/autogen\") |> range(start: -{{.Window}}) |> filter(fn: (r) => r._measurement == \"requests\" and r.group == \"{{.Group}}\") |> last()`, db)
	return fmt.Sprintf(`{name: requests, metric: query, query: "%s", window: 5m, threshold: {upper: 800, lower: 100, step: 1}, %s}`, query, extra)
}

func (f *fixture) events() []state.ScalingEvent {
	f.t.Helper()
	events, err := f.store.ListScalingEvents(context.Background(), f.group, time.Time{})
	if err != nil {
		f.t.Fatal(err)
	}
	return events
}

// A group at size 0 reads its checks too: with fresh data above the threshold it grows by the
// step, and the fallback (which would make it 2) does not apply.
func TestGroupAtZeroReadsItsChecks(t *testing.T) {
	db := testservices.Influx(t).Connection.Database
	ac := testservices.WriteAgentConfig(t, testservices.UniqueName(t, "g"), testservices.UniqueName(t, "h"),
		"{minNodes: 0, maxNodes: 3, cooldown: 10m, checks: ["+requestsCheck(db, "staleness: 1m, onError: fallback, fallback: 2")+"]}")
	// The check reads the test's own database: point the group's config at it.
	ac.Config.Controller.Databases.Timeseries.Connection.Database = db
	f := newFixtureFrom(t, ac)
	f.writePoint(900, time.Now())

	a := f.startWorker()
	defer a.stop(t)
	ctl := a.Groups()
	f.waitFor(ctl, "one instance for the fresh reading above upper", time.Minute, running(1))
	time.Sleep(3 * f.cfg.Controller.Reconciliation.Interval.Duration)
	if s := f.waitFor(ctl, "still one", 10*time.Second, func(s groupctl.Status) bool { return true }); len(s.Instances) != 1 {
		t.Errorf("the group has %d instances, want 1 (the fallback 2 must not apply while the query has data)", len(s.Instances))
	}
	events := f.events()
	if len(events) == 0 || events[0].From != 0 || events[0].To != 1 || !strings.Contains(events[0].Reason, "requests 900 > upper 800") {
		t.Errorf("first decision %+v; want 0 → 1 on the query's 900", events)
	}
	f.deleteGroup(ctl)
}

// A query check's staleness is judged by the time of its data, and a hold on stale data is in
// the decision log once per change of reason, with the repeats counted on its row.
func TestStaleQueryDataHoldsAndIsLoggedOnce(t *testing.T) {
	db := testservices.Influx(t).Connection.Database
	ac := testservices.WriteAgentConfig(t, testservices.UniqueName(t, "g"), testservices.UniqueName(t, "h"),
		"{minNodes: 1, maxNodes: 3, checks: ["+requestsCheck(db, "staleness: 6s, onError: hold")+"]}")
	ac.Config.Controller.Databases.Timeseries.Connection.Database = db
	f := newFixtureFrom(t, ac)
	f.writePoint(500, time.Now())

	a := f.startWorker()
	defer a.stop(t)
	ctl := a.Groups()
	f.waitFor(ctl, "the minimum of 1", time.Minute, running(1))
	stale := func() []state.ScalingEvent {
		var out []state.ScalingEvent
		for _, e := range f.events() {
			if strings.Contains(e.Reason, "requests stale (newest point") {
				out = append(out, e)
			}
		}
		return out
	}
	// The point written before the start goes stale 6 s after it was written; a query stamped
	// with the time it ran would never be.
	deadline := time.Now().Add(time.Minute)
	for len(stale()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Second)
	}
	// Ten more evaluations on the same stale point: still one row.
	time.Sleep(10 * f.cfg.Controller.Reconciliation.Interval.Duration)
	if rows := stale(); len(rows) != 1 {
		t.Fatalf("stale holds logged %d times, want once: %+v", len(rows), f.events())
	}

	// Fresh data in the band: a plain hold, not logged; the stale row gets its repeat count.
	load := time.NewTicker(time.Second)
	stop := make(chan struct{})
	go func() {
		defer load.Stop()
		for {
			select {
			case <-stop:
				return
			case <-load.C:
				f.writePoint(500, time.Now())
			}
		}
	}()
	time.Sleep(4 * f.cfg.Controller.Reconciliation.Interval.Duration)
	close(stop)
	rows := stale()
	if len(rows) != 1 || rows[0].Repeats < 5 || rows[0].LastRepeatAt == nil {
		t.Errorf("stale row after fresh data = %+v; want one row with the repeats counted", rows)
	}
	// Stale again: a new row, since the reason changed in between.
	deadline = time.Now().Add(time.Minute)
	for len(stale()) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Second)
	}
	if rows := stale(); len(rows) != 2 {
		t.Errorf("after the data went stale again: %d stale rows, want 2", len(rows))
	}
	if s := f.waitFor(ctl, "status", 10*time.Second, func(groupctl.Status) bool { return true }); len(s.Instances) != 1 {
		t.Errorf("stale data changed the size to %d", len(s.Instances))
	}
	f.deleteGroup(ctl)
}

// The built-in cpu check averages over at least two collection intervals: with samples every
// collection interval and evaluations as often, a window of one interval would see no sample at
// some evaluations and hold on "no data"; two always see one.
func TestBuiltinMeanCoversTwoCollectionIntervals(t *testing.T) {
	group, host := testservices.UniqueName(t, "g"), testservices.UniqueName(t, "h")
	const every = 3 * time.Second
	ac := testservices.WriteAgentConfigFor(t, testservices.AgentOptions{
		Group: group, Host: host, URI: "test:///default",
		GroupBody:          testservices.TestDriverGroup(group, host, "{minNodes: 1, maxNodes: 1, resourceTarget: {cpu: 50}}"),
		CollectionInterval: every, ReconcileInterval: every,
	})
	gs, err := ac.Config.Controller.GroupSpec(group, ac.Config.Controller.Autoscale.Groups[group])
	if err != nil {
		t.Fatal(err)
	}
	if w := gs.Policy.Checks[0].Window; w != 2*every {
		t.Fatalf("cpu check window = %s, want two collection intervals (%s)", w, 2*every)
	}
	f := newFixtureFrom(t, ac)
	a := f.startWorker()
	defer a.stop(t)
	ctl := a.Groups()
	f.waitFor(ctl, "the one instance", time.Minute, running(1))

	// Samples as the collector writes them: one per instance per collection interval, stamped
	// with the time it was taken and written a moment later (the libvirt call and the write take
	// time). An evaluation just after a collection tick then still sees only the previous sample.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for taken := time.Now(); ; {
			time.Sleep(800 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = f.influx.WriteDomainSamples(ctx, []influxdb.DomainSample{{Group: group, Instance: group + "-1", Host: host, At: taken, CPUPercent: 50}})
			cancel()
			select {
			case <-stop:
				return
			case taken = <-tick.C:
			}
		}
	}()
	time.Sleep(every) // the first sample is in
	since := time.Now()
	time.Sleep(12 * every)
	close(stop)
	<-done
	events, err := f.store.ListScalingEvents(context.Background(), group, since)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if strings.Contains(e.Reason, "no data") {
			t.Errorf("an evaluation found no cpu sample in its window: %+v", e)
		}
	}
	f.deleteGroup(ctl)
}
