package state

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Registration is the installation's registration with the PremiScale platform: one for all
// its agents, kept with the host it came from.
type Registration struct {
	// Host is the platform it came from (config.PlatformURLs.Base).
	Host       string
	AgentID    string
	Credential string
	// Response is the platform's whole answer, kept as it came.
	Response     json.RawMessage
	RegisteredAt time.Time
}

const registrationName = "agent"

// Registration returns the kept registration, and false when there is none.
func (s *Store) Registration(ctx context.Context) (Registration, bool, error) {
	var r Registration
	var cred, resp []byte
	err := s.db.QueryRowContext(ctx, "SELECT host, agent_id, credential, response, registered_at FROM platform_registration WHERE name = ?", registrationName).
		Scan(&r.Host, &r.AgentID, &cred, &resp, &r.RegisteredAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Registration{}, false, nil
	}
	if err != nil {
		return Registration{}, false, fmt.Errorf("read the platform registration from %s: %w", s.where, err)
	}
	r.Credential, r.Response = string(cred), resp
	return r, true, nil
}

// SaveRegistration keeps r, replacing any registration kept before.
func (s *Store) SaveRegistration(ctx context.Context, r Registration) error {
	if r.Host == "" || r.AgentID == "" || r.Credential == "" {
		return errors.New("save the platform registration: host, agent id and credential are required")
	}
	resp := r.Response
	if len(resp) == 0 {
		resp = json.RawMessage("{}")
	}
	const q = "INSERT INTO platform_registration (name, host, agent_id, credential, response, registered_at) VALUES (?, ?, ?, ?, ?, ?) " +
		"ON DUPLICATE KEY UPDATE host = VALUES(host), agent_id = VALUES(agent_id), credential = VALUES(credential), " +
		"response = VALUES(response), registered_at = VALUES(registered_at)"
	if _, err := s.db.ExecContext(ctx, q, registrationName, r.Host, r.AgentID, []byte(r.Credential), []byte(resp), orNow(r.RegisteredAt)); err != nil {
		return fmt.Errorf("save the platform registration in %s: %w", s.where, err)
	}
	return nil
}

// ForgetRegistration removes the kept registration if its credential is still credential (the
// platform refused it); a registration another agent has renewed meanwhile is kept.
func (s *Store) ForgetRegistration(ctx context.Context, credential string) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM platform_registration WHERE name = ? AND credential = ?", registrationName, []byte(credential)); err != nil {
		return fmt.Errorf("forget the platform registration in %s: %w", s.where, err)
	}
	return nil
}

// Command states.
const (
	CommandApplying = "applying"
	CommandDone     = "done"
)

// Command is a platform command that changes something, as recorded when it was claimed.
type Command struct {
	ID    string
	Op    string
	State string
	// Term names the link (leadership term) that claimed it.
	Term string
	// Result is the result message sent back, once done.
	Result     json.RawMessage
	ReceivedAt time.Time
	DoneAt     *time.Time
}

// ClaimCommand records that term applies command id, and says whether the caller must apply
// it. A command already done, or being applied by the same term, is not claimed again: the
// caller gets the record instead. One left "applying" by another term (a link that stopped
// while applying it) is taken over.
func (s *Store) ClaimCommand(ctx context.Context, id, op, term string) (Command, bool, error) {
	now := time.Now().UTC()
	res, err := s.db.ExecContext(ctx, "INSERT INTO platform_commands (command_id, op, state, term, received_at) VALUES (?, ?, ?, ?, ?) "+
		"ON DUPLICATE KEY UPDATE command_id = command_id", id, op, CommandApplying, term, now)
	if err != nil {
		return Command{}, false, fmt.Errorf("claim platform command %s in %s: %w", id, s.where, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return Command{ID: id, Op: op, State: CommandApplying, Term: term, ReceivedAt: now}, true, nil
	}
	c, err := s.command(ctx, id)
	if err != nil {
		return Command{}, false, err
	}
	if c.State != CommandApplying || c.Term == term {
		return c, false, nil
	}
	res, err = s.db.ExecContext(ctx, "UPDATE platform_commands SET term = ? WHERE command_id = ? AND state = ? AND term = ?", term, id, CommandApplying, c.Term)
	if err != nil {
		return Command{}, false, fmt.Errorf("take over platform command %s in %s: %w", id, s.where, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		c.Term = term
		return c, true, nil
	}
	c, err = s.command(ctx, id)
	return c, false, err
}

func (s *Store) command(ctx context.Context, id string) (Command, error) {
	var c Command
	var result []byte
	var done sql.NullTime
	err := s.db.QueryRowContext(ctx, "SELECT command_id, op, state, term, result, received_at, done_at FROM platform_commands WHERE command_id = ?", id).
		Scan(&c.ID, &c.Op, &c.State, &c.Term, &result, &c.ReceivedAt, &done)
	if err != nil {
		return Command{}, fmt.Errorf("read platform command %s from %s: %w", id, s.where, err)
	}
	if len(result) > 0 {
		c.Result = result
	}
	c.DoneAt = timePtr(done)
	return c, nil
}

// ErrNotClaimed is returned (wrapped) by FinishCommand when the command is no longer claimed
// by the term finishing it.
var ErrNotClaimed = errors.New("command is not claimed by this link")

// FinishCommand records command id's result and puts it in the outbox as ev, in one
// transaction: the result is kept for a repeated id and delivered like any event.
func (s *Store) FinishCommand(ctx context.Context, id, term string, ev OutboxEvent) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE platform_commands SET state = ?, result = ?, done_at = ? WHERE command_id = ? AND term = ? AND state = ?",
			CommandDone, []byte(ev.Payload), time.Now().UTC(), id, term, CommandApplying)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrNotClaimed
		}
		_, err = enqueue(ctx, tx, ev)
		return err
	})
	if err != nil {
		return fmt.Errorf("record the result of platform command %s in %s: %w", id, s.where, err)
	}
	return nil
}

// PruneCommands forgets commands done before a time, and returns how many.
func (s *Store) PruneCommands(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, "DELETE FROM platform_commands WHERE state = ? AND done_at < ?", CommandDone, before.UTC())
	if err != nil {
		return 0, fmt.Errorf("prune platform commands in %s: %w", s.where, err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// Lock is a server-wide advisory lock held by one agent's MySQL session: while it holds it,
// no other agent on the same database does. It ends with the session, so an agent that dies
// or loses its connection loses it.
type Lock struct {
	conn *sql.Conn
	name string
}

// TryLock takes the lock called name for this database without waiting; it returns nil (and
// no error) when another session holds it.
func (s *Store) TryLock(ctx context.Context, name string) (*Lock, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock %s in %s: %w", name, s.where, err)
	}
	var database sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&database); err != nil {
		conn.Close()
		return nil, fmt.Errorf("lock %s in %s: %w", name, s.where, err)
	}
	full := advisoryLockName(name, database.String)
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", full).Scan(&got); err != nil {
		discard(conn)
		return nil, fmt.Errorf("lock %s in %s: %w", full, s.where, err)
	}
	if !got.Valid || got.Int64 != 1 {
		conn.Close()
		return nil, nil
	}
	return &Lock{conn: conn, name: full}, nil
}

// advisoryLockName keeps lock names within MySQL's 64 characters.
func advisoryLockName(name, database string) string {
	full := "premiscale." + name + "." + database
	if len(full) <= 64 {
		return full
	}
	sum := sha256.Sum256([]byte(full))
	return "premiscale." + hex.EncodeToString(sum[:20])
}

// Held checks that the lock's session is alive and still holds it.
func (l *Lock) Held(ctx context.Context) error {
	var mine sql.NullInt64
	if err := l.conn.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?) = CONNECTION_ID()", l.name).Scan(&mine); err != nil {
		return fmt.Errorf("check lock %s: %w", l.name, err)
	}
	if !mine.Valid || mine.Int64 != 1 {
		return fmt.Errorf("lock %s is no longer held", l.name)
	}
	return nil
}

// Release gives the lock up. A session whose release fails is closed, which releases it too.
func (l *Lock) Release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := l.conn.ExecContext(ctx, "DO RELEASE_LOCK(?)", l.name); err != nil {
		discard(l.conn)
		return
	}
	l.conn.Close()
}

// discard closes conn's session instead of returning it to the pool, where it would keep any
// lock it holds.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}
