package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/premiscale/premiscale/internal/spec"
)

// Instance is one VM of a group.
type Instance struct {
	Name    string
	Group   string
	Host    string
	State   string
	Address string
	Reason  string
	// CreatedAt zero means now.
	CreatedAt    time.Time
	CheckedInAt  *time.Time
	LastSeenAt   *time.Time
	TerminatedAt *time.Time
}

// UpsertInstance records an instance or updates it, so that writes may be retried and arrive
// late without undoing later ones:
//   - an ended instance stays ended (a failed one may still become terminated), and its host,
//     address and reason stay as they were;
//   - an empty host, address or reason leaves the stored one alone;
//   - check-in and termination times keep the first one written, last-seen the latest;
//   - the group and creation time never change.
func (s *Store) UpsertInstance(ctx context.Context, in Instance) error {
	if err := validInstance(in); err != nil {
		return err
	}
	// A change of state goes to the platform's outbox in the same transaction (see outbox.go).
	if err := s.inTx(ctx, func(tx *sql.Tx) error { return upsertInstance(ctx, tx, in) }); err != nil {
		return fmt.Errorf("upsert instance %s (group %s, state %s) in %s: %w", in.Name, in.Group, in.State, s.where, err)
	}
	return nil
}

// UpsertInstances upserts each instance as UpsertInstance does, all in one transaction: a
// worker's burst of state changes (a scale-out's instances) costs one commit. One that fails
// fails them all.
func (s *Store) UpsertInstances(ctx context.Context, ins []Instance) error {
	for _, in := range ins {
		if err := validInstance(in); err != nil {
			return err
		}
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, in := range ins {
			if err := upsertInstance(ctx, tx, in); err != nil {
				return fmt.Errorf("instance %s (group %s, state %s): %w", in.Name, in.Group, in.State, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("upsert %d instances in %s: %w", len(ins), s.where, err)
	}
	return nil
}

func validInstance(in Instance) error {
	if err := checkName("instance", in.Name); err != nil {
		return fmt.Errorf("upsert instance: %w", err)
	}
	if in.Group == "" {
		return fmt.Errorf("upsert instance %s: group is empty", in.Name)
	}
	if in.State == "" {
		return fmt.Errorf("upsert instance %s: state is empty", in.Name)
	}
	return nil
}

// upsertInstanceQuery: MySQL applies ON DUPLICATE KEY assignments left to right, each seeing
// the columns already assigned, so state, which the others test, comes last.
const upsertInstanceQuery = "INSERT INTO instances (name, group_name, host, state, address, reason, created_at, checked_in_at, last_seen_at, terminated_at) " +
	"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE " +
	"host = IF(state IN ('terminated', 'failed') OR VALUES(host) = '', host, VALUES(host)), " +
	"address = IF(state IN ('terminated', 'failed') OR VALUES(address) = '', address, VALUES(address)), " +
	"reason = IF(state IN ('terminated', 'failed') OR VALUES(reason) = '', reason, VALUES(reason)), " +
	"checked_in_at = COALESCE(checked_in_at, VALUES(checked_in_at)), " +
	"last_seen_at = GREATEST(COALESCE(last_seen_at, VALUES(last_seen_at)), COALESCE(VALUES(last_seen_at), last_seen_at)), " +
	"terminated_at = COALESCE(terminated_at, VALUES(terminated_at)), " +
	"state = IF(state = 'terminated' OR (state = 'failed' AND VALUES(state) <> 'terminated'), state, VALUES(state))"

// upsertInstance writes one instance and, for a change of state, its outbox entry, in tx.
func upsertInstance(ctx context.Context, tx *sql.Tx, in Instance) error {
	var before sql.NullString
	if err := tx.QueryRowContext(ctx, "SELECT state FROM instances WHERE name = ?", in.Name).Scan(&before); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if _, err := tx.ExecContext(ctx, upsertInstanceQuery,
		in.Name, in.Group, in.Host, in.State, in.Address, truncate(in.Reason, maxReason),
		orNow(in.CreatedAt), nullTime(in.CheckedInAt), nullTime(in.LastSeenAt), nullTime(in.TerminatedAt)); err != nil {
		return err
	}
	after, err := scanInstance(tx.QueryRowContext(ctx, "SELECT "+instanceColumns+" FROM instances WHERE name = ?", in.Name))
	if err != nil {
		return err
	}
	return enqueueInstanceChange(ctx, tx, before, after)
}

const instanceColumns = "name, group_name, host, state, address, reason, created_at, checked_in_at, last_seen_at, terminated_at"

type scanner interface {
	Scan(dest ...any) error
}

func scanInstance(r scanner) (Instance, error) {
	var in Instance
	var checked, seen, terminated sql.NullTime
	err := r.Scan(&in.Name, &in.Group, &in.Host, &in.State, &in.Address, &in.Reason, &in.CreatedAt, &checked, &seen, &terminated)
	in.CheckedInAt, in.LastSeenAt, in.TerminatedAt = timePtr(checked), timePtr(seen), timePtr(terminated)
	return in, err
}

// GetInstance returns the named instance, and false when there is none. The name matches
// byte for byte.
func (s *Store) GetInstance(ctx context.Context, name string) (Instance, bool, error) {
	in, err := scanInstance(s.db.QueryRowContext(ctx, "SELECT "+instanceColumns+" FROM instances WHERE "+exactly("name"), name, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Instance{}, false, nil
	}
	if err != nil {
		return Instance{}, false, fmt.Errorf("get instance %s from %s: %w", name, s.where, err)
	}
	return in, true, nil
}

// ListInstances returns a group's instances (every group's when group is empty), without the
// ended ones (terminated or failed: their VMs are gone) unless includeTerminated. They are ordered by group, then by the number at the
// end of the name (so web-2 comes before web-10), then by name.
func (s *Store) ListInstances(ctx context.Context, group string, includeTerminated bool) ([]Instance, error) {
	q := "SELECT " + instanceColumns + " FROM instances WHERE 1 = 1"
	var args []any
	if group != "" {
		q += " AND " + exactly("group_name")
		args = append(args, group, group)
	}
	if !includeTerminated {
		q += " AND state NOT IN (?, ?)"
		args = append(args, spec.StateTerminated, spec.StateFailed)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list instances of group %q in %s: %w", group, s.where, err)
	}
	defer rows.Close()
	var out []Instance
	for rows.Next() {
		in, err := scanInstance(rows)
		if err != nil {
			return nil, fmt.Errorf("list instances of group %q in %s: %w", group, s.where, err)
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list instances of group %q in %s: %w", group, s.where, err)
	}
	sortInstances(out)
	return out, nil
}

// ListInstancesOnHost returns the live instances of every group on a host.
func (s *Store) ListInstancesOnHost(ctx context.Context, host string) ([]Instance, error) {
	q := "SELECT " + instanceColumns + " FROM instances WHERE BINARY host = ? AND state NOT IN (?, ?)"
	rows, err := s.db.QueryContext(ctx, q, host, spec.StateTerminated, spec.StateFailed)
	if err != nil {
		return nil, fmt.Errorf("list instances on host %s in %s: %w", host, s.where, err)
	}
	defer rows.Close()
	var out []Instance
	for rows.Next() {
		in, err := scanInstance(rows)
		if err != nil {
			return nil, fmt.Errorf("list instances on host %s in %s: %w", host, s.where, err)
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list instances on host %s in %s: %w", host, s.where, err)
	}
	sortInstances(out)
	return out, nil
}

// sortInstances orders instances by group, name number, name. Sorting here rather than in SQL
// keeps names without a number, or with one too large for an integer, well ordered.
func sortInstances(ins []Instance) {
	sort.SliceStable(ins, func(i, j int) bool {
		a, b := ins[i], ins[j]
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		na, oka := nameNumber(a.Name)
		nb, okb := nameNumber(b.Name)
		switch {
		case oka && okb && na != nb:
			return na < nb
		case oka != okb:
			// Numbered names first.
			return oka
		}
		return a.Name < b.Name
	})
}

// nameNumber returns the number after the last '-' in name, if there is one.
func nameNumber(name string) (uint64, bool) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(name[i+1:], 10, 64)
	return n, err == nil
}
