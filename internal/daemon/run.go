package daemon

import (
	"context"
	"errors"

	"golang.org/x/sync/errgroup"
)

// Component is a running part of the daemon. Components are inert until Run, which does the
// work until ctx is cancelled and returns nil on a clean stop.
type Component interface {
	Run(ctx context.Context) error
}

// RunAll runs components until ctx is cancelled or one of them fails; the first failure
// cancels the others. A clean stop (context cancelled) returns nil.
func RunAll(ctx context.Context, components ...Component) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, c := range components {
		g.Go(func() error { return c.Run(ctx) })
	}
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
