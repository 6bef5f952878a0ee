package outage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/influxdb"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/outage"
	"github.com/premiscale/premiscale/internal/state"
)

// logLines decodes a JSON log into one map per line.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestWatchLogsAnOutageOnceAndItsEndOnce(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 11, 29, 12, 0, 1, 0, time.UTC)
	w := outage.NewWatch(slog.New(slog.NewJSONHandler(&buf, nil)), "MySQL at db:3306", "config_key", "controller.databases.state.connection.url")
	w.Now = func() time.Time { return now }

	w.OK() // reachable from the start: nothing to say
	refused := errors.New("dial tcp db:3306: connect: connection refused")
	for range 50 {
		w.Fail(refused)
		now = now.Add(time.Second)
	}
	if since, down := w.Down(); !down || !since.Equal(time.Date(2026, 11, 29, 12, 0, 1, 0, time.UTC)) {
		t.Errorf("Down() = %v, %v during the outage", since, down)
	}
	for range 3 {
		w.OK()
	}
	if _, down := w.Down(); down {
		t.Error("still down after OK")
	}
	w.Fail(refused) // a second outage is a new one
	w.OK()

	lines := logLines(t, &buf)
	want := []struct{ level, msg string }{
		{"WARN", "MySQL at db:3306 unreachable since 2026-11-29T12:00:01Z"},
		{"INFO", "MySQL at db:3306 back after 50s"},
		{"WARN", "MySQL at db:3306 unreachable since 2026-11-29T12:00:51Z"},
		{"INFO", "MySQL at db:3306 back after 0s"},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if lines[i]["level"] != w.level || lines[i]["msg"] != w.msg {
			t.Errorf("line %d: %v %q, want %s %q", i, lines[i]["level"], lines[i]["msg"], w.level, w.msg)
		}
		if lines[i]["config_key"] != "controller.databases.state.connection.url" {
			t.Errorf("line %d has no config key: %v", i, lines[i])
		}
	}
	if lines[0]["error"] != refused.Error() {
		t.Errorf("the outage line's error is %v, want %q", lines[0]["error"], refused)
	}
	if lines[1]["failures"] != float64(50) {
		t.Errorf("the end line counts %v failures, want 50", lines[1]["failures"])
	}
}

func TestWatchIsSafeForConcurrentReports(t *testing.T) {
	var buf bytes.Buffer
	w := outage.NewWatch(slog.New(slog.NewJSONHandler(&buf, nil)) /* slog handlers serialise writes */, "InfluxDB")
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 100 {
				w.Fail(io.EOF)
			}
		}()
	}
	for range 8 {
		<-done
	}
	w.OK()
	if n := len(logLines(t, &buf)); n != 2 {
		t.Errorf("%d lines for one outage reported 800 times from 8 goroutines, want 2:\n%s", n, buf.String())
	}
}

// unreachableErr is how a package marks its own errors as unreachability.
type unreachableErr struct{}

func (unreachableErr) Error() string     { return "host gone" }
func (unreachableErr) Unreachable() bool { return true }

func TestIsUnreachable(t *testing.T) {
	closed := closedPort(t)
	ctx := context.Background()

	// Real errors of the real clients, from a port nothing listens on.
	_, dialErr := net.Dial("tcp", closed)
	influx, err := influxdb.New(influxdb.Options{URL: "http://" + closed, Database: "x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer influx.Close()
	influxErr := influx.WriteHostSamples(ctx, []influxdb.HostSample{{Host: "h", At: time.Now(), CPUs: 1}})
	_, mysqlErr := state.Open(ctx, config.StateDB{Type: "mysql", Connection: config.Connection{URL: closed, Database: "x",
		Credentials: config.Credentials{Username: "u", Password: "p"}}})
	tc, err := client.DialContext(ctx, client.Options{HostPort: closed, Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	temporalErr := err
	if err == nil {
		_, temporalErr = tc.CheckHealth(ctx, &client.CheckHealthRequest{})
		tc.Close()
	}
	timeoutCtx, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	<-timeoutCtx.Done()

	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain error", errors.New("domain definition rejected"), false},
		{"not found", fmt.Errorf("record: %w", state.ErrNotFound), false},
		{"cancelled", context.Canceled, false},
		{"tcp dial refused", dialErr, true},
		{"wrapped dial refused", fmt.Errorf("record instance x: %w", dialErr), true},
		{"InfluxDB write to a closed port", influxErr, true},
		{"MySQL open on a closed port", mysqlErr, true},
		{"Temporal on a closed port", temporalErr, true},
		{"libvirt call timeout", fmt.Errorf("define domain x: %w", libvirt.ErrTimeout), true},
		{"deadline", fmt.Errorf("query: %w", timeoutCtx.Err()), true},
		{"unexpected EOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"marked", fmt.Errorf("call: %w", unreachableErr{}), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want && tt.err == nil {
				t.Fatal("the client returned no error from a closed port")
			}
			if got := outage.IsUnreachable(tt.err); got != tt.want {
				t.Errorf("IsUnreachable(%T %v) = %v, want %v", tt.err, tt.err, got, tt.want)
			}
		})
	}
}

func TestQuietLowersLinesAboutUnreachableDependencies(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(outage.Quiet(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))).With("component", "x")
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	log.Warn("activity error", "error", fmt.Errorf("record: %w", refused))
	log.Error("failed to poll", "Error", refused)
	log.Warn("rejected", "error", errors.New("bad token"))
	log.Warn("no error attribute", "reason", "connection refused")
	log.Info("info stays", "error", refused)

	lines := logLines(t, &buf)
	want := []string{"DEBUG", "DEBUG", "WARN", "WARN", "INFO"}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, level := range want {
		if lines[i]["level"] != level {
			t.Errorf("line %d (%v) at %v, want %s", i, lines[i]["msg"], lines[i]["level"], level)
		}
		if lines[i]["component"] != "x" {
			t.Errorf("line %d lost its attributes: %v", i, lines[i])
		}
	}

	// Below debug nothing is written.
	buf.Reset()
	log = slog.New(outage.Quiet(slog.NewJSONHandler(&buf, nil)))
	log.Warn("activity error", "error", refused)
	if buf.Len() != 0 {
		t.Errorf("a lowered line was written by an info-level handler: %s", buf.String())
	}
}

// closedPort is 127.0.0.1:<a port nothing listens on>.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestMarkUnreachable(t *testing.T) {
	refused := fmt.Errorf("record instance g-1 in MySQL at db:3306: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")})
	marked := outage.MarkUnreachable(refused)
	var app *temporal.ApplicationError
	if !errors.As(marked, &app) || app.Type() != outage.ErrTypeUnreachable || app.NonRetryable() || app.Category() != temporal.ApplicationErrorCategoryBenign {
		t.Fatalf("MarkUnreachable(refused) = %#v; want a retryable benign application error of type %s", marked, outage.ErrTypeUnreachable)
	}
	if app.Message() != refused.Error() {
		t.Errorf("message %q, want the original %q", app.Message(), refused.Error())
	}
	// As the workflow sees it, wrapped.
	if !outage.IsUnreachable(fmt.Errorf("activity error: %w", marked)) {
		t.Error("a marked error is not unreachable once wrapped")
	}

	bad := temporal.NewNonRetryableApplicationError("no such base image", "BadLaunchSpec", nil)
	plain := errors.New("domain definition rejected")
	for _, err := range []error{nil, bad, plain} {
		if got := outage.MarkUnreachable(err); got != err {
			t.Errorf("MarkUnreachable(%v) = %v, want it unchanged", err, got)
		}
	}
	if outage.IsUnreachable(bad) {
		t.Error("an application error of another type counts as unreachable")
	}
}
