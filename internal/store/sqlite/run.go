package sqlite

import (
	"context"
	"time"
)

// ExpireEvery is how often Run applies the retention.
const ExpireEvery = time.Hour

// Run applies the retention (Expire) at once and then every ExpireEvery until ctx is done:
// `netledger serve` runs the store as one of its components. A failed expiry is counted with
// the store's operation errors and retried at the next tick; it never stops the daemon.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(ExpireEvery)
	defer t.Stop()
	for {
		_ = s.Expire(ctx, s.now()) // counted: netledger_store_writes_total{op="expire",result="error"}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
