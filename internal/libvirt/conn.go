// Package libvirt is PremiScale's only door to libvirt: a managed connection
// (lazy dial, reconnect with backoff, a bound on every call) and the idempotent
// domain and volume operations the activities need.
package libvirt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"syscall"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/premiscale/premiscale/internal/outage"
)

// DefaultCallTimeout bounds a call when Options.CallTimeout is zero.
const DefaultCallTimeout = 30 * time.Second

// Reconnect backoff bounds: the first retry after a failed dial waits
// minBackoff, each further failure doubles it up to maxBackoff.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// ErrTimeout is wrapped by every error returned because a libvirt call did
// not answer within Options.CallTimeout.
var ErrTimeout error = timeoutError{}

// timeoutError says Timeout, as net.Error does, so that callers (outage.IsUnreachable) take it
// for a host that does not answer.
type timeoutError struct{}

func (timeoutError) Error() string { return "libvirt call timed out" }
func (timeoutError) Timeout() bool { return true }

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("libvirt connection closed")

// Options tunes a Conn.
type Options struct {
	// CallTimeout bounds every RPC and every dial. go-libvirt has no timeouts of
	// its own, so a hung daemon would otherwise hang the caller forever.
	CallTimeout time.Duration
	Logger      *slog.Logger
	// Outage hears of every reconnection that fails or succeeds and every call that times
	// out, and logs the host's outages: once when one begins, once when it ends. Nil means a
	// watch of the Conn's own, on Logger. The Conn's lines about each attempt are debug.
	Outage *outage.Watch
}

// Conn is a managed connection to one libvirt URI. It dials lazily, notices
// when go-libvirt reports the socket gone, and redials on the next call with
// capped exponential backoff after failures. It is safe for concurrent use.
type Conn struct {
	uri     string
	parsed  *url.URL
	timeout time.Duration
	log     *slog.Logger
	outage  *outage.Watch

	mu          sync.Mutex
	lv          *golibvirt.Libvirt // nil when not connected
	dialing     chan struct{}      // non-nil while a dial runs; closed when it ends
	failures    int
	nextAttempt time.Time
	lastErr     error
	closed      bool
	// connectedBefore makes later dials log as reconnections.
	connectedBefore bool
	caps            string // capabilities XML, cached: they do not change under a running daemon

	names keyedMutex // serialises operations on one domain name within this process
}

// Dial returns a Conn for uri and makes a first connection attempt, so a wrong
// URI or a daemon that is down is reported at start-up rather than at the first
// activity.
func Dial(ctx context.Context, uri string, opts Options) (*Conn, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("parse libvirt URI %q: %w", uri, err)
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("parse libvirt URI %q: no scheme (want e.g. qemu:///system)", uri)
	}
	c := &Conn{
		uri:     uri,
		parsed:  u,
		timeout: opts.CallTimeout,
		log:     opts.Logger,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultCallTimeout
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("uri", uri)
	c.outage = opts.Outage
	if c.outage == nil {
		c.outage = outage.NewWatch(c.log, "libvirt at "+uri)
	}
	if _, err := c.client(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// URI is the libvirt URI this Conn talks to.
func (c *Conn) URI() string { return c.uri }

// Close disconnects. Calls in flight fail; later calls return ErrClosed.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	lv := c.lv
	c.lv = nil
	c.mu.Unlock()
	if lv == nil {
		return nil
	}
	if err := c.disconnect(lv); err != nil {
		return fmt.Errorf("disconnect from %s: %w", c.uri, err)
	}
	return nil
}

// disconnect closes lv, bounded by the call timeout because go-libvirt sends a
// close RPC first, which a hung daemon never answers.
func (c *Conn) disconnect(lv *golibvirt.Libvirt) error {
	done := make(chan error, 1)
	go func() { done <- lv.Disconnect() }()
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		return fmt.Errorf("disconnect: %w after %s", ErrTimeout, c.timeout)
	}
}

// client returns a live go-libvirt connection, dialling if there is none.
// Only one dial runs at a time; other callers wait for its outcome (or their
// context). After a failed dial, callers wait out the backoff before the next.
func (c *Conn) client(ctx context.Context) (*golibvirt.Libvirt, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, fmt.Errorf("use of %s: %w", c.uri, ErrClosed)
		}
		if c.lv != nil && c.lv.IsConnected() {
			lv := c.lv
			c.mu.Unlock()
			return lv, nil
		}
		if dialing := c.dialing; dialing != nil {
			c.mu.Unlock()
			select {
			case <-dialing:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("connect to %s: %w", c.uri, ctx.Err())
			}
		}
		if wait := time.Until(c.nextAttempt); wait > 0 {
			lastErr := c.lastErr
			c.mu.Unlock()
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
				return nil, fmt.Errorf("connect to %s: backing off %s after %d failed attempts: %w",
					c.uri, wait.Round(time.Millisecond), c.failures, lastErr)
			}
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
				continue
			case <-ctx.Done():
				timer.Stop()
				return nil, fmt.Errorf("connect to %s: %w (last error: %v)", c.uri, ctx.Err(), lastErr)
			}
		}
		dialing := make(chan struct{})
		c.dialing = dialing
		c.mu.Unlock()

		lv, err := c.dial(ctx)

		c.mu.Lock()
		c.dialing = nil
		close(dialing)
		if err != nil && ctx.Err() != nil {
			// The caller gave up; that says nothing about the daemon.
			c.mu.Unlock()
			return nil, err
		}
		if err != nil {
			c.failures++
			backoff := min(minBackoff<<min(c.failures-1, 16), maxBackoff)
			c.nextAttempt = time.Now().Add(backoff)
			c.lastErr = err
			failures, before := c.failures, c.connectedBefore
			c.mu.Unlock()
			c.log.Debug("libvirt connect failed", "err", err, "failures", failures, "retry_in", backoff)
			// Before the first connection, Dial's caller hears of the failure itself.
			if before {
				c.outage.Fail(err)
			}
			return nil, err
		}
		if c.closed {
			c.mu.Unlock()
			_ = c.disconnect(lv)
			return nil, fmt.Errorf("use of %s: %w", c.uri, ErrClosed)
		}
		if c.connectedBefore {
			c.log.Debug("libvirt reconnected", "after_failures", c.failures)
		}
		c.connectedBefore = true
		c.failures, c.lastErr, c.nextAttempt = 0, nil, time.Time{}
		c.lv = lv
		c.mu.Unlock()
		c.outage.OK()
		go c.watch(lv)
		return lv, nil
	}
}

// dial opens a fresh go-libvirt connection, bounded by ctx and the call timeout.
// A dial that completes after we gave up is closed so it does not leak.
func (c *Conn) dial(ctx context.Context) (*golibvirt.Libvirt, error) {
	type result struct {
		lv  *golibvirt.Libvirt
		err error
	}
	done := make(chan result, 1)
	go func() {
		lv, err := golibvirt.ConnectToURI(c.parsed)
		if err == nil {
			// go-libvirt's ConnectToURI assigns the channel behind Disconnected()
			// after starting the goroutine that closes it, with nothing ordering
			// the two (the race detector flags it when the peer hangs up). An RPC
			// issued from this goroutine orders them through go-libvirt's callback
			// lock, and proves the connection answers.
			if _, err = lv.ConnectGetLibVersion(); err != nil {
				_ = lv.Disconnect()
				err = fmt.Errorf("first call after connecting: %w", err)
			}
		}
		done <- result{lv, err}
	}()
	abandon := func() {
		go func() {
			if r := <-done; r.err == nil {
				_ = r.lv.Disconnect()
			}
		}()
	}
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("connect to %s: %w", c.uri, r.err)
		}
		return r.lv, nil
	case <-timer.C:
		abandon()
		return nil, fmt.Errorf("connect to %s: %w after %s", c.uri, ErrTimeout, c.timeout)
	case <-ctx.Done():
		abandon()
		return nil, fmt.Errorf("connect to %s: %w", c.uri, ctx.Err())
	}
}

// watch forgets lv once go-libvirt reports it disconnected, so the next call
// redials instead of failing on a dead socket. go-libvirt sends no keepalives,
// so a silently dead peer is only noticed through call timeouts (see call).
func (c *Conn) watch(lv *golibvirt.Libvirt) {
	<-lv.Disconnected()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lv == lv {
		c.lv = nil
		if !c.closed {
			// Not an outage yet: the next call redials, and only a failed redial is one.
			c.log.Debug("libvirt connection lost; will reconnect on next call")
		}
	}
}

// drop discards lv (if it is still current) and closes it in the background.
// Used after a call timed out: the socket may be half-open, and without
// keepalives go-libvirt would never notice.
func (c *Conn) drop(lv *golibvirt.Libvirt) {
	c.mu.Lock()
	if c.lv == lv {
		c.lv = nil
	}
	c.mu.Unlock()
	go func() { _ = c.disconnect(lv) }()
}

// call runs fn on a live connection, bounded by ctx and the call timeout.
// what names the operation for errors ("define domain web-3").
func call[T any](ctx context.Context, c *Conn, what string, fn func(*golibvirt.Libvirt) (T, error)) (T, error) {
	return callWithTimeout(ctx, c, what, c.timeout, fn)
}

func callWithTimeout[T any](ctx context.Context, c *Conn, what string, timeout time.Duration, fn func(*golibvirt.Libvirt) (T, error)) (T, error) {
	var zero T
	lv, err := c.client(ctx)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", what, err)
	}
	return runBounded(ctx, c, lv, what, timeout, fn)
}

// runBounded runs fn against lv in a goroutine so that a daemon that never
// answers costs the caller at most timeout. The goroutine itself is released
// when the connection is dropped (go-libvirt fails pending calls then).
func runBounded[T any](ctx context.Context, c *Conn, lv *golibvirt.Libvirt, what string, timeout time.Duration, fn func(*golibvirt.Libvirt) (T, error)) (T, error) {
	var zero T
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := fn(lv)
		done <- result{v, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			if connectionLost(r.err) {
				// Do not wait for Disconnected() alone: redial on the next call.
				c.drop(lv)
			}
			return zero, fmt.Errorf("%s on %s: %w", what, c.uri, r.err)
		}
		return r.v, nil
	case <-timer.C:
		c.log.Debug("libvirt call timed out; dropping connection", "call", what, "timeout", timeout)
		c.drop(lv)
		err := fmt.Errorf("%s on %s: %w after %s", what, c.uri, ErrTimeout, timeout)
		c.outage.Fail(err)
		return zero, err
	case <-ctx.Done():
		return zero, fmt.Errorf("%s on %s: %w", what, c.uri, ctx.Err())
	}
}

// do is call for RPCs that return only an error.
func do(ctx context.Context, c *Conn, what string, fn func(*golibvirt.Libvirt) error) error {
	_, err := call(ctx, c, what, func(l *golibvirt.Libvirt) (struct{}, error) {
		return struct{}{}, fn(l)
	})
	return err
}

// connectionLost reports whether err says the socket under a call is gone:
// go-libvirt fails calls in flight with ErrInterrupted and later ones with EINVAL.
func connectionLost(err error) bool {
	return errors.Is(err, golibvirt.ErrInterrupted) || errors.Is(err, syscall.EINVAL)
}

// hasCode reports whether err carries a libvirt error with one of codes.
// go-libvirt's own IsNotFound only knows ERR_NO_DOMAIN.
func hasCode(err error, codes ...golibvirt.ErrorNumber) bool {
	var le golibvirt.Error
	if !errors.As(err, &le) {
		return false
	}
	for _, code := range codes {
		if le.Code == uint32(code) {
			return true
		}
	}
	return false
}

// keyedMutex hands out one lock per key, creating and freeing them on demand.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedEntry
}

type keyedEntry struct {
	ch   chan struct{} // a one-slot semaphore, so waiting can honour a context
	refs int
}

// lock takes the lock for key, or fails when ctx ends first.
func (k *keyedMutex) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyedEntry)
	}
	e := k.locks[key]
	if e == nil {
		e = &keyedEntry{ch: make(chan struct{}, 1)}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()

	release := func() {
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
	select {
	case e.ch <- struct{}{}:
		return func() { <-e.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
