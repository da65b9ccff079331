package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/odxtgt/odxtgt/config"
)

// runCheck validates a configuration file: exit 0 and a summary when it is
// valid, exit 1 and one line per problem when it is not.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration `file` to validate")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "odxtgt check: --config FILE is required")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d backstores, %d targets)\n", *path, len(cfg.Backstores), len(cfg.Targets))
	return 0
}
