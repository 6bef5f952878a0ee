package platform

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
)

// ProtocolVersion is the envelope version this agent speaks ("v"). docs/platform-protocol.md
// describes it.
const ProtocolVersion = 1

// Envelope is every message in both directions: one JSON text message each.
type Envelope struct {
	V    int    `json:"v"`
	Type string `json:"type"`
	// ID is unique per message; acknowledgements and command results refer to it.
	ID string    `json:"id"`
	At time.Time `json:"at"`
	// Agent is the agent id from the registration (agent → platform only).
	Agent   string          `json:"agent,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Message types, agent → platform.
const (
	TypeHello          = "hello"
	TypeGroupStatus    = "group.status"
	TypeGroupRemoved   = "group.removed"
	TypeDecision       = state.OutboxDecision
	TypeInstance       = state.OutboxInstance
	TypeHostCapacity   = "host.capacity"
	TypeOutboxOverflow = "outbox.overflow"
	TypeCommandResult  = "command.result"
	TypeError          = "error"
)

// Message types, platform → agent.
const (
	TypeAck     = "ack"
	TypeCommand = "command"
)

// Error codes of "error" messages and of failed command results.
const (
	CodeMalformed   = "malformed"
	CodeTooLarge    = "too-large"
	CodeUnknownType = "unknown-type"
	CodeVersion     = "unsupported-version"
	CodeUnknownOp   = "unknown-op"
	CodeInvalid     = "invalid"
	CodeBusy        = "busy"
	CodeInProgress  = "in-progress"
	CodeNotRunning  = "not-running"
	CodeFailed      = "failed"
	CodeUnavailable = "unavailable"
)

// Hello is the first message on every connection.
type Hello struct {
	Protocol int    `json:"protocol"`
	Version  string `json:"version"`
	AgentID  string `json:"agentId"`
	// Hosts are the installation's hypervisors, from the config.
	Hosts []HelloHost `json:"hosts"`
	// Groups is every running group's status: a group absent here is gone.
	Groups []spec.GroupStatus `json:"groups"`
	// GroupsError says why Groups is missing (Temporal could not be asked).
	GroupsError string      `json:"groupsError,omitempty"`
	Outbox      OutboxState `json:"outbox"`
	Limits      Limits      `json:"limits"`
}

// HelloHost is one hypervisor of the installation.
type HelloHost struct {
	Name       string `json:"name"`
	Hypervisor string `json:"hypervisor"`
}

// OutboxState is the outbox's size at hello, and how many events it ever dropped.
type OutboxState struct {
	Pending int64 `json:"pending"`
	Dropped int64 `json:"dropped"`
}

// Limits tells the platform what the agent accepts.
type Limits struct {
	MaxMessageBytes int64 `json:"maxMessageBytes"`
}

// GroupRemoved says a group the agent reported is no longer running.
type GroupRemoved struct {
	Group string `json:"group"`
}

// HostCapacity is one hypervisor's size and use.
type HostCapacity struct {
	Host            string `json:"host"`
	Model           string `json:"model,omitempty"`
	CPUs            int    `json:"cpus"`
	MHz             int    `json:"mhz,omitempty"`
	MemoryBytes     uint64 `json:"memoryBytes"`
	FreeMemoryBytes uint64 `json:"freeMemoryBytes"`
	// Domains counts PremiScale's domains on the host.
	Domains int `json:"domains"`
}

// Overflow says the outbox was over its limit and its oldest events were dropped.
type Overflow struct {
	Dropped int64 `json:"dropped"`
	Total   int64 `json:"total"`
	Limit   int   `json:"limit"`
}

// Ack acknowledges delivered events by id.
type Ack struct {
	IDs []string `json:"ids"`
}

// Result answers a command.
type Result struct {
	Command string          `json:"command"`
	Op      string          `json:"op,omitempty"`
	OK      bool            `json:"ok"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *Problem        `json:"error,omitempty"`
	// Duplicate marks the stored result of a command id seen before, sent again.
	Duplicate bool `json:"duplicate,omitempty"`
}

// Problem is what went wrong: the payload of an "error" message, and a failed result's error.
type Problem struct {
	// Ref is the id of the message it answers, when it could be read.
	Ref     string `json:"ref,omitempty"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// newID returns a fresh message id.
func newID(prefix string) string { return prefix + "-" + strings.ToLower(rand.Text()) }

// encode builds one message.
func encode(typ, id, agent string, at time.Time, payload any) ([]byte, error) {
	raw, ok := payload.(json.RawMessage)
	if !ok {
		var err error
		if raw, err = json.Marshal(payload); err != nil {
			return nil, err
		}
	}
	return json.Marshal(Envelope{V: ProtocolVersion, Type: typ, ID: id, At: at.UTC(), Agent: agent, Payload: raw})
}

// decode reads a message from the platform, or says why it cannot.
func decode(data []byte) (Envelope, *Problem) {
	var env Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return Envelope{}, &Problem{Code: CodeMalformed, Message: "not a JSON envelope: " + err.Error()}
	}
	switch {
	case env.V != 0 && env.V != ProtocolVersion:
		return env, &Problem{Ref: env.ID, Code: CodeVersion, Message: "this agent speaks protocol version 1"}
	case env.Type == "":
		return env, &Problem{Ref: env.ID, Code: CodeMalformed, Message: "the envelope has no type"}
	case env.ID == "":
		return env, &Problem{Code: CodeMalformed, Message: "the envelope has no id"}
	}
	return env, nil
}

// strict decodes a payload, refusing fields the type does not have.
func strict(payload json.RawMessage, v any) error {
	if len(payload) == 0 {
		payload = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errTrailing
	}
	return nil
}

var errTrailing = errors.New("unexpected data after the payload")
