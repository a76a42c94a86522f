package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestServer(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "netledger_test_things_total", Help: "Things."})
	reg.MustRegister(c)
	c.Add(3)
	s, err := New(Config{Listen: "127.0.0.1:0"}, Deps{Gatherer: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var broken atomic.Bool
	s.AddHealthCheck("thing", func() error {
		if broken.Load() {
			return errors.New("disk full")
		}
		return nil
	})
	s.Handle("GET /api/hello", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	addr, err := s.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		path, want string
		code       int
		before     func()
	}{
		{"/metrics", "netledger_test_things_total 3", 200, nil},
		{"/healthz", "ok\n", 200, nil},
		{"/healthz", "thing: disk full\n", 503, func() { broken.Store(true) }},
		{"/api/hello", "hello", 200, nil},
		{"/nothing", "404 page not found\n", 404, nil},
	} {
		if tc.before != nil {
			tc.before()
		}
		code, body := get(tc.path)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, code, body, tc.code, tc.want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v", err)
	}
	if _, err := New(Config{}, Deps{Gatherer: reg}); err == nil {
		t.Error("New(no listen) succeeded")
	}
}
