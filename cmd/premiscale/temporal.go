package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/temporalclient"
)

// temporalFlags override controller.temporal for any command; they win over the TEMPORAL_*
// environment variables, which win over the file.
type temporalFlags struct {
	address, namespace string
}

const (
	flagTemporalAddress   = "temporal-address"
	flagTemporalNamespace = "temporal-namespace"
)

func addTemporalFlags(pf *pflag.FlagSet, tf *temporalFlags) {
	pf.StringVar(&tf.address, flagTemporalAddress, "", "Temporal frontend host:port (overrides TEMPORAL_ADDRESS and controller.temporal.address)")
	pf.StringVar(&tf.namespace, flagTemporalNamespace, "", "Temporal namespace (overrides TEMPORAL_NAMESPACE and controller.temporal.namespace)")
}

// resolveTemporal applies the TEMPORAL_* environment variables and the flags to t.
func resolveTemporal(t config.Temporal, tf temporalFlags) (config.Temporal, error) {
	return temporalclient.Resolve(t, os.LookupEnv, temporalclient.Flags{
		Address: tf.address, AddressFlag: "--" + flagTemporalAddress,
		Namespace: tf.namespace, NamespaceFlag: "--" + flagTemporalNamespace,
	})
}

// dialTimeout bounds connecting to Temporal for the short-lived commands.
const dialTimeout = 15 * time.Second

func dialTemporal(ctx context.Context, t config.Temporal, logger *slog.Logger) (client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	return temporalclient.Dial(ctx, t, logger)
}

func newTemporalCommand(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "temporal",
		Short: "Prepare a Temporal namespace for PremiScale",
		Example: `  # Register PremiScale's search attributes on the config's namespace
  premiscale temporal setup -c /opt/premiscale/config.yaml`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newTemporalSetupCommand(g))
	return cmd
}

func newTemporalSetupCommand(g *globalFlags) *cobra.Command {
	var (
		create    bool
		retention time.Duration
	)
	out := &groupFlags{}
	attrs := make([]string, len(spec.SearchAttributes))
	for i, a := range spec.SearchAttributes {
		attrs[i] = fmt.Sprintf("%s (%s)", a.GetName(), a.GetValueType())
	}
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Register PremiScale's search attributes on the namespace (and create it if asked)",
		Long: `Registers the search attributes PremiScale's workflows set on the namespace:
  ` + strings.Join(attrs, ", ") + `.
Attributes already registered with the right type are left alone, so running it again is
harmless; an attribute registered with another type is an error. With --create-namespace, a
namespace that does not exist is created with --retention first.

Temporal is reached as every command reaches it: controller.temporal from -c (or the defaults,
127.0.0.1:7233 and namespace "default", when the file does not exist), the TEMPORAL_*
environment variables, then --temporal-address and --temporal-namespace.`,
		Example: `  # The namespace of the config file
  premiscale temporal setup -c /opt/premiscale/config.yaml

  # A new namespace on a self-hosted cluster, keeping closed workflows for 30 days
  premiscale temporal setup --temporal-address temporal.internal:7233 \
    --temporal-namespace premiscale --create-namespace --retention 720h

  # Temporal Cloud with an API key
  TEMPORAL_ADDRESS=us-east-1.aws.api.temporal.io:7233 TEMPORAL_NAMESPACE=premiscale.a1b2c \
    TEMPORAL_API_KEY=... premiscale temporal setup`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			if create && retention <= 0 {
				return fmt.Errorf("--retention %s: must be a positive duration such as 72h", retention)
			}
			t, err := temporalSettings(cmd, g)
			if err != nil {
				return err
			}
			logger, closeLog, err := newLogger(g, "")
			if err != nil {
				return err
			}
			defer closeLog()
			tc, err := dialTemporal(cmd.Context(), t, logger)
			if err != nil {
				return err
			}
			defer tc.Close()
			res, err := temporalclient.Setup(cmd.Context(), tc, temporalclient.SetupOptions{
				Namespace: t.Namespace, CreateNamespace: create, Retention: retention, Attributes: spec.SearchAttributes,
			})
			if err != nil {
				return fmt.Errorf("Temporal at %s: %w", t.Address, err)
			}
			return out.print(cmd.OutOrStdout(), res, func(w io.Writer) { printSetup(w, t.Address, res, retention) })
		},
	}
	f := cmd.Flags()
	f.BoolVar(&create, "create-namespace", false, "create the namespace if it does not exist")
	f.DurationVar(&retention, "retention", 72*time.Hour, "with --create-namespace: how long closed workflows are kept")
	out.addFlag(cmd)
	return cmd
}

// temporalSettings is controller.temporal for commands that need only Temporal: from the config
// file when there is one (or -c names one), else the defaults; then the environment and flags.
func temporalSettings(cmd *cobra.Command, g *globalFlags) (config.Temporal, error) {
	if !cmd.Flags().Changed("config") {
		if _, err := os.Stat(g.configPath); errors.Is(err, os.ErrNotExist) {
			return resolveTemporal(config.Temporal{
				Address: config.DefaultTemporalAddress, Namespace: config.DefaultTemporalNamespace, TaskQueue: spec.DefaultTaskQueue,
			}, g.temporal)
		}
	}
	cfg, err := loadConfig(g)
	if err != nil {
		return config.Temporal{}, err
	}
	return cfg.Controller.Temporal, nil
}

func printSetup(w io.Writer, address string, res temporalclient.SetupResult, retention time.Duration) {
	if res.NamespaceCreated {
		fmt.Fprintf(w, "namespace %s created on %s (retention %s)\n", res.Namespace, address, retention)
	} else {
		fmt.Fprintf(w, "namespace %s on %s\n", res.Namespace, address)
	}
	fmt.Fprintln(w, "SEARCH ATTRIBUTE\tTYPE\tSTATUS")
	for _, a := range res.Attributes {
		what := "already registered"
		if a.Added {
			what = "added"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", a.Name, a.Type, what)
	}
}
