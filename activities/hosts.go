package activities

import (
	"context"
	"fmt"

	"github.com/premiscale/premiscale/internal/spec"
)

// HostStates returns the named hosts as the fleet sees them, in the order given: up or down
// (by their last proof of life and HostDownAfter), their capacity and what PremiScale's domains
// hold on them. A host no worker ever reached is down.
func (a *Activities) HostStates(ctx context.Context, names []string) ([]spec.Host, error) {
	recs, err := a.Store.ListHosts(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("read the state of hosts %v: %w", names, err)
	}
	out := make([]spec.Host, len(names))
	for i, name := range names {
		out[i] = spec.Host{Name: name, Down: "no worker has reached it yet"}
		for _, r := range recs {
			if r.Name == name {
				out[i] = r.Spec(a.HostDownAfter)
			}
		}
	}
	return out, nil
}
