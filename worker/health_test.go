package worker

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/config"
)

func getJSON(t *testing.T, h http.Handler, path string) (int, readiness) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	var rd readiness
	if path != "/livez" {
		if err := json.Unmarshal(rec.Body.Bytes(), &rd); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, rec.Body)
		}
	}
	return rec.Code, rd
}

// connectedDep is a dependency that is connected, with check as its probe.
func connectedDep(name string, check func(context.Context) error) *dependency {
	d := &dependency{name: name, target: name + " somewhere", key: "controller." + name, check: check}
	d.record(nil, true)
	return d
}

func TestReadinessReportsEachDependencyAndCachesChecks(t *testing.T) {
	var temporalChecks atomic.Int32
	temporal := connectedDep("temporal", func(context.Context) error { temporalChecks.Add(1); return nil })
	mysql := connectedDep("mysql", func(context.Context) error { return errors.New("connection refused") })
	waiting := &dependency{name: "influxdb", target: "InfluxDB", key: "controller.databases.timeseries.connection.url"}
	w := &Worker{cfg: &config.Config{}, phase: phaseRunning, deps: []*dependency{temporal, mysql, waiting}}
	// Make the first checks due.
	for _, d := range []*dependency{temporal, mysql} {
		d.checkedAt = time.Now().Add(-time.Minute)
	}
	h := w.healthHandler()

	if code, _ := getJSON(t, h, "/livez"); code != http.StatusOK {
		t.Errorf("/livez: %d", code)
	}
	for _, path := range []string{"/readyz", "/healthz", "/readyz"} {
		code, rd := getJSON(t, h, path)
		if code != http.StatusServiceUnavailable || rd.Ready {
			t.Errorf("%s: %d ready=%v, want 503", path, code, rd.Ready)
		}
		if c := rd.Checks["temporal"]; !c.OK || c.CheckedAt == nil || c.ConfigKey != "controller.temporal" {
			t.Errorf("%s: temporal %+v, want ok with its check time and key", path, c)
		}
		if c := rd.Checks["mysql"]; c.OK || !strings.Contains(c.Error, "connection refused") {
			t.Errorf("%s: mysql %+v, want its error", path, c)
		}
		if c := rd.Checks["influxdb"]; c.OK || c.Error == "" || c.CheckedAt != nil {
			t.Errorf("%s: influxdb %+v, want not ok, never checked", path, c)
		}
		if c := rd.Checks["workers"]; !c.OK {
			t.Errorf("%s: workers %+v, want ok while running", path, c)
		}
	}
	if n := temporalChecks.Load(); n != 1 {
		t.Errorf("three probes within %s checked Temporal %d times, want once", checkTTL, n)
	}

	waiting.record(nil, true)
	mysql.record(nil, true)
	if code, rd := getJSON(t, h, "/readyz"); code != http.StatusOK || !rd.Ready {
		t.Errorf("/readyz with everything ok: %d %+v", code, rd)
	}
	w.setPhase(phaseStopping)
	if code, rd := getJSON(t, h, "/readyz"); code != http.StatusServiceUnavailable || rd.Checks["workers"].Error != phaseStopping {
		t.Errorf("/readyz while stopping: %d %+v", code, rd)
	}
}

func TestReadinessCheckIsBounded(t *testing.T) {
	hung := connectedDep("mysql", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	hung.checkedAt = time.Time{}
	w := &Worker{cfg: &config.Config{}, phase: phaseRunning, deps: []*dependency{hung}}
	began := time.Now()
	code, rd := getJSON(t, w.healthHandler(), "/readyz")
	if took := time.Since(began); took > checkTimeout+2*time.Second {
		t.Errorf("/readyz took %s with a hung dependency, want about %s", took, checkTimeout)
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(rd.Checks["mysql"].Error, "deadline exceeded") {
		t.Errorf("/readyz with a hung dependency: %d %+v", code, rd)
	}
}
