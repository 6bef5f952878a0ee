package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
)

// Defaults of the CLI's flags, which commands share.
const (
	defaultEventsSince   = time.Hour
	defaultDeleteTimeout = 15 * time.Minute
)

// commander applies the platform's commands: the CLI's group operations, through the same
// groupctl calls and the same checks. A command that changes something is claimed in MySQL
// under its id first, so an id sent twice is applied once; its result is kept and goes
// through the outbox.
type commander struct {
	l     *Link
	term  string
	queue chan job
}

type job struct {
	env Envelope
	s   *session
}

func newCommander(l *Link, term string) *commander {
	return &commander{l: l, term: term, queue: make(chan job, l.opts.CommandQueue)}
}

// submit queues a command, or answers "busy" when too many wait.
func (c *commander) submit(env Envelope, s *session) {
	select {
	case c.queue <- job{env: env, s: s}:
	default:
		s.problem(Problem{Ref: env.ID, Code: CodeBusy, Message: fmt.Sprintf("%d commands are waiting; send it again later", cap(c.queue))})
	}
}

// run applies queued commands with CommandWorkers workers until ctx ends. A command still
// running then is cancelled and stays claimed: the next link applies it when the platform
// sends it again.
func (c *commander) run(ctx context.Context) {
	done := make(chan struct{})
	for range c.l.opts.CommandWorkers {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-c.queue:
					c.handle(ctx, j)
				}
			}
		}()
	}
	for range c.l.opts.CommandWorkers {
		<-done
	}
}

// operation is a validated command, ready to apply.
type operation struct {
	name     string
	readOnly bool
	apply    func(ctx context.Context) (any, error)
}

func (c *commander) handle(ctx context.Context, j job) {
	env, s := j.env, j.s
	log := s.log.With("command", env.ID)
	op, p := c.parse(env)
	if p != nil {
		log.Warn("refused a command from the platform", "code", p.Code, "reason", p.Message)
		s.reply(TypeCommandResult, "result/"+env.ID, Result{Command: env.ID, Op: op.name, Error: p})
		return
	}
	if op.readOnly {
		res := c.result(ctx, env.ID, op)
		s.reply(TypeCommandResult, "result/"+env.ID, res)
		return
	}

	rec, claimed, err := c.l.cfg.Store.ClaimCommand(ctx, env.ID, op.name, c.term)
	switch {
	case err != nil:
		log.Warn("cannot claim a command", "error", err)
		s.reply(TypeCommandResult, "result/"+env.ID, Result{Command: env.ID, Op: op.name, Error: &Problem{Code: CodeUnavailable, Message: "the state database is unreachable; send the command again later"}})
		return
	case !claimed && rec.State == state.CommandDone:
		var res Result
		if err := json.Unmarshal(rec.Result, &res); err != nil {
			log.Error("the stored result of a command does not decode", "error", err)
			return
		}
		res.Duplicate = true
		log.Info("command id seen before: sent its result again, not applied again", "op", op.name)
		s.reply(TypeCommandResult, "result/"+env.ID, res)
		return
	case !claimed:
		s.reply(TypeCommandResult, "result/"+env.ID, Result{Command: env.ID, Op: op.name, Error: &Problem{Code: CodeInProgress, Message: "this command is being applied; its result follows"}})
		return
	}

	log.Info("applying a platform command", "op", op.name)
	res := c.result(ctx, env.ID, op)
	if ctx.Err() != nil {
		return // stays claimed, see run
	}
	payload, err := json.Marshal(res)
	if err != nil {
		log.Error("cannot encode a command result", "error", err)
		return
	}
	if err := c.l.cfg.Store.FinishCommand(ctx, env.ID, c.term, state.OutboxEvent{ID: "result/" + env.ID, Type: TypeCommandResult, Payload: payload}); err != nil {
		log.Warn("cannot record a command result", "error", err)
		return
	}
	log.Info("applied a platform command", "op", op.name, "ok", res.OK)
	c.l.notify()
}

// result applies op and turns what it returned into a Result.
func (c *commander) result(ctx context.Context, id string, op operation) Result {
	v, err := op.apply(ctx)
	res := Result{Command: id, Op: op.name}
	if err != nil {
		code := CodeFailed
		if errors.Is(err, groupctl.ErrNotRunning) {
			code = CodeNotRunning
		}
		res.Error = &Problem{Code: code, Message: err.Error()}
		return res
	}
	raw, err := json.Marshal(v)
	if err != nil {
		res.Error = &Problem{Code: CodeFailed, Message: "encode the result: " + err.Error()}
		return res
	}
	if int64(len(raw)) > c.l.opts.MaxMessageBytes {
		res.Error = &Problem{Code: CodeTooLarge, Message: fmt.Sprintf("the result has %d bytes, more than the %d a message may carry", len(raw), c.l.opts.MaxMessageBytes)}
		return res
	}
	res.OK, res.Result = true, raw
	return res
}

// Command payloads. Each is decoded strictly: a field the operation does not take is an error.
type (
	opOnly struct {
		Op string `json:"op"`
	}
	opGroup struct {
		Op    string `json:"op"`
		Group string `json:"group"`
	}
	opScale struct {
		Op    string `json:"op"`
		Group string `json:"group"`
		spec.ScaleRequest
	}
	opProtect struct {
		Op       string `json:"op"`
		Group    string `json:"group"`
		Instance string `json:"instance"`
		Off      bool   `json:"off"`
	}
	opEvents struct {
		Op    string `json:"op"`
		Group string `json:"group"`
		Since string `json:"since"`
	}
	opFile struct {
		Op    string `json:"op"`
		Group string `json:"group"`
		// File is the group file: its YAML text as a JSON string, or the same document as a
		// JSON object ({"version": "v1alpha1", "groups": {...}}).
		File json.RawMessage `json:"file"`
	}
	opDelete struct {
		Op      string `json:"op"`
		Group   string `json:"group"`
		Timeout string `json:"timeout"`
	}
)

// ops lists the operations, for messages.
var ops = []string{"list", "status", "create", "update", "scale", "pause", "resume", "protect", "events", "delete"}

// parse validates a command as the CLI validates the same operation, and returns it ready to
// apply, or the problem with it.
func (c *commander) parse(env Envelope) (operation, *Problem) {
	invalid := func(name, format string, args ...any) (operation, *Problem) {
		return operation{name: name}, &Problem{Ref: env.ID, Code: CodeInvalid, Message: fmt.Sprintf(format, args...)}
	}
	var head struct {
		Op string `json:"op"`
	}
	if err := json.Unmarshal(env.Payload, &head); err != nil || head.Op == "" {
		return invalid("", "a command's payload is an object with an op (one of %s)", strings.Join(ops, ", "))
	}
	name := head.Op
	if !slices.Contains(ops, name) {
		return operation{name: name}, &Problem{Ref: env.ID, Code: CodeUnknownOp, Message: fmt.Sprintf("unknown op %q (one of %s)", name, strings.Join(ops, ", "))}
	}
	decode := func(v any) *Problem {
		if err := strict(env.Payload, v); err != nil {
			return &Problem{Ref: env.ID, Code: CodeInvalid, Message: fmt.Sprintf("%s: %v", name, err)}
		}
		return nil
	}
	needGroup := func(g string) *Problem {
		if g == "" {
			return &Problem{Ref: env.ID, Code: CodeInvalid, Message: name + ": group is required"}
		}
		return nil
	}
	g := c.l.cfg.Groups
	op := operation{name: name}
	switch name {
	case "list":
		var a opOnly
		if p := decode(&a); p != nil {
			return op, p
		}
		op.readOnly = true
		op.apply = func(ctx context.Context) (any, error) { return g.List(ctx) }
	case "status", "pause", "resume":
		var a opGroup
		if p := firstProblem(decode(&a), func() *Problem { return needGroup(a.Group) }); p != nil {
			return op, p
		}
		switch name {
		case "status":
			op.readOnly = true
			op.apply = func(ctx context.Context) (any, error) { return g.Status(ctx, a.Group) }
		case "pause":
			op.apply = func(ctx context.Context) (any, error) {
				return map[string]any{"group": a.Group, "paused": true}, g.Pause(ctx, a.Group)
			}
		case "resume":
			op.apply = func(ctx context.Context) (any, error) {
				return map[string]any{"group": a.Group, "resumed": true}, g.Resume(ctx, a.Group)
			}
		}
	case "scale":
		var a opScale
		if p := firstProblem(decode(&a), func() *Problem { return needGroup(a.Group) }); p != nil {
			return op, p
		}
		if reflect.ValueOf(a.ScaleRequest).IsZero() {
			return invalid(name, "scale: give at least one of desired, min, max")
		}
		op.apply = func(ctx context.Context) (any, error) { return g.Scale(ctx, a.Group, a.ScaleRequest) }
	case "protect":
		var a opProtect
		if p := firstProblem(decode(&a), func() *Problem { return needGroup(a.Group) }); p != nil {
			return op, p
		}
		if a.Instance == "" {
			return invalid(name, "protect: instance is required")
		}
		op.apply = func(ctx context.Context) (any, error) { return g.Protect(ctx, a.Group, a.Instance, !a.Off) }
	case "events":
		var a opEvents
		if p := firstProblem(decode(&a), func() *Problem { return needGroup(a.Group) }); p != nil {
			return op, p
		}
		since, p := positiveDuration(env.ID, "events: since", a.Since, defaultEventsSince)
		if p != nil {
			return op, p
		}
		op.readOnly = true
		op.apply = func(ctx context.Context) (any, error) {
			events, err := g.Events(ctx, a.Group, time.Now().Add(-since))
			if err != nil {
				return nil, err
			}
			return decisions(events), nil
		}
	case "create", "update":
		var a opFile
		if p := firstProblem(decode(&a), func() *Problem { return needGroup(a.Group) }); p != nil {
			return op, p
		}
		if name == "update" && len(a.File) == 0 {
			return invalid(name, "update: file is required: the group file with the new spec")
		}
		gs, err := c.groupSpec(env.ID, a.Group, a.File)
		if err != nil {
			return invalid(name, "%s: %v", name, err)
		}
		if name == "create" {
			op.apply = func(ctx context.Context) (any, error) {
				res, err := g.Apply(ctx, gs)
				if err != nil {
					return nil, err
				}
				return map[string]any{"group": gs.Name, "workflowId": spec.GroupWorkflowID(gs.Name), "runId": res.RunID, "started": res.Started}, nil
			}
		} else {
			op.apply = func(ctx context.Context) (any, error) {
				return map[string]any{"group": gs.Name, "updated": true}, g.Update(ctx, gs)
			}
		}
	case "delete":
		var a opDelete
		if p := firstProblem(decode(&a), func() *Problem { return needGroup(a.Group) }); p != nil {
			return op, p
		}
		timeout, p := positiveDuration(env.ID, "delete: timeout", a.Timeout, defaultDeleteTimeout)
		if p != nil {
			return op, p
		}
		op.apply = func(ctx context.Context) (any, error) {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			return map[string]any{"group": a.Group, "deleted": true}, g.Delete(ctx, a.Group)
		}
	}
	return op, nil
}

func firstProblem(p *Problem, next func() *Problem) *Problem {
	if p != nil {
		return p
	}
	return next()
}

// positiveDuration reads a duration field, empty meaning def.
func positiveDuration(ref, what, s string, def time.Duration) (time.Duration, *Problem) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, &Problem{Ref: ref, Code: CodeInvalid, Message: fmt.Sprintf("%s %q: must be a positive duration such as 30m or 24h", what, s)}
	}
	return d, nil
}

// groupSpec builds the spec of group name as `group create [-f FILE]` does: from the agent's
// config without a file, else through config.ParseGroupFile, checked against the config's
// hosts, and (*config.Controller).GroupSpec. Variables are not taken from the agent's
// environment ($VAR is "not set"; ${VAR:-default} gives the default): a value from the
// platform must not read the agent's secrets into a message.
func (c *commander) groupSpec(id, name string, file json.RawMessage) (spec.Group, error) {
	cfg := c.l.cfg.Agent
	groups := cfg.Controller.Autoscale.Groups
	source := "the agent's config"
	if len(file) > 0 {
		data := []byte(file)
		var text string
		if err := json.Unmarshal(file, &text); err == nil {
			data = []byte(text)
		}
		source = filepath.Join(c.l.cfg.ConfigDir, "platform-command-"+safeName(id)+".yaml")
		var err error
		if groups, err = config.ParseGroupFile(data, source, noEnv, cfg); err != nil {
			return spec.Group{}, err
		}
		source = "the group file"
	}
	grp, ok := groups[name]
	if !ok {
		names := make([]string, 0, len(groups))
		for n := range groups {
			names = append(names, n)
		}
		slices.Sort(names)
		return spec.Group{}, fmt.Errorf("group %q is not defined in %s (groups there: %s)", name, source, strings.Join(names, ", "))
	}
	return cfg.Controller.GroupSpec(name, grp)
}

func noEnv(string) (string, bool) { return "", false }

// safeName keeps a command id usable in a file name shown in messages.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r < ' ' {
			return '_'
		}
		return r
	}, s)
}

// decisions turns decision-log rows into the payload of "decision" events.
func decisions(events []state.ScalingEvent) []state.DecisionEvent {
	out := make([]state.DecisionEvent, 0, len(events))
	for _, e := range events {
		out = append(out, state.DecisionEvent{
			Key: e.Key, Group: e.Group, At: e.At, From: e.From, To: e.To, Action: e.Action, Outcome: e.Outcome,
			Winner: e.Winner, Reason: e.Reason, Metrics: e.Metrics, Checks: e.Checks, WorkflowID: e.WorkflowID, RunID: e.RunID,
		})
	}
	return out
}
