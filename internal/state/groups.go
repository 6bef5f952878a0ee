package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// GroupRecord is an autoscaling group as the state database remembers it.
type GroupRecord struct {
	Name string
	// Spec is the group's configuration as JSON.
	Spec       json.RawMessage
	WorkflowID string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	// DeletedAt is set once the group has been deleted.
	DeletedAt *time.Time
}

// UpsertGroup records a group, or updates its spec and workflow. A write is ordered by its
// UpdatedAt (zero means now): a retried write older than what is stored does not roll the spec
// back, and it undoes a deletion only when it is newer than the deletion.
func (s *Store) UpsertGroup(ctx context.Context, g GroupRecord) error {
	if err := checkName("group", g.Name); err != nil {
		return fmt.Errorf("upsert group: %w", err)
	}
	spec := g.Spec
	if len(spec) == 0 {
		spec = json.RawMessage("{}")
	}
	if !json.Valid(spec) {
		return fmt.Errorf("upsert group %s: spec is not valid JSON", g.Name)
	}
	updated := orNow(g.UpdatedAt)
	created := g.CreatedAt.UTC()
	if g.CreatedAt.IsZero() {
		created = updated
	}
	// MySQL applies ON DUPLICATE KEY assignments left to right, each seeing the columns already
	// assigned, so updated_at, which the others compare with, comes last.
	const q = "INSERT INTO `groups` (name, spec, workflow_id, created_at, updated_at, deleted_at) VALUES (?, ?, ?, ?, ?, ?) " +
		"ON DUPLICATE KEY UPDATE " +
		"spec = IF(VALUES(updated_at) >= updated_at, VALUES(spec), spec), " +
		"workflow_id = IF(VALUES(updated_at) >= updated_at AND VALUES(workflow_id) <> '', VALUES(workflow_id), workflow_id), " +
		"deleted_at = IF(deleted_at IS NULL OR VALUES(updated_at) > deleted_at, VALUES(deleted_at), deleted_at), " +
		"created_at = LEAST(created_at, VALUES(created_at)), " +
		"updated_at = GREATEST(updated_at, VALUES(updated_at))"
	if _, err := s.db.ExecContext(ctx, q, g.Name, string(spec), g.WorkflowID, created, updated, nullTime(g.DeletedAt)); err != nil {
		return fmt.Errorf("upsert group %s in %s: %w", g.Name, s.where, err)
	}
	return nil
}

// MarkGroupDeleted records that a group was deleted at the given time (zero means now). Marking
// a deleted group again keeps the first time. It returns an error wrapping ErrNotFound when no
// such group was ever recorded.
func (s *Store) MarkGroupDeleted(ctx context.Context, name string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, "UPDATE `groups` SET deleted_at = COALESCE(deleted_at, ?) WHERE "+exactly("name"), orNow(at), name, name)
	if err != nil {
		return fmt.Errorf("mark group %s deleted in %s: %w", name, s.where, err)
	}
	if n, err := res.RowsAffected(); err == nil && n > 0 {
		return nil
	}
	// Zero rows changed means either no such group or one already marked: tell them apart.
	var one int
	err = s.db.QueryRowContext(ctx, "SELECT 1 FROM `groups` WHERE "+exactly("name"), name, name).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("mark group %s deleted: group %w", name, ErrNotFound)
	case err != nil:
		return fmt.Errorf("mark group %s deleted in %s: %w", name, s.where, err)
	}
	return nil
}

// ListGroups returns every recorded group, deleted ones included, ordered by name.
func (s *Store) ListGroups(ctx context.Context) ([]GroupRecord, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT name, spec, workflow_id, created_at, updated_at, deleted_at FROM `groups` ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list groups in %s: %w", s.where, err)
	}
	defer rows.Close()
	var out []GroupRecord
	for rows.Next() {
		var g GroupRecord
		var spec []byte
		var deleted sql.NullTime
		if err := rows.Scan(&g.Name, &spec, &g.WorkflowID, &g.CreatedAt, &g.UpdatedAt, &deleted); err != nil {
			return nil, fmt.Errorf("list groups in %s: %w", s.where, err)
		}
		g.Spec = json.RawMessage(spec)
		g.DeletedAt = timePtr(deleted)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list groups in %s: %w", s.where, err)
	}
	return out, nil
}
