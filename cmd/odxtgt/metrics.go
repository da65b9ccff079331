package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/odxtgt/odxtgt/config"
	"github.com/odxtgt/odxtgt/iscsi"
	"github.com/odxtgt/odxtgt/metrics"
	"github.com/odxtgt/odxtgt/rod"
	"github.com/odxtgt/odxtgt/scsi"
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

// metricsLUs lists the logical units being served, by backstore name, for
// a scrape: a reload may have added or removed some since the last.
func (r *runtime) metricsLUs() []metrics.LU {
	r.mu.Lock()
	all := slices.Clone(r.all)
	r.mu.Unlock()
	slices.SortFunc(all, func(a, b *scsi.LU) int { return strings.Compare(a.Identity.Name, b.Identity.Name) })
	lus := make([]metrics.LU, 0, len(all))
	for _, lu := range all {
		m := metrics.LU{Name: lu.Identity.Name, Stats: lu}
		if p, ok := lu.Store.(*rod.Protected); ok {
			m.Snapshots = p
		}
		lus = append(lus, m)
	}
	return lus
}

// startMetrics serves /metrics and /healthz on m.Listen, when set, for
// the server srv running rt, and returns the function that stops the
// endpoint. ready, if set, is told the listen address (the port chosen
// for ":0").
func startMetrics(m config.Metrics, rt *runtime, srv *iscsi.Server, log *slog.Logger, ready func(net.Addr)) (stop func(), err error) {
	if m.Listen == "" {
		return func() {}, nil
	}
	src := metrics.Sources{Server: srv, Copies: rt.copies, LUs: rt.metricsLUs}
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
