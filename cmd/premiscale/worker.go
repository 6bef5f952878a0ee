package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/premiscale/premiscale/internal/sdnotify"
	"github.com/premiscale/premiscale/worker"
)

// daemonChildEnv marks the re-executed background copy of a daemonizing worker.
const daemonChildEnv = "PREMISCALE_DAEMON_CHILD"

func newWorkerCommand(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run the worker: Temporal workers for the shared queue and each host, and the config's groups",
		Example: `  premiscale worker -c /opt/premiscale/config.yaml --log-stdout
  TEMPORAL_ADDRESS=temporal.internal:7233 premiscale worker -d -c /opt/premiscale/config.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runWorker(cmd, g)
		},
	}
	addWorkerFlags(cmd, g)
	return cmd
}

// addWorkerFlags defines the flags of a command that runs the worker: the root command and
// "worker".
func addWorkerFlags(cmd *cobra.Command, g *globalFlags) {
	f := cmd.Flags()
	f.BoolVarP(&g.daemon, "daemon", "d", false, "run the worker as a daemon in the background")
	f.StringVar(&g.pidFile, "pid-file", defaultPidFile, "pid file of the worker (default: controller.pidFile from the config)")
	f.BoolVar(&g.waitForDeps, "wait-for-dependencies", true, "at start-up, wait for Temporal, MySQL, InfluxDB and the hosts' libvirt (retrying with back-off) instead of exiting")
	f.DurationVar(&g.waitTimeout, "wait-timeout", 0, "give up waiting for dependencies after this long (0: wait until stopped)")
	addPlatformFlags(f, &g.platform)
	f.StringSliceVar(&g.serve, "serve", nil, "serve only these hosts of controller.autoscale.hosts (repeat or comma-separate; default: controller.autoscale.serve, or every host)")
}

func runWorker(cmd *cobra.Command, g *globalFlags) error {
	cfg, err := loadConfig(g)
	if err != nil {
		return err
	}
	if err := applyPlatformFlags(cmd, cfg, &g.platform); err != nil {
		return err
	}
	pidFile := cfg.Controller.PidFile
	if f := cmd.Flags().Lookup("pid-file"); f != nil && f.Changed {
		pidFile = g.pidFile
	}
	logFile := filepath.Join(filepath.Dir(pidFile), "premiscale.log")
	if g.daemon && os.Getenv(daemonChildEnv) == "" {
		return daemonize(cmd, pidFile, logFile)
	}
	lock, err := lockPidFile(pidFile)
	if err != nil {
		return err
	}
	defer lock.release()

	logger, closeLog, err := newLogger(g, logFile)
	if err != nil {
		return err
	}
	defer closeLog()
	if !g.logStdout && os.Getenv(daemonChildEnv) == "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "premiscale worker running (pid %d); logs: %s\n", os.Getpid(), logFile)
	}
	logger.Info("worker starting", "version", version, "config", g.configPath, "pid_file", pidFile,
		"wait_for_dependencies", g.waitForDeps, "wait_timeout", g.waitTimeout)
	opts := worker.Options{
		Logger:              logger,
		StartGroups:         true,
		WaitForDependencies: g.waitForDeps,
		WaitTimeout:         g.waitTimeout,
		Notify:              sdnotify.FromEnv().Notify,
		Version:             version,
		ConfigDir:           filepath.Dir(g.configPath),
		Hosts:               g.serve,
	}
	// The pid file says the worker is up. Waiting for dependencies is part of being up (its
	// health endpoint says for what); without waiting, a missing dependency is a failed start.
	if g.waitForDeps {
		opts.Started = lock.writePid
	} else {
		opts.Ready = lock.writePid
	}
	if err := worker.Run(cmd.Context(), cfg, opts); err != nil {
		logger.Error("worker stopped", "error", err)
		return err
	}
	logger.Info("worker stopped")
	return nil
}

// daemonize starts this same command again in a new session and returns once the background
// copy holds the pid file, or reports why it did not start.
func daemonize(cmd *cobra.Command, pidFile, logFile string) error {
	// Refuse early, with the same message the child would log, if a worker already runs.
	lock, err := lockPidFile(pidFile)
	if err != nil {
		return err
	}
	lock.release()

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable to daemonize: %w", err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	child := exec.Command(self, os.Args[1:]...)
	child.Env = append(os.Environ(), daemonChildEnv+"=1")
	child.Stdin, child.Stdout, child.Stderr = devnull, devnull, devnull
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := child.Start(); err != nil {
		return fmt.Errorf("start background worker: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	// The child writes its pid once it has started (see runWorker): with
	// --wait-for-dependencies=false only once connected, so a bad password or an unreachable
	// Temporal is reported here rather than only in the log.
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("background worker exited during start-up (%v); see %s", err, logFile)
		case <-deadline:
			return fmt.Errorf("background worker (pid %d) did not finish starting within 2m; see %s", child.Process.Pid, logFile)
		case <-time.After(100 * time.Millisecond):
		}
		if b, err := os.ReadFile(pidFile); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(child.Process.Pid) {
			fmt.Fprintf(cmd.OutOrStdout(), "premiscale worker started in the background (pid %d); pid file %s; logs %s\n", child.Process.Pid, pidFile, logFile)
			return nil
		}
	}
}

// pidLock is a worker's claim on its pid file. The claim is an flock, so a file left behind by
// a crashed worker is stale (nobody holds the lock) and is simply taken over.
type pidLock struct {
	f    *os.File
	path string
}

func lockPidFile(path string) (*pidLock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create folder of pid file %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open pid file %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := strings.TrimSpace(string(b))
			if pid == "" {
				pid = "still starting"
			}
			return nil, fmt.Errorf("another premiscale worker (pid %s) is running with pid file %s", pid, path)
		}
		return nil, fmt.Errorf("lock pid file %s: %w", path, err)
	}
	// Until the worker has started the file is held but empty: a stale pid must not look current.
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write pid file %s: %w", path, err)
	}
	return &pidLock{f: f, path: path}, nil
}

// writePid records this process in the locked pid file.
func (l *pidLock) writePid() error {
	if _, err := l.f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return fmt.Errorf("write pid file %s: %w", l.path, err)
	}
	return nil
}

func (l *pidLock) release() {
	os.Remove(l.path)
	l.f.Close()
}
