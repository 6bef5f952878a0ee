package state_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"

	"github.com/premiscale/premiscale/internal/spec"
)

func openStore(t *testing.T) (*state.Store, config.StateDB) {
	t.Helper()
	cfg := testservices.MySQL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := state.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, cfg
}

// rawDB opens the test database directly, to look at what the store wrote.
func rawDB(t *testing.T, cfg config.StateDB) *sql.DB {
	t.Helper()
	mc := mysql.NewConfig()
	mc.Net = "tcp"
	mc.Addr = cfg.Connection.URL
	mc.User = cfg.Connection.Credentials.Username
	mc.Passwd = cfg.Connection.Credentials.Password
	mc.DBName = cfg.Connection.Database
	c, err := mysql.NewConnector(mc)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db
}

func countRows(t *testing.T, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// ts is a fixed time with sub-microsecond noise, to show stored times are truncated consistently.
func ts(min int) time.Time {
	return time.Date(2025, 3, 1, 12, min, 0, 123456789, time.UTC)
}

func us(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

func ptr(t time.Time) *time.Time { return &t }

// migrationCount is how many migrations the store embeds: one per file.
func migrationCount(t *testing.T) int {
	t.Helper()
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("list migrations: %v (%d files)", err, len(files))
	}
	return len(files)
}

func TestOpenAppliesMigrationsOnce(t *testing.T) {
	s, cfg := openStore(t)
	s.Close()
	s2, err := state.Open(ctx(t), cfg)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	defer s2.Close()
	db := rawDB(t, cfg)
	if n := countRows(t, db, "SELECT COUNT(*) FROM schema_migrations"); n != migrationCount(t) {
		t.Errorf("schema_migrations has %d rows after two Opens, want %d", n, migrationCount(t))
	}
	for _, table := range []string{"groups", "instances", "scaling_events"} {
		if n := countRows(t, db, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", cfg.Connection.Database, table); n != 1 {
			t.Errorf("table %s missing after Open", table)
		}
	}
}

func TestOpenConcurrently(t *testing.T) {
	cfg := testservices.MySQL(t)
	const agents = 4
	var wg sync.WaitGroup
	errs := make([]error, agents)
	stores := make([]*state.Store, agents)
	start := make(chan struct{})
	for i := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stores[i], errs[i] = state.Open(ctx(t), cfg)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("agent %d: Open: %v", i, err)
			continue
		}
		stores[i].Close()
	}
	if n := countRows(t, rawDB(t, cfg), "SELECT COUNT(*) FROM schema_migrations"); n != migrationCount(t) {
		t.Errorf("schema_migrations has %d rows after %d concurrent Opens, want %d", n, agents, migrationCount(t))
	}
}

func TestOpenCreatesMissingDatabase(t *testing.T) {
	cfg := testservices.MySQL(t)
	db := rawDB(t, cfg)
	cfg.Connection.Database += "_created"
	t.Cleanup(func() {
		if _, err := db.Exec("DROP DATABASE IF EXISTS `" + cfg.Connection.Database + "`"); err != nil {
			t.Errorf("drop %s: %v", cfg.Connection.Database, err)
		}
	})
	s, err := state.Open(ctx(t), cfg)
	if err != nil {
		t.Fatalf("Open of a missing database: %v", err)
	}
	defer s.Close()
	if n := countRows(t, db, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = 'instances'", cfg.Connection.Database); n != 1 {
		t.Errorf("instances table not created in %s", cfg.Connection.Database)
	}
}

func TestOpenBadCredentials(t *testing.T) {
	cfg := testservices.MySQL(t)
	const secret = "not-the-password-4711"
	cfg.Connection.Credentials.Password = secret
	s, err := state.Open(ctx(t), cfg)
	if err == nil {
		s.Close()
		t.Fatal("Open with a wrong password succeeded")
	}
	msg := err.Error()
	for _, want := range []string{cfg.Connection.URL, cfg.Connection.Credentials.Username, "Access denied"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, secret) {
		t.Errorf("error %q reveals the password", msg)
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.StateDB
		want string
	}{
		{"type", config.StateDB{Type: "postgres", Connection: config.Connection{URL: "x:1", Database: "d"}}, "not supported"},
		{"no database", config.StateDB{Connection: config.Connection{URL: "x:1"}}, "database is empty"},
		{"no url", config.StateDB{Connection: config.Connection{Database: "d"}}, "url is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := state.Open(context.Background(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestGroups(t *testing.T) {
	s, _ := openStore(t)
	c := ctx(t)
	spec1 := json.RawMessage(`{"minNodes":1}`)
	spec2 := json.RawMessage(`{"minNodes":2}`)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	get := func(name string) state.GroupRecord {
		t.Helper()
		gs, err := s.ListGroups(c)
		must(err)
		for _, g := range gs {
			if g.Name == name {
				return g
			}
		}
		t.Fatalf("group %s not listed", name)
		return state.GroupRecord{}
	}

	must(s.UpsertGroup(c, state.GroupRecord{Name: "web", Spec: spec1, WorkflowID: "asg/web", CreatedAt: ts(0), UpdatedAt: ts(0)}))
	must(s.UpsertGroup(c, state.GroupRecord{Name: "web", Spec: spec1, WorkflowID: "asg/web", CreatedAt: ts(0), UpdatedAt: ts(0)}))
	must(s.UpsertGroup(c, state.GroupRecord{Name: "api", Spec: spec1, CreatedAt: ts(0), UpdatedAt: ts(0)}))

	// A newer spec replaces the old one; a stale retry of the old one does not come back.
	must(s.UpsertGroup(c, state.GroupRecord{Name: "web", Spec: spec2, CreatedAt: ts(5), UpdatedAt: ts(5)}))
	must(s.UpsertGroup(c, state.GroupRecord{Name: "web", Spec: spec1, WorkflowID: "stale", CreatedAt: ts(0), UpdatedAt: ts(1)}))
	g := get("web")
	if string(g.Spec) != string(spec2) || g.WorkflowID != "asg/web" {
		t.Errorf("after stale upsert: spec %s workflow %q, want %s and asg/web", g.Spec, g.WorkflowID, spec2)
	}
	if !g.CreatedAt.Equal(us(ts(0))) || !g.UpdatedAt.Equal(us(ts(5))) {
		t.Errorf("created %v updated %v, want %v and %v", g.CreatedAt, g.UpdatedAt, us(ts(0)), us(ts(5)))
	}

	// Deletion keeps its first time, survives a stale upsert, and is undone by a newer one.
	must(s.MarkGroupDeleted(c, "web", ts(10)))
	must(s.MarkGroupDeleted(c, "web", ts(11)))
	if g := get("web"); g.DeletedAt == nil || !g.DeletedAt.Equal(us(ts(10))) {
		t.Errorf("deleted_at = %v, want %v", g.DeletedAt, us(ts(10)))
	}
	must(s.UpsertGroup(c, state.GroupRecord{Name: "web", Spec: spec2, UpdatedAt: ts(9)}))
	if g := get("web"); g.DeletedAt == nil {
		t.Error("a stale upsert undid the deletion")
	}
	must(s.UpsertGroup(c, state.GroupRecord{Name: "web", Spec: spec1, UpdatedAt: ts(20)}))
	if g := get("web"); g.DeletedAt != nil || string(g.Spec) != string(spec1) {
		t.Errorf("re-created group: deleted_at %v spec %s, want nil and %s", g.DeletedAt, g.Spec, spec1)
	}

	if err := s.MarkGroupDeleted(c, "nope", ts(0)); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("MarkGroupDeleted(nope) = %v, want ErrNotFound", err)
	}
	if err := s.UpsertGroup(c, state.GroupRecord{Name: "bad", Spec: json.RawMessage(`{`)}); err == nil {
		t.Error("UpsertGroup accepted invalid JSON")
	}

	gs, err := s.ListGroups(c)
	must(err)
	var names []string
	for _, g := range gs {
		names = append(names, g.Name)
	}
	if want := []string{"api", "web"}; !reflect.DeepEqual(names, want) {
		t.Errorf("ListGroups names = %q, want %q", names, want)
	}
}

func TestUpsertInstance(t *testing.T) {
	// Each case writes its steps in order to a fresh instance and checks what is stored.
	tests := []struct {
		name  string
		steps []state.Instance
		want  state.Instance
	}{
		{
			name: "idempotent",
			steps: []state.Instance{
				{State: spec.StateLaunching, Host: "h1", CreatedAt: ts(0)},
				{State: spec.StateLaunching, Host: "h1", CreatedAt: ts(0)},
			},
			want: state.Instance{State: spec.StateLaunching, Host: "h1", CreatedAt: us(ts(0))},
		},
		{
			name: "lifecycle keeps earlier facts",
			steps: []state.Instance{
				{State: spec.StateLaunching, Host: "h1", CreatedAt: ts(0)},
				{State: spec.StateBooting, CreatedAt: ts(1)},
				{State: spec.StateRunning, Address: "10.0.0.5", CheckedInAt: ptr(ts(2)), LastSeenAt: ptr(ts(2))},
				{State: spec.StateRunning, CheckedInAt: ptr(ts(3)), LastSeenAt: ptr(ts(4))},
				{State: spec.StateRunning, LastSeenAt: ptr(ts(3))},
			},
			want: state.Instance{State: spec.StateRunning, Host: "h1", Address: "10.0.0.5", CreatedAt: us(ts(0)),
				CheckedInAt: ptr(us(ts(2))), LastSeenAt: ptr(us(ts(4)))},
		},
		{
			name: "terminated is sticky",
			steps: []state.Instance{
				{State: spec.StateRunning, Host: "h1", Address: "10.0.0.5", CreatedAt: ts(0)},
				{State: spec.StateTerminated, Reason: "scale in", TerminatedAt: ptr(ts(5))},
				{State: spec.StateRunning, Host: "h2", Address: "10.0.0.6", Reason: "late", LastSeenAt: ptr(ts(6))},
				{State: spec.StateFailed, Reason: "later", TerminatedAt: ptr(ts(7))},
			},
			want: state.Instance{State: spec.StateTerminated, Host: "h1", Address: "10.0.0.5", Reason: "scale in",
				CreatedAt: us(ts(0)), LastSeenAt: ptr(us(ts(6))), TerminatedAt: ptr(us(ts(5)))},
		},
		{
			name: "failed can still terminate",
			steps: []state.Instance{
				{State: spec.StateFailed, Host: "h1", Reason: "no check-in", CreatedAt: ts(0)},
				{State: spec.StateTerminated, TerminatedAt: ptr(ts(3))},
			},
			want: state.Instance{State: spec.StateTerminated, Host: "h1", Reason: "no check-in",
				CreatedAt: us(ts(0)), TerminatedAt: ptr(us(ts(3)))},
		},
	}
	s, _ := openStore(t)
	c := ctx(t)
	// Each case's steps are written one at a time, and all in one UpsertInstances batch: the
	// outcome is the same.
	writers := []struct {
		name  string
		write func([]state.Instance) error
	}{
		{"one by one", func(steps []state.Instance) error {
			for _, step := range steps {
				if err := s.UpsertInstance(c, step); err != nil {
					return fmt.Errorf("UpsertInstance(%+v): %w", step, err)
				}
			}
			return nil
		}},
		{"in one batch", func(steps []state.Instance) error { return s.UpsertInstances(c, steps) }},
	}
	for i, tt := range tests {
		for j, w := range writers {
			t.Run(tt.name+"/"+w.name, func(t *testing.T) {
				name := "g" + string(rune('a'+i)) + string(rune('a'+j)) + "-1"
				steps := slices.Clone(tt.steps)
				for k := range steps {
					steps[k].Name, steps[k].Group = name, "g"
				}
				if err := w.write(steps); err != nil {
					t.Fatal(err)
				}
				checkStored(t, s, c, name, tt.want)
			})
		}
	}

	if _, ok, err := s.GetInstance(c, "absent-1"); ok || err != nil {
		t.Errorf("GetInstance(absent) = %v, %v; want false, nil", ok, err)
	}
	if err := s.UpsertInstance(c, state.Instance{Name: "x-1", State: spec.StateRunning}); err == nil {
		t.Error("UpsertInstance without a group succeeded")
	}
	// A batch with one bad instance writes none of them.
	bad := []state.Instance{{Name: "y-1", Group: "g", State: spec.StateRunning}, {Name: "y-2", State: spec.StateRunning}}
	if err := s.UpsertInstances(c, bad); err == nil || !strings.Contains(err.Error(), "y-2: group is empty") {
		t.Errorf("UpsertInstances with an instance without a group: %v, want an error naming y-2", err)
	}
	if _, ok, _ := s.GetInstance(c, "y-1"); ok {
		t.Error("y-1 was stored from a batch that failed")
	}
}

// checkStored compares what is stored of instance name (group g) with want.
func checkStored(t *testing.T, s *state.Store, c context.Context, name string, want state.Instance) {
	t.Helper()
	got, ok, err := s.GetInstance(c, name)
	if err != nil || !ok {
		t.Fatalf("GetInstance(%s) = %v, %v", name, ok, err)
	}
	want.Name, want.Group = name, "g"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stored\n %+v\nwant\n %+v", show(got), show(want))
	}
}

// show renders an Instance with its time pointers dereferenced, for readable failures.
func show(in state.Instance) string {
	f := func(t *time.Time) string {
		if t == nil {
			return "nil"
		}
		return t.Format(time.RFC3339Nano)
	}
	return strings.Join([]string{in.Name, in.Group, in.Host, in.State, in.Address, in.Reason,
		in.CreatedAt.Format(time.RFC3339Nano), f(in.CheckedInAt), f(in.LastSeenAt), f(in.TerminatedAt)}, " | ")
}

func TestListInstances(t *testing.T) {
	s, _ := openStore(t)
	c := ctx(t)
	for _, in := range []state.Instance{
		{Name: "web-10", Group: "web", State: spec.StateRunning},
		{Name: "web-2", Group: "web", State: spec.StateRunning},
		{Name: "web-1", Group: "web", State: spec.StateTerminated},
		{Name: "web-3", Group: "web", State: spec.StateBooting},
		{Name: "api-1", Group: "api", State: spec.StateRunning},
	} {
		if err := s.UpsertInstance(c, in); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		group      string
		terminated bool
		want       []string
	}{
		{"web", false, []string{"web-2", "web-3", "web-10"}},
		{"web", true, []string{"web-1", "web-2", "web-3", "web-10"}},
		{"api", false, []string{"api-1"}},
		{"none", true, nil},
		{"", false, []string{"api-1", "web-2", "web-3", "web-10"}},
	}
	for _, tt := range tests {
		got, err := s.ListInstances(c, tt.group, tt.terminated)
		if err != nil {
			t.Fatalf("ListInstances(%q, %v): %v", tt.group, tt.terminated, err)
		}
		var names []string
		for _, in := range got {
			names = append(names, in.Name)
		}
		if !reflect.DeepEqual(names, tt.want) {
			t.Errorf("ListInstances(%q, %v) = %q, want %q", tt.group, tt.terminated, names, tt.want)
		}
	}
}

func TestScalingEvents(t *testing.T) {
	s, _ := openStore(t)
	c := ctx(t)
	first := state.ScalingEvent{Key: "asg/web/run1/1", Group: "web", At: ts(1), From: 1, To: 2,
		Metrics: map[string]float64{"cpu": 91.5, "memory": 40}, Reason: "cpu above target", Action: "scale-out",
		WorkflowID: "asg/web", RunID: "run1"}
	inserted, err := s.RecordScalingEvent(c, first)
	if err != nil || !inserted {
		t.Fatalf("first RecordScalingEvent = %v, %v; want true, nil", inserted, err)
	}
	retry := first
	retry.To, retry.Reason = 3, "retried with other values"
	inserted, err = s.RecordScalingEvent(c, retry)
	if err != nil || inserted {
		t.Fatalf("retried RecordScalingEvent = %v, %v; want false, nil", inserted, err)
	}
	// Recorded out of order, listed oldest first.
	for _, e := range []state.ScalingEvent{
		{Key: "asg/web/run1/3", Group: "web", At: ts(3), From: 2, To: 1, Action: "scale-in"},
		{Key: "asg/web/run1/2", Group: "web", At: ts(2), From: 2, To: 2, Action: "none", Metrics: map[string]float64{}},
		{Key: "asg/api/run9/1", Group: "api", At: ts(2), From: 1, To: 1},
	} {
		if _, err := s.RecordScalingEvent(c, e); err != nil {
			t.Fatal(err)
		}
	}

	all, err := s.ListScalingEvents(c, "web", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range all {
		keys = append(keys, e.Key)
	}
	if want := []string{"asg/web/run1/1", "asg/web/run1/2", "asg/web/run1/3"}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("ListScalingEvents keys = %q, want %q", keys, want)
	}
	want := first
	want.At = us(first.At)
	if !reflect.DeepEqual(all[0], want) {
		t.Errorf("first event read back as %+v, want %+v", all[0], want)
	}
	if len(all[2].Metrics) != 0 {
		t.Errorf("event without metrics read back with %v", all[2].Metrics)
	}

	since, err := s.ListScalingEvents(c, "web", ts(2))
	if err != nil {
		t.Fatal(err)
	}
	if len(since) != 2 || since[0].Key != "asg/web/run1/2" {
		t.Errorf("ListScalingEvents since %v returned %+v, want 2 events starting with asg/web/run1/2", ts(2), since)
	}

	if _, err := s.RecordScalingEvent(c, state.ScalingEvent{Group: "web"}); err == nil {
		t.Error("RecordScalingEvent without a key succeeded")
	}
}
