package worker

import (
	"context"

	"github.com/premiscale/premiscale/internal/platform"
)

// platformComponent runs the link to the PremiScale platform beside the Temporal workers. The
// link decides for itself whether it has anything to do (a token or a kept registration) and
// which worker of the installation holds it. When it stops for good (a refused token, a
// certificate that does not verify) it says why and the worker goes on autoscaling: that is
// not a failure of the worker.
func (w *Worker) platformComponent() component {
	return component{name: "platform link", run: func(ctx context.Context, up func()) error {
		hosts := make(map[string]platform.Host, len(w.conns))
		for name, c := range w.conns {
			hosts[name] = c
		}
		link, err := platform.New(platform.Config{
			Platform: w.cfg.Controller.Platform, Agent: w.cfg, ConfigDir: w.opts.ConfigDir,
			Store: w.store, Groups: w.Groups(), Hosts: hosts, Version: w.opts.Version,
			Logger: w.quiet, Options: w.opts.Platform,
		})
		up()
		if err != nil {
			w.log.Error("the platform link cannot start; autoscaling goes on without it", "error", err)
		} else {
			_ = link.Run(ctx) // a permanent failure is logged by Run
		}
		<-ctx.Done()
		return nil
	}}
}
