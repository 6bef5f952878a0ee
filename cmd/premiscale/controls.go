package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/groupctl"
	"github.com/premiscale/premiscale/internal/policy"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
)

// The operator's controls over a running group.
func newControlCommands(g *globalFlags, gf *groupFlags) []*cobra.Command {
	return []*cobra.Command{
		newScaleCommand(g, gf),
		signalCommand(g, gf, "pause", "Stop a group from acting; it keeps evaluating and logging what it would do", (*groupctl.Client).Pause, "paused"),
		signalCommand(g, gf, "resume", "Let a paused group act again", (*groupctl.Client).Resume, "resumed"),
		newUpdateCommand(g, gf),
		newRollCommand(g, gf),
		newProtectCommand(g, gf),
		newEventsCommand(g, gf),
	}
}

func newScaleCommand(g *globalFlags, gf *groupFlags) *cobra.Command {
	var desired, lo, hi int
	var reset bool
	cmd := &cobra.Command{
		Use:   "scale NAME [--desired N] [--min N] [--max N] | --reset",
		Short: "Set a group's desired size now, and/or override its bounds; --reset clears them",
		Long: `Set a group's desired size now, and/or override its bounds.

--desired N is a goal within the bounds in force (counting --min and --max given with it): the
group launches or retires toward it, then its policy decides again. A goal not reached within
15 minutes (or 10 reconciliation intervals, when that is longer) is dropped. A later change of
the bounds (by group scale, group update or the config) clamps a pending goal to the new bound,
or drops it when that bound is the group's size already; the answer and the decision log say
which.

--min and --max override the config's minNodes and maxNodes on the running group. They outlive
worker restarts (an agent sends the config's spec at every start) and stay until --reset, a
group update, or a change of the config's own minNodes or maxNodes, which then wins. A value
equal to the config's is no override. group status shows which values are overrides.

--reset, given alone, clears --min, --max and a pending --desired.`,
		Example: `  premiscale group scale web --desired 4
  premiscale group scale web --min 2 --max 12
  premiscale group scale web --reset`,
		Args:              exactArgs(argGroup("the group to resize")),
		ValidArgsFunction: completeGroups(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req spec.ScaleRequest
			if cmd.Flags().Changed("desired") {
				req.Desired = &desired
			}
			if cmd.Flags().Changed("min") {
				req.Min = &lo
			}
			if cmd.Flags().Changed("max") {
				req.Max = &hi
			}
			req.Reset = reset
			switch {
			case reset && (req.Desired != nil || req.Min != nil || req.Max != nil):
				return fmt.Errorf("--reset clears --desired, --min and --max: give it alone")
			case !reset && req.Desired == nil && req.Min == nil && req.Max == nil:
				return fmt.Errorf("give at least one of --desired, --min, --max, or --reset")
			}
			return withGroups(cmd, g, gf, false, func(ctx context.Context, _ *config.Config, ctl *groupctl.Client) error {
				res, err := ctl.Scale(ctx, args[0], req)
				if err != nil {
					return err
				}
				return gf.print(cmd.OutOrStdout(), res, func(w io.Writer) {
					fmt.Fprintf(w, "group %s: min %d (%s), max %d (%s)", args[0], res.Min, sourceName(res.Sources.Min), res.Max, sourceName(res.Sources.Max))
					if res.Desired != nil {
						fmt.Fprintf(w, ", desired %d (from %d, applied now)", *res.Desired, res.Current)
					}
					fmt.Fprintln(w)
					for _, n := range res.Notes {
						fmt.Fprintf(w, "  %s\n", n)
					}
				})
			})
		},
	}
	cmd.Flags().IntVar(&desired, "desired", 0, "desired number of instances, a goal within min and max")
	cmd.Flags().IntVar(&lo, "min", 0, "new minimum size (an override of the config's minNodes)")
	cmd.Flags().IntVar(&hi, "max", 0, "new maximum size (an override of the config's maxNodes)")
	cmd.Flags().BoolVar(&reset, "reset", false, "clear the min and max overrides and a pending desired size")
	return cmd
}

// sourceName says where a value in force comes from, for people.
func sourceName(source string) string {
	switch source {
	case spec.SourceScale:
		return "operator: group scale"
	case spec.SourceUpdate:
		return "operator: group update"
	case "":
		return "unknown"
	}
	return source
}

func signalCommand(g *globalFlags, gf *groupFlags, use, short string, f func(*groupctl.Client, context.Context, string) error, done string) *cobra.Command {
	return &cobra.Command{
		Use:               use + " NAME",
		Short:             short,
		Example:           "  premiscale group " + use + " web",
		Args:              exactArgs(argGroup("the group to " + use)),
		ValidArgsFunction: completeGroups(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withGroups(cmd, g, gf, false, func(ctx context.Context, _ *config.Config, ctl *groupctl.Client) error {
				if err := f(ctl, ctx, args[0]); err != nil {
					return err
				}
				return gf.print(cmd.OutOrStdout(), map[string]any{"group": args[0], use: true}, func(w io.Writer) {
					fmt.Fprintf(w, "group %s %s\n", args[0], done)
				})
			})
		},
	}
}

func newRollCommand(g *globalFlags, gf *groupFlags) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "roll NAME [--reason TEXT]",
		Short: "Replace every instance of a group, a batch at a time, though its spec did not change",
		Long: `Replace every instance of a group with a new one, in batches bounded by the group's
rollout.maxSurge (new instances above the group's size at a time, default 1) and
rollout.maxUnavailable (instances below it, default 0). Each new instance must be running (checked
in, when check-in is on) before an old one retires. A change of the group's image, domain or
cloud-init (by the config or group update) starts the same roll by itself.

A new instance that fails stops the roll and keeps the old instances; group status and group
events say so. group pause holds a roll where it is; group resume goes on with it.`,
		Example: `  premiscale group roll web
  premiscale group roll web --reason "kernel update in the base image"`,
		Args:              exactArgs(argGroup("the group to roll")),
		ValidArgsFunction: completeGroups(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withGroups(cmd, g, gf, false, func(ctx context.Context, _ *config.Config, ctl *groupctl.Client) error {
				res, err := ctl.Roll(ctx, args[0], reason)
				if err != nil {
					return err
				}
				return gf.print(cmd.OutOrStdout(), res, func(w io.Writer) {
					fmt.Fprintf(w, "group %s: rolling replacement of %d instances started (%s)\n", args[0], res.Total, res.Reason)
				})
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", `why, for the decision log (default "operator: group roll")`)
	return cmd
}

func newUpdateCommand(g *globalFlags, gf *groupFlags) *cobra.Command {
	var file string
	var reset bool
	cmd := &cobra.Command{
		Use:   "update NAME -f GROUP_FILE | --reset",
		Short: "Run a spec of your own on a running group (an override of the config's); --reset goes back to the config's",
		Long: `Run a spec of your own on a running group, applied at its next evaluation.

The spec overrides the config's until you run group update --reset (or group update with the
config's own spec), or until the config's spec for the group changes, which then wins. Worker
restarts, which send the config's spec again, leave it alone. It states the bounds too, so it
clears min and max set with group scale. group status shows whether the spec in force is yours.`,
		Example: `  premiscale group update web -f group-web.yaml
  premiscale group update web --reset`,
		Args:              exactArgs(argGroup("the group to update")),
		ValidArgsFunction: completeGroups(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (file == "") == !reset {
				return fmt.Errorf("give -f/--file (the group file with the new spec) or --reset, one of them")
			}
			return withGroups(cmd, g, gf, false, func(ctx context.Context, cfg *config.Config, ctl *groupctl.Client) error {
				req := spec.SpecRequest{Reset: reset}
				if !reset {
					gs, err := groupSpec(cfg, args[0], file, "")
					if err != nil {
						return err
					}
					req.Spec = &gs
				}
				res, err := ctl.UpdateSpec(ctx, args[0], req)
				if err != nil {
					return err
				}
				out := map[string]any{"group": args[0], "updated": true, "source": res.Source, "min": res.Min, "max": res.Max, "notes": res.Notes}
				return gf.print(cmd.OutOrStdout(), out, func(w io.Writer) {
					if res.Source == spec.SourceUpdate {
						fmt.Fprintf(w, "group %s: new spec from %s sent; applied at its next evaluation, in place of the config's\n", args[0], file)
					} else {
						fmt.Fprintf(w, "group %s: back to the config's spec; applied at its next evaluation\n", args[0])
					}
					for _, n := range res.Notes {
						fmt.Fprintf(w, "  %s\n", n)
					}
				})
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "group file (version: v1alpha1, groups: {NAME: ...})")
	cmd.Flags().BoolVar(&reset, "reset", false, "go back to the config's spec")
	return cmd
}

func newProtectCommand(g *globalFlags, gf *groupFlags) *cobra.Command {
	var off bool
	cmd := &cobra.Command{
		Use:   "protect NAME INSTANCE [--off]",
		Short: "Protect an instance from scale-in (or, with --off, remove the protection)",
		Example: `  premiscale group protect web web-3
  premiscale group protect web web-3 --off`,
		Args:              exactArgs(argGroup("the group of the instance"), argInstance),
		ValidArgsFunction: completeGroupThenInstance(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withGroups(cmd, g, gf, false, func(ctx context.Context, _ *config.Config, ctl *groupctl.Client) error {
				ref, err := ctl.Protect(ctx, args[0], args[1], !off)
				if err != nil {
					return err
				}
				return gf.print(cmd.OutOrStdout(), ref, func(w io.Writer) {
					word := "protected from"
					if off {
						word = "no longer protected from"
					}
					fmt.Fprintf(w, "instance %s of group %s is %s scale-in\n", ref.Name, args[0], word)
				})
			})
		},
	}
	cmd.Flags().BoolVar(&off, "off", false, "remove the protection")
	return cmd
}

func newEventsCommand(g *globalFlags, gf *groupFlags) *cobra.Command {
	var since time.Duration
	cmd := &cobra.Command{
		Use:   "events NAME [--since 1h]",
		Short: "Print a group's decision log: every evaluation that changed or wanted to change its size",
		Example: `  premiscale group events web
  premiscale group events web --since 24h -o json`,
		Args:              exactArgs(argGroup("the group whose decisions to print")),
		ValidArgsFunction: completeGroups(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			if since <= 0 {
				return fmt.Errorf("--since %s: must be a positive duration such as 30m or 24h", since)
			}
			return withGroups(cmd, g, gf, true, func(ctx context.Context, _ *config.Config, ctl *groupctl.Client) error {
				events, err := ctl.Events(ctx, args[0], time.Now().Add(-since))
				if err != nil {
					return err
				}
				return gf.print(cmd.OutOrStdout(), eventsJSON(events), func(w io.Writer) { printEvents(w, events) })
			})
		},
	}
	cmd.Flags().DurationVar(&since, "since", time.Hour, "how far back to look")
	return cmd
}

type eventJSON struct {
	At      time.Time            `json:"at"`
	From    int                  `json:"from"`
	To      int                  `json:"to"`
	Action  string               `json:"action"`
	Outcome string               `json:"outcome"`
	Winner  string               `json:"winner,omitempty"`
	Reason  string               `json:"reason"`
	Metrics map[string]float64   `json:"metrics,omitempty"`
	Checks  []policy.CheckResult `json:"checks,omitempty"`
	RunID   string               `json:"runId"`
}

func eventsJSON(events []state.ScalingEvent) []eventJSON {
	out := make([]eventJSON, 0, len(events))
	for _, e := range events {
		ej := eventJSON{At: e.At, From: e.From, To: e.To, Action: e.Action, Outcome: e.Outcome, Winner: e.Winner,
			Reason: e.Reason, Metrics: e.Metrics, RunID: e.RunID}
		_ = json.Unmarshal(e.Checks, &ej.Checks) // absent for events recorded before checks were
		out = append(out, ej)
	}
	return out
}

func printEvents(w io.Writer, events []state.ScalingEvent) {
	if len(events) == 0 {
		fmt.Fprintln(w, "no events in that period")
		return
	}
	fmt.Fprintln(w, "TIME\tFROM\tTO\tACTION\tOUTCOME\tWINNER\tINPUTS\tREASON")
	for _, e := range events {
		var inputs []string
		for _, name := range sortedKeys(e.Metrics) {
			inputs = append(inputs, fmt.Sprintf("%s=%.1f", name, e.Metrics[name]))
		}
		in := strings.Join(inputs, ",")
		if in == "" {
			in = "-"
		}
		winner := e.Winner
		if winner == "" {
			winner = "-"
		}
		reason := e.Reason
		if e.Repeats > 0 && e.LastRepeatAt != nil {
			reason += fmt.Sprintf(" (×%d more, last %s)", e.Repeats, e.LastRepeatAt.Local().Format(time.DateTime))
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", e.At.Local().Format(time.DateTime), e.From, e.To, e.Action, e.Outcome, winner, in, reason)
	}
}
