package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
)

type groupFlags struct {
	output string
}

func newGroupCommand(g *globalFlags) *cobra.Command {
	gf := &groupFlags{}
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Create, list, inspect and delete autoscaling groups",
		Example: `  premiscale group create web --wait -c /opt/premiscale/config.yaml
  premiscale group list -o yaml
  premiscale group status web --watch`,
	}
	gf.addFlag(cmd)
	cmd.AddCommand(
		newGroupCreateCommand(g, gf),
		&cobra.Command{
			Use:   "list",
			Short: "List running groups",
			Example: `  premiscale group list
  premiscale group list -o json`,
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return withGroups(cmd, g, gf, false, func(ctx context.Context, cfg *config.Config, ctl *groupctl.Client) error {
					list, err := ctl.List(ctx)
					if err != nil {
						return err
					}
					return gf.print(cmd.OutOrStdout(), list, func(w io.Writer) { printList(w, list) })
				})
			},
		},
		newGroupStatusCommand(g, gf),
		newGroupDeleteCommand(g, gf),
	)
	cmd.AddCommand(newControlCommands(g, gf)...)
	return cmd
}

func newGroupStatusCommand(g *globalFlags, gf *groupFlags) *cobra.Command {
	var (
		watch    bool
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a group's size, instances and last decision",
		Example: `  premiscale group status web
  premiscale group status web -o yaml

  # Redraw every 5 seconds until Ctrl-C
  premiscale group status web --watch --interval 5s`,
		Args:              exactArgs(argGroup("the group to show")),
		ValidArgsFunction: completeGroups(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			if watch && interval <= 0 {
				return fmt.Errorf("--interval %s: must be a positive duration such as 2s", interval)
			}
			return withGroups(cmd, g, gf, true, func(ctx context.Context, cfg *config.Config, ctl *groupctl.Client) error {
				show := func(w io.Writer) error {
					s, err := status(ctx, ctl, args[0])
					if err != nil {
						return err
					}
					return gf.print(w, s, func(w io.Writer) { printStatus(w, s) })
				}
				if watch {
					return watchStatus(ctx, cmd, gf, args[0], interval, show)
				}
				return show(cmd.OutOrStdout())
			})
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "show the status again every --interval until interrupted")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "with --watch: time between refreshes")
	return cmd
}

func newGroupCreateCommand(g *globalFlags, gf *groupFlags) *cobra.Command {
	var (
		file    string
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Start a group from the config (or from -f FILE); a running group gets the new spec",
		Example: `  # Start the config's group "web"
  premiscale group create web -c /opt/premiscale/config.yaml

  # Start it from a group file and wait until its minimum number of instances run
  premiscale group create web -f group-web.yaml --wait --timeout 15m`,
		Args:              exactArgs(argGroup("the group to start, as named in the config (or in -f FILE)")),
		ValidArgsFunction: completeConfigGroups(g, &file),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if wait && timeout <= 0 {
				return fmt.Errorf("--timeout %s: must be a positive duration such as 10m", timeout)
			}
			return withGroups(cmd, g, gf, false, func(ctx context.Context, cfg *config.Config, ctl *groupctl.Client) error {
				gs, err := groupSpec(cfg, name, file, g.configPath)
				if err != nil {
					return err
				}
				res, err := ctl.Apply(ctx, gs)
				if err != nil {
					return err
				}
				out := map[string]any{"group": name, "workflowId": spec.GroupWorkflowID(name), "runId": res.RunID, "started": res.Started}
				startLine := func(w io.Writer) {
					if res.Started {
						fmt.Fprintf(w, "group %s started (workflow %s, run %s)\n", name, spec.GroupWorkflowID(name), res.RunID)
					} else {
						fmt.Fprintf(w, "group %s was already running; sent it the config's spec (applied at its next evaluation; operator overrides stay unless the config's value for them changed)\n", name)
					}
				}
				if !wait {
					return gf.print(cmd.OutOrStdout(), out, startLine)
				}
				startLine(gf.progress(cmd))
				s, err := waitUntilReady(ctx, ctl, name, timeout, gf.progress(cmd))
				if err != nil {
					return err
				}
				out["ready"] = true
				out["status"] = s
				return gf.print(cmd.OutOrStdout(), out, func(w io.Writer) {
					fmt.Fprintf(w, "group %s is ready: %d running (min %d, max %d)\n", name, s.Current, s.Min, s.Max)
				})
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "group file (version: v1alpha1, groups: {NAME: ...}) instead of the config's groups")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the group has its minimum number of instances, all running, printing progress")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "with --wait: how long to wait before giving up (exit status 1)")
	return cmd
}

func newGroupDeleteCommand(g *globalFlags, gf *groupFlags) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Retire every instance of a group, wait until they are gone, and end the group",
		Example: `  premiscale group delete web
  premiscale group delete web --timeout 30m`,
		Args:              exactArgs(argGroup("the group to delete")),
		ValidArgsFunction: completeGroups(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withGroups(cmd, g, gf, false, func(ctx context.Context, cfg *config.Config, ctl *groupctl.Client) error {
				ctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				if err := deleteWithProgress(ctx, ctl, args[0], gf.progress(cmd)); err != nil {
					return err
				}
				return gf.print(cmd.OutOrStdout(), map[string]any{"group": args[0], "deleted": true}, func(w io.Writer) {
					fmt.Fprintf(w, "group %s deleted: every instance retired and the workflow ended\n", args[0])
				})
			})
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 15*time.Minute, "how long to wait for the group's instances to be retired")
	return cmd
}

// withGroups loads the config, connects to Temporal (and MySQL when withStore), and runs f.
func withGroups(cmd *cobra.Command, g *globalFlags, gf *groupFlags, withStore bool, f func(context.Context, *config.Config, *groupctl.Client) error) error {
	if err := gf.check(); err != nil {
		return err
	}
	cfg, err := loadConfig(g)
	if err != nil {
		return err
	}
	logger, closeLog, err := newLogger(g, "")
	if err != nil {
		return err
	}
	defer closeLog()
	ctl, closeCtl, err := openGroups(cmd.Context(), cfg, logger, withStore)
	if err != nil {
		return err
	}
	defer closeCtl()
	return f(cmd.Context(), cfg, ctl)
}

// openGroups connects a group controller to Temporal, and to MySQL when withStore.
func openGroups(ctx context.Context, cfg *config.Config, logger *slog.Logger, withStore bool) (*groupctl.Client, func(), error) {
	t := cfg.Controller.Temporal
	tc, err := dialTemporal(ctx, t, logger)
	if err != nil {
		return nil, nil, err
	}
	ctl := &groupctl.Client{Temporal: tc, TaskQueue: t.TaskQueue}
	if !withStore {
		return ctl, tc.Close, nil
	}
	store, err := state.Open(ctx, cfg.Controller.Databases.State)
	if err != nil {
		tc.Close()
		return nil, nil, fmt.Errorf("open state database: %w", err)
	}
	ctl.Store = store
	return ctl, func() { store.Close(); tc.Close() }, nil
}

func printList(w io.Writer, list []groupctl.Status) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no running groups")
		return
	}
	fmt.Fprintln(w, "GROUP\tMIN\tMAX\tDESIRED\tCURRENT\tLAST ACTION\tREASON")
	for _, s := range list {
		action, reason := "-", "-"
		if d := s.LastDecision; d != nil {
			action, reason = d.Action, d.Reason
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%s\t%s\n", s.Group, s.Min, s.Max, s.Desired, s.Current, action, reason)
	}
}

func printStatus(w io.Writer, s groupctl.Status) {
	fmt.Fprintf(w, "Group:\t%s\n", s.Group)
	fmt.Fprintf(w, "Size:\t%d current, %d desired (min %d, max %d)\n", s.Current, s.Desired, s.Min, s.Max)
	fmt.Fprintf(w, "Bounds:\tmin %d %s, max %d %s\n", s.Min, boundSource(s.Sources.Min, s.Config.Min), s.Max, boundSource(s.Sources.Max, s.Config.Max))
	if s.Sources.Spec == spec.SourceUpdate {
		fmt.Fprintf(w, "Spec:\tfrom the operator (group update), in place of the config's; group update --reset goes back\n")
	} else {
		fmt.Fprintf(w, "Spec:\tfrom the config\n")
	}
	if g := s.Goal; g != nil {
		fmt.Fprintf(w, "Goal:\tdesired %d, set by the operator at %s", g.Size, g.SetAt.Local().Format(time.DateTime))
		if !g.Expires.IsZero() {
			fmt.Fprintf(w, "; dropped at %s if not reached", g.Expires.Local().Format(time.DateTime))
		}
		fmt.Fprintln(w)
	}
	if s.ReplacementsOwed > 0 {
		fmt.Fprintf(w, "Replacements owed:\t%d\n", s.ReplacementsOwed)
	}
	if s.Paused {
		fmt.Fprintf(w, "Paused:\tyes\n")
	}
	if s.Deleting {
		fmt.Fprintf(w, "Deleting:\tyes\n")
	}
	if r := s.Roll; r != nil {
		fmt.Fprintf(w, "Roll:\t%s\n", rollProgress(*r))
	}
	if p := s.Pool; p != nil {
		fmt.Fprintf(w, "Warm pool:\t%s\n", poolSummary(*p))
	}
	if s.Image != "" {
		fmt.Fprintf(w, "Image:\t%s: %s\n", s.Image, imageHosts(s))
	}
	if d := s.LastDecision; d != nil {
		fmt.Fprintf(w, "Last decision:\t%s %s: %s\n", d.At.Local().Format(time.DateTime), d.Action, d.Reason)
		if d.Repeats > 0 {
			fmt.Fprintf(w, "\t(the same decision %d more times since)\n", d.Repeats)
		}
	}
	fmt.Fprintln(w)
	records := map[string]state.Instance{}
	for _, r := range s.Records {
		records[r.Name] = r
	}
	fmt.Fprintln(w, "INSTANCE\tHOST\tSTATE\tLAUNCHED\tADDRESS")
	for _, in := range s.Instances {
		addr := records[in.Name].Address
		if addr == "" {
			addr = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", in.Name, in.Host, in.State, in.LaunchedAt.Local().Format(time.DateTime), addr)
	}
}

// poolSummary says what the warm pool holds: "2 of 3 ready (saved), 1 warming; 5 taken so far".
func poolSummary(p spec.PoolStatus) string {
	out := fmt.Sprintf("%d of %d ready (%s)", p.Ready, p.Size, p.State)
	if p.Size == 0 {
		out = fmt.Sprintf("%d ready, being retired (the pool was removed)", p.Ready)
	}
	if p.Warming > 0 {
		out += fmt.Sprintf(", %d warming", p.Warming)
	}
	if p.ReuseOnScaleIn {
		out += "; scale-ins return instances to it"
	}
	return out + fmt.Sprintf("; %d taken so far", p.Taken)
}

// rollProgress says how far a rolling replacement got, and why it stopped if it did.
func rollProgress(r spec.RollStatus) string {
	started := r.StartedAt.Local().Format(time.DateTime)
	switch {
	case r.Stopped != "":
		return fmt.Sprintf("stopped after %d of %d replaced (%s, started %s): %s; the old instances are kept", r.Replaced, r.Total, r.Reason, started, r.Stopped)
	case r.Active:
		return fmt.Sprintf("%d of %d replaced (%s, started %s)", r.Replaced, r.Total, r.Reason, started)
	}
	return fmt.Sprintf("done: %d of %d replaced (%s, started %s)", r.Replaced, r.Total, r.Reason, started)
}

// imageHosts says which of the group's hosts hold its base image.
func imageHosts(s groupctl.Status) string {
	byHost := map[string]state.HostImage{}
	for _, im := range s.Images {
		byHost[im.Host] = im
	}
	var ready, copying, missing []string
	for _, h := range s.Hosts {
		switch im, ok := byHost[h]; {
		case !ok:
			missing = append(missing, h)
		case im.State == state.ImageReady:
			ready = append(ready, h)
		default:
			copying = append(copying, h)
		}
	}
	var parts []string
	if len(ready) > 0 {
		parts = append(parts, "on "+strings.Join(ready, ", "))
	}
	if len(copying) > 0 {
		parts = append(parts, "copying to "+strings.Join(copying, ", "))
	}
	if len(missing) > 0 {
		parts = append(parts, "not yet on "+strings.Join(missing, ", ")+" (copied before the first launch there)")
	}
	return strings.Join(parts, "; ")
}

// boundSource says where a bound comes from, with the config's own value beside an override.
func boundSource(source string, config int) string {
	switch source {
	case spec.SourceConfig:
		return "(config)"
	case "":
		// A group run by an older version says nothing about it.
		return ""
	}
	return fmt.Sprintf("(%s; the config says %d)", sourceName(source), config)
}

// groupSpec builds the spec of group name from the config, or from a group file when file is set.
func groupSpec(cfg *config.Config, name, file, configPath string) (spec.Group, error) {
	groups := cfg.Controller.Autoscale.Groups
	source := configPath
	if file != "" {
		var err error
		if groups, err = config.LoadGroupFile(file, cfg); err != nil {
			return spec.Group{}, err
		}
		source = file
	}
	grp, ok := groups[name]
	if !ok {
		return spec.Group{}, fmt.Errorf("group %q is not defined in %s (groups there: %s)", name, source, strings.Join(sortedKeys(groups), ", "))
	}
	return cfg.Controller.GroupSpec(name, grp)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
