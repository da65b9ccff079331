package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/odxtgt/odxtgt/config"
	"github.com/odxtgt/odxtgt/iscsi"
	"github.com/odxtgt/odxtgt/metrics"
	"github.com/odxtgt/odxtgt/rod"
)

// metricsReadTimeout bounds how long a scraper may take to send its
// request; metricsIdleTimeout how long a keep-alive connection may stay
// quiet between requests; metricsWriteTimeout how long serving one
// request, health check included, may take.
const (
	metricsReadTimeout  = 10 * time.Second
	metricsIdleTimeout  = time.Minute
	metricsWriteTimeout = 30 * time.Second
)

// startMetrics serves /metrics and /healthz on m.Listen, when set, for
// the server srv running rt, and returns the function that stops the
// endpoint. ready, if set, is told the listen address (the port chosen
// for ":0").
func startMetrics(m config.Metrics, rt *runtime, srv *iscsi.Server, log *slog.Logger, ready func(net.Addr)) (stop func(), err error) {
	if m.Listen == "" {
		return func() {}, nil
	}
	src := metrics.Sources{Server: srv, Copies: rt.copies}
	for _, name := range slices.Sorted(maps.Keys(rt.lus)) {
		lu := metrics.LU{Name: name, Stats: rt.lus[name]}
		if p, ok := rt.lus[name].Store.(*rod.Protected); ok {
			lu.Snapshots = p
		}
		src.LUs = append(src.LUs, lu)
	}
	healthy := func(ctx context.Context) error { return metrics.CheckPortals(ctx, srv.Addrs()) }
	ln, err := net.Listen("tcp", m.Listen)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen: %w", err)
	}
	hs := newMetricsServer(metrics.Handler(metrics.NewRegistry(src), healthy), log)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hs.Serve(ln) // ends with http.ErrServerClosed once stopped
	}()
	log.Info("serving metrics", "addr", ln.Addr().String(), "paths", "/metrics /healthz")
	if ready != nil {
		ready(ln.Addr())
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), metricsReadTimeout)
		defer cancel()
		_ = hs.Shutdown(ctx)
		<-served
	}, nil
}

// newMetricsServer returns the HTTP server of the metrics endpoint: every
// phase of a connection is bounded in time, so connections a client
// opens and leaves do not pile up.
func newMetricsServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: metricsReadTimeout,
		IdleTimeout:       metricsIdleTimeout,
		WriteTimeout:      metricsWriteTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
