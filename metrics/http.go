package metrics

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HealthTimeout bounds one health check.
const HealthTimeout = 2 * time.Second

// Handler serves the metrics of g at /metrics and the health check at
// /healthz: 200 "ok" when healthy returns nil, else 503 with its error on
// one line.
func Handler(g prometheus.Gatherer, healthy func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), HealthTimeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := healthy(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "unhealthy: %v\n", err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// CheckPortals reports the first of addrs that does not accept a TCP
// connection, or nil when all do; no portal at all is unhealthy too. An
// unspecified address (0.0.0.0, [::]) is dialled as such, which Linux
// takes as the local host.
func CheckPortals(ctx context.Context, addrs []net.Addr) error {
	if len(addrs) == 0 {
		return fmt.Errorf("no portal is listening")
	}
	var d net.Dialer
	for _, a := range addrs {
		c, err := d.DialContext(ctx, a.Network(), a.String())
		if err != nil {
			return fmt.Errorf("portal %s does not accept connections: %w", a, err)
		}
		c.Close()
	}
	return nil
}
