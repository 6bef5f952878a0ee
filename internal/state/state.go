// Package state keeps PremiScale's durable records in MySQL (or MariaDB): autoscaling groups,
// their instances and the log of scaling decisions.
//
// Every write is an idempotent upsert keyed on a natural key, because writes come from Temporal
// activities that may run more than once.
package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/premiscale/premiscale/internal/config"
)

// ErrNotFound is returned (wrapped) when a record that must exist does not.
var ErrNotFound = errors.New("not found")

// MySQL server error numbers Open reacts to.
const (
	errUnknownDatabase = 1049 // ER_BAD_DB_ERROR
)

const (
	dialTimeout = 10 * time.Second
	ioTimeout   = 60 * time.Second
	// maxReason keeps reasons inside their VARCHAR(1024) columns; strict SQL mode rejects longer ones.
	maxReason = 1024
)

// exactly is a WHERE condition that compares a name column with a value byte for byte; its
// argument is given twice. The tables' utf8mb4_bin collation pads with spaces (PAD SPACE), so
// in a plain comparison "web-1 " equals "web-1"; a comparison as binary strings does not pad.
// The plain comparison stays first so the primary key still finds the row.
func exactly(column string) string {
	return column + " = ? AND " + column + " = CAST(? AS BINARY)"
}

// checkName refuses a name the database could not tell apart from another: one that ends in
// a space would be stored as a duplicate of the name without it (the key pads with spaces).
func checkName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%s name is empty", what)
	}
	if strings.TrimRight(name, " ") != name {
		return fmt.Errorf("%s name %q ends in a space", what, name)
	}
	return nil
}

// Store is the state database. It is safe for concurrent use.
type Store struct {
	db *sql.DB
	// where names the server, user and database in errors, never the password.
	where string
}

// Open connects to the state database, creates it if it is absent (when the user may), and
// applies any migrations not applied yet. Two workers opening the same database at once apply
// each migration once between them.
func Open(ctx context.Context, cfg config.StateDB) (*Store, error) {
	switch strings.ToLower(cfg.Type) {
	case "", "mysql", "mariadb":
	default:
		return nil, fmt.Errorf("state database type %q is not supported (want mysql)", cfg.Type)
	}
	conn := cfg.Connection
	if conn.Database == "" {
		return nil, errors.New("state database: connection.database is empty")
	}
	addr := conn.URL
	for _, scheme := range []string{"mysql://", "tcp://"} {
		addr = strings.TrimPrefix(addr, scheme)
	}
	addr = strings.TrimSuffix(addr, "/")
	if addr == "" {
		return nil, errors.New("state database: connection.url is empty (want host:port)")
	}
	where := fmt.Sprintf("MySQL at %s as user %q, database %q", addr, conn.Credentials.Username, conn.Database)

	mc := mysql.NewConfig()
	mc.Net = "tcp"
	mc.Addr = addr
	mc.User = conn.Credentials.Username
	mc.Passwd = conn.Credentials.Password
	mc.DBName = conn.Database
	mc.ParseTime = true
	// Times are stored as UTC DATETIMEs; the driver converts with Loc in both directions.
	mc.Loc = time.UTC
	mc.Timeout = dialTimeout
	mc.ReadTimeout = ioTimeout
	mc.WriteTimeout = ioTimeout
	// DATETIME(6) holds microseconds; MySQL rounds finer times and MariaDB truncates them, so
	// truncate before sending to store the same value on both.
	if err := mc.Apply(mysql.TimeTruncate(time.Microsecond)); err != nil {
		return nil, fmt.Errorf("state database options: %w", err)
	}

	db, err := connect(ctx, mc)
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) && myErr.Number == errUnknownDatabase {
		if cerr := createDatabase(ctx, mc); cerr != nil {
			return nil, fmt.Errorf("connect to %s: database does not exist and creating it failed: %w", where, cerr)
		}
		db, err = connect(ctx, mc)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", where, err)
	}
	// A scale-out's instances record their states at the same moment: connections kept
	// open for them spare a handshake per write once the burst outruns the idle ones.
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(time.Minute)
	db.SetConnMaxLifetime(5 * time.Minute)

	s := &Store{db: db, where: where}
	if err := s.migrate(ctx, conn.Database); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate %s: %w", where, err)
	}
	return s, nil
}

func connect(ctx context.Context, mc *mysql.Config) (*sql.DB, error) {
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(connector)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// createDatabase connects without a default database and creates mc.DBName.
func createDatabase(ctx context.Context, mc *mysql.Config) error {
	server := mc.Clone()
	server.DBName = ""
	db, err := connect(ctx, server)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(mc.DBName)+" CHARACTER SET utf8mb4")
	return err
}

// quoteIdent quotes a MySQL identifier.
func quoteIdent(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

// Close releases the store's connections.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close %s: %w", s.where, err)
	}
	return nil
}

// nullTime turns a nil or zero time into SQL NULL.
func nullTime(t *time.Time) sql.NullTime {
	if t == nil || t.IsZero() {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: t.UTC(), Valid: true}
}

// timePtr turns SQL NULL into nil.
func timePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	v := t.Time
	return &v
}

// orNow returns t in UTC, or the current time when t is zero.
func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().UTC()
	}
	return t.UTC()
}

// truncate cuts s to at most n runes so it fits its column.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}
