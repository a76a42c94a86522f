// Package api serves netledger's HTTP endpoint: /metrics (Prometheus, from the daemon's
// registry), /healthz, and whatever handlers other components mount on it. It only reads.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config configures the HTTP endpoint.
type Config struct {
	// Listen is the TCP address to serve on.
	Listen string
}

// Deps are the endpoint's dependencies.
type Deps struct {
	// Gatherer provides /metrics.
	Gatherer prometheus.Gatherer
	// Logger logs (slog.Default when nil).
	Logger *slog.Logger
}

// HealthCheck returns nil when its component is healthy.
type HealthCheck func() error

// Server is the HTTP endpoint. New is inert; Run listens.
type Server struct {
	cfg    Config
	deps   Deps
	mux    *http.ServeMux
	checks map[string]HealthCheck
	ready  chan struct{}
	addr   net.Addr
}

// New returns a server with /metrics and /healthz mounted.
func New(cfg Config, deps Deps) (*Server, error) {
	if cfg.Listen == "" {
		return nil, errors.New("http listen address not set")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, deps: deps, mux: http.NewServeMux(), checks: map[string]HealthCheck{}, ready: make(chan struct{})}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(deps.Gatherer, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /healthz", s.healthz)
	return s, nil
}

// Handle mounts a handler (for components that expose an API); call it before Run.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// AddHealthCheck makes /healthz fail with the check's error while it fails; call it before Run.
func (s *Server) AddHealthCheck(name string, check HealthCheck) { s.checks[name] = check }

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var failed []string
	for name, check := range s.checks {
		if err := check(); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", name, err))
		}
	}
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, f := range failed {
			fmt.Fprintln(w, f)
		}
		return
	}
	fmt.Fprintln(w, "ok")
}

// Addr returns the bound address once Run listens.
func (s *Server) Addr(ctx context.Context) (net.Addr, error) {
	select {
	case <-s.ready:
		return s.addr, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Run serves until ctx is done, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen for http on %s: %w", s.cfg.Listen, err)
	}
	s.addr = ln.Addr()
	close(s.ready)
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.deps.Logger.Info("serving http", "listen", s.addr.String())
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}
