package worker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/premiscale/premiscale/internal/outage"
)

// Bounds on talking to a dependency. A connection attempt is bounded by the client's own
// timeouts too; attemptTimeout only stops one that has none from hanging start-up.
const (
	attemptTimeout = 45 * time.Second
	// checkTimeout bounds one readiness check; checkTTL is how long its result is reused, so
	// probes, however frequent, do not hammer the services.
	checkTimeout = 3 * time.Second
	checkTTL     = 5 * time.Second
	// monitorInterval is how often a running worker checks each dependency by itself, so an
	// outage is noticed (and logged, once) even when nothing else talks to the dependency.
	monitorInterval = 5 * time.Second
)

// A dependency is a service the worker cannot work without: Temporal, MySQL, InfluxDB, or a
// served host's libvirt.
type dependency struct {
	// name keys the dependency in /readyz: temporal, mysql, influxdb, libvirt/<host>.
	name string
	// target says what it is and where, for people: "MySQL at 127.0.0.1:3306".
	target string
	// key is the config key that names it.
	key string
	// failure starts every error about it, naming target and key; "" when the connect's own
	// errors say that already.
	failure string
	// connect makes the connection (and keeps it in the worker); check probes it once made;
	// close releases it.
	connect func(ctx context.Context) error
	check   func(ctx context.Context) error
	close   func()
	// watch logs the dependency's outages once connected: once when one begins, once when it
	// ends. Its checks report to it, and so may the clients that use it (a libvirt Conn).
	watch *outage.Watch

	// checkMu serialises checks and close, so a probe never uses a closed connection and
	// concurrent probes share one check.
	checkMu sync.Mutex

	mu        sync.Mutex
	connected bool
	err       error
	checkedAt time.Time
}

// depStatus is a dependency's state as /readyz reports it.
type depStatus struct {
	OK        bool       `json:"ok"`
	Target    string     `json:"target"`
	ConfigKey string     `json:"configKey,omitempty"`
	Error     string     `json:"error,omitempty"`
	CheckedAt *time.Time `json:"checkedAt,omitempty"`
}

func (d *dependency) record(err error, connected bool) {
	d.mu.Lock()
	d.err, d.checkedAt, d.connected = err, time.Now(), connected
	d.mu.Unlock()
	if !connected || d.watch == nil {
		// Before the first connection, start-up logs each attempt.
		return
	}
	if err != nil {
		d.watch.Fail(err)
	} else {
		d.watch.OK()
	}
}

func (d *dependency) status() depStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := depStatus{OK: d.connected && d.err == nil, Target: d.target, ConfigKey: d.key}
	switch {
	case d.err != nil:
		s.Error = d.err.Error()
	case !d.connected && d.checkedAt.IsZero():
		s.Error = "connecting (first attempt under way)"
	case !d.connected:
		s.Error = "not connected"
	}
	if !d.checkedAt.IsZero() {
		at := d.checkedAt.UTC()
		s.CheckedAt = &at
	}
	return s
}

// probe re-checks a connected dependency unless its last result is younger than maxAge, and
// returns the error of the check it made. Before the connection is made, the connection
// attempts are the checks.
func (d *dependency) probe(ctx context.Context, maxAge time.Duration) error {
	d.checkMu.Lock()
	defer d.checkMu.Unlock()
	d.mu.Lock()
	due := d.connected && time.Since(d.checkedAt) >= maxAge
	d.mu.Unlock()
	if !due {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	err := d.check(cctx)
	if ctx.Err() != nil {
		// The worker is stopping: that says nothing about the dependency.
		return nil
	}
	d.record(err, true)
	return err
}

func (d *dependency) shutdown() {
	d.checkMu.Lock()
	defer d.checkMu.Unlock()
	d.close()
	d.record(fmt.Errorf("closed: the worker is stopping"), false)
}

// backoff is capped exponential back-off with jitter: attempt n waits between half and all of
// min(initial·2^(n-1), max), so workers restarted together do not retry in step.
type backoff struct {
	initial, max time.Duration
	// rand returns a number in [0, 1); nil means math/rand/v2.
	rand func() float64
}

func (b backoff) delay(attempt int) time.Duration {
	d := b.initial
	for i := 1; i < attempt && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	r := rand.Float64
	if b.rand != nil {
		r = b.rand
	}
	return d/2 + time.Duration(r()*float64(d-d/2))
}

// connect makes d's connection. With waiting off, the first failure is returned, naming the
// dependency and its config key. With waiting on, every failed attempt is logged once and
// retried after a back-off, until it works, ctx ends, or the wait timeout passes.
func (w *Worker) connect(ctx context.Context, d *dependency) error {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := d.connect(actx)
		cancel()
		if err == nil {
			d.record(nil, true)
			if attempt > 1 {
				w.log.Info("dependency available", "dependency", d.name, "target", d.target, "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.failure != "" {
			err = fmt.Errorf("%s: %w", d.failure, err)
		}
		d.record(err, false)
		w.telemetry.DependencyError(d.name)
		if !w.opts.WaitForDependencies {
			return err
		}
		delay := w.backoff.delay(attempt)
		if t := w.opts.WaitTimeout; t > 0 {
			left := t - time.Since(w.started)
			if left <= 0 {
				return fmt.Errorf("gave up waiting after %s (--wait-timeout): %w", t, err)
			}
			// The last attempt is made when the time is up.
			delay = min(delay, left)
		}
		w.log.Warn("waiting for dependency", "dependency", d.name, "target", d.target, "config_key", d.key,
			"error", err, "attempt", attempt, "retry_in", delay.Round(time.Millisecond).String())
		w.notify(fmt.Sprintf("STATUS=waiting for %s (%s): %v", d.target, d.key, err))
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// dependencyComponent keeps d connected for the life of the worker.
func (w *Worker) dependencyComponent(d *dependency) component {
	return component{name: d.name, run: func(ctx context.Context, up func()) error {
		if err := w.connect(ctx, d); err != nil {
			return err
		}
		up()
		<-ctx.Done()
		d.shutdown()
		return nil
	}}
}

// monitorComponent checks every dependency every monitorInterval for the life of the worker,
// so that each outage is logged when it begins and when it ends, once, whoever else talks to
// the dependency (their own lines about it are debug: see outage.Quiet). /readyz reuses these
// checks.
func (w *Worker) monitorComponent() component {
	return component{name: "dependency monitor", run: func(ctx context.Context, up func()) error {
		up()
		tick := time.NewTicker(monitorInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
			var wg sync.WaitGroup
			for _, d := range w.deps {
				// Half the interval: a check /readyz made a moment ago is fresh enough.
				wg.Go(func() {
					if err := d.probe(ctx, monitorInterval/2); err != nil {
						w.telemetry.DependencyError(d.name)
					}
				})
			}
			wg.Wait()
		}
	}}
}
