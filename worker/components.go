package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// A component is one long-running part of the worker: a dependency's connection, an HTTP
// server, a collector, a Temporal worker.
type component struct {
	name string
	// run prepares the component, calls up once it works (a port bound, a connection made),
	// then works until ctx ends, cleans up and returns. An error, or a return before ctx
	// ended, stops the whole worker.
	run func(ctx context.Context, up func()) error
}

// errStopping is returned by start once the worker has begun to stop.
var errStopping = errors.New("the worker is stopping")

// components runs every component in one errgroup with one way to stop: the group's context
// ends (the caller's context was cancelled, or a component failed), and then the components
// are stopped one at a time, the last started first, so nothing outlives what it uses.
type components struct {
	log *slog.Logger
	g   *errgroup.Group
	ctx context.Context
	// onStop is called once, when stopping begins.
	onStop func()

	mu       sync.Mutex
	stopping bool
	running  []*handle
}

type handle struct {
	name   string
	cancel context.CancelFunc
	upOnce sync.Once
	up     chan struct{} // closed by the component's up
	done   chan struct{} // closed when run returned; err is set before
	err    error
}

func newComponents(ctx context.Context, log *slog.Logger, onStop func()) *components {
	g, gctx := errgroup.WithContext(ctx)
	c := &components{log: log, g: g, ctx: gctx, onStop: onStop}
	g.Go(c.stopAll)
	return c
}

// goStartup runs the start-up sequence in the group. It ends when start-up is done; an error
// stops the worker. Once the worker is stopping, start-up simply ends.
func (c *components) goStartup(startup func(ctx context.Context) error) {
	c.g.Go(func() error {
		err := startup(c.ctx)
		if err != nil && c.ctx.Err() != nil {
			return nil
		}
		return err
	})
}

// start runs comps side by side and returns once each of them is up, or with the first
// error; a component that failed also fails the group, with the same error.
func (c *components) start(comps ...component) error {
	handles := make([]*handle, 0, len(comps))
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		return errStopping
	}
	for _, comp := range comps {
		// Each component's context ends only when stopAll gets to it, not when the group's
		// does: that is what orders the shutdown.
		ctx, cancel := context.WithCancel(context.WithoutCancel(c.ctx))
		h := &handle{name: comp.name, cancel: cancel, up: make(chan struct{}), done: make(chan struct{})}
		c.running = append(c.running, h)
		handles = append(handles, h)
		c.g.Go(func() error { return c.run(ctx, comp, h) })
	}
	c.mu.Unlock()
	for _, h := range handles {
		select {
		case <-h.up:
		case <-h.done:
			if h.err != nil {
				return h.err
			}
			return errStopping
		case <-c.ctx.Done():
			return errStopping
		}
	}
	return nil
}

func (c *components) run(ctx context.Context, comp component, h *handle) error {
	defer close(h.done)
	err := comp.run(ctx, func() { h.upOnce.Do(func() { close(h.up) }) })
	switch {
	case ctx.Err() != nil:
		// Asked to stop: whatever went wrong while stopping is worth a line, not a failure.
		if err != nil && !errors.Is(err, context.Canceled) {
			c.log.Warn("component did not stop cleanly", "component", comp.name, "error", err)
		}
		err = nil
	case err == nil:
		err = fmt.Errorf("%s stopped by itself", comp.name)
	}
	h.err = err
	return err
}

// stopAll waits for the group's context to end, then stops the components in reverse order
// of their start, each one fully before the next.
func (c *components) stopAll() error {
	<-c.ctx.Done()
	c.mu.Lock()
	c.stopping = true
	running := slices.Clone(c.running)
	c.mu.Unlock()
	if c.onStop != nil {
		c.onStop()
	}
	for _, h := range slices.Backward(running) {
		h.cancel()
		<-h.done
		c.log.Debug("component stopped", "component", h.name)
	}
	return nil
}

// wait returns once every component has stopped, with the error that stopped the worker (nil
// when its context was cancelled).
func (c *components) wait() error { return c.g.Wait() }

// serveHTTP serves srv on ln until ctx ends, then shuts it down gracefully (bounded).
func serveHTTP(ctx context.Context, srv *http.Server, ln net.Listener) error {
	shutdown := make(chan error, 1)
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdown <- srv.Shutdown(sctx)
	})
	err := srv.Serve(ln)
	if stop() {
		// Serve failed by itself; ctx has not ended.
		return err
	}
	return <-shutdown
}
