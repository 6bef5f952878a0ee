package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// Output formats of -o.
const (
	outputTable = "table"
	outputJSON  = "json"
	outputYAML  = "yaml"
)

var outputFormats = []string{outputTable, outputJSON, outputYAML}

// addFlag registers -o on cmd (persistent, so subcommands share it), with its completion.
func (gf *groupFlags) addFlag(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVarP(&gf.output, "output", "o", outputTable, "output format: table, json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(outputFormats, cobra.ShellCompDirectiveNoFileComp))
}

func (gf *groupFlags) check() error {
	switch gf.output {
	case outputTable, outputJSON, outputYAML:
		return nil
	}
	return fmt.Errorf("--output %q: must be table, json or yaml", gf.output)
}

// print writes v as JSON or YAML, or calls table with a tab-aligned writer.
func (gf *groupFlags) print(w io.Writer, v any, table func(io.Writer)) error {
	switch gf.output {
	case outputJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case outputYAML:
		b, err := toYAML(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// progress is where a command's progress lines go: stdout with table output, stderr with
// -o json or yaml so that stdout stays one parsable document.
func (gf *groupFlags) progress(cmd *cobra.Command) io.Writer {
	if gf.output == outputTable {
		return cmd.OutOrStdout()
	}
	return cmd.ErrOrStderr()
}

// toYAML writes v as YAML with the keys and values JSON would have: the types here carry json
// tags (and MarshalJSON methods), so YAML made from the JSON form matches -o json field for field.
func toYAML(v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	// JSON is YAML; decoding it into a node keeps the key order.
	var n yaml.Node
	if err := yaml.Unmarshal(j, &n); err != nil {
		return nil, err
	}
	blockStyle(&n)
	return yaml.Marshal(&n)
}

// blockStyle turns JSON's flow style and quoting into YAML's usual block style; the encoder
// still quotes a string that would otherwise read as another type.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// isTerminal says whether w is a terminal, where --watch redraws the screen.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
