package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// The outbox holds what the platform link (internal/platform) must deliver to the PremiScale
// platform. It fills only while the installation is registered with a platform (a row in
// platform_registration): a standalone installation writes nothing there. The store itself
// adds decision-log entries and instance state changes, in the same transaction as the write
// that makes them, so no change is lost between the two; the link adds group status, host
// capacity and command results.

// Event types the store writes itself.
const (
	OutboxDecision = "decision"
	OutboxInstance = "instance"
)

// CounterOutboxDropped counts the events TrimOutbox dropped, over the installation's life.
const CounterOutboxDropped = "outbox_dropped"

// OutboxEvent is one message waiting for the platform's acknowledgement.
type OutboxEvent struct {
	// Seq orders delivery; set by the store.
	Seq int64
	// ID is the envelope id the platform acknowledges; unique in the outbox.
	ID   string
	Type string
	// Key, when set, makes the event a snapshot: a newer snapshot with the same key replaces
	// a pending one. Snapshots are never dropped by TrimOutbox (there is one per key).
	Key     string
	At      time.Time
	Payload json.RawMessage
}

// DecisionEvent is the payload of a "decision" event: one row of the decision log.
type DecisionEvent struct {
	Key        string             `json:"key"`
	Group      string             `json:"group"`
	At         time.Time          `json:"at"`
	From       int                `json:"from"`
	To         int                `json:"to"`
	Action     string             `json:"action"`
	Outcome    string             `json:"outcome"`
	Winner     string             `json:"winner,omitempty"`
	Reason     string             `json:"reason"`
	Metrics    map[string]float64 `json:"metrics"`
	Checks     json.RawMessage    `json:"checks,omitempty"`
	WorkflowID string             `json:"workflowId"`
	RunID      string             `json:"runId"`
}

// InstanceEvent is the payload of an "instance" event: an instance's record right after its
// state changed.
type InstanceEvent struct {
	Name         string     `json:"name"`
	Group        string     `json:"group"`
	Host         string     `json:"host"`
	State        string     `json:"state"`
	Previous     string     `json:"previous,omitempty"`
	Address      string     `json:"address,omitempty"`
	Reason       string     `json:"reason,omitempty"`
	CreatedAt    time.Time  `json:"createdAt"`
	CheckedInAt  *time.Time `json:"checkedInAt,omitempty"`
	TerminatedAt *time.Time `json:"terminatedAt,omitempty"`
}

// execer is what both *sql.DB and *sql.Tx offer.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// enqueueSQL adds an event only while a registration exists, and leaves an event with the
// same id alone, so a retried write never duplicates one.
const enqueueSQL = "INSERT INTO platform_outbox (event_id, type, coalesce_key, `at`, payload) " +
	"SELECT ?, ?, ?, ?, ? FROM DUAL WHERE EXISTS (SELECT 1 FROM platform_registration) " +
	"ON DUPLICATE KEY UPDATE seq = seq"

func enqueue(ctx context.Context, x execer, e OutboxEvent) (bool, error) {
	if e.ID == "" || e.Type == "" {
		return false, fmt.Errorf("outbox event needs an id and a type, got %q and %q", e.ID, e.Type)
	}
	if !json.Valid(e.Payload) {
		return false, fmt.Errorf("outbox event %s: payload is not valid JSON", e.ID)
	}
	var key any
	if e.Key != "" {
		key = e.Key
	}
	res, err := x.ExecContext(ctx, enqueueSQL, e.ID, e.Type, key, orNow(e.At), []byte(e.Payload))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// Enqueue adds an event to the outbox, unless the installation has no registration or an
// event with the same ID is pending; it says whether it added one.
func (s *Store) Enqueue(ctx context.Context, e OutboxEvent) (bool, error) {
	if e.Key != "" {
		return false, fmt.Errorf("outbox event %s has a key: use EnqueueSnapshot", e.ID)
	}
	added, err := enqueue(ctx, s.db, e)
	if err != nil {
		return false, fmt.Errorf("add %s event %s to the outbox in %s: %w", e.Type, e.ID, s.where, err)
	}
	return added, nil
}

// EnqueueSnapshot replaces the pending snapshot with e.Key, if any, by e. The replacement
// gets a new place at the end of the outbox, and e.ID must be new: an acknowledgement of the
// replaced snapshot then cannot remove this one.
func (s *Store) EnqueueSnapshot(ctx context.Context, e OutboxEvent) (bool, error) {
	if e.Key == "" {
		return false, fmt.Errorf("outbox snapshot %s has no key", e.ID)
	}
	var added bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM platform_outbox WHERE coalesce_key = ?", e.Key); err != nil {
			return err
		}
		var err error
		added, err = enqueue(ctx, tx, e)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("add %s snapshot %s to the outbox in %s: %w", e.Type, e.Key, s.where, err)
	}
	return added, nil
}

// PendingEvents returns up to limit events after seq, in delivery order.
func (s *Store) PendingEvents(ctx context.Context, afterSeq int64, limit int) ([]OutboxEvent, error) {
	return s.scanEvents(ctx, "SELECT seq, event_id, type, COALESCE(coalesce_key, ''), `at`, payload FROM platform_outbox WHERE seq > ? ORDER BY seq LIMIT ?", afterSeq, limit)
}

// PendingIDs returns the seq and id (no payload) of up to limit events at or before seq,
// in delivery order. The sender uses it to find events that committed after later ones
// (concurrent writers): their seq is below what it has read already.
func (s *Store) PendingIDs(ctx context.Context, upToSeq int64, limit int) ([]OutboxEvent, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT seq, event_id FROM platform_outbox WHERE seq <= ? ORDER BY seq LIMIT ?", upToSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("read the outbox in %s: %w", s.where, err)
	}
	defer rows.Close()
	var out []OutboxEvent
	for rows.Next() {
		var e OutboxEvent
		if err := rows.Scan(&e.Seq, &e.ID); err != nil {
			return nil, fmt.Errorf("read the outbox in %s: %w", s.where, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the outbox in %s: %w", s.where, err)
	}
	return out, nil
}

// EventsBySeq returns the pending events among seqs, in delivery order.
func (s *Store) EventsBySeq(ctx context.Context, seqs []int64) ([]OutboxEvent, error) {
	if len(seqs) == 0 {
		return nil, nil
	}
	args := make([]any, len(seqs))
	for i, v := range seqs {
		args[i] = v
	}
	q := "SELECT seq, event_id, type, COALESCE(coalesce_key, ''), `at`, payload FROM platform_outbox WHERE seq IN (?" + strings.Repeat(", ?", len(seqs)-1) + ") ORDER BY seq"
	return s.scanEvents(ctx, q, args...)
}

func (s *Store) scanEvents(ctx context.Context, q string, args ...any) ([]OutboxEvent, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read the outbox in %s: %w", s.where, err)
	}
	defer rows.Close()
	var out []OutboxEvent
	for rows.Next() {
		var e OutboxEvent
		var payload []byte
		if err := rows.Scan(&e.Seq, &e.ID, &e.Type, &e.Key, &e.At, &payload); err != nil {
			return nil, fmt.Errorf("read the outbox in %s: %w", s.where, err)
		}
		e.Payload = payload
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the outbox in %s: %w", s.where, err)
	}
	return out, nil
}

// ackBatch bounds the ids of one DELETE.
const ackBatch = 500

// AckEvents removes acknowledged events; unknown ids are ignored. It returns how many it removed.
func (s *Store) AckEvents(ctx context.Context, ids []string) (int64, error) {
	var total int64
	for len(ids) > 0 {
		batch := ids[:min(len(ids), ackBatch)]
		ids = ids[len(batch):]
		args := make([]any, len(batch))
		for i, id := range batch {
			args[i] = id
		}
		q := "DELETE FROM platform_outbox WHERE event_id IN (?" + strings.Repeat(", ?", len(batch)-1) + ")"
		res, err := s.db.ExecContext(ctx, q, args...)
		if err != nil {
			return total, fmt.Errorf("remove acknowledged events from the outbox in %s: %w", s.where, err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}

// OutboxCounts returns the number of pending events and snapshots, and how many events were
// ever dropped.
func (s *Store) OutboxCounts(ctx context.Context) (pending, dropped int64, err error) {
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM platform_outbox").Scan(&pending); err != nil {
		return 0, 0, fmt.Errorf("count the outbox in %s: %w", s.where, err)
	}
	dropped, err = s.Counter(ctx, CounterOutboxDropped)
	return pending, dropped, err
}

// TrimOutbox keeps at most maxEvents pending events (snapshots are not counted: there is one
// per key) by removing the oldest, adds their number to CounterOutboxDropped, and returns
// how many it removed now and in total.
func (s *Store) TrimOutbox(ctx context.Context, maxEvents int) (dropped, total int64, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		dropped, total = 0, 0
		var cutoff int64
		err := tx.QueryRowContext(ctx, "SELECT seq FROM platform_outbox WHERE coalesce_key IS NULL ORDER BY seq DESC LIMIT 1 OFFSET ?", maxEvents).Scan(&cutoff)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM platform_outbox WHERE coalesce_key IS NULL AND seq <= ?", cutoff)
		if err != nil {
			return err
		}
		if dropped, err = res.RowsAffected(); err != nil || dropped == 0 {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO platform_counters (name, value) VALUES (?, ?) ON DUPLICATE KEY UPDATE value = value + VALUES(value)",
			CounterOutboxDropped, dropped); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, "SELECT value FROM platform_counters WHERE name = ?", CounterOutboxDropped).Scan(&total)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("trim the outbox in %s: %w", s.where, err)
	}
	return dropped, total, nil
}

// Counter returns a platform counter (0 when never set).
func (s *Store) Counter(ctx context.Context, name string) (int64, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, "SELECT value FROM platform_counters WHERE name = ?", name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read counter %s in %s: %w", name, s.where, err)
	}
	return v, nil
}

// enqueueDecision adds a new decision-log row to the outbox (in the transaction that wrote it).
func enqueueDecision(ctx context.Context, x execer, e ScalingEvent, at time.Time, metrics map[string]float64) error {
	payload, err := json.Marshal(DecisionEvent{
		Key: e.Key, Group: e.Group, At: at, From: e.From, To: e.To, Action: e.Action, Outcome: e.Outcome,
		Winner: e.Winner, Reason: truncate(e.Reason, maxReason), Metrics: metrics, Checks: e.Checks,
		WorkflowID: e.WorkflowID, RunID: e.RunID,
	})
	if err != nil {
		return fmt.Errorf("encode the decision for the outbox: %w", err)
	}
	_, err = enqueue(ctx, x, OutboxEvent{ID: "decision/" + e.Key, Type: OutboxDecision, At: at, Payload: payload})
	return err
}

// enqueueInstanceChange adds an instance's new state to the outbox when it differs from
// before (in the transaction that changed it). The id names the instance and the state, so
// a retried write that repeats a change finds it pending and adds nothing.
func enqueueInstanceChange(ctx context.Context, x execer, before sql.NullString, in Instance) error {
	if before.Valid && before.String == in.State {
		return nil
	}
	ev := InstanceEvent{
		Name: in.Name, Group: in.Group, Host: in.Host, State: in.State, Address: in.Address, Reason: in.Reason,
		CreatedAt: in.CreatedAt, CheckedInAt: in.CheckedInAt, TerminatedAt: in.TerminatedAt,
	}
	if before.Valid {
		ev.Previous = before.String
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode instance %s for the outbox: %w", in.Name, err)
	}
	_, err = enqueue(ctx, x, OutboxEvent{ID: "instance/" + in.Name + "/" + in.State, Type: OutboxInstance, Payload: payload})
	return err
}

// Server errors a transaction is simply run again after.
const (
	errDeadlock    = 1213 // ER_LOCK_DEADLOCK
	errLockTimeout = 1205 // ER_LOCK_WAIT_TIMEOUT
)

// inTx runs f in a transaction, again (up to three times) when the server chose it as a
// deadlock victim.
func (s *Store) inTx(ctx context.Context, f func(*sql.Tx) error) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.tryTx(ctx, f); err == nil {
			return nil
		}
		var my *mysql.MySQLError
		if !errors.As(err, &my) || (my.Number != errDeadlock && my.Number != errLockTimeout) {
			return err
		}
	}
	return err
}

func (s *Store) tryTx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
