// Package replay re-accounts records kept in the spool into the store (netledger replay), for
// example after a better routing table or geo data was loaded: the intervals of a time range
// are rebuilt from the records and replace what the store holds for them, in one transaction,
// so that nothing is counted twice.
//
// Which records: those the accounting pipeline has already committed (the spool up to the
// consumer's saved position) whose time falls in the range. Records after that position are
// the pipeline's: it adds them when it next runs, on top of the replaced rows, as it would have.
// The spool is read from the last segment created before the range start minus the
// collector's time window (a record's time may precede its arrival by up to that much), so
// that every record of the range is seen.
//
// Intervals whose records were in segments that the spool's retention already deleted cannot
// be rebuilt: replaying them would replace their rows with a part of their traffic. Run
// refuses such a range (ErrExpired) and names the earliest start it can replay.
package replay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/spool"
	"github.com/netledger/netledger/internal/store"
)

// replayBatch is the number of records handed to the Accountant at once (the pipeline's
// batch size).
const replayBatch = 4096

// ErrExpired is returned for a range that starts before the records the spool still keeps.
var ErrExpired = errors.New("spool segments already expired")

// ErrNothingAccounted is returned when the pipeline has committed nothing yet.
var ErrNothingAccounted = errors.New("nothing accounted yet")

// Accountant turns records into view rows: enrichment and the views' aggregation, as the
// accounting pipeline does it.
type Accountant interface {
	// AddBatch accounts a batch of records (recs is reused once it returns).
	AddBatch(recs []record.Record)
	// Rows appends the rows of everything added and forgets it.
	Rows(dst []record.Row) []record.Row
}

// Config is what Run reads and writes.
type Config struct {
	Spool *spool.Spool
	Store store.Store
	// Consumer is the accounting pipeline's consumer name; its saved position bounds the
	// records replayed.
	Consumer string
	// From and To bound the records' times; they are widened to whole intervals.
	From, To time.Time
	// Interval is the views' base interval.
	Interval time.Duration
	// Window is how far a record's time may precede its arrival (the collector's window).
	Window time.Duration
	// Totals returns the summed metrics the store holds over [from, to) (to compare before and
	// after, and to detect stored traffic in expired ranges).
	Totals func(ctx context.Context, from, to time.Time) (record.Metrics, error)
}

// Result is what Run did.
type Result struct {
	// From and To are the replaced range (whole intervals).
	From, To time.Time
	// FirstSegment is the segment reading started at; Segments how many were read.
	FirstSegment, Segments uint64
	// Read counts records read; Replayed those in the range.
	Read, Replayed uint64
	// Rows is the number of base-interval rows written.
	Rows int
	// Before and After are the store's totals over the range.
	Before, After record.Metrics
}

// Run replays cfg.From..cfg.To: see the package documentation.
func Run(ctx context.Context, cfg Config, acc Accountant) (Result, error) {
	if cfg.Interval <= 0 || (24*time.Hour)%cfg.Interval != 0 {
		// Unaligned ends would replace part of an interval's row while keeping the rest.
		return Result{}, fmt.Errorf("replay interval %v: want a length dividing a day, as the accounting interval", cfg.Interval)
	}
	res := Result{From: cfg.From.UTC().Truncate(cfg.Interval), To: ceil(cfg.To.UTC(), cfg.Interval)}
	if !res.From.Before(res.To) {
		return res, fmt.Errorf("empty range: %s is not before %s", res.From.Format(time.RFC3339), res.To.Format(time.RFC3339))
	}
	committed, err := cfg.Store.Position(ctx, cfg.Consumer)
	if err != nil {
		return res, fmt.Errorf("cannot read the accounting position: %w", err)
	}
	if committed == (store.Position{}) {
		return res, fmt.Errorf("%w: the store has no position of consumer %q", ErrNothingAccounted, cfg.Consumer)
	}
	end := spool.Position{Segment: committed.Segment, Offset: committed.Offset}
	segs, err := cfg.Spool.Segments()
	if err != nil {
		return res, err
	}
	// The oldest kept segment holds no record that arrived before its creation. When older
	// segments were deleted, records with times before its creation plus the window may be
	// gone.
	oldest := segs[0]
	if oldest.Number > 1 {
		safe := ceil(oldest.Created.Add(cfg.Window).UTC(), cfg.Interval)
		if res.From.Before(safe) {
			lost, err := cfg.Totals(ctx, res.From, minTime(safe, res.To))
			if err != nil {
				return res, err
			}
			if !lost.Zero() {
				return res, fmt.Errorf("%w: the spool segments holding records before %s were deleted by spool.retention, "+
					"and the store holds %d requests (%d bytes) between %s and %s that a replay would drop; replay from %s or later",
					ErrExpired, safe.Format(time.RFC3339), lost.Requests, lost.Bytes, res.From.Format(time.RFC3339),
					minTime(safe, res.To).Format(time.RFC3339), safe.Format(time.RFC3339))
			}
		}
	}
	first := oldest.Number
	for _, s := range segs {
		if s.Created.After(res.From.Add(-cfg.Window)) {
			break
		}
		first = s.Number
	}
	res.FirstSegment = first
	if res.Before, err = cfg.Totals(ctx, res.From, res.To); err != nil {
		return res, err
	}

	from, to := res.From.UnixNano(), res.To.UnixNano()
	start := spool.SegmentStart(first)
	if start.Less(end) {
		r, err := cfg.Spool.NewReader(start)
		if err != nil {
			return res, fmt.Errorf("cannot read the spool: %w", err)
		}
		defer r.Close()
		var one [1]record.Record // read one at a time: stop exactly at the committed position
		batch := make([]record.Record, 0, replayBatch)
		seg := uint64(0)
		for r.Position().Less(end) {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			at := r.Position()
			n, _, err := r.Read(one[:])
			if err != nil {
				return res, fmt.Errorf("cannot read the spool: %w", err)
			}
			if n == 0 {
				break // the committed position is past what the spool holds
			}
			if p := r.Position(); p.Segment != at.Segment && !spool.SegmentStart(p.Segment).Less(end) {
				// The record opened a segment at or after the committed position: a pipeline
				// that caught up as the segment began committed its start.
				break
			}
			if p := r.Position(); p.Segment != seg {
				seg = p.Segment
				res.Segments++
			}
			res.Read++
			if t := one[0].Time; t >= from && t < to {
				if batch = append(batch, one[0]); len(batch) == replayBatch {
					acc.AddBatch(batch)
					batch = batch[:0]
				}
				res.Replayed++
			}
		}
		acc.AddBatch(batch)
	}
	rows := acc.Rows(nil)
	res.Rows = len(rows)
	if err := cfg.Store.Replace(ctx, res.From, res.To, store.Batch{Rows: rows}); err != nil {
		return res, err
	}
	res.After, err = cfg.Totals(ctx, res.From, res.To)
	return res, err
}

func ceil(t time.Time, d time.Duration) time.Time {
	if f := t.Truncate(d); !f.Equal(t) {
		return f.Add(d)
	}
	return t
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
