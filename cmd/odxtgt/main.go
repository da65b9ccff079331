// Command odxtgt is an iSCSI target with SCSI copy offload.
//
// Usage:
//
//	odxtgt serve [--config FILE] [--data-dir DIR] [--log-format text|json] [--log-level LEVEL]
//	odxtgt check --config FILE
//	odxtgt import-lio saveconfig.json
//
// serve runs the target; without --config it serves an embedded demo: the
// target iqn.2025-01.io.odxtgt:demo on 127.0.0.1:3260 with LUN 0 a 1 GiB
// sparse file in the data directory; SIGHUP reloads the configuration
// file (reload.go), and under systemd it reports its state through
// $NOTIFY_SOCKET (notify.go). check validates a configuration, and the
// backstores it names as serve would open them, and prints every error
// with its line. import-lio prints the YAML equivalent
// of a targetcli saveconfig.json.
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `usage:
  odxtgt serve [--config FILE] [--data-dir DIR] [--log-format text|json] [--log-level debug|info|warn|error]
  odxtgt check --config FILE
  odxtgt import-lio SAVECONFIG.JSON
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one subcommand and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(args[1:], stderr)
	case "check":
		return runCheck(args[1:], stdout, stderr)
	case "import-lio":
		return runImportLIO(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "odxtgt: unknown command %q\n%s", args[0], usage)
	return 2
}
