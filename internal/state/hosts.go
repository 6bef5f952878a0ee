package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/premiscale/premiscale/internal/spec"
)

// HostProof is what a worker found when it reached a host's libvirt: proof that the host is
// alive, its capacity, and what PremiScale's domains hold on it.
type HostProof struct {
	Name string
	// Worker names the worker that reached it (host name and pid), for operators.
	Worker                   string
	CPUs                     int
	MemoryMiB, FreeMemoryMiB int64
	spec.Allowance
	UsedCPUs      int
	UsedMemoryMiB int64
	Domains       int
}

// Host is a host as the state database knows it.
type Host struct {
	HostProof
	// LastSeenAt is the last proof of life; nil if the host never answered.
	LastSeenAt *time.Time
	// Age is how long ago that was, by the database's clock (so workers' clocks do not matter).
	Age time.Duration
	// LastError is the last failure to reach the host, and when it was.
	LastError   string
	LastErrorAt *time.Time
}

// RecordHostProof stores a proof of life; its time is the database's clock.
func (s *Store) RecordHostProof(ctx context.Context, p HostProof) error {
	if p.Name == "" {
		return errors.New("record host proof: name is empty")
	}
	const q = "INSERT INTO hosts (name, worker, cpus, memory_mib, free_memory_mib, cpu_overcommit, memory_overcommit, " +
		"reserved_cpus, reserved_memory_mib, used_cpus, used_memory_mib, domains, last_seen_at) " +
		"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE " +
		"worker = VALUES(worker), cpus = VALUES(cpus), memory_mib = VALUES(memory_mib), free_memory_mib = VALUES(free_memory_mib), " +
		"cpu_overcommit = VALUES(cpu_overcommit), memory_overcommit = VALUES(memory_overcommit), " +
		"reserved_cpus = VALUES(reserved_cpus), reserved_memory_mib = VALUES(reserved_memory_mib), " +
		"used_cpus = VALUES(used_cpus), used_memory_mib = VALUES(used_memory_mib), domains = VALUES(domains), " +
		"last_seen_at = VALUES(last_seen_at)"
	_, err := s.db.ExecContext(ctx, q, p.Name, p.Worker, p.CPUs, p.MemoryMiB, p.FreeMemoryMiB, p.CPUOvercommit, p.MemoryOvercommit,
		p.ReservedCPUs, p.ReservedMemoryMiB, p.UsedCPUs, p.UsedMemoryMiB, p.Domains)
	if err != nil {
		return fmt.Errorf("record proof of life of host %s in %s: %w", p.Name, s.where, err)
	}
	return nil
}

// RecordHostError stores a failure to reach a host; its last proof of life stays as it was.
func (s *Store) RecordHostError(ctx context.Context, name, worker string, cause error) error {
	if name == "" {
		return errors.New("record host error: name is empty")
	}
	const q = "INSERT INTO hosts (name, worker, last_error, last_error_at) VALUES (?, ?, ?, UTC_TIMESTAMP(6)) " +
		"ON DUPLICATE KEY UPDATE worker = VALUES(worker), last_error = VALUES(last_error), last_error_at = VALUES(last_error_at)"
	if _, err := s.db.ExecContext(ctx, q, name, worker, truncate(cause.Error(), maxReason)); err != nil {
		return fmt.Errorf("record error of host %s in %s: %w", name, s.where, err)
	}
	return nil
}

// ListHosts returns the hosts named (every host when names is empty), sorted by name; a name
// that no worker ever reported is left out.
func (s *Store) ListHosts(ctx context.Context, names ...string) ([]Host, error) {
	q := "SELECT name, worker, cpus, memory_mib, free_memory_mib, cpu_overcommit, memory_overcommit, reserved_cpus, reserved_memory_mib, " +
		"used_cpus, used_memory_mib, domains, last_seen_at, TIMESTAMPDIFF(MICROSECOND, last_seen_at, UTC_TIMESTAMP(6)), last_error, last_error_at FROM hosts"
	args := make([]any, len(names))
	if len(names) > 0 {
		q += " WHERE BINARY name IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(names)), ", ") + ")"
		for i, n := range names {
			args[i] = n
		}
	}
	q += " ORDER BY name"
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list hosts in %s: %w", s.where, err)
	}
	defer rows.Close()
	var out []Host
	for rows.Next() {
		var h Host
		var seen, errAt sql.NullTime
		var age sql.NullInt64
		if err := rows.Scan(&h.Name, &h.Worker, &h.CPUs, &h.MemoryMiB, &h.FreeMemoryMiB, &h.CPUOvercommit, &h.MemoryOvercommit,
			&h.ReservedCPUs, &h.ReservedMemoryMiB, &h.UsedCPUs, &h.UsedMemoryMiB, &h.Domains, &seen, &age, &h.LastError, &errAt); err != nil {
			return nil, fmt.Errorf("list hosts in %s: %w", s.where, err)
		}
		if seen.Valid {
			t := seen.Time
			h.LastSeenAt = &t
			h.Age = time.Duration(age.Int64) * time.Microsecond
		}
		if errAt.Valid {
			t := errAt.Time
			h.LastErrorAt = &t
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list hosts in %s: %w", s.where, err)
	}
	return out, nil
}

// Spec is the host as the fleet sees it: up when its last proof of life is at most downAfter
// old by the database's clock.
func (h Host) Spec(downAfter time.Duration) spec.Host {
	out := spec.Host{
		Name: h.Name, Worker: h.Worker, LastError: h.LastError,
		CPUs: h.CPUs, MemoryMiB: h.MemoryMiB, FreeMemoryMiB: h.FreeMemoryMiB, Allowance: h.Allowance,
		UsedCPUs: h.UsedCPUs, UsedMemoryMiB: h.UsedMemoryMiB, Domains: h.Domains,
	}
	switch {
	case h.LastSeenAt == nil:
		out.Down = "no worker has reached it yet"
	case h.Age > downAfter:
		out.LastSeen = *h.LastSeenAt
		out.Down = fmt.Sprintf("no proof of life for %s", h.Age.Round(time.Second))
		out.DownFor = h.Age - downAfter
	default:
		out.LastSeen = *h.LastSeenAt
		out.Up = true
	}
	if !out.Up && h.LastError != "" {
		out.Down += ": " + h.LastError
	}
	return out
}
