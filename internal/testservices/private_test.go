package testservices_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/go-sql-driver/mysql"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/premiscale/premiscale/internal/testservices"
)

// TestStackStopsAndStartsWithItsData starts a private stack and takes each service through
// what outage tests do to it: stopped and started again on the same address with its data, or
// paused (nothing answers) and resumed.
func TestStackStopsAndStartsWithItsData(t *testing.T) {
	st := testservices.StartStack(t, 2)
	for _, s := range st.Services() {
		if !s.Running() || s.Pid() == 0 {
			t.Fatalf("%s does not run after StartStack", s.Name())
		}
	}

	t.Run("temporal", func(t *testing.T) {
		ctx := context.Background()
		c := temporalClient(t, st.Temporal.Addr())
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "survives-restart", TaskQueue: "nobody"}, "NoSuchWorkflow")
		if err != nil {
			t.Fatal(err)
		}
		st.Temporal.Stop()
		if _, err := c.CheckHealth(shortCtx(t), &client.CheckHealthRequest{}); err == nil {
			t.Fatal("stopped Temporal dev server still answers")
		}
		st.Temporal.Start()
		d, err := c.DescribeWorkflowExecution(ctx, "survives-restart", run.GetRunID())
		if err != nil {
			t.Fatalf("workflow started before the restart: %v", err)
		}
		if got := d.WorkflowExecutionInfo.Execution.RunId; got != run.GetRunID() {
			t.Errorf("run %s after the restart, want %s", got, run.GetRunID())
		}
		sa, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range testservices.SearchAttributes {
			name, _, _ := strings.Cut(want, "=")
			if _, ok := sa.CustomAttributes[name]; !ok {
				t.Errorf("search attribute %s not registered after the restart: %v", name, sa.CustomAttributes)
			}
		}
	})

	t.Run("mariadb", func(t *testing.T) {
		cfg := st.MariaDB.Database(t)
		db := openMySQL(t, cfg.Connection.URL, cfg.Connection.Database)
		ctx := context.Background()
		if _, err := db.ExecContext(ctx, "CREATE TABLE kept (v INT)"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO kept VALUES (42)"); err != nil {
			t.Fatal(err)
		}
		st.MariaDB.Stop()
		if err := db.PingContext(shortCtx(t)); err == nil {
			t.Fatal("stopped MariaDB still answers")
		}
		st.MariaDB.Start()
		var v int
		if err := db.QueryRowContext(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != 42 {
			t.Fatalf("row written before the restart: %d, %v", v, err)
		}
		st.MariaDB.Pause()
		if err := db.QueryRowContext(shortCtx(t), "SELECT v FROM kept").Scan(&v); err == nil {
			t.Error("paused MariaDB answered")
		}
		st.MariaDB.Resume()
		if err := db.QueryRowContext(ctx, "SELECT v FROM kept").Scan(&v); err != nil {
			t.Fatalf("after resume: %v", err)
		}
	})

	t.Run("influxdb", func(t *testing.T) {
		cfg := st.InfluxDB.Database(t)
		base := st.InfluxDB.URL()
		resp, err := http.Post(base+"/write?db="+cfg.Connection.Database, "text/plain", strings.NewReader("m v=7"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("write: %s", resp.Status)
		}
		st.InfluxDB.Stop()
		if _, err := http.Get(base + "/ping"); err == nil {
			t.Fatal("stopped InfluxDB still answers")
		}
		st.InfluxDB.Start()
		q := url.Values{"db": {cfg.Connection.Database}, "q": {"SELECT v FROM m"}}
		resp, err = http.Get(base + "/query?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), ",7]") {
			t.Errorf("point written before the restart not found: %s", body)
		}
		// Flux is on, as the worker's queries need.
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v2/query", strings.NewReader(`buckets()`))
		req.Header.Set("Content-Type", "application/vnd.flux")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), cfg.Connection.Database) {
			t.Errorf("Flux buckets(): %s %s", resp.Status, body)
		}
	})

	t.Run("libvirtd", func(t *testing.T) {
		h1, h2 := st.Hosts[0], st.Hosts[1]
		if h1.User() == h2.User() && h1.User() != "" {
			t.Errorf("both hosts run as %s", h1.User())
		}
		l1 := dialLibvirt(t, h1.TestURI())
		l2 := dialLibvirt(t, h2.TestURI())
		const dom = `<domain type='test'><name>%s</name><memory>65536</memory><os><type>hvm</type></os></domain>`
		if _, err := l1.DomainDefineXML(fmt.Sprintf(dom, "on-h1")); err != nil {
			t.Fatal(err)
		}
		if _, err := l2.DomainLookupByName("on-h1"); err == nil {
			t.Error("a domain defined on the first host is visible on the second")
		}

		h1.Pause()
		answered := make(chan error, 1)
		go func() { _, err := l1.DomainLookupByName("on-h1"); answered <- err }()
		select {
		case err := <-answered:
			t.Fatalf("paused libvirtd answered: %v", err)
		case <-time.After(time.Second):
		}
		h1.Resume()
		select {
		case err := <-answered:
			if err != nil {
				t.Fatalf("the call made while paused, after resume: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no answer 10 s after resume")
		}

		// The test driver's state lives in the daemon: a restart is a host that lost it.
		h1.Stop()
		h1.Start()
		l1 = dialLibvirt(t, h1.TestURI())
		if _, err := l1.DomainLookupByName("on-h1"); err == nil {
			t.Error("the test driver kept a domain across a restart of its daemon")
		}
		if _, err := l1.StoragePoolLookupByName(testservices.TestPool); err != nil {
			t.Errorf("pool %s after the restart: %v", testservices.TestPool, err)
		}
	})
}

func shortCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func temporalClient(t *testing.T, addr string) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: addr, Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func openMySQL(t *testing.T, addr, database string) *sql.DB {
	t.Helper()
	mc := mysql.NewConfig()
	mc.Net, mc.Addr, mc.DBName = "tcp", addr, database
	mc.User, mc.Passwd = testservices.DefaultMySQLUser, testservices.DefaultMySQLPassword
	mc.Timeout = 2 * time.Second
	c, err := mysql.NewConnector(mc)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db
}

func dialLibvirt(t *testing.T, uri string) *golibvirt.Libvirt {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	l, err := golibvirt.ConnectToURI(u)
	if err != nil {
		t.Fatalf("connect to %s: %v", uri, err)
	}
	t.Cleanup(func() { l.Disconnect() })
	return l
}
