package worker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// recorder notes the order in which components start and stop.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// until is a component that runs until asked to stop, or fails with fail once failNow closes.
func (r *recorder) until(name string, failNow <-chan struct{}, fail error) component {
	return component{name: name, run: func(ctx context.Context, up func()) error {
		r.add("start " + name)
		up()
		select {
		case <-ctx.Done():
			r.add("stop " + name)
			return nil
		case <-failNow:
			r.add("fail " + name)
			return fail
		}
	}}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestComponentsStopInReverseOrderWhenCancelled(t *testing.T) {
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	c := newComponents(ctx, discardLogger(), func() { rec.add("stopping") })
	started := make(chan struct{})
	c.goStartup(func(ctx context.Context) error {
		if err := c.start(rec.until("health", nil, nil)); err != nil {
			return err
		}
		if err := c.start(rec.until("mysql", nil, nil), rec.until("temporal", nil, nil)); err != nil {
			return err
		}
		if err := c.start(rec.until("workers", nil, nil)); err != nil {
			return err
		}
		close(started)
		return nil
	})
	<-started
	cancel()
	if err := c.wait(); err != nil {
		t.Fatalf("wait after cancel: %v", err)
	}
	got := rec.list()
	want := []string{"stopping", "stop workers", "stop temporal", "stop mysql", "stop health"}
	if !slices.Equal(got[len(got)-len(want):], want) {
		t.Errorf("events %v, want them to end with %v", got, want)
	}
}

func TestAFailingComponentStopsTheOthersAndIsTheError(t *testing.T) {
	rec := &recorder{}
	failNow := make(chan struct{})
	boom := errors.New("collector broke")
	c := newComponents(context.Background(), discardLogger(), nil)
	c.goStartup(func(ctx context.Context) error {
		return c.start(rec.until("health", nil, nil), rec.until("collector", failNow, boom), rec.until("workers", nil, nil))
	})
	time.Sleep(50 * time.Millisecond)
	close(failNow)
	if err := c.wait(); !errors.Is(err, boom) {
		t.Fatalf("wait: %v, want %v", err, boom)
	}
	got := rec.list()
	want := []string{"fail collector", "stop workers", "stop health"}
	if !slices.Equal(got[len(got)-len(want):], want) {
		t.Errorf("events %v, want them to end with %v", got, want)
	}
}

func TestAFailedStartEndsStartUpWithItsError(t *testing.T) {
	rec := &recorder{}
	boom := errors.New("listen: address in use")
	c := newComponents(context.Background(), discardLogger(), nil)
	var later bool
	c.goStartup(func(ctx context.Context) error {
		if err := c.start(rec.until("health", nil, nil)); err != nil {
			return err
		}
		if err := c.start(component{name: "check-in", run: func(context.Context, func()) error { return boom }}); err != nil {
			return err
		}
		later = true
		return nil
	})
	if err := c.wait(); !errors.Is(err, boom) {
		t.Fatalf("wait: %v, want %v", err, boom)
	}
	if later {
		t.Error("start-up went on after a component failed to start")
	}
	if got := rec.list(); !slices.Equal(got, []string{"start health", "stop health"}) {
		t.Errorf("events %v", got)
	}
}

func TestAComponentThatReturnsByItselfStopsTheWorker(t *testing.T) {
	c := newComponents(context.Background(), discardLogger(), nil)
	c.goStartup(func(ctx context.Context) error {
		return c.start(component{name: "collector h1", run: func(_ context.Context, up func()) error { up(); return nil }})
	})
	err := c.wait()
	if err == nil || err.Error() != "collector h1 stopped by itself" {
		t.Fatalf("wait: %v, want the component named as stopped by itself", err)
	}
}

func TestCancelDuringStartUpIsACleanStop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c := newComponents(ctx, discardLogger(), nil)
	waiting := make(chan struct{})
	c.goStartup(func(ctx context.Context) error {
		// A dependency that never comes, like one waited for.
		return c.start(component{name: "mysql", run: func(ctx context.Context, _ func()) error {
			close(waiting)
			<-ctx.Done()
			return ctx.Err()
		}})
	})
	<-waiting
	cancel()
	if err := c.wait(); err != nil {
		t.Fatalf("wait: %v, want nil for a cancel during start-up", err)
	}
}
