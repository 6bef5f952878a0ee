package worker

import (
	"context"

	"github.com/premiscale/premiscale/internal/platform"
)

// startPlatform runs the link to the PremiScale platform beside the workers, until Close. The
// link decides for itself whether it has anything to do (a token or a kept registration) and
// which agent of the installation holds it; when it stops for good (a refused token, a
// certificate that does not verify) it says why, and the agent goes on autoscaling.
func (a *Agent) startPlatform() {
	hosts := make(map[string]platform.Host, len(a.conns))
	for name, c := range a.conns {
		hosts[name] = c
	}
	link, err := platform.New(platform.Config{
		Platform: a.cfg.Controller.Platform, Agent: a.cfg, ConfigDir: a.opts.ConfigDir,
		Store: a.store, Groups: a.Groups(), Hosts: hosts, Version: a.opts.Version,
		Logger: a.log, Options: a.opts.Platform,
	})
	if err != nil {
		a.log.Error("the platform link cannot start; autoscaling goes on without it", "error", err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopOthers := a.stop
	a.stop = func() {
		cancel()
		if stopOthers != nil {
			stopOthers()
		}
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		_ = link.Run(ctx) // a permanent failure is logged by Run
	}()
}
