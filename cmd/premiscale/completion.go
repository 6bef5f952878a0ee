package main

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/groupctl"
)

// completionTimeout bounds the Temporal calls behind a completion: a shell waits for them.
const completionTimeout = 5 * time.Second

// completeGroups completes a group command's NAME with the running groups (as group list
// shows them).
func completeGroups(g *globalFlags) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return completeFromTemporal(cmd, g, toComplete, func(ctx context.Context, ctl *groupctl.Client) ([]string, error) {
			return ctl.Names(ctx)
		})
	}
}

// completeGroupThenInstance completes NAME with the running groups, then INSTANCE with that
// group's instances (as group status shows them).
func completeGroupThenInstance(g *globalFlags) cobra.CompletionFunc {
	groups := completeGroups(g)
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		switch len(args) {
		case 0:
			return groups(cmd, args, toComplete)
		case 1:
			return completeFromTemporal(cmd, g, toComplete, func(ctx context.Context, ctl *groupctl.Client) ([]string, error) {
				s, err := ctl.Status(ctx, args[0])
				if err != nil {
					return nil, err
				}
				names := make([]string, len(s.Instances))
				for i, in := range s.Instances {
					names[i] = in.Name
				}
				return names, nil
			})
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeConfigGroups completes group create's NAME with the groups of the config, or of
// the group file when -f is given.
func completeConfigGroups(g *globalFlags, file *string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		cfg, err := loadConfig(g)
		if err != nil {
			cobra.CompDebugln(err.Error(), false)
			return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
		}
		groups := cfg.Controller.Autoscale.Groups
		if *file != "" {
			if groups, err = config.LoadGroupFile(*file, cfg); err != nil {
				cobra.CompDebugln(err.Error(), false)
				return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
			}
		}
		return withPrefix(sortedKeys(groups), toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeFromTemporal loads the config, connects to Temporal and returns list's names that
// start with toComplete. Failures are reported to cobra's completion debug log only: a shell
// has nowhere to show them.
func completeFromTemporal(cmd *cobra.Command, g *globalFlags, toComplete string, list func(context.Context, *groupctl.Client) ([]string, error)) ([]cobra.Completion, cobra.ShellCompDirective) {
	fail := func(err error) ([]cobra.Completion, cobra.ShellCompDirective) {
		cobra.CompDebugln(err.Error(), false)
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	cfg, err := loadConfig(g)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	ctl, closeCtl, err := openGroups(ctx, cfg, slog.New(slog.DiscardHandler), false)
	if err != nil {
		return fail(err)
	}
	defer closeCtl()
	names, err := list(ctx, ctl)
	if err != nil {
		return fail(err)
	}
	return withPrefix(names, toComplete), cobra.ShellCompDirectiveNoFileComp
}

func withPrefix(names []string, prefix string) []cobra.Completion {
	var out []cobra.Completion
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

// addCompletionCommand adds cobra's `completion` command now, rather than when it runs, so
// that its help can carry examples like every other command's.
func addCompletionCommand(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	examples := map[string]string{
		"bash": `  # This shell only
  source <(premiscale completion bash)
  # Every new shell (needs the bash-completion package)
  premiscale completion bash > /etc/bash_completion.d/premiscale`,
		"zsh":        `  premiscale completion zsh > "${fpath[1]}/_premiscale"`,
		"fish":       `  premiscale completion fish > ~/.config/fish/completions/premiscale.fish`,
		"powershell": `  premiscale completion powershell | Out-String | Invoke-Expression`,
	}
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Example = `  source <(premiscale completion bash)
  premiscale group status <TAB>      # the running groups
  premiscale group protect web <TAB> # web's instances`
		for _, sub := range c.Commands() {
			sub.Example = examples[sub.Name()]
		}
	}
}
