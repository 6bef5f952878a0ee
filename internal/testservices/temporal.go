package testservices

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
)

// SearchAttributes are the custom search attributes PremiScale's workflows set, as the
// Temporal dev server's --search-attribute flags take them (testenv/temporal registers the
// same).
var SearchAttributes = []string{
	"PremiscaleGroup=Keyword",
	"PremiscaleDesired=Int",
	"PremiscaleCurrent=Int",
	"PremiscaleLastAction=Keyword",
	"PremiscaleHost=Keyword",
}

// Temporal is a private Temporal dev server (namespace default), its history in a SQLite file
// that survives Stop and Start.
type Temporal struct{ *Service }

// StartTemporal starts a Temporal dev server of the test's own, on free ports of 127.0.0.1,
// without its web UI, with PremiScale's search attributes; Addr is its gRPC frontend.
func StartTemporal(t testing.TB) *Temporal {
	t.Helper()
	svc := newTemporal(t)
	svc.Start()
	return svc
}

// newTemporal prepares what StartTemporal starts.
func newTemporal(t testing.TB) *Temporal {
	t.Helper()
	bin := lookTool(t, "temporal")
	port := FreePort(t)
	s := newService(t, "temporal", fmt.Sprintf("Temporal dev server on 127.0.0.1:%d", port))
	s.addr = "127.0.0.1:" + strconv.Itoa(port)
	// The HTTP API and metrics ports default to random ones; pinned, a restart keeps them.
	httpPort, metricsPort := FreePort(t), FreePort(t)
	db := filepath.Join(s.dir, "temporal.db")
	s.command = func() *exec.Cmd {
		args := []string{"server", "start-dev", "--headless",
			"--ip", "127.0.0.1", "--port", strconv.Itoa(port),
			"--http-port", strconv.Itoa(httpPort), "--metrics-port", strconv.Itoa(metricsPort),
			"--db-filename", db, "--log-level", "warn"}
		for _, sa := range SearchAttributes {
			args = append(args, "--search-attribute", sa)
		}
		return exec.Command(bin, args...)
	}
	s.ready = func(ctx context.Context) error { return temporalHealthy(ctx, s.addr) }
	return &Temporal{s}
}

// temporalHealthy asks the frontend at addr for its health once.
func temporalHealthy(ctx context.Context, addr string) error {
	c, err := client.DialContext(ctx, client.Options{
		HostPort: addr,
		Logger:   tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
	return err
}
