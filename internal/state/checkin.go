package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/premiscale/premiscale/internal/spec"
)

// ErrRetired is returned (wrapped) when a terminated instance checks in: its VM is gone, or is
// a leftover that must not be taken back into its group.
var ErrRetired = errors.New("instance is retired")

// maxSettingValue is the size of the settings.value column.
const maxSettingValue = 1024

// RecordCheckin notes that an instance's VM called in at the given time (zero means now). The
// first call sets checked_in_at and returns first=true; every call moves last_seen_at forward
// (never back, so a delayed request does not undo a later one) and, when address is not empty,
// records it. A terminated instance is left alone and yields ErrRetired; an unknown one
// ErrNotFound. Names match byte for byte: "web-1 " is not web-1.
func (s *Store) RecordCheckin(ctx context.Context, name, address string, at time.Time) (first bool, err error) {
	at = orNow(at)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("record check-in of instance %s in %s: %w", name, s.where, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()

	// The row lock makes concurrent check-ins of one instance queue here, so exactly one of
	// them sees checked_in_at NULL and reports itself first.
	var state string
	var checked sql.NullTime
	err = tx.QueryRowContext(ctx, "SELECT state, checked_in_at FROM instances WHERE "+exactly("name")+" FOR UPDATE", name, name).Scan(&state, &checked)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("record check-in of instance %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("record check-in of instance %s in %s: %w", name, s.where, err)
	}
	if state == spec.StateTerminated || state == spec.StateFailed {
		return false, fmt.Errorf("record check-in of instance %s: %w", name, ErrRetired)
	}

	q := "UPDATE instances SET " +
		"checked_in_at = COALESCE(checked_in_at, ?), " +
		"last_seen_at = GREATEST(COALESCE(last_seen_at, ?), ?), " +
		"address = IF(? = '', address, ?) " +
		"WHERE " + exactly("name")
	if _, err = tx.ExecContext(ctx, q, at, at, at, address, address, name, name); err != nil {
		return false, fmt.Errorf("record check-in of instance %s in %s: %w", name, s.where, err)
	}
	if err = tx.Commit(); err != nil {
		return false, fmt.Errorf("record check-in of instance %s in %s: %w", name, s.where, err)
	}
	return !checked.Valid, nil
}

// UndoFirstCheckin clears the check-in time RecordCheckin set at `at`, when it is still that
// one. The check-in server calls it when it recorded a first check-in but could not tell the
// instance's workflow, so that the guest's retry counts as first again instead of as a
// heartbeat the workflow never hears of. Other check-in times are left alone, so an undo that
// arrives late cannot erase a later, successful first check-in.
func (s *Store) UndoFirstCheckin(ctx context.Context, name string, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("undo first check-in of instance %s: time is zero", name)
	}
	_, err := s.db.ExecContext(ctx, "UPDATE instances SET checked_in_at = NULL WHERE "+exactly("name")+" AND checked_in_at = ? AND state NOT IN (?, ?)",
		name, name, at.UTC(), spec.StateTerminated, spec.StateFailed)
	if err != nil {
		return fmt.Errorf("undo first check-in of instance %s in %s: %w", name, s.where, err)
	}
	return nil
}

// Secret returns the shared setting called name, creating it from generate when it does not
// exist yet. Workers that race to create it all return the value stored first, so every worker
// signs and checks tokens with the same secret.
func (s *Store) Secret(ctx context.Context, name string, generate func() ([]byte, error)) ([]byte, error) {
	v, ok, err := s.setting(ctx, name)
	if err != nil || ok {
		return v, err
	}

	fresh, err := generate()
	if err != nil {
		return nil, fmt.Errorf("generate setting %s: %w", name, err)
	}
	if len(fresh) == 0 || len(fresh) > maxSettingValue {
		return nil, fmt.Errorf("generate setting %s: got %d bytes, want 1 to %d", name, len(fresh), maxSettingValue)
	}
	// A no-op update rather than INSERT IGNORE: IGNORE would also turn real errors (such as a
	// value too long for the column) into warnings and store a truncated secret.
	_, err = s.db.ExecContext(ctx, "INSERT INTO settings (name, value, created_at) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE name = name",
		name, fresh, time.Now().UTC())
	if err != nil {
		return nil, fmt.Errorf("store setting %s in %s: %w", name, s.where, err)
	}

	// Re-read: another worker may have stored its value between our read and our insert.
	v, ok, err = s.setting(ctx, name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("setting %s is missing from %s right after it was stored", name, s.where)
	}
	return v, nil
}

func (s *Store) setting(ctx context.Context, name string) ([]byte, bool, error) {
	var v []byte
	err := s.db.QueryRowContext(ctx, "SELECT value FROM settings WHERE name = ?", name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read setting %s from %s: %w", name, s.where, err)
	}
	return v, true, nil
}
