package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
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
	// The base parts come last; their grouped SQL (a sort of the minutes' points by series)
	// runs while the packs are decoded, on the same transaction (database/sql serializes the
	// connection's calls), and is added after them.
	i := slices.IndexFunc(parts, func(p part) bool { return p.level == levelBase })
	if i < 0 || !concurrentBase {
		i = len(parts)
	}
	base := parts[i:]
	type fetched struct {
		sums []sidSum
		err  error
	}
	fetch := make(chan fetched, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if len(base) > 0 {
		go func() {
			var f fetched
			for _, p := range base {
				if f.sums, f.err = s.fetchSids(ctx, tx, p, f.sums); f.err != nil {
					break
				}
			}
			fetch <- f
		}()
	}
	var err error
	for _, p := range parts[:i] {
		if err = s.read(ctx, tx, acc, p); err != nil {
			break
		}
	}
	if len(base) > 0 {
		if err != nil {
			cancel()
		}
		f := <-fetch // before the transaction ends
		if err == nil {
			err = f.err
		}
		if err == nil {
			err = s.addSids(ctx, tx, acc, f.sums)
		}
	}
	if err != nil {
		return nil, err
	}
	return acc.top(), nil
}

// concurrentBase: top fetches its base parts concurrently with the packs (off in a test only).
var concurrentBase = true

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

// read adds one part of a query to acc: the packed intervals from their packs (whole weeks
// of a top from week packs), the others (and base points) with a grouped SQL query.
func (s *Store) read(ctx context.Context, tx *sql.Tx, acc *accumulator, p part) error {
	switch {
	case p.level == levelBase:
		return s.scan(ctx, tx, acc, p)
	case p.level == levelDay && acc.step == 0:
		wlo, whi := ceilTo(p.lo, weekSeconds), floorTo(p.hi, weekSeconds)
		if wlo < whi {
			days := func(lo, hi int64) error {
				return s.readPacks(ctx, tx, acc, part{levelDay, lo, hi}, func(lo, hi int64) error {
					return s.scan(ctx, tx, acc, part{levelDay, lo, hi})
				})
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
	return s.readPacks(ctx, tx, acc, p, func(lo, hi int64) error {
		return s.scan(ctx, tx, acc, part{p.level, lo, hi})
	})
}

// readPacks adds the packs of p's level in [p.lo, p.hi) to acc, and calls rest for the
// stretches without packs.
func (s *Store) readPacks(ctx context.Context, tx *sql.Tx, acc *accumulator, p part, rest func(lo, hi int64) error) error {
	if p.lo >= p.hi {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT start, data FROM packs WHERE view = ? AND level = ? AND start >= ? AND start < ?
		ORDER BY start`, acc.q.View, p.level, p.lo, p.hi)
	if err != nil {
		return fmt.Errorf("cannot read packs: %w", err)
	}
	defer rows.Close()
	next := p.lo // the start of the interval not yet read
	for rows.Next() {
		var start int64
		var data sql.RawBytes
		if err := rows.Scan(&start, &data); err != nil {
			return fmt.Errorf("cannot read packs: %w", err)
		}
		if start > next {
			if err := rest(next, start); err != nil {
				return err
			}
		}
		dimsOf := func() (dims []byte, err error) {
			err = tx.QueryRowContext(ctx, `SELECT dims FROM packs WHERE view = ? AND level = ? AND start = ?`,
				acc.q.View, p.level, start).Scan(&dims)
			return dims, err
		}
		if err := acc.addPack(p.level, start, data, dimsOf); err != nil {
			return fmt.Errorf("pack %d/%d of %s: %w", p.level, start, acc.q.View, err)
		}
		next = start + packSeconds(p.level)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if next < p.hi {
		return rest(next, p.hi)
	}
	return nil
}

// scan runs the grouped SQL query of one part.
func (s *Store) scan(ctx context.Context, tx *sql.Tx, acc *accumulator, p part) error {
	if acc.step == 0 {
		return s.scanSids(ctx, tx, acc, p)
	}
	q := acc.q
	dim := dimensions[q.By]
	st, err := s.queryStmt(ctx, p.level, dim.column, acc.step > 0)
	if err != nil {
		return err
	}
	rows, err := tx.StmtContext(ctx, st).QueryContext(ctx, p.lo, p.hi, q.View, q.Router, q.Class, q.Country, max(acc.step, 1))
	if err != nil {
		return fmt.Errorf("cannot query %s: %w", levelTable[p.level], err)
	}
	defer rows.Close()
	var (
		g      groupValue
		bucket int64
		res    int64
		m      record.Metrics
	)
	targets := []any{g.target(dim.kind), &bucket, &res}
	targets = metricTargets(targets, &m)
	for rows.Next() {
		if err := rows.Scan(targets...); err != nil {
			return fmt.Errorf("cannot read %s: %w", levelTable[p.level], err)
		}
		d, err := g.dims(q.By)
		if err != nil {
			return err
		}
		acc.add(bucket, d, res, &m)
	}
	return rows.Err()
}

func (s *Store) queryStmt(ctx context.Context, level int, column string, series bool) (*sql.Stmt, error) {
	key := strconv.Itoa(level) + "/" + column + "/" + strconv.FormatBool(series)
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if st := s.query[key]; st != nil {
		return st, nil
	}
	bucket, group := "0", "s."+column
	if series {
		bucket = "p.start - p.start % ?7"
		group = "1, 2"
	}
	res := "MAX(p.res)"
	if level != levelBase {
		res = strconv.FormatInt(levelSeconds[level], 10)
	}
	// column comes from the fixed dimensions table, never from the query.
	text := `SELECT s.` + column + `, ` + bucket + `, ` + res + `, ` + metricSums + `
		FROM ` + levelTable[level] + ` p CROSS JOIN series s ON s.id = p.sid
		WHERE p.start >= ?1 AND p.start < ?2 AND s.view = ?3
		AND (?4 = '' OR s.router = ?4) AND (?5 = '' OR s.class = ?5) AND (?6 = '' OR s.country = ?6)
		AND ?7 > 0
		GROUP BY ` + group
	st, err := s.r.PrepareContext(ctx, text)
	if err != nil {
		return nil, fmt.Errorf("cannot prepare query: %w", err)
	}
	s.query[key] = st
	return st, nil
}

// sidSum is a series' sums over a part.
type sidSum struct {
	sid, res int64
	m        record.Metrics
}

// scanSids adds one part of a top query from SQL: the points summed per series id (one index
// range of the point table, no join), then each series resolved to its group as packs are
// (accumulator.resolve): the series met in a pack already are known; the others' dimensions
// are read in one query. A join with series and a GROUP BY over the group's column cost a
// series lookup per point and a sort on the group value.
func (s *Store) scanSids(ctx context.Context, tx *sql.Tx, acc *accumulator, p part) error {
	sums, err := s.fetchSids(ctx, tx, p, nil)
	if err != nil {
		return err
	}
	return s.addSids(ctx, tx, acc, sums)
}

// fetchSids appends the sums per series id of one part to sums; it does not touch an
// accumulator, so that it may run concurrently with one.
func (s *Store) fetchSids(ctx context.Context, tx *sql.Tx, p part, sums []sidSum) ([]sidSum, error) {
	res := "MAX(res)"
	if p.level != levelBase {
		res = strconv.FormatInt(levelSeconds[p.level], 10)
	}
	rows, err := tx.QueryContext(ctx, `SELECT sid, `+res+`, `+columnSums+` FROM `+levelTable[p.level]+`
		WHERE start >= ? AND start < ? GROUP BY sid`, p.lo, p.hi)
	if err != nil {
		return sums, fmt.Errorf("cannot query %s: %w", levelTable[p.level], err)
	}
	defer rows.Close()
	var x sidSum
	targets := []any{intTarget{&x.sid}, intTarget{&x.res}}
	for _, m := range metricTargets(nil, &x.m) {
		targets = append(targets, uintTarget{m.(*uint64)})
	}
	for rows.Next() {
		if err := rows.Scan(targets...); err != nil {
			return sums, fmt.Errorf("cannot read %s: %w", levelTable[p.level], err)
		}
		sums = append(sums, x)
	}
	return sums, rows.Err()
}

// addSids adds the sums of fetchSids to acc, resolving the series not met yet.
func (s *Store) addSids(ctx context.Context, tx *sql.Tx, acc *accumulator, sums []sidSum) error {
	var unknown []byte // JSON array of the series ids not resolved yet
	for i := range sums {
		if sid := sums[i].sid; acc.sidLookup(sid) == 0 {
			unknown = strconv.AppendInt(append(unknown, ','), sid, 10)
		}
	}
	if len(unknown) > 0 {
		unknown[0] = '['
		if err := s.resolveSids(ctx, tx, acc, append(unknown, ']')); err != nil {
			return err
		}
	}
	for i := range sums {
		x := &sums[i]
		g := acc.sidLookup(x.sid)
		if g <= 0 {
			continue
		}
		si := acc.slot(0, g-1)
		acc.slots[si].res = max(acc.slots[si].res, x.res)
		for c, v := range metricArray(&x.m) {
			acc.sums[si][c] += v
		}
	}
	return nil
}

// resolveSids reads the series of ids (a JSON array) and stores each one's group (or -1 when
// the query's view or filters exclude it) in acc.
func (s *Store) resolveSids(ctx context.Context, tx *sql.Tx, acc *accumulator, ids []byte) error {
	q := &acc.q
	dim := dimensions[q.By]
	// dim.column comes from the fixed dimensions table, never from the query.
	rows, err := tx.QueryContext(ctx, `SELECT id, view, router, class, country, `+dim.column+` FROM series
		WHERE id IN (SELECT value FROM json_each(?))`, string(ids))
	if err != nil {
		return fmt.Errorf("cannot read series: %w", err)
	}
	defer rows.Close()
	var (
		id   int64
		view string
		d    packDims
		g    groupValue
	)
	for rows.Next() {
		if err := rows.Scan(&id, &view, &d.router, &d.class, &d.country, g.target(dim.kind)); err != nil {
			return fmt.Errorf("cannot read series: %w", err)
		}
		dims, err := g.dims(q.By)
		if err != nil {
			return err
		}
		d.key = groupKey(q.By, &dims)
		grp := int32(-1)
		if view == q.View {
			grp = acc.resolve(&d)
		}
		acc.sidStore(id, grp)
	}
	return rows.Err()
}

// intTarget and uintTarget scan an integer column without database/sql's conversion through
// a string (an allocation a column and row).
type (
	intTarget  struct{ p *int64 }
	uintTarget struct{ p *uint64 }
)

func (t intTarget) Scan(v any) error {
	n, ok := v.(int64)
	if !ok {
		return fmt.Errorf("integer column holds %T", v)
	}
	*t.p = n
	return nil
}

func (t uintTarget) Scan(v any) error {
	n, ok := v.(int64)
	if !ok || n < 0 {
		return fmt.Errorf("unsigned column holds %T %v", v, v)
	}
	*t.p = uint64(n)
	return nil
}
