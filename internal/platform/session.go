package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/premiscale/premiscale/internal/state"
)

// session is one websocket connection: a writer (the only goroutine that writes messages,
// and the pinger), a reader (acks and commands in, error replies out), and a sender that
// streams the outbox through a bounded window of unacknowledged events.
type session struct {
	l     *Link
	conn  *websocket.Conn
	agent string
	log   *slog.Logger
	out   chan []byte
	acks  chan []string
	done  chan struct{}
	once  sync.Once
	err   error
}

// errClosed ends a session the agent closes itself.
var errClosed = errors.New("the agent closed the connection")

// serve runs one connection until it fails or ctx ends, when it closes it cleanly.
func (l *Link) serve(ctx context.Context, conn *websocket.Conn, reg state.Registration, cmds *commander) error {
	s := &session{
		l: l, conn: conn, agent: reg.AgentID, log: l.log.With("agent_id", reg.AgentID),
		out: make(chan []byte, 16), acks: make(chan []string, 64), done: make(chan struct{}),
	}
	hello, err := l.hello(ctx, reg.AgentID)
	if err != nil {
		conn.Close()
		return err
	}
	s.out <- hello // first on the connection: the writer has not started yet

	var wg sync.WaitGroup
	readerDone := make(chan struct{})
	wg.Add(2)
	go func() { defer wg.Done(); s.write() }()
	go func() { defer wg.Done(); s.send(ctx) }()
	go func() { defer close(readerDone); s.read(cmds) }()

	select {
	case <-ctx.Done():
		// A clean close: say so, and give the platform a moment to answer before hanging up.
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "agent shutting down")
		if err := conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(l.opts.WriteWait)); err == nil {
			select {
			case <-readerDone:
			case <-time.After(2 * time.Second):
			}
		}
		s.fail(errClosed)
	case <-s.done:
	}
	conn.Close()
	<-readerDone
	wg.Wait()
	return s.err
}

// fail ends the session with err (the first error wins).
func (s *session) fail(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.done)
	})
}

// write owns the connection's writes: queued messages and pings.
func (s *session) write() {
	ping := time.NewTicker(s.l.opts.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-s.done:
			return
		case msg := <-s.out:
			_ = s.conn.SetWriteDeadline(time.Now().Add(s.l.opts.WriteWait))
			if err := s.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				s.fail(fmt.Errorf("write: %w", err))
				return
			}
		case <-ping.C:
			if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.l.opts.WriteWait)); err != nil {
				s.fail(fmt.Errorf("ping: %w", err))
				return
			}
		}
	}
}

// queue hands a message to the writer; false when the session has ended.
func (s *session) queue(msg []byte) bool {
	select {
	case s.out <- msg:
		return true
	case <-s.done:
		return false
	}
}

// reply sends a message that is not kept in the outbox (errors, read-only results,
// duplicates): if the connection drops first, the platform asks again.
func (s *session) reply(typ, id string, payload any) {
	msg, err := encode(typ, id, s.agent, time.Now(), payload)
	if err != nil {
		s.log.Error("cannot encode a reply", "type", typ, "error", err)
		return
	}
	s.queue(msg)
}

// problem answers a message the agent cannot use, and logs it.
func (s *session) problem(p Problem) {
	s.log.Warn("refused a message from the platform", "code", p.Code, "ref", p.Ref, "reason", p.Message)
	s.reply(TypeError, newID("error"), p)
}

// read takes messages from the platform. Anything it cannot use is answered with an error
// message and skipped: the connection stays up.
func (s *session) read(cmds *commander) {
	max := s.l.opts.MaxMessageBytes
	s.conn.SetReadLimit(s.l.opts.HardMessageBytes)
	alive := func() { _ = s.conn.SetReadDeadline(time.Now().Add(s.l.opts.PongWait)) }
	alive()
	s.conn.SetPongHandler(func(string) error { alive(); return nil })
	for {
		typ, r, err := s.conn.NextReader()
		if err != nil {
			s.fail(fmt.Errorf("read: %w", err))
			return
		}
		alive()
		data, err := io.ReadAll(io.LimitReader(r, max+1))
		if err == nil && int64(len(data)) > max {
			// Skip the rest without holding it: memory stays bounded by max.
			var n int64
			n, err = io.Copy(io.Discard, r)
			if err == nil {
				s.problem(Problem{Code: CodeTooLarge, Message: fmt.Sprintf("the message has %d bytes; this agent accepts at most %d", int64(len(data))+n, max)})
				continue
			}
		}
		if err != nil {
			s.fail(fmt.Errorf("read: %w", err))
			return
		}
		if typ != websocket.TextMessage {
			s.problem(Problem{Code: CodeMalformed, Message: "binary messages are not accepted: send JSON text messages"})
			continue
		}
		env, p := decode(data)
		if p != nil {
			s.problem(*p)
			continue
		}
		switch env.Type {
		case TypeAck:
			var ack Ack
			if err := strict(env.Payload, &ack); err != nil {
				s.problem(Problem{Ref: env.ID, Code: CodeMalformed, Message: "ack payload: " + err.Error()})
				continue
			}
			select {
			case s.acks <- ack.IDs:
			case <-s.done:
				return
			}
		case TypeCommand:
			cmds.submit(env, s)
		default:
			s.problem(Problem{Ref: env.ID, Code: CodeUnknownType, Message: fmt.Sprintf("unknown message type %q (this agent accepts ack and command)", env.Type)})
		}
	}
}

// send streams the outbox: everything pending from the start on every connection (what an
// earlier one sent without an acknowledgement is sent again), at most Window unacknowledged.
func (s *session) send(ctx context.Context) {
	opts := s.l.opts
	store := s.l.cfg.Store
	inflight := map[string]struct{}{}
	var cursor int64
	progress := time.Now()
	poll := time.NewTicker(opts.PollInterval)
	defer poll.Stop()
	// put sends events; false when the session has ended.
	put := func(evs []state.OutboxEvent) bool {
		for _, e := range evs {
			cursor = max(cursor, e.Seq)
			if _, sent := inflight[e.ID]; sent {
				continue
			}
			msg, err := encode(e.Type, e.ID, s.agent, e.At, e.Payload)
			if err != nil {
				s.log.Error("cannot encode an outbox event; skipping it", "id", e.ID, "error", err)
				continue
			}
			if len(inflight) == 0 {
				progress = time.Now()
			}
			if !s.queue(msg) {
				return false
			}
			inflight[e.ID] = struct{}{}
		}
		return true
	}
	for {
		for len(inflight) < opts.Window {
			want := min(opts.Page, opts.Window-len(inflight))
			evs, err := store.PendingEvents(ctx, cursor, want)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("cannot read the outbox; trying again", "error", err)
				}
				break
			}
			if !put(evs) {
				return
			}
			if len(evs) < want {
				break
			}
		}
		select {
		case <-s.done:
			return
		case ids := <-s.acks:
			// Take every ack already waiting, and remove them in one go.
			for more := true; more; {
				select {
				case next := <-s.acks:
					ids = append(ids, next...)
				default:
					more = false
				}
			}
			if _, err := store.AckEvents(ctx, ids); err != nil {
				// They stay in the outbox and go again after the next reconnect.
				s.log.Warn("cannot remove acknowledged events from the outbox", "error", err)
			}
			for _, id := range ids {
				delete(inflight, id)
			}
			progress = time.Now()
		case <-s.l.wake:
		case <-poll.C:
			if len(inflight) > 0 && time.Since(progress) > opts.AckTimeout {
				s.fail(fmt.Errorf("the platform acknowledged none of %d events for %s", len(inflight), opts.AckTimeout))
				return
			}
			// Writers commit in their own order, so an event may appear below the cursor
			// after later ones were read: look for any not sent yet.
			if !put(s.missed(ctx, cursor, inflight)) {
				return
			}
		}
	}
}

// missed returns the events at or below cursor that this session has not sent.
func (s *session) missed(ctx context.Context, cursor int64, inflight map[string]struct{}) []state.OutboxEvent {
	if cursor == 0 {
		return nil
	}
	refs, err := s.l.cfg.Store.PendingIDs(ctx, cursor, len(inflight)+s.l.opts.Page)
	if err != nil {
		return nil
	}
	var seqs []int64
	for _, r := range refs {
		if _, sent := inflight[r.ID]; !sent {
			seqs = append(seqs, r.Seq)
		}
	}
	evs, err := s.l.cfg.Store.EventsBySeq(ctx, seqs)
	if err != nil {
		return nil
	}
	return evs
}

// hello is the first message of a connection.
func (l *Link) hello(ctx context.Context, agentID string) ([]byte, error) {
	h := Hello{Protocol: ProtocolVersion, Version: l.cfg.Version, AgentID: agentID, Hosts: []HelloHost{},
		Limits: Limits{MaxMessageBytes: l.opts.MaxMessageBytes}}
	for _, host := range l.cfg.Agent.Controller.Autoscale.Hosts {
		h.Hosts = append(h.Hosts, HelloHost{Name: host.Name, Hypervisor: host.Hypervisor})
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	list, err := l.cfg.Groups.List(lctx)
	cancel()
	if err != nil {
		h.GroupsError = err.Error()
		l.log.Warn("hello goes without group status", "error", err)
	}
	for _, s := range list {
		h.Groups = append(h.Groups, s.GroupStatus)
	}
	if h.Outbox.Pending, h.Outbox.Dropped, err = l.cfg.Store.OutboxCounts(ctx); err != nil {
		l.log.Warn("hello goes without outbox counts", "error", err)
	}
	return encode(TypeHello, newID("hello"), agentID, time.Now(), h)
}
