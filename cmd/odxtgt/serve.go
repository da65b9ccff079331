package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/odxtgt/odxtgt/config"
	"github.com/odxtgt/odxtgt/iscsi"
)

// shutdownGrace is how long in-flight commands may run after SIGINT or
// SIGTERM before they are aborted.
const shutdownGrace = 20 * time.Second

// serveOptions are the flags of the serve subcommand.
type serveOptions struct {
	configPath string
	dataDir    string
	logFormat  string
	logLevel   string
	// metricsReady, if set, is told the metrics endpoint's address.
	metricsReady func(net.Addr)
	// reload delivers SIGHUP: re-read the configuration (reload.go);
	// reloaded, if set, hears each reload's outcome (tests).
	reload   <-chan os.Signal
	reloaded func(error)
}

func parseServeFlags(args []string, stderr io.Writer) (*serveOptions, error) {
	o := &serveOptions{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configPath, "config", "", "YAML LUN map `file` (default: the embedded demo)")
	fs.StringVar(&o.dataDir, "data-dir", "odxtgt-data", "`directory` for the demo LUN's file")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return o, nil
}

func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

// loadConfig returns the configuration file's LUN map, or the embedded
// demo with its data directory created.
func loadConfig(o *serveOptions, log *slog.Logger) (*config.Config, error) {
	if o.configPath != "" {
		return config.Load(o.configPath)
	}
	dir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfg := config.Default(dir)
	log.Info("no --config given: serving the embedded demo", "target", config.DemoIQN, "data", filepath.Join(dir, "demo.img"))
	return cfg, nil
}

func runServe(args []string, stderr io.Writer) int {
	o, err := parseServeFlags(args, stderr)
	if err != nil {
		return 2
	}
	log, err := newLogger(o.logFormat, o.logLevel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "odxtgt serve: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	o.reload = hup
	if err := serve(ctx, o, log, nil); err != nil {
		log.Error("odxtgt stopped", "err", err)
		return 1
	}
	return 0
}

// serve runs the target until ctx is cancelled, then stops accepting,
// lets in-flight commands finish (aborting them after shutdownGrace) and
// flushes the backstores; SIGHUP on o.reload reloads the configuration.
// ready, if set, is told the listen addresses once the portals accept
// connections.
func serve(ctx context.Context, o *serveOptions, log *slog.Logger, ready func([]net.Addr)) error {
	cfg, err := loadConfig(o, log)
	if err != nil {
		return err
	}
	rt, err := build(cfg, log)
	if err != nil {
		return err
	}
	srv, err := iscsi.NewServer(rt.server)
	if err != nil {
		_ = rt.close()
		return err
	}
	stopMetrics, err := startMetrics(cfg.Metrics, rt, srv, log, o.metricsReady)
	if err != nil {
		_ = rt.close()
		return err
	}
	defer stopMetrics()
	if err := srv.Listen(); err != nil {
		_ = rt.close()
		return err
	}
	for _, a := range srv.Addrs() {
		log.Info("listening", "portal", a.String())
	}
	if ready != nil {
		ready(srv.Addrs())
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	notifySystemd(log, "READY=1")

wait:
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down")
			break wait
		case err = <-served:
			log.Error("portal failed", "err", err)
			break wait
		case <-o.reload:
			rerr := reloadConfig(o, log, rt, srv)
			if o.reloaded != nil {
				o.reloaded(rerr)
			}
		}
	}
	notifySystemd(log, "STOPPING=1")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil && err == nil {
		err = serr
	}
	if cerr := rt.close(); cerr != nil && err == nil {
		err = cerr
	}
	if err == nil {
		log.Info("stopped cleanly")
	}
	return err
}
