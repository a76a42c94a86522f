package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/netledger/netledger/internal/record"
)

// Totals is what a view holds at one level: the sums of its points' metrics and the number of
// points (series and interval starts).
type Totals struct {
	Metrics record.Metrics
	Points  int
}

// ReadTotals sums the points of each view at a level ("base", "hour", "day" or "week") of the
// store at path, all the packs of an interval added up; the exactly-once tests compare them
// with what they sent.
func ReadTotals(ctx context.Context, path, level string) (map[string]Totals, error) {
	l := slices.Index(levelName[:], level)
	if l < 0 {
		return nil, fmt.Errorf("unknown level %q", level)
	}
	cfg := DefaultConfig()
	cfg.Path = path
	db, err := sql.Open("sqlite", dsn(cfg, true))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	ps, err := readPoints(ctx, db, l)
	if err != nil {
		return nil, err
	}
	out := map[string]Totals{}
	for k, m := range ps {
		t := out[k.view]
		t.Metrics.Add(&m)
		t.Points++
		out[k.view] = t
	}
	return out, nil
}

// viewPoint is a point of a view.
type viewPoint struct {
	view string
	pointKey
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// readPoints returns the points of a level: the packs of each interval summed per series.
func readPoints(ctx context.Context, db queryer, level int) (map[viewPoint]record.Metrics, error) {
	rows, err := db.QueryContext(ctx, `SELECT p.view, p.start, b.data FROM packs p CROSS JOIN blobs b ON b.id = p.data WHERE p.level = ?`, level)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[viewPoint]record.Metrics{}
	var r packReader
	for rows.Next() {
		var k viewPoint
		var data []byte
		if err := rows.Scan(&k.view, &k.start, &data); err != nil {
			return nil, err
		}
		if err := r.reset(data); err != nil {
			return nil, err
		}
		sums := make([][nMetrics]uint64, r.n)
		slot := make([]int32, r.n)
		for i := range slot {
			slot[i] = int32(i)
		}
		if err := r.addMetrics(slot, sums); err != nil {
			return nil, err
		}
		k.level = level
		for i, sid := range r.sids {
			k.sid = sid
			m := out[k]
			add := metricsFrom(&sums[i])
			m.Add(&add)
			out[k] = m
		}
	}
	return out, rows.Err()
}
