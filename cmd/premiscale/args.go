package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// arg is a positional argument: its name in the usage line and what it is.
type arg struct{ name, what string }

// Positional arguments of the group commands.
var (
	argGroup    = func(what string) arg { return arg{"NAME", what} }
	argInstance = arg{"INSTANCE", "the instance, as group status lists it (e.g. web-3)"}
)

// exactArgs accepts exactly the arguments named, and says which one is missing, or which are
// too many.
func exactArgs(args ...arg) cobra.PositionalArgs {
	return func(cmd *cobra.Command, got []string) error {
		if len(got) < len(args) {
			a := args[len(got)]
			return fmt.Errorf("missing %s: %s (see %s --help)", a.name, a.what, cmd.CommandPath())
		}
		if len(got) > len(args) {
			names := make([]string, len(args))
			for i, a := range args {
				names[i] = a.name
			}
			return fmt.Errorf("too many arguments: %s takes %s, got %q", cmd.CommandPath(), strings.Join(names, " "), got)
		}
		return nil
	}
}
