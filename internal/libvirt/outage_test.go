package libvirt

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/outage"
)

// lockedBuffer is a log sink read while the Conn may still write to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// records returns the lines at or above level as (level, message) pairs.
func (l *lockedBuffer) records(t *testing.T, level slog.Level) [][2]string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][2]string
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(m.Level)); err != nil {
			t.Fatal(err)
		}
		if lv >= level {
			out = append(out, [2]string{m.Level, m.Msg})
		}
	}
	return out
}

// TestOutageIsLoggedOnceAcrossReconnects takes a daemon away (the relay stops: connections
// drop, dials are refused) for a series of failed calls and reconnection attempts, then a hung
// one (the relay freezes: calls time out), and brings it back each time: the Conn says
// "unreachable since" once and "back after" once per outage, and nothing else above debug.
func TestOutageIsLoggedOnceAcrossReconnects(t *testing.T) {
	dialTest(t, testURI) // keeps the test driver's state while the relayed connection comes and goes
	p := startProxy(t)
	ctx := testCtx(t)
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := Dial(ctx, p.uri(), Options{CallTimeout: 300 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatalf(notReachedFmt, p.uri(), err)
	}
	defer c.Close()

	p.stop()
	failed := 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		if _, err := c.HostInfo(ctx); err != nil {
			failed++
		}
	}
	if failed < 3 {
		t.Fatalf("only %d calls failed while the daemon was gone", failed)
	}
	p.listen()
	if _, err := c.HostInfo(ctx); err != nil {
		t.Fatalf("HostInfo once the daemon is back: %v", err)
	}

	p.setFrozen(true)
	for range 3 {
		if _, err := c.HostInfo(ctx); err == nil {
			t.Fatal("a frozen daemon answered")
		}
	}
	p.setFrozen(false)
	if _, err := c.HostInfo(ctx); err != nil {
		t.Fatalf("HostInfo once the daemon thawed: %v", err)
	}

	target := "libvirt at " + p.uri()
	got := logs.records(t, slog.LevelInfo)
	if len(got) != 4 ||
		got[0][0] != "WARN" || !strings.HasPrefix(got[0][1], target+" unreachable since ") ||
		got[1][0] != "INFO" || !strings.HasPrefix(got[1][1], target+" back after ") ||
		got[2][0] != "WARN" || !strings.HasPrefix(got[2][1], target+" unreachable since ") ||
		got[3][0] != "INFO" || !strings.HasPrefix(got[3][1], target+" back after ") {
		t.Errorf("after %d failed calls in two outages, the lines above debug are:\n%q\nwant one unreachable and one back line per outage", failed+3, got)
	}
}

// TestOutageWatchIsShared gives the Conn a watch its owner also reports to: the outage is
// logged once whoever noticed it first.
func TestOutageWatchIsShared(t *testing.T) {
	dialTest(t, testURI)
	p := startProxy(t)
	ctx := testCtx(t)
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	w := outage.NewWatch(log, "host kvm1")
	c, err := Dial(ctx, p.uri(), Options{CallTimeout: 300 * time.Millisecond, Logger: log, Outage: w})
	if err != nil {
		t.Fatalf(notReachedFmt, p.uri(), err)
	}
	defer c.Close()

	p.setFrozen(true)
	w.Fail(context.DeadlineExceeded) // the owner's probe notices first
	if _, err := c.HostInfo(ctx); err == nil {
		t.Fatal("a frozen daemon answered")
	}
	if _, down := w.Down(); !down {
		t.Error("the shared watch does not know of the outage")
	}
	p.setFrozen(false)
	if _, err := c.HostInfo(ctx); err != nil {
		t.Fatal(err)
	}
	got := logs.records(t, slog.LevelInfo)
	if len(got) != 2 || !strings.HasPrefix(got[0][1], "host kvm1 unreachable since ") || !strings.HasPrefix(got[1][1], "host kvm1 back after ") {
		t.Errorf("lines: %q; want the shared watch's two", got)
	}
}
