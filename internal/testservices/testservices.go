// Package testservices finds the real services integration tests run against (MariaDB, InfluxDB,
// Temporal) and gives each test its own database on them. For tests that stop and start their
// services, it also starts private ones (StartTemporal, StartMariaDB, StartInfluxDB,
// StartLibvirtd, StartStack): processes of the test's own on free ports, never the shared ones.
//
// Every helper fails the test when its service cannot be reached within a few seconds: an
// integration test that silently skips proves nothing, so the message says how to start the
// services instead (testenv/up).
package testservices

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/premiscale/premiscale/internal/config"
)

// Environment variables that point the tests at services somewhere other than the defaults.
const (
	EnvMySQLAddr     = "PREMISCALE_TEST_MYSQL_ADDR"
	EnvMySQLUser     = "PREMISCALE_TEST_MYSQL_USER"
	EnvMySQLPassword = "PREMISCALE_TEST_MYSQL_PASSWORD"
	EnvInfluxURL     = "PREMISCALE_TEST_INFLUX_URL"
	EnvTemporalAddr  = "PREMISCALE_TEST_TEMPORAL_ADDR"
)

// Defaults match what testenv/up starts.
const (
	DefaultMySQLAddr     = "127.0.0.1:3306"
	DefaultMySQLUser     = "premiscale"
	DefaultMySQLPassword = "premiscale"
	DefaultInfluxURL     = "http://127.0.0.1:8086"
	DefaultTemporalAddr  = "127.0.0.1:7233"
)

// reachTimeout bounds how long a helper waits for its service before failing the test. It is a
// few seconds so a service that is still starting is waited for, and a missing one is not.
const reachTimeout = 5 * time.Second

const hint = "run testenv/up"

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// MySQL creates a fresh database on the shared MariaDB, drops it when the test ends, and returns
// a state database configuration pointing at it.
func MySQL(t testing.TB) config.StateDB {
	t.Helper()
	return mysqlAt(t, env(EnvMySQLAddr, DefaultMySQLAddr), env(EnvMySQLUser, DefaultMySQLUser), env(EnvMySQLPassword, DefaultMySQLPassword), true)
}

// mysqlAt creates a fresh database on the MySQL at addr, dropped when the test ends if drop is
// set (a private server's folder goes with its databases).
func mysqlAt(t testing.TB, addr, user, password string, drop bool) config.StateDB {
	t.Helper()
	mc := mysql.NewConfig()
	mc.Net = "tcp"
	mc.Addr = addr
	mc.User = user
	mc.Passwd = password
	mc.Timeout = reachTimeout
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		t.Fatalf("testservices: MySQL config for %s: %v", addr, err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()

	ctx, cancel := context.WithTimeout(context.Background(), reachTimeout)
	defer cancel()
	if err := retry(ctx, func() error { return db.PingContext(ctx) }); err != nil {
		t.Fatalf("testservices: cannot reach MySQL at %s as %s: %v (is MariaDB running? %s)", addr, user, err, hint)
	}

	name := "pstest_" + strings.ToLower(rand.Text()[:12])
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
		t.Fatalf("testservices: create database %s on MySQL at %s as %s: %v (is MariaDB running? %s)", name, addr, user, err, hint)
	}
	t.Cleanup(func() {
		if !drop {
			return
		}
		cdb := sql.OpenDB(connector)
		defer cdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := cdb.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Errorf("testservices: drop database %s on MySQL at %s: %v", name, addr, err)
		}
	})

	return config.StateDB{
		Type: "mysql",
		Connection: config.Connection{
			URL:         addr,
			Database:    name,
			Credentials: config.Credentials{Username: user, Password: password},
		},
	}
}

// Influx creates a fresh database on the shared InfluxDB 1.8, drops it when the test ends, and
// returns a time-series configuration pointing at it.
func Influx(t testing.TB) config.Timeseries {
	t.Helper()
	return influxAt(t, strings.TrimRight(env(EnvInfluxURL, DefaultInfluxURL), "/"), true)
}

// influxAt creates a fresh database on the InfluxDB at base, dropped when the test ends if drop
// is set.
func influxAt(t testing.TB, base string, drop bool) config.Timeseries {
	t.Helper()
	hc := &http.Client{Timeout: reachTimeout}

	ctx, cancel := context.WithTimeout(context.Background(), reachTimeout)
	defer cancel()
	err := retry(ctx, func() error { return influxPing(ctx, hc, base) })
	if err != nil {
		t.Fatalf("testservices: cannot reach InfluxDB at %s: %v (is InfluxDB running? %s)", base, err, hint)
	}

	name := "pstest_" + strings.ToLower(rand.Text()[:12])
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := influxQuery(ctx, hc, base, `CREATE DATABASE "`+name+`"`); err != nil {
		t.Fatalf("testservices: create database %s on InfluxDB at %s: %v (is InfluxDB 1.8 running? %s)", name, base, err, hint)
	}
	t.Cleanup(func() {
		if !drop {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := influxQuery(ctx, &http.Client{Timeout: 30 * time.Second}, base, `DROP DATABASE "`+name+`"`); err != nil {
			t.Errorf("testservices: drop database %s on InfluxDB at %s: %v", name, base, err)
		}
	})

	return config.Timeseries{
		Type:       "influxdb",
		Connection: config.Connection{URL: base, Database: name},
	}
}

// influxQuery runs one InfluxQL statement through the 1.x /query endpoint, which reports a
// statement's failure inside a 200 response.
func influxQuery(ctx context.Context, hc *http.Client, base, q string) error {
	form := url.Values{"q": {q}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", q, resp.Status, strings.TrimSpace(string(body)))
	}
	var out struct {
		Error   string `json:"error"`
		Results []struct {
			Error string `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return fmt.Errorf("%s: decode response %q: %w", q, body, err)
	}
	if out.Error != "" {
		return fmt.Errorf("%s: %s", q, out.Error)
	}
	for _, r := range out.Results {
		if r.Error != "" {
			return fmt.Errorf("%s: %s", q, r.Error)
		}
	}
	return nil
}

// TemporalAddress returns the host:port of a Temporal frontend that answers a health check.
func TemporalAddress(t testing.TB) string {
	t.Helper()
	addr := env(EnvTemporalAddr, DefaultTemporalAddr)
	ctx, cancel := context.WithTimeout(context.Background(), reachTimeout)
	defer cancel()
	err := retry(ctx, func() error { return temporalHealthy(ctx, addr) })
	if err != nil {
		t.Fatalf("testservices: cannot reach Temporal at %s: %v (is the Temporal dev server running? %s)", addr, err, hint)
	}
	return addr
}

// maxNameLen keeps names short enough for libvirt domains, volumes and instance names built
// from them ("<group>-<sequence>").
const maxNameLen = 30

// UniqueName returns a name unique to this call, made of prefix and a random suffix: lowercase,
// starting with a letter, only [a-z0-9-], at most 30 characters. Tests need it because the
// libvirt test:///default driver's state is shared by every test that opens it.
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	var b strings.Builder
	for _, r := range strings.ToLower(prefix) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	p := b.String()
	if p == "" || p[0] < 'a' || p[0] > 'z' {
		p = "t" + p
	}
	// 8 random base32 characters give 2^40 names, enough that two calls never collide.
	suffix := strings.ToLower(rand.Text()[:8])
	if max := maxNameLen - len(suffix) - 1; len(p) > max {
		p = p[:max]
	}
	p = strings.TrimRight(p, "-")
	return p + "-" + suffix
}

// retry calls f until it succeeds or ctx ends, returning f's last error.
func retry(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}
