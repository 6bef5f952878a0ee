package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// States of a base image copied onto a host.
const (
	ImageCopying = "copying"
	ImageReady   = "ready"
)

// HostImage is a base image PremiScale copied onto a host.
type HostImage struct {
	Host, Pool, Volume string
	// State is ImageCopying until the copy is verified, then ImageReady.
	State string
	// Source is where it was copied from: a path, a URL, or "host <name>".
	Source    string
	SHA256    string
	Bytes     int64
	UpdatedAt time.Time
}

// BeginImageCopy records that a copy of pool/volume onto host is starting.
func (s *Store) BeginImageCopy(ctx context.Context, host, pool, volume, source string) error {
	const q = "INSERT INTO host_images (host, pool, volume, state, source, sha256, bytes, updated_at) VALUES (?, ?, ?, ?, ?, '', 0, UTC_TIMESTAMP(6)) " +
		"ON DUPLICATE KEY UPDATE state = VALUES(state), source = VALUES(source), sha256 = '', bytes = 0, updated_at = VALUES(updated_at)"
	if _, err := s.db.ExecContext(ctx, q, host, pool, volume, ImageCopying, truncate(source, 1024)); err != nil {
		return fmt.Errorf("record the copy of image %s/%s onto host %s in %s: %w", pool, volume, host, s.where, err)
	}
	return nil
}

// FinishImageCopy records a verified copy.
func (s *Store) FinishImageCopy(ctx context.Context, host, pool, volume, sha256 string, n int64) error {
	const q = "UPDATE host_images SET state = ?, sha256 = ?, bytes = ?, updated_at = UTC_TIMESTAMP(6) WHERE BINARY host = ? AND BINARY pool = ? AND BINARY volume = ?"
	if _, err := s.db.ExecContext(ctx, q, ImageReady, sha256, n, host, pool, volume); err != nil {
		return fmt.Errorf("record the copy of image %s/%s onto host %s in %s: %w", pool, volume, host, s.where, err)
	}
	return nil
}

// GetHostImage returns the record of pool/volume on host, if PremiScale ever copied it there.
func (s *Store) GetHostImage(ctx context.Context, host, pool, volume string) (HostImage, bool, error) {
	imgs, err := s.listHostImages(ctx, "BINARY host = ? AND BINARY pool = ? AND BINARY volume = ?", host, pool, volume)
	if err != nil || len(imgs) == 0 {
		return HostImage{}, false, err
	}
	return imgs[0], true, nil
}

// ListHostImages returns the copies of pool/volume, by host.
func (s *Store) ListHostImages(ctx context.Context, pool, volume string) ([]HostImage, error) {
	return s.listHostImages(ctx, "BINARY pool = ? AND BINARY volume = ?", pool, volume)
}

func (s *Store) listHostImages(ctx context.Context, where string, args ...any) ([]HostImage, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT host, pool, volume, state, source, sha256, bytes, updated_at FROM host_images WHERE "+where+" ORDER BY host", args...)
	if err != nil {
		return nil, fmt.Errorf("read image copies in %s: %w", s.where, err)
	}
	defer rows.Close()
	var out []HostImage
	for rows.Next() {
		var im HostImage
		if err := rows.Scan(&im.Host, &im.Pool, &im.Volume, &im.State, &im.Source, &im.SHA256, &im.Bytes, &im.UpdatedAt); err != nil {
			return nil, fmt.Errorf("read image copies in %s: %w", s.where, err)
		}
		out = append(out, im)
	}
	if err := rows.Err(); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read image copies in %s: %w", s.where, err)
	}
	return out, nil
}

// NoteHostImage records what a host's worker found in its pool: an image present there that
// PremiScale did not copy is recorded ready ("found on the host"); a ready one that is gone is
// forgotten. A copy in progress is left alone.
func (s *Store) NoteHostImage(ctx context.Context, host, pool, volume string, present bool) error {
	var err error
	if present {
		_, err = s.db.ExecContext(ctx, "INSERT IGNORE INTO host_images (host, pool, volume, state, source, updated_at) VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP(6))",
			host, pool, volume, ImageReady, "found on the host")
	} else {
		_, err = s.db.ExecContext(ctx, "DELETE FROM host_images WHERE BINARY host = ? AND BINARY pool = ? AND BINARY volume = ? AND state = ?",
			host, pool, volume, ImageReady)
	}
	if err != nil {
		return fmt.Errorf("note image %s/%s on host %s in %s: %w", pool, volume, host, s.where, err)
	}
	return nil
}
