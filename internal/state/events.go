package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// ScalingEvent is one entry of the decision log: what a group's evaluation saw and did.
type ScalingEvent struct {
	// Key makes recording idempotent; the caller picks one that names the evaluation, such as
	// workflow ID, run ID and evaluation number.
	Key   string
	Group string
	// At zero means now.
	At   time.Time
	From int
	To   int
	// Metrics maps a metric name to the value the decision used.
	Metrics map[string]float64
	Reason  string
	Action  string
	// Outcome is what was done about it: acted, held, paused, dry-run, deleting.
	Outcome string
	// Winner names the check whose recommendation won.
	Winner string
	// Checks is every check's input and recommendation, as JSON.
	Checks     json.RawMessage
	WorkflowID string
	RunID      string
	// Repeats counts the later evaluations that came to the same decision for the same reason
	// (not written as rows of their own); LastRepeatAt is the time of the last of them.
	Repeats      int
	LastRepeatAt *time.Time
}

// SetScalingEventRepeats records how many later evaluations repeated the event with key, and
// when the last one was. Setting the same values again changes nothing.
func (s *Store) SetScalingEventRepeats(ctx context.Context, key string, repeats int, lastAt time.Time) error {
	if key == "" {
		return errors.New("set repeats of a scaling event: key is empty")
	}
	const q = "UPDATE scaling_events SET repeats = ?, last_repeat_at = ? WHERE event_key = ?"
	if _, err := s.db.ExecContext(ctx, q, repeats, lastAt.UTC(), key); err != nil {
		return fmt.Errorf("set repeats of scaling event %s in %s: %w", key, s.where, err)
	}
	return nil
}

// RecordScalingEvent writes e unless an event with the same Key exists, and says whether it
// wrote it. A retry with the same Key changes nothing.
func (s *Store) RecordScalingEvent(ctx context.Context, e ScalingEvent) (bool, error) {
	if e.Key == "" {
		return false, fmt.Errorf("record scaling event for group %s: key is empty", e.Group)
	}
	if e.Group == "" {
		return false, fmt.Errorf("record scaling event %s: group is empty", e.Key)
	}
	metrics := e.Metrics
	if metrics == nil {
		metrics = map[string]float64{}
	}
	for name, v := range metrics {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false, fmt.Errorf("record scaling event %s for group %s: metric %s is %v, which JSON cannot hold", e.Key, e.Group, name, v)
		}
	}
	mj, err := json.Marshal(metrics)
	if err != nil {
		return false, fmt.Errorf("record scaling event %s for group %s: encode metrics: %w", e.Key, e.Group, err)
	}
	// "id = id" makes a duplicate key a no-op that reports 0 affected rows, without INSERT
	// IGNORE's habit of turning every other error into a warning too.
	var checks any
	if len(e.Checks) > 0 {
		checks = string(e.Checks)
	}
	const q = "INSERT INTO scaling_events (event_key, group_name, `at`, from_size, to_size, metrics, reason, action, outcome, winner, checks, workflow_id, run_id) " +
		"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE id = id"
	at := orNow(e.At)
	var n int64
	// A new row goes to the platform's outbox in the same transaction (see outbox.go).
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, e.Key, e.Group, at, e.From, e.To, string(mj),
			truncate(e.Reason, maxReason), e.Action, e.Outcome, e.Winner, checks, e.WorkflowID, e.RunID)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n != 1 {
			return err
		}
		return enqueueDecision(ctx, tx, e, at, metrics)
	})
	if err != nil {
		return false, fmt.Errorf("record scaling event %s for group %s in %s: %w", e.Key, e.Group, s.where, err)
	}
	return n == 1, nil
}

// ListScalingEvents returns a group's events at or after since, oldest first.
func (s *Store) ListScalingEvents(ctx context.Context, group string, since time.Time) ([]ScalingEvent, error) {
	if group == "" {
		return nil, errors.New("list scaling events: group is empty")
	}
	q := "SELECT event_key, group_name, `at`, from_size, to_size, metrics, reason, action, outcome, winner, checks, workflow_id, run_id, repeats, last_repeat_at " +
		"FROM scaling_events WHERE " + exactly("group_name") + " AND `at` >= ? ORDER BY `at`, id"
	rows, err := s.db.QueryContext(ctx, q, group, group, since.UTC())
	if err != nil {
		return nil, fmt.Errorf("list scaling events of group %s in %s: %w", group, s.where, err)
	}
	defer rows.Close()
	var out []ScalingEvent
	for rows.Next() {
		var e ScalingEvent
		var mj, checks []byte
		var lastRepeat sql.NullTime
		if err := rows.Scan(&e.Key, &e.Group, &e.At, &e.From, &e.To, &mj, &e.Reason, &e.Action, &e.Outcome, &e.Winner, &checks, &e.WorkflowID, &e.RunID,
			&e.Repeats, &lastRepeat); err != nil {
			return nil, fmt.Errorf("list scaling events of group %s in %s: %w", group, s.where, err)
		}
		if err := json.Unmarshal(mj, &e.Metrics); err != nil {
			return nil, fmt.Errorf("list scaling events of group %s in %s: event %s: decode metrics: %w", group, s.where, e.Key, err)
		}
		if len(checks) > 0 {
			e.Checks = json.RawMessage(checks)
		}
		if lastRepeat.Valid {
			t := lastRepeat.Time
			e.LastRepeatAt = &t
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list scaling events of group %s in %s: %w", group, s.where, err)
	}
	return out, nil
}
