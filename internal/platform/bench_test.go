package platform_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/platform/platformtest"
	"github.com/premiscale/premiscale/internal/state"
)

// BenchmarkOutboxDelivery measures the link's throughput: b.N events of 1 KiB wait in the
// outbox (written while the platform was away), then the platform comes back and the
// benchmark times their delivery and acknowledgement.
//
//	go test -run '^$' -bench OutboxDelivery -benchtime 5000x ./internal/platform/
func BenchmarkOutboxDelivery(b *testing.B) {
	f := newFixture(b)
	f.plat.SetAway(true)
	f.plat.SetKeepPayloads(0)
	if err := f.store.SaveRegistration(context.Background(), state.Registration{Host: f.plat.URL, AgentID: platformtest.AgentID, Credential: platformtest.Credential}); err != nil {
		b.Fatal(err)
	}
	ids := enqueue(b, f.store, "bench", b.N, json.RawMessage(`{"pad":"`+strings.Repeat("x", 1024)+`"}`))
	f.start(f.linkConfig(f.store))
	b.ResetTimer()
	start := time.Now()
	f.plat.SetAway(false)
	f.plat.WaitFor(b, 10*time.Minute, ids)
	for pendingCount(b, f.store) > 0 {
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
