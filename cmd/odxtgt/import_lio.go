package main

import (
	"fmt"
	"io"
	"os"

	"github.com/odxtgt/odxtgt/config"
)

// runImportLIO converts a targetcli saveconfig.json to odxtgt YAML on
// stdout; what cannot be carried over is reported on stderr.
func runImportLIO(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: odxtgt import-lio SAVECONFIG.JSON")
		return 2
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "odxtgt import-lio: %v\n", err)
		return 1
	}
	cfg, warnings, err := config.ImportLIO(data)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if err != nil {
		fmt.Fprintf(stderr, "odxtgt import-lio: %s: %v\n", args[0], err)
		return 1
	}
	out, err := cfg.Marshal()
	if err != nil {
		fmt.Fprintf(stderr, "odxtgt import-lio: %v\n", err)
		return 1
	}
	_, _ = stdout.Write(out)
	return 0
}
