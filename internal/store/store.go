// Package store defines where view rows go: the Store interface that the embedded SQLite store
// (store/sqlite, the default) and the PostgreSQL store implement, and the queries the CLI and the
// API ask of them.
//
// Exactly-once accounting rests on Commit: the rows of a batch are added to the stored rows with
// the same key (view, resolution, interval start, collector, dimensions) and the consumer's spool
// position is saved in the same transaction. After a crash the pipeline resumes from the saved
// position, so no record is counted twice or lost.
package store

import (
	"context"
	"time"

	"github.com/netledger/netledger/internal/record"
)

// Position is a consumer's place in the spool (spool.Position's fields, kept here so that the
// store does not depend on the spool).
type Position struct {
	Segment uint64
	Offset  int64
}

// Batch is what one Commit writes: rows at the views' base resolution, and the position in the
// spool after the last record they include.
type Batch struct {
	// Consumer names the spool consumer whose position this is ("accounting").
	Consumer string
	// Position is saved with the rows in the same transaction.
	Position Position
	// Rows are added to existing rows with the same key. The store also adds each row to its
	// hourly and daily roll-ups in the same transaction.
	Rows []record.Row
}

// Query selects rows for top and series.
type Query struct {
	// View is the view to read: the caller picks one whose dimensions hold By and the filters.
	View string
	// By is the dimension to group by: asn (as on path), origin, peer, path-asn (same as asn),
	// country, region, prefix, router, class, proto, port, src-group, dst-group.
	By string
	// From and To bound interval starts: From ≤ start < To.
	From, To time.Time
	// Filters on other dimensions; "" matches all.
	Router, Class, Country string
	// Limit is the number of groups (top) — 0 for all.
	Limit int
	// Metric orders top: bytes, requests, packets, retransmit-rate, rtt.
	Metric string
	// Step is the series' bucket length (0: the resolution chosen).
	Step time.Duration
}

// Result is one group of a top query or one point of a series.
type Result struct {
	// Key is the group's value as text (a prefix, "AS64500", "DE", a router name).
	Key string
	// Start is the bucket start (series only).
	Start time.Time
	// Resolution is the stored resolution the answer came from.
	Resolution time.Duration
	Metrics    record.Metrics
	// Dims holds the group's raw value (only the By dimension is set), for printing names.
	Dims record.Dims
}

// Store keeps view rows. Implementations are safe for concurrent use.
type Store interface {
	// Commit adds a batch's rows and saves its position, atomically.
	Commit(ctx context.Context, b Batch) error
	// Position returns the consumer's saved position (zero when none).
	Position(ctx context.Context, consumer string) (Position, error)
	// Replace deletes the consumer's rows with starts in [from, to) at every resolution and
	// writes b in the same transaction (netledger replay).
	Replace(ctx context.Context, from, to time.Time, b Batch) error
	// Top returns the largest groups of q.By by q.Metric over [q.From, q.To), answered from the
	// coarsest resolution that covers the range exactly.
	Top(ctx context.Context, q Query) ([]Result, error)
	// Series returns q.By's groups per time bucket.
	Series(ctx context.Context, q Query) ([]Result, error)
	// Expire deletes rows older than each resolution's retention.
	Expire(ctx context.Context, now time.Time) error
	Close() error
}

// Importer is implemented by stores that take whole files of rows (netledger import): a file's
// rows and its id (the SHA-256 of its content) are committed in one transaction, so importing a
// file twice changes nothing.
type Importer interface {
	// Imported reports whether the file id was committed before.
	Imported(ctx context.Context, id string) (bool, error)
	// Import adds rows (at their own resolution; roll-ups as for Commit) and marks id imported.
	Import(ctx context.Context, id string, rows []record.Row) error
}
