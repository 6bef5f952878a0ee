package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/premiscale/premiscale/internal/config"
)

// platformFlags are --host and --token, on the root command and on worker.
type platformFlags struct {
	host, token string
}

func addPlatformFlags(f *pflag.FlagSet, p *platformFlags) {
	f.StringVar(&p.host, "host", "", "WSS URL of the PremiScale platform (default: controller.platform.host, else "+config.DefaultPlatformHost+")")
	f.StringVar(&p.token, "token", "", "token for registering the agent with the PremiScale platform on first start (default: controller.platform.token)")
}

// applyPlatformFlags puts --host and --token, when given, over controller.platform.
func applyPlatformFlags(cmd *cobra.Command, cfg *config.Config, p *platformFlags) error {
	flags := cmd.Flags()
	if f := flags.Lookup("host"); f != nil && f.Changed {
		cfg.Controller.Platform.Host = p.host
		if _, err := cfg.Controller.Platform.URLs(); err != nil {
			return fmt.Errorf("--host: %w", err)
		}
	}
	if f := flags.Lookup("token"); f != nil && f.Changed {
		cfg.Controller.Platform.Token = p.token
	}
	return nil
}
