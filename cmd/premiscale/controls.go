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
		newProtectCommand(g, gf),
		newEventsCommand(g, gf),
	}
}

func newScaleCommand(g *globalFlags, gf *groupFlags) *cobra.Command {
	var desired, lo, hi int
	cmd := &cobra.Command{
		Use:   "scale NAME [--desired N] [--min N] [--max N]",
		Short: "Set a group's desired size now, and/or change its bounds",
		Example: `  premiscale group scale web --desired 4
  premiscale group scale web --min 2 --max 12`,
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
			if req.Desired == nil && req.Min == nil && req.Max == nil {
				return fmt.Errorf("give at least one of --desired, --min, --max")
			}
			return withGroups(cmd, g, gf, false, func(ctx context.Context, _ *config.Config, ctl *groupctl.Client) error {
				res, err := ctl.Scale(ctx, args[0], req)
				if err != nil {
					return err
				}
				return gf.print(cmd.OutOrStdout(), res, func(w io.Writer) {
					fmt.Fprintf(w, "group %s: min %d, max %d", args[0], res.Min, res.Max)
					if res.Desired != nil {
						fmt.Fprintf(w, ", desired %d (from %d, applied now)", *res.Desired, res.Current)
					}
					fmt.Fprintln(w)
				})
			})
		},
	}
	cmd.Flags().IntVar(&desired, "desired", 0, "desired number of instances (within min and max)")
	cmd.Flags().IntVar(&lo, "min", 0, "new minimum size")
	cmd.Flags().IntVar(&hi, "max", 0, "new maximum size")
	return cmd
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

func newUpdateCommand(g *globalFlags, gf *groupFlags) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:               "update NAME -f GROUP_FILE",
		Short:             "Send a running group a new spec, applied at its next evaluation",
		Example:           `  premiscale group update web -f group-web.yaml`,
		Args:              exactArgs(argGroup("the group to update")),
		ValidArgsFunction: completeGroups(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return fmt.Errorf("-f/--file is required: the group file with the new spec")
			}
			return withGroups(cmd, g, gf, false, func(ctx context.Context, cfg *config.Config, ctl *groupctl.Client) error {
				spec, err := groupSpec(cfg, args[0], file, "")
				if err != nil {
					return err
				}
				if err := ctl.Update(ctx, spec); err != nil {
					return err
				}
				return gf.print(cmd.OutOrStdout(), map[string]any{"group": args[0], "updated": true}, func(w io.Writer) {
					fmt.Fprintf(w, "group %s: new spec from %s sent; applied at its next evaluation\n", args[0], file)
				})
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "group file (version: v1alpha1, groups: {NAME: ...})")
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
