package platform

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
)

// linkLock is the advisory lock (per state database) whose holder owns the link.
const linkLock = "platform-link"

// Groups is what the link drives groups through: *groupctl.Client, as the CLI does.
type Groups interface {
	Apply(ctx context.Context, gs spec.Group) (groupctl.ApplyResult, error)
	Update(ctx context.Context, gs spec.Group) error
	List(ctx context.Context) ([]groupctl.Status, error)
	Status(ctx context.Context, group string) (groupctl.Status, error)
	Scale(ctx context.Context, group string, req spec.ScaleRequest) (spec.ScaleResult, error)
	Pause(ctx context.Context, group string) error
	Resume(ctx context.Context, group string) error
	Protect(ctx context.Context, group, instance string, protected bool) (spec.InstanceRef, error)
	Events(ctx context.Context, group string, since time.Time) ([]state.ScalingEvent, error)
	Delete(ctx context.Context, group string) error
}

// Host is a hypervisor whose capacity this agent reports: *libvirt.Conn.
type Host interface {
	HostInfo(ctx context.Context) (libvirt.HostInfo, error)
	FreeMemoryBytes(ctx context.Context) (uint64, error)
	ListManagedDomains(ctx context.Context) ([]libvirt.Domain, error)
}

// Config is what a Link needs from its agent.
type Config struct {
	// Platform is controller.platform with --host and --token applied.
	Platform config.Platform
	// Agent is the agent's whole config: its hosts go into hello, and group files from the
	// platform are checked against it as `group create -f` checks them.
	Agent *config.Config
	// ConfigDir is where relative cloud-init files of a platform group file are looked for:
	// the config file's folder, as for the config's own groups.
	ConfigDir string
	Store     *state.Store
	Groups    Groups
	// Hosts are the hypervisors this agent serves, by name.
	Hosts   map[string]Host
	Version string
	Logger  *slog.Logger
	Options Options
}

// Options tune the link; zero values take the defaults.
type Options struct {
	// PingInterval is how often the agent pings; PongWait how long it waits for any message
	// (a pong included) before it gives the connection up.
	PingInterval, PongWait time.Duration
	// WriteWait bounds one write.
	WriteWait time.Duration
	// HandshakeTimeout bounds the websocket handshake; RequestTimeout the registration request.
	HandshakeTimeout, RequestTimeout time.Duration
	// MaxMessageBytes: a larger message from the platform gets an error reply and is skipped.
	MaxMessageBytes int64
	// HardMessageBytes: a message larger still closes the connection (1009).
	HardMessageBytes int64
	// BackoffMin and BackoffMax bound the jittered waits between attempts to register and
	// to connect; a connection that lasted StableAfter starts them again from BackoffMin.
	BackoffMin, BackoffMax, StableAfter time.Duration
	// ElectionInterval is how often a standing-by agent tries to take the link over, and how
	// often the holder checks it still holds it.
	ElectionInterval time.Duration
	// PollInterval is how often an idle link looks for new events (other agents write them).
	PollInterval time.Duration
	// StatusInterval is how often group status is compared with what was last reported.
	StatusInterval time.Duration
	// CapacityInterval is how often host capacity is read.
	CapacityInterval time.Duration
	// TrimInterval is how often the outbox is held to MaxOutboxEvents.
	TrimInterval    time.Duration
	MaxOutboxEvents int
	// Window is the most events sent and not yet acknowledged; Page the most read at once.
	Window, Page int
	// AckTimeout: events sent this long ago and never acknowledged make the link reconnect
	// (and send them again).
	AckTimeout time.Duration
	// CommandWorkers apply commands at once; CommandQueue more wait; beyond that a command is
	// answered "busy".
	CommandWorkers, CommandQueue int
	// CommandRetention is how long applied command ids are remembered.
	CommandRetention time.Duration
}

func (o Options) withDefaults() Options {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.PingInterval, 20*time.Second)
	def(&o.PongWait, 60*time.Second)
	def(&o.WriteWait, 10*time.Second)
	def(&o.HandshakeTimeout, 30*time.Second)
	def(&o.RequestTimeout, 30*time.Second)
	def(&o.BackoffMin, time.Second)
	def(&o.BackoffMax, time.Minute)
	def(&o.StableAfter, 30*time.Second)
	def(&o.ElectionInterval, 5*time.Second)
	def(&o.PollInterval, 500*time.Millisecond)
	def(&o.StatusInterval, 5*time.Second)
	def(&o.CapacityInterval, time.Minute)
	def(&o.TrimInterval, 10*time.Second)
	def(&o.AckTimeout, 2*time.Minute)
	def(&o.CommandRetention, 30*24*time.Hour)
	defInt(&o.MaxOutboxEvents, 100_000)
	defInt(&o.Window, 1000)
	defInt(&o.Page, 250)
	defInt(&o.CommandWorkers, 4)
	defInt(&o.CommandQueue, 64)
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 1 << 20
	}
	if o.HardMessageBytes < o.MaxMessageBytes {
		o.HardMessageBytes = max(64<<20, o.MaxMessageBytes)
	}
	return o
}

// Link is an agent's side of the platform link. Every agent of an installation runs one; the
// one holding the installation's link lock (in MySQL) registers, holds the websocket, sends
// the outbox and applies commands, and the others stand by to take over. See doc.go.
type Link struct {
	cfg  Config
	opts Options
	log  *slog.Logger
	urls config.PlatformURLs
	tls  *tls.Config
	reg  *Registrar
	// wake tells the sender that events were added.
	wake chan struct{}
}

// New checks the platform settings and builds a Link; Run runs it.
func New(cfg Config) (*Link, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Store == nil || cfg.Groups == nil || cfg.Agent == nil {
		return nil, errors.New("platform link: Store, Groups and Agent are required")
	}
	urls, err := cfg.Platform.URLs()
	if err != nil {
		return nil, fmt.Errorf("platform link: %w", err)
	}
	tc, err := tlsConfig(cfg.Platform)
	if err != nil {
		return nil, fmt.Errorf("platform link: %w", err)
	}
	l := &Link{cfg: cfg, opts: cfg.Options.withDefaults(), log: cfg.Logger.With("component", "platform"), urls: urls, tls: tc, wake: make(chan struct{}, 1)}
	l.reg = &Registrar{
		URLs: urls, Token: cfg.Platform.Token, Version: cfg.Version, Store: cfg.Store, Logger: l.log,
		HTTP:       &http.Client{Timeout: l.opts.RequestTimeout, Transport: &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}},
		BackoffMin: l.opts.BackoffMin, BackoffMax: l.opts.BackoffMax,
		Warn: func() { warnInsecure(l.log, cfg.Platform, urls, "registration") },
	}
	return l, nil
}

// notify wakes the sender.
func (l *Link) notify() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Run runs the link until ctx ends. It returns nil then, and an error only when the link
// cannot work until the agent is given another token or certificate (IsPermanent): the
// agent's autoscaling goes on without it.
func (l *Link) Run(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	defer func() {
		cancel()
		<-done
	}()
	go func() {
		defer close(done)
		l.reportCapacity(ctx)
	}()
	var saidStandalone, saidStandby bool
	for ctx.Err() == nil {
		reg, kept, err := l.cfg.Store.Registration(ctx)
		if err != nil {
			l.log.Warn("cannot read the platform registration; trying again", "error", err)
			sleep(ctx, l.opts.ElectionInterval)
			continue
		}
		if (!kept || reg.Host != l.urls.Base) && l.cfg.Platform.Token == "" {
			if !saidStandalone {
				saidStandalone = true
				if kept {
					l.log.Info("running standalone: the kept platform registration is for another host and there is no token to register with this one",
						"host", l.urls.Base, "kept_host", reg.Host)
				} else {
					l.log.Info("running standalone: no platform token (--token, controller.platform.token) and no kept registration", "host", l.urls.Base)
				}
			}
			sleep(ctx, l.opts.ElectionInterval)
			continue
		}
		lock, err := l.cfg.Store.TryLock(ctx, linkLock)
		if err != nil {
			l.log.Warn("cannot take the platform link lock; trying again", "error", err)
			sleep(ctx, l.opts.ElectionInterval)
			continue
		}
		if lock == nil {
			if !saidStandby {
				saidStandby = true
				l.log.Info("another agent of this installation holds the platform link; standing by to take over")
			}
			sleep(ctx, l.opts.ElectionInterval)
			continue
		}
		saidStandby = false
		err = l.lead(ctx, lock)
		lock.Release()
		switch {
		case ctx.Err() != nil:
			return nil
		case IsPermanent(err):
			l.log.Error("the platform link stopped; autoscaling goes on without it", "error", err)
			return err
		default:
			l.log.Warn("gave the platform link up; trying to take it again", "error", err)
			sleep(ctx, l.opts.ElectionInterval)
		}
	}
	return nil
}

// lead runs the link while this agent holds lock: registration, the websocket with its
// reconnects, group status, the outbox limit and commands.
func (l *Link) lead(parent context.Context, lock *state.Lock) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	term := newID("term")
	log := l.log.With("term", term)
	log.Info("this agent holds the platform link", "host", l.urls.Base)

	cmds := newCommander(l, term)
	var workers []func(context.Context)
	workers = append(workers, func(ctx context.Context) { l.watchLock(ctx, lock, cancel) },
		l.reportStatus, l.keepOutbox, cmds.run)
	done := make(chan struct{}, len(workers))
	for _, w := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			w(ctx)
		}()
	}
	defer func() {
		cancel(nil)
		for range workers {
			<-done
		}
	}()

	reg, err := l.reg.Ensure(ctx)
	if err != nil {
		return orCause(ctx, err)
	}
	bo := newBackoff(l.opts.BackoffMin, l.opts.BackoffMax)
	for {
		conn, resp, err := l.dial(ctx, reg)
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
				log.Warn("the platform refused the kept credential; registering again", "status", resp.Status)
				if err := l.cfg.Store.ForgetRegistration(ctx, reg.Credential); err != nil {
					log.Warn("cannot forget the refused registration", "error", err)
				}
				if reg, err = l.reg.Ensure(ctx); err != nil {
					return orCause(ctx, err)
				}
				continue
			}
			if certificateProblem(err) {
				return certificateError(l.urls.Websocket, err)
			}
			wait := bo.next()
			log.Warn("cannot connect to the platform; trying again", "url", l.urls.Websocket, "error", err, "wait", wait.String())
			sleep(ctx, wait)
			continue
		}
		started := time.Now()
		log.Info("connected to the platform", "url", l.urls.Websocket)
		err = l.serve(ctx, conn, reg, cmds)
		if time.Since(started) >= l.opts.StableAfter {
			bo.reset()
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		wait := bo.next()
		log.Warn("the platform connection ended; reconnecting", "error", err, "wait", wait.String())
		sleep(ctx, wait)
	}
}

// orCause prefers why ctx ended (such as a lost lock) over err, which is then a consequence.
func orCause(ctx context.Context, err error) error {
	if ctx.Err() != nil && !IsPermanent(err) {
		return context.Cause(ctx)
	}
	return err
}

// watchLock ends the lead when the lock is lost (the MySQL session died): another agent may
// hold it by then.
func (l *Link) watchLock(ctx context.Context, lock *state.Lock, cancel context.CancelCauseFunc) {
	t := time.NewTicker(l.opts.ElectionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, c := context.WithTimeout(ctx, l.opts.ElectionInterval)
		err := lock.Held(cctx)
		c()
		if err != nil && ctx.Err() == nil {
			cancel(fmt.Errorf("lost the platform link lock: %w", err))
			return
		}
	}
}

// dial opens the websocket with the registration's credential.
func (l *Link) dial(ctx context.Context, reg state.Registration) (*websocket.Conn, *http.Response, error) {
	warnInsecure(l.log, l.cfg.Platform, l.urls, "websocket")
	d := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		TLSClientConfig:  l.tls,
		HandshakeTimeout: l.opts.HandshakeTimeout,
		ReadBufferSize:   32 << 10,
		WriteBufferSize:  32 << 10,
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+reg.Credential)
	h.Set("User-Agent", "premiscale/"+l.cfg.Version)
	conn, resp, err := d.DialContext(ctx, l.urls.Websocket, h)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%w (%s)", err, resp.Status)
		}
		return nil, resp, err
	}
	return conn, resp, nil
}
