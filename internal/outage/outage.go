// Package outage reports a dependency's outage the way an operator wants to read it: one line
// when it begins ("MySQL at db:3306 unreachable since 12:00:01") and one when it ends ("MySQL at
// db:3306 back after 31s"), however many calls fail and are retried in between.
//
// A Watch follows one dependency. Quiet wraps a log handler so that the lines about single
// failed calls whose error says a dependency cannot be reached drop to debug: the Watch of that
// dependency has the outage covered.
package outage

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/go-sql-driver/mysql"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"
)

// Watch follows one dependency's reachability and logs its outages: one warning when an outage
// begins, one info line when it ends. It is safe for concurrent use; every component that talks
// to the dependency may report to it, and the outage is still logged once.
type Watch struct {
	target string
	log    *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu       sync.Mutex
	down     bool
	since    time.Time
	failures int
}

// NewWatch watches the dependency described by target ("MySQL at 127.0.0.1:3306 (database
// premiscale)"), logging to log with attrs added to both lines (the config key that names it,
// say). The dependency counts as reachable until a failure says otherwise.
func NewWatch(log *slog.Logger, target string, attrs ...any) *Watch {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watch{target: target, log: log.With(attrs...)}
}

// Target is what the watch follows, as given to NewWatch.
func (w *Watch) Target() string { return w.target }

// Fail records that the dependency could not be reached. The first failure after it was
// reachable begins an outage and is logged, with err; later ones are only counted.
func (w *Watch) Fail(err error) {
	w.mu.Lock()
	w.failures++
	if w.down {
		w.mu.Unlock()
		return
	}
	w.down, w.since, w.failures = true, w.now(), 1
	since := w.since
	w.mu.Unlock()
	w.log.Warn(fmt.Sprintf("%s unreachable since %s", w.target, since.Format(time.RFC3339)),
		"since", since, "error", errorText(err))
}

// OK records that the dependency answered. Ending an outage is logged, with how long it lasted
// and how many failures were reported meanwhile.
func (w *Watch) OK() {
	w.mu.Lock()
	if !w.down {
		w.mu.Unlock()
		return
	}
	down := w.now().Sub(w.since)
	failures := w.failures
	w.down, w.failures = false, 0
	w.mu.Unlock()
	w.log.Info(fmt.Sprintf("%s back after %s", w.target, roundDuration(down)),
		"down_for", down.String(), "failures", failures)
}

// Down reports whether an outage is under way, and since when.
func (w *Watch) Down() (since time.Time, down bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.since, w.down
}

func (w *Watch) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

// errorText is err as a string, so that Quiet never takes the outage's own line for a failed
// call's.
func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// roundDuration keeps outage lengths readable: whole seconds from a second up, milliseconds
// below.
func roundDuration(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// ErrTypeUnreachable is the Temporal application error type of an activity error that
// MarkUnreachable marked: the activity failed because a dependency could not be reached.
const ErrTypeUnreachable = "DependencyUnreachable"

// MarkUnreachable turns an activity's error that IsUnreachable into a retryable Temporal
// application error of type ErrTypeUnreachable and category benign, with the same message:
// the SDK then logs its attempts at debug level, and the workflow (and IsUnreachable, on the
// workflow's side) can still tell it from other failures once it has crossed Temporal. Any
// other error, and an application error already, is returned as it is.
func MarkUnreachable(err error) error {
	var app *temporal.ApplicationError
	if err == nil || errors.As(err, &app) || !IsUnreachable(err) {
		return err
	}
	return temporal.NewApplicationErrorWithOptions(err.Error(), ErrTypeUnreachable,
		temporal.ApplicationErrorOptions{Category: temporal.ApplicationErrorCategoryBenign})
}

// IsUnreachable reports whether err says its dependency could not be reached or did not answer
// in time — refused, reset, closed, timed out, unavailable — rather than that it answered with
// an error of its own. Errors are looked at through their whole chain (errors.As), which for a
// failed activity seen from its workflow holds the application error MarkUnreachable made.
func IsUnreachable(err error) bool {
	if err == nil {
		return false
	}
	var (
		app         *temporal.ApplicationError
		opErr       *net.OpError
		unavailable *serviceerror.Unavailable
		deadline    *serviceerror.DeadlineExceeded
		marked      interface{ Unreachable() bool }
		timeout     interface{ Timeout() bool }
	)
	switch {
	case errors.As(err, &app):
		// Only what crossed Temporal is left of the error: its type says.
		return app.Type() == ErrTypeUnreachable
	case errors.As(err, &opErr), errors.As(err, &unavailable), errors.As(err, &deadline):
		return true
	case errors.As(err, &marked) && marked.Unreachable():
		return true
	case errors.As(err, &timeout) && timeout.Timeout():
		// net.Error timeouts, context.DeadlineExceeded, libvirt call timeouts.
		return true
	}
	for _, target := range []error{
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.EHOSTUNREACH, syscall.ENETUNREACH,
		io.EOF, io.ErrUnexpectedEOF, driver.ErrBadConn, mysql.ErrInvalidConn,
		golibvirt.ErrInterrupted,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// Quiet wraps h so that a warning or error line carrying an error value (any attribute) for
// which IsUnreachable holds is logged at debug level instead: such a line is about one failed
// call during an outage, which the dependency's Watch reports once. Other lines pass unchanged.
func Quiet(h slog.Handler) slog.Handler { return quietHandler{h} }

type quietHandler struct{ inner slog.Handler }

func (q quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return q.inner.Enabled(ctx, l)
}

func (q quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn || !carriesUnreachable(r) {
		return q.inner.Handle(ctx, r)
	}
	if !q.inner.Enabled(ctx, slog.LevelDebug) {
		return nil
	}
	d := slog.NewRecord(r.Time, slog.LevelDebug, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool { d.AddAttrs(a); return true })
	return q.inner.Handle(ctx, d)
}

func (q quietHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietHandler{q.inner.WithAttrs(attrs)}
}

func (q quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{q.inner.WithGroup(name)}
}

func carriesUnreachable(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Resolve().Any().(error); ok && IsUnreachable(err) {
			found = true
		}
		return !found
	})
	return found
}
