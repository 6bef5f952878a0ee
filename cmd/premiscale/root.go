package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/premiscale/premiscale/internal/config"
)

// globalFlags are the classic agent flags; -c, --debug and --log-stdout reach every subcommand.
type globalFlags struct {
	configPath string
	daemon     bool
	validate   bool
	version    bool
	logStdout  bool
	pidFile    string
	debug      bool
	// waitForDeps and waitTimeout: see addWorkerFlags.
	waitForDeps bool
	waitTimeout time.Duration
	platform    platformFlags
	temporal    temporalFlags
	// serve: the hosts this worker serves (--serve).
	serve []string
}

const defaultPidFile = "/opt/premiscale/premiscale.pid"

func newRootCommand() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "premiscale",
		Short: "Autoscale pools of libvirt virtual machines",
		Long: `PremiScale keeps autoscaling groups of libvirt VMs sized to their load.

Run with a config file to start the worker (the same as "premiscale worker"); use the
"group" commands to create, inspect and delete autoscaling groups.`,
		Example: `  # Check a config file, then run the worker with it in the background
  premiscale --validate -c /opt/premiscale/config.yaml
  premiscale -d -c /opt/premiscale/config.yaml

  # Register the search attributes on a production namespace, then start a group and wait for it
  premiscale temporal setup -c /opt/premiscale/config.yaml
  premiscale group create web --wait -c /opt/premiscale/config.yaml`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case g.version:
				return printVersion(cmd.OutOrStdout())
			case g.validate:
				return runValidate(cmd, g)
			}
			return runWorker(cmd, g)
		},
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&g.configPath, "config", "c", config.DefaultPath, "configuration file to use")
	pf.BoolVar(&g.logStdout, "log-stdout", false, "log to stdout (JSON) instead of a file beside the pid file")
	pf.BoolVar(&g.debug, "debug", false, "log at debug level")
	addTemporalFlags(pf, &g.temporal)
	f := root.Flags()
	addWorkerFlags(root, g)
	f.BoolVar(&g.validate, "validate", false, "validate the configuration file and exit")
	f.BoolVar(&g.version, "version", false, "print the version and exit")

	root.AddCommand(newWorkerCommand(g), newGroupCommand(g), newHostCommand(g), newTemporalCommand(g), newVersionCommand())
	addCompletionCommand(root)
	return root
}

// runValidate loads the config and prints a summary, or every problem found.
func runValidate(cmd *cobra.Command, g *globalFlags) error {
	path := g.configPath
	cfg, err := config.Load(path)
	if err != nil {
		return describeConfigError(path, err)
	}
	if err := applyPlatformFlags(cmd, cfg, &g.platform); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s is valid.\n%s", path, cfg.Summary())
	return nil
}

// invalidConfigError is a configuration file with problems, printed with a header and one
// "<file>:<line>: <key>: <message>" line per problem.
type invalidConfigError struct {
	path string
	err  *config.ValidationError
}

func (e *invalidConfigError) Error() string {
	return fmt.Sprintf("%s is not valid (%d problems):\n%s", e.path, len(e.err.Problems), e.err.Detailed())
}

func (e *invalidConfigError) Unwrap() error { return e.err }

// describeConfigError gives a *config.ValidationError from loading path its printed form;
// other errors are returned as they are.
func describeConfigError(path string, err error) error {
	var verr *config.ValidationError
	if errors.As(err, &verr) {
		return &invalidConfigError{path: path, err: verr}
	}
	return err
}

// loadConfig reads the config for any command; the TEMPORAL_* environment variables and then
// the --temporal-* flags override controller.temporal.
func loadConfig(g *globalFlags) (*config.Config, error) {
	cfg, err := config.Load(g.configPath)
	if err != nil {
		return nil, describeConfigError(g.configPath, err)
	}
	if cfg.Controller.Temporal, err = resolveTemporal(cfg.Controller.Temporal, g.temporal); err != nil {
		return nil, err
	}
	return cfg, nil
}

// newLogger builds the process logger: JSON on stdout with --log-stdout, else JSON to logFile,
// else text on stderr (for short-lived CLI commands).
func newLogger(g *globalFlags, logFile string) (*slog.Logger, func(), error) {
	level := slog.LevelInfo
	if g.debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	switch {
	case g.logStdout:
		return slog.New(slog.NewJSONHandler(os.Stdout, opts)), func() {}, nil
	case logFile != "":
		if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
			return nil, nil, fmt.Errorf("create log folder: %w", err)
		}
		f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("open log file: %w", err)
		}
		return slog.New(slog.NewJSONHandler(f, opts)), func() { f.Close() }, nil
	default:
		if !g.debug {
			opts.Level = slog.LevelWarn
		}
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), func() {}, nil
	}
}
