package platform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/platform"
	"github.com/premiscale/premiscale/internal/platform/platformtest"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"
)

// fixture is an installation on the real MariaDB and Temporal (a task queue of its own, no
// worker), and a fake platform.
type fixture struct {
	t      testing.TB
	cfg    *config.Config
	store  *state.Store
	tc     client.Client
	groups *groupctl.Client
	plat   *platformtest.Server
	logs   *logBuffer
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ac := testservices.WriteAgentConfig(t, "", testservices.UniqueName(t, "h"), "")
	f := &fixture{t: t, cfg: ac.Config, plat: platformtest.New(t), logs: &logBuffer{}}
	f.store = f.openStore()
	var err error
	f.tc, err = client.Dial(client.Options{HostPort: ac.Config.Controller.Temporal.Address, Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.tc.Close)
	f.groups = &groupctl.Client{Temporal: f.tc, TaskQueue: ac.Config.Controller.Temporal.TaskQueue, Store: f.store}
	return f
}

// openStore opens another connection pool on the installation's database, as another agent
// (or a restarted one) does.
func (f *fixture) openStore() *state.Store {
	f.t.Helper()
	s, err := state.Open(context.Background(), f.cfg.Controller.Databases.State)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { s.Close() })
	return s
}

// fastOptions keep the tests quick.
func fastOptions() platform.Options {
	return platform.Options{
		PingInterval: 200 * time.Millisecond, PongWait: 3 * time.Second, WriteWait: 3 * time.Second,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 400 * time.Millisecond, StableAfter: time.Second,
		ElectionInterval: 200 * time.Millisecond, PollInterval: 50 * time.Millisecond,
		StatusInterval: 300 * time.Millisecond, CapacityInterval: 200 * time.Millisecond, TrimInterval: 200 * time.Millisecond,
	}
}

// linkConfig is a link of this installation to the fake platform, through its private CA.
func (f *fixture) linkConfig(store *state.Store) platform.Config {
	return platform.Config{
		Platform: config.Platform{Host: f.plat.URL, Token: "registration-token", CACert: f.plat.CAFile},
		Agent:    f.cfg, Store: store, Groups: &groupctl.Client{Temporal: f.tc, TaskQueue: f.groups.TaskQueue, Store: store},
		Version: "test-version", Logger: slog.New(slog.NewJSONHandler(io.MultiWriter(f.logs, debugOut()), &slog.HandlerOptions{Level: slog.LevelDebug})),
		Options: fastOptions(),
	}
}

func debugOut() io.Writer {
	if os.Getenv("PREMISCALE_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

// running is a Link running in the background.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func (f *fixture) start(cfg platform.Config) *running {
	f.t.Helper()
	l, err := platform.New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- l.Run(ctx) }()
	f.t.Cleanup(func() { r.stop(f.t) })
	return r
}

// stop cancels the link and waits for it; it returns what Run returned.
func (r *running) stop(t testing.TB) error {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("the link did not stop within 20s")
		return nil
	}
}

// wait returns what Run returned, failing after timeout.
func (r *running) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-r.done:
		close(r.done)
		return err
	case <-time.After(timeout):
		t.Fatalf("the link still runs after %s", timeout)
		return nil
	}
}

// enqueue adds n plain events to the outbox, with ids prefix-0 ... prefix-(n-1), from a few
// writers at once as the agents' activities write.
func enqueue(t testing.TB, s *state.Store, prefix string, n int, payload json.RawMessage) []string {
	t.Helper()
	return enqueueWith(t, s, 8, prefix, n, payload)
}

// enqueueWith is enqueue with that many writers; one keeps the ids in outbox order.
func enqueueWith(t testing.TB, s *state.Store, writers int, prefix string, n int, payload json.RawMessage) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		ids[i] = prefix + "-" + itoa(i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += writers {
				if _, err := s.Enqueue(context.Background(), state.OutboxEvent{ID: ids[i], Type: "test.event", Payload: payload}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return ids
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// pendingCount is the outbox's size.
func pendingCount(t testing.TB, s *state.Store) int64 {
	t.Helper()
	n, _, err := s.OutboxCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// eventually polls cond until it holds.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logBuffer collects JSON log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// count returns how many log lines have a message starting with msg.
func (l *logBuffer) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(l.b.String(), "\n") {
		var rec struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && strings.HasPrefix(rec.Msg, msg) {
			n++
		}
	}
	return n
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
