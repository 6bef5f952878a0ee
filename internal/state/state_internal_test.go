package state

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplitStatements(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"comments only", "-- a\n  -- b\n", nil},
		{"one", "CREATE TABLE a (\n  x INT\n);\n", []string{"CREATE TABLE a (\n  x INT\n)"}},
		{"two with comments", "-- first\nCREATE TABLE a (x INT);\n\n-- second\nCREATE TABLE b (y INT);", []string{"CREATE TABLE a (x INT)", "CREATE TABLE b (y INT)"}},
		{"semicolon inside a line is not an end", "INSERT INTO t VALUES ('a;b');\n", []string{"INSERT INTO t VALUES ('a;b')"}},
		{"no final semicolon", "SELECT 1", []string{"SELECT 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := splitStatements(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("splitStatements(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestEmbeddedMigrationsParse(t *testing.T) {
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no embedded migrations")
	}
	for i := 1; i < len(ms); i++ {
		if ms[i-1].version >= ms[i].version {
			t.Errorf("migrations out of order: %s before %s", ms[i-1].version, ms[i].version)
		}
	}
}

func TestLockNameFits(t *testing.T) {
	for _, db := range []string{"premiscale", strings.Repeat("x", 64)} {
		if n := lockName(db); len(n) > 64 {
			t.Errorf("lockName(%q) = %q: %d characters, MySQL allows 64", db, n, len(n))
		}
	}
	if lockName("a") == lockName("b") {
		t.Error("different databases share a migration lock")
	}
}

func TestSortInstances(t *testing.T) {
	ins := []Instance{
		{Group: "web", Name: "web-10"},
		{Group: "api", Name: "api-2"},
		{Group: "web", Name: "web-2"},
		{Group: "web", Name: "web"},
		{Group: "web", Name: "web-1"},
		{Group: "web", Name: "web-x"},
		{Group: "web", Name: "web-01"},
	}
	sortInstances(ins)
	var got []string
	for _, in := range ins {
		got = append(got, in.Name)
	}
	want := []string{"api-2", "web-01", "web-1", "web-2", "web-10", "web", "web-x"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order = %q, want %q", got, want)
	}
}
