package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/store"
)

// part is a piece of a query's range answered from one level: points with start in [lo, hi).
type part struct {
	level  int
	lo, hi int64
}

// cover splits [from, to) into parts answered from the coarsest of the given levels (coarsest
// first, finest last) whose interval boundaries fall inside the range, the edges from finer ones.
func cover(from, to int64, lv []int) []part {
	if from >= to || len(lv) == 0 {
		return nil
	}
	l := lv[0]
	if len(lv) == 1 || l == levelBase {
		return []part{{l, from, to}}
	}
	r := levelSeconds[l]
	lo, hi := ceilTo(from, r), floorTo(to, r)
	if lo >= hi {
		return cover(from, to, lv[1:])
	}
	ps := cover(from, lo, lv[1:])
	ps = append(ps, part{l, lo, hi})
	return append(ps, cover(hi, to, lv[1:])...)
}

// Top returns the largest groups of q.By by q.Metric over [q.From, q.To): whole days from the
// daily roll-ups, whole hours at the edges from the hourly ones, the rest from base points.
func (s *Store) Top(ctx context.Context, q store.Query) ([]store.Result, error) {
	t0 := time.Now()
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() // read only: one snapshot for all parts
	res, err := s.top(ctx, tx, q)
	s.metrics.query("top", t0, err)
	return res, err
}

func (s *Store) top(ctx context.Context, tx *sql.Tx, q store.Query) ([]store.Result, error) {
	if err := checkQuery(&q); err != nil {
		return nil, err
	}
	acc := newAccumulator(q, 0, nil)
	// Coarsest parts first: the series of the ragged ends are then mostly known from the day
	// and week packs, so the ends' packs need not have their dimensions decoded.
	parts := cover(q.From.Unix(), q.To.Unix(), []int{levelDay, levelHour, levelBase})
	slices.SortStableFunc(parts, func(a, b part) int { return cmp.Compare(b.level, a.level) })
	for _, p := range parts {
		if err := s.read(ctx, tx, acc, p); err != nil {
			return nil, err
		}
	}
	return acc.top(), nil
}

// Series returns q.By's groups per bucket of q.Step (aligned to multiples of Step since the
// epoch, UTC), in bucket order and by key within a bucket. With a Limit, only the Limit largest
// groups of the whole range (as Top orders them) are returned. Step 0 picks the finest
// resolution still kept at q.From that gives at most 1440 buckets.
func (s *Store) Series(ctx context.Context, q store.Query) ([]store.Result, error) {
	t0 := time.Now()
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	res, err := s.seriesQuery(ctx, tx, q)
	s.metrics.query("series", t0, err)
	return res, err
}

func (s *Store) seriesQuery(ctx context.Context, tx *sql.Tx, q store.Query) ([]store.Result, error) {
	if err := checkQuery(&q); err != nil {
		return nil, err
	}
	if q.Step < 0 || q.Step%time.Second != 0 {
		return nil, fmt.Errorf("bad series step %v", q.Step)
	}
	if q.Step == 0 {
		q.Step = s.chooseStep(q.From, q.To)
	}
	var keep map[record.Dims]bool
	if q.Limit > 0 {
		top, err := s.top(ctx, tx, q)
		if err != nil {
			return nil, err
		}
		keep = map[record.Dims]bool{}
		for _, r := range top {
			keep[r.Dims] = true
		}
	}
	step := int64(q.Step / time.Second)
	var lv []int
	for _, l := range []int{levelDay, levelHour} {
		if step%levelSeconds[l] == 0 {
			lv = append(lv, l)
		}
	}
	lv = append(lv, levelBase)
	acc := newAccumulator(q, step, keep)
	for _, p := range cover(q.From.Unix(), q.To.Unix(), lv) {
		if err := s.read(ctx, tx, acc, p); err != nil {
			return nil, err
		}
	}
	out := acc.results()
	slices.SortFunc(out, func(a, b store.Result) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	return out, nil
}

// chooseStep picks the finest resolution (1m, 1h, 1d) kept at from that gives at most 1440
// buckets over [from, to).
func (s *Store) chooseStep(from, to time.Time) time.Duration {
	span := to.Sub(from)
	now := s.now()
	for _, c := range []struct {
		step, ret time.Duration
	}{{time.Minute, s.cfg.Retention.Base}, {time.Hour, s.cfg.Retention.Hourly}} {
		if span <= 1440*c.step && (c.ret == 0 || !from.Before(now.Add(-c.ret))) {
			return c.step
		}
	}
	return 24 * time.Hour
}

func checkQuery(q *store.Query) error {
	if q.View == "" {
		return fmt.Errorf("query without view")
	}
	if _, ok := dimensions[q.By]; !ok {
		return fmt.Errorf("unknown dimension %q", q.By)
	}
	if q.Metric == "" {
		q.Metric = "bytes"
	}
	if _, ok := metricValue(q.Metric); !ok {
		return fmt.Errorf("unknown metric %q", q.Metric)
	}
	if q.Limit < 0 {
		return fmt.Errorf("negative limit")
	}
	return nil
}

// metricValue returns how a metric orders groups.
func metricValue(metric string) (func(*record.Metrics) float64, bool) {
	switch metric {
	case "bytes":
		return func(m *record.Metrics) float64 { return float64(m.Bytes) }, true
	case "requests":
		return func(m *record.Metrics) float64 { return float64(m.Requests) }, true
	case "packets":
		return func(m *record.Metrics) float64 { return float64(m.Packets) }, true
	case "retransmit-rate":
		return func(m *record.Metrics) float64 { return ratio(m.Retransmits, m.Packets) }, true
	case "rtt":
		return func(m *record.Metrics) float64 { return ratio(m.RTTSum, m.RTTCount) }, true
	}
	return nil, false
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// read adds one part of a query to acc from its packs (whole weeks of a top from week packs,
// the weeks without one from their days).
func (s *Store) read(ctx context.Context, tx *sql.Tx, acc *accumulator, p part) error {
	if p.level == levelDay && acc.step == 0 {
		wlo, whi := ceilTo(p.lo, weekSeconds), floorTo(p.hi, weekSeconds)
		if wlo < whi {
			days := func(lo, hi int64) error {
				return s.readPacks(ctx, tx, acc, part{levelDay, lo, hi}, nil)
			}
			if err := days(p.lo, wlo); err != nil {
				return err
			}
			if err := s.readPacks(ctx, tx, acc, part{levelWeek, wlo, whi}, days); err != nil {
				return err
			}
			return days(whi, p.hi)
		}
	}
	return s.readPacks(ctx, tx, acc, p, nil)
}

// readPacks adds the packs of p's level in [p.lo, p.hi) to acc — all the delta packs of an
// interval — and calls rest (when not nil) for the stretches without packs.
func (s *Store) readPacks(ctx context.Context, tx *sql.Tx, acc *accumulator, p part, rest func(lo, hi int64) error) error {
	if p.lo >= p.hi {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT p.dims, p.start, p.res, b.data FROM packs p CROSS JOIN blobs b ON b.id = p.data
		WHERE p.level = ? AND p.view = ? AND p.start >= ? AND p.start < ? ORDER BY p.start`, p.level, acc.q.View, p.lo, p.hi)
	if err != nil {
		return fmt.Errorf("cannot read packs: %w", err)
	}
	defer rows.Close()
	next := p.lo // the start of the interval not yet read
	for rows.Next() {
		var id, start, res int64
		var data sql.RawBytes
		if err := rows.Scan(&id, &start, &res, &data); err != nil {
			return fmt.Errorf("cannot read packs: %w", err)
		}
		if start > next && rest != nil {
			if err := rest(next, start); err != nil {
				return err
			}
		}
		dimsOf := func() (dims []byte, err error) {
			err = tx.QueryRowContext(ctx, `SELECT data FROM blobs WHERE id = ?`, id).Scan(&dims)
			return dims, err
		}
		if err := acc.addPack(p.level, start, res, data, dimsOf); err != nil {
			return fmt.Errorf("pack %d/%d of %s: %w", p.level, start, acc.q.View, err)
		}
		next = max(next, start+packSeconds(p.level))
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if next < p.hi && rest != nil {
		return rest(next, p.hi)
	}
	return nil
}
