package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// readiness is the body of /readyz (and /healthz).
type readiness struct {
	// Ready is true when every check is ok; the status code is then 200, else 503.
	Ready bool `json:"ready"`
	// Status is the worker's phase: waiting for dependencies, starting, running, stopping.
	Status string `json:"status"`
	// Checks are keyed by name: temporal, mysql, influxdb, libvirt/<host>, and workers (the
	// worker's own start-up).
	Checks map[string]depStatus `json:"checks"`
}

// healthHandler serves /livez (the process answers), /readyz (every dependency answers and
// the workers run), /healthz (kept for compatibility: the same as /readyz) and /metrics (the
// Prometheus metrics, read from memory: a scrape never waits on a dependency).
func (w *Worker) healthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(rw http.ResponseWriter, r *http.Request) {
		writeJSON(rw, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", w.serveReady)
	mux.HandleFunc("GET /healthz", w.serveReady)
	mux.Handle("GET /metrics", w.telemetry.Handler())
	return mux
}

func (w *Worker) serveReady(rw http.ResponseWriter, r *http.Request) {
	rd := w.readiness(r)
	code := http.StatusOK
	if !rd.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(rw, code, rd)
}

func (w *Worker) readiness(r *http.Request) readiness {
	// The checks run side by side, each bounded by checkTimeout and reused for checkTTL. A
	// prober that hangs up early must not leave a cancelled check behind as the cached result.
	ctx := context.WithoutCancel(r.Context())
	var wg sync.WaitGroup
	for _, d := range w.deps {
		wg.Go(func() {
			if err := d.probe(ctx, checkTTL); err != nil {
				w.telemetry.DependencyError(d.name)
			}
		})
	}
	wg.Wait()

	w.mu.Lock()
	phase := w.phase
	w.mu.Unlock()
	rd := readiness{Ready: true, Status: phase, Checks: map[string]depStatus{}}
	for _, d := range w.deps {
		s := d.status()
		rd.Checks[d.name] = s
		rd.Ready = rd.Ready && s.OK
	}
	workers := depStatus{
		OK:     phase == phaseRunning,
		Target: fmt.Sprintf("Temporal workers on task queue %s and %d host queues", w.cfg.Controller.Temporal.TaskQueue, len(w.hosts)),
	}
	if !workers.OK {
		workers.Error = phase
	}
	now := time.Now().UTC()
	workers.CheckedAt = &now
	rd.Checks["workers"] = workers
	rd.Ready = rd.Ready && workers.OK
	return rd
}

func writeJSON(rw http.ResponseWriter, code int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(code)
	enc := json.NewEncoder(rw)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
