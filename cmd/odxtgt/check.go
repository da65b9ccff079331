package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/config"
)

// runCheck validates a configuration file: exit 0 and a summary when it is
// valid, exit 1 and one line per problem when it is not. Besides what
// config.Load checks (syntax, keys, values, references, duplicate names,
// paths and designators), it looks at each backstore as serve would open
// it, without creating, opening for writing or locking anything.
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
	errs := checkBackstores(*path, cfg)
	if k := cfg.Tokens.KeyFile; k != "" {
		st, err := os.Stat(k)
		if err == nil {
			err = checkTokenKey(k, st)
		}
		if err == nil {
			err = unix.Access(k, unix.R_OK)
		}
		if err != nil {
			errs = append(errs, config.FieldError{File: *path, Path: "tokens.key_file", Msg: err.Error()})
		}
	}
	if len(errs) > 0 {
		fmt.Fprintln(stderr, errs)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d backstores, %d targets)\n", *path, len(cfg.Backstores), len(cfg.Targets))
	return 0
}

// checkBackstores reports what would stop serve from opening each file and
// block backstore: a missing file that may not be created (read-only, no
// size) or whose directory does not exist or is not writable, a path that
// is not a regular file or not a block device, a file whose size is not
// the configured one, a path odxtgt may not read (or write, unless
// read-only). Whether another process holds a file's lock is not checked:
// a running odxtgt does, and check runs before reloading it.
func checkBackstores(file string, cfg *config.Config) config.Errors {
	var errs config.Errors
	for i, b := range cfg.Backstores {
		bad := func(format string, args ...any) {
			errs = append(errs, config.FieldError{File: file, Line: b.Line, Path: fmt.Sprintf("backstores[%d].path", i),
				Msg: fmt.Sprintf("backstore %s: ", b.Name) + fmt.Sprintf(format, args...)})
		}
		mode := uint32(unix.R_OK)
		if !b.ReadOnly {
			mode |= unix.W_OK
		}
		switch b.Type {
		case config.TypeFile:
			st, err := os.Stat(b.Path)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				dir := filepath.Dir(b.Path)
				switch {
				case b.ReadOnly:
					bad("file %s does not exist and the backstore is read-only", b.Path)
				case b.Size == 0:
					bad("file %s does not exist and no size is given to create it", b.Path)
				case unix.Access(dir, unix.W_OK|unix.X_OK) != nil:
					bad("file %s does not exist and cannot be created in %s: %v", b.Path, dir, unix.Access(dir, unix.W_OK|unix.X_OK))
				}
			case err != nil:
				bad("%v", err)
			case !st.Mode().IsRegular():
				bad("%s is not a regular file (mode %v); serve devices with type: block", b.Path, st.Mode().Type())
			case b.Size != 0 && st.Size() != b.Size:
				bad("file %s is %d bytes but the configured size is %d bytes", b.Path, st.Size(), b.Size)
			case b.Size == 0 && backstore.ValidateGeometry(st.Size(), b.BlockSize) != nil:
				bad("file %s: %v", b.Path, backstore.ValidateGeometry(st.Size(), b.BlockSize))
			default:
				if err := unix.Access(b.Path, mode); err != nil {
					bad("file %s cannot be opened %s: %v", b.Path, accessWords(b.ReadOnly), err)
				}
			}
		case config.TypeBlock:
			st, err := os.Stat(b.Path)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				bad("block device %s does not exist", b.Path)
			case err != nil:
				bad("%v", err)
			case st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0:
				bad("%s is not a block device (mode %v); serve regular files with type: file", b.Path, st.Mode().Type())
			default:
				if err := unix.Access(b.Path, mode); err != nil {
					bad("block device %s cannot be opened %s: %v", b.Path, accessWords(b.ReadOnly), err)
				}
			}
		}
	}
	return errs
}

func accessWords(readOnly bool) string {
	if readOnly {
		return "for reading"
	}
	return "for reading and writing"
}
