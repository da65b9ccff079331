package metrics

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HealthTimeout bounds one health check.
const HealthTimeout = 2 * time.Second

// Handler serves the metrics of g at /metrics and the health check at
// /healthz: 200 "ok" when healthy returns nil, else 503 with its error on
// one line. Requests that arrive while a check runs share its result
// rather than each running their own: a check may dial the target's
// portals, and a burst of scrapes must not become a burst of connections
// the target counts against its limits.
func Handler(g prometheus.Gatherer, healthy func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	check := &sharedCheck{fn: healthy}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := check.run(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "unhealthy: %v\n", err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// sharedCheck runs a health check at most once at a time; callers that
// come while it runs wait for that run's result.
type sharedCheck struct {
	fn func(context.Context) error

	mu      sync.Mutex
	current *checkRun // the run in progress, or nil
}

// checkRun is one run of a sharedCheck: err is set before done closes.
type checkRun struct {
	done chan struct{}
	err  error
}

// run returns the result of the check in progress, starting one if none
// is, or ctx's error if ctx ends first. The check itself is bounded by
// HealthTimeout, not by any one caller's context.
func (c *sharedCheck) run(ctx context.Context) error {
	c.mu.Lock()
	r := c.current
	if r == nil {
		r = &checkRun{done: make(chan struct{})}
		c.current = r
		go func() {
			cctx, cancel := context.WithTimeout(context.Background(), HealthTimeout)
			defer cancel()
			r.err = c.fn(cctx)
			c.mu.Lock()
			c.current = nil
			c.mu.Unlock()
			close(r.done)
		}()
	}
	c.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
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
