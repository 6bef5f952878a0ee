package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/placement"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/state"
)

// hostStatus is one host as `host list` and `host status` show it.
type hostStatus struct {
	spec.Host
	// Allocatable is what placement may hand out: (capacity − reserve) × overcommit.
	Allocatable placement.Shape `json:"allocatable"`
	// Instances are PremiScale's live instances recorded on the host.
	Instances []hostInstance `json:"instances"`
}

type hostInstance struct {
	Name  string `json:"name"`
	Group string `json:"group"`
	State string `json:"state"`
}

func newHostCommand(g *globalFlags) *cobra.Command {
	gf := &groupFlags{}
	cmd := &cobra.Command{
		Use:   "host",
		Short: "Show the hypervisor hosts: up or down, capacity, use, instances",
		Example: `  premiscale host list
  premiscale host status kvm-1 -o json`,
	}
	gf.addFlag(cmd)
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "List the config's hosts with their state, capacity and use",
			Example: `  premiscale host list -c /etc/premiscale/config.yaml
  premiscale host list -o json`,
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return withHosts(cmd, g, gf, func(ctx context.Context, cfg *config.Config, store *state.Store) error {
					var names []string
					for _, h := range cfg.Controller.Autoscale.Hosts {
						names = append(names, h.Name)
					}
					list, err := readHosts(ctx, cfg, store, names)
					if err != nil {
						return err
					}
					return gf.print(cmd.OutOrStdout(), list, func(w io.Writer) { printHosts(w, list) })
				})
			},
		},
		&cobra.Command{
			Use:     "status NAME",
			Short:   "Show one host: state, last proof of life, capacity, use and its instances",
			Example: `  premiscale host status kvm1 -o json`,
			Args:    exactArgs(arg{"NAME", "the host to show (a name from controller.autoscale.hosts)"}),
			RunE: func(cmd *cobra.Command, args []string) error {
				return withHosts(cmd, g, gf, func(ctx context.Context, cfg *config.Config, store *state.Store) error {
					if _, ok := cfg.Host(args[0]); !ok {
						return fmt.Errorf("host %q is not in controller.autoscale.hosts of %s", args[0], g.configPath)
					}
					list, err := readHosts(ctx, cfg, store, args[:1])
					if err != nil {
						return err
					}
					return gf.print(cmd.OutOrStdout(), list[0], func(w io.Writer) { printHost(w, list[0]) })
				})
			},
		},
	)
	return cmd
}

func withHosts(cmd *cobra.Command, g *globalFlags, gf *groupFlags, f func(context.Context, *config.Config, *state.Store) error) error {
	if err := gf.check(); err != nil {
		return err
	}
	cfg, err := loadConfig(g)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	store, err := state.Open(ctx, cfg.Controller.Databases.State)
	if err != nil {
		return fmt.Errorf("open state database: %w", err)
	}
	defer store.Close()
	return f(ctx, cfg, store)
}

// readHosts reads the named hosts' last proofs of life and their instances.
func readHosts(ctx context.Context, cfg *config.Config, store *state.Store, names []string) ([]hostStatus, error) {
	recs, err := store.ListHosts(ctx, names...)
	if err != nil {
		return nil, err
	}
	downAfter := cfg.Controller.Autoscale.HostDownAfter.Duration
	out := make([]hostStatus, 0, len(names))
	for _, name := range names {
		hs := hostStatus{Host: spec.Host{Name: name, Down: "no worker has reached it yet"}, Instances: []hostInstance{}}
		if i := slices.IndexFunc(recs, func(r state.Host) bool { return r.Name == name }); i >= 0 {
			hs.Host = recs[i].Spec(downAfter)
		}
		hs.Allocatable = placement.Host{Host: hs.Host}.Allocatable()
		ins, err := store.ListInstancesOnHost(ctx, name)
		if err != nil {
			return nil, err
		}
		for _, in := range ins {
			hs.Instances = append(hs.Instances, hostInstance{Name: in.Name, Group: in.Group, State: in.State})
		}
		out = append(out, hs)
	}
	return out, nil
}

func hostState(h hostStatus) string {
	if h.Up {
		return "up"
	}
	return "down"
}

func lastSeen(h hostStatus) string {
	if h.LastSeen.IsZero() {
		return "never"
	}
	return h.LastSeen.Local().Format(time.DateTime)
}

func printHosts(w io.Writer, list []hostStatus) {
	fmt.Fprintln(w, "HOST\tSTATE\tCPUS (USED/ALLOCATABLE)\tMEMORY MiB (USED/ALLOCATABLE)\tINSTANCES\tLAST SEEN")
	for _, h := range list {
		fmt.Fprintf(w, "%s\t%s\t%d/%d\t%d/%d\t%d\t%s\n", h.Name, hostState(h), h.UsedCPUs, h.Allocatable.VCPUs,
			h.UsedMemoryMiB, h.Allocatable.MemoryMiB, len(h.Instances), lastSeen(h))
	}
}

func printHost(w io.Writer, h hostStatus) {
	fmt.Fprintf(w, "Host:\t%s\n", h.Name)
	state := hostState(h)
	if !h.Up {
		state += " (" + h.Down + ")"
	}
	fmt.Fprintf(w, "State:\t%s\n", state)
	fmt.Fprintf(w, "Last proof of life:\t%s", lastSeen(h))
	if h.Worker != "" {
		fmt.Fprintf(w, " (worker %s)", h.Worker)
	}
	fmt.Fprintln(w)
	if h.LastError != "" {
		fmt.Fprintf(w, "Last error:\t%s\n", h.LastError)
	}
	fmt.Fprintf(w, "Capacity:\t%d CPUs, %d MiB (%d MiB free); reserved %d CPUs, %d MiB; overcommit CPU ×%g, memory ×%g\n",
		h.CPUs, h.MemoryMiB, h.FreeMemoryMiB, h.ReservedCPUs, h.ReservedMemoryMiB, h.CPUOvercommit, h.MemoryOvercommit)
	fmt.Fprintf(w, "Allocatable:\t%d vCPUs, %d MiB\n", h.Allocatable.VCPUs, h.Allocatable.MemoryMiB)
	fmt.Fprintf(w, "Used:\t%d vCPUs, %d MiB in %d domains\n", h.UsedCPUs, h.UsedMemoryMiB, h.Domains)
	fmt.Fprintln(w)
	if len(h.Instances) == 0 {
		fmt.Fprintln(w, "no instances")
		return
	}
	fmt.Fprintln(w, "INSTANCE\tGROUP\tSTATE")
	for _, in := range h.Instances {
		fmt.Fprintf(w, "%s\t%s\t%s\n", in.Name, in.Group, strings.TrimSpace(in.State))
	}
}
