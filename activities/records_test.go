package activities

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"
)

// Records made at the same moment by many instances of a worker land in MySQL, batched; one
// bad record among them fails alone.
func TestRecordInstanceBurst(t *testing.T) {
	ctx := context.Background()
	store, err := state.Open(ctx, testservices.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	a := &Activities{Store: store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	at := time.Now().UTC().Truncate(time.Microsecond)
	const n = 60
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	for i := range n + 1 {
		wg.Go(func() {
			r := InstanceRecord{Name: fmt.Sprintf("web-%d", i), Group: "web", Host: "h1", State: spec.StateRunning, At: at}
			if i == n {
				r.Group = "" // refused by the store
			}
			errs[i] = a.RecordInstance(ctx, r)
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("record web-%d: %v", i, errs[i])
			continue
		}
		in, ok, err := store.GetInstance(ctx, fmt.Sprintf("web-%d", i))
		if err != nil || !ok || in.State != spec.StateRunning || in.LastSeenAt == nil || !in.LastSeenAt.Equal(at) {
			t.Errorf("web-%d stored as %+v (%v, %v), want running, last seen %s", i, in, ok, err, at)
		}
	}
	if errs[n] == nil || !strings.Contains(errs[n].Error(), "group is empty") {
		t.Errorf("the record without a group: %v, want the store's refusal", errs[n])
	}
}
