package testservices_test

import (
	"context"
	"database/sql"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/premiscale/premiscale/internal/testservices"
)

var validName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

func TestUniqueName(t *testing.T) {
	tests := []struct {
		prefix     string
		wantPrefix string
	}{
		{"web", "web-"},
		{"Web_Group.1", "web-group-1-"},
		{"", "t-"},
		{"1st", "t1st-"},
		{"-x", "t-x-"},
		{strings.Repeat("long", 20), "longlonglonglonglonglo"[:21]},
		{"ünicode", "t-nicode-"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		for range 50 {
			n := testservices.UniqueName(t, tt.prefix)
			if !validName.MatchString(n) || len(n) > 30 {
				t.Fatalf("UniqueName(%q) = %q: want [a-z][a-z0-9-]*, at most 30 characters", tt.prefix, n)
			}
			if !strings.HasPrefix(n, tt.wantPrefix) {
				t.Errorf("UniqueName(%q) = %q, want prefix %q", tt.prefix, n, tt.wantPrefix)
			}
			if seen[n] {
				t.Fatalf("UniqueName returned %q twice", n)
			}
			seen[n] = true
		}
	}
}

func TestMySQLGivesAFreshDatabase(t *testing.T) {
	var name string
	cfg := testservices.MySQL(t)
	t.Run("inner", func(t *testing.T) {
		inner := testservices.MySQL(t)
		name = inner.Connection.Database
		if name == cfg.Connection.Database {
			t.Fatalf("two calls returned the same database %s", name)
		}
	})
	mc := mysql.NewConfig()
	mc.Addr, mc.User, mc.Passwd = cfg.Connection.URL, cfg.Connection.Credentials.Username, cfg.Connection.Credentials.Password
	mc.DBName = cfg.Connection.Database
	c, err := mysql.NewConnector(mc)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestInfluxGivesAFreshDatabase(t *testing.T) {
	cfg := testservices.Influx(t)
	resp, err := http.Get(cfg.Connection.URL + "/query?q=SHOW+DATABASES")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `"`+cfg.Connection.Database+`"`) {
		t.Errorf("database %s not listed: %s", cfg.Connection.Database, body)
	}
}

func TestTemporalAddress(t *testing.T) {
	addr := testservices.TemporalAddress(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Errorf("TemporalAddress returned %s, which does not answer: %v", addr, err)
		return
	}
	conn.Close()
}
