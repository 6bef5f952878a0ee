package testservices

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/premiscale/premiscale/internal/config"
)

// InfluxDB is a private InfluxDB 1.8 with Flux enabled and authentication off, its data in the
// service's folder.
type InfluxDB struct{ *Service }

// StartInfluxDB starts an InfluxDB 1.8 of the test's own on free ports of 127.0.0.1 (the HTTP
// API and the RPC port both: the shared one holds the default 8088).
func StartInfluxDB(t testing.TB) *InfluxDB {
	t.Helper()
	svc := newInfluxDB(t)
	svc.Start()
	return svc
}

// newInfluxDB prepares what StartInfluxDB starts.
func newInfluxDB(t testing.TB) *InfluxDB {
	t.Helper()
	bin := lookTool(t, "influxd")
	port, rpcPort := FreePort(t), FreePort(t)
	s := newService(t, "influxdb", fmt.Sprintf("InfluxDB on 127.0.0.1:%d", port))
	s.addr = "127.0.0.1:" + strconv.Itoa(port)
	// What testenv/influxdb sets, as a file: influxd fills in every key left out with its
	// default, and the listeners not named here (graphite, collectd, opentsdb, udp) are off.
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%[2]d"
[meta]
  dir = %[1]q
[data]
  dir = %[3]q
  wal-dir = %[4]q
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = %[5]q
  auth-enabled = false
  flux-enabled = true
  log-enabled = false
[logging]
  level = "warn"
  suppress-logo = true
`, filepath.Join(s.dir, "meta"), rpcPort, filepath.Join(s.dir, "data"), filepath.Join(s.dir, "wal"), s.addr)
	confPath := filepath.Join(s.dir, "influxd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatalf("testservices: write %s: %v", confPath, err)
	}
	s.command = func() *exec.Cmd { return exec.Command(bin, "run", "-config", confPath) }
	hc := &http.Client{}
	s.ready = func(ctx context.Context) error { return influxPing(ctx, hc, "http://"+s.addr) }
	return &InfluxDB{s}
}

// URL is the base URL of the HTTP API.
func (s *InfluxDB) URL() string { return "http://" + s.addr }

// Database creates a fresh database on this InfluxDB and returns a time-series configuration
// pointing at it.
func (s *InfluxDB) Database(t testing.TB) config.Timeseries {
	t.Helper()
	return influxAt(t, s.URL(), false)
}

// influxPing asks for /ping once.
func influxPing(ctx context.Context, hc *http.Client, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/ping", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /ping: %s", resp.Status)
	}
	return nil
}
