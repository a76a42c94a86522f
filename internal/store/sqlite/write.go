package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/store"
)

func (s *Store) prepare(ctx context.Context) error {
	var err error
	s.savePos, err = s.w.PrepareContext(ctx, `INSERT INTO positions (consumer, segment, offset) VALUES (?, ?, ?)
		ON CONFLICT (consumer) DO UPDATE SET segment = excluded.segment, offset = excluded.offset`)
	if err != nil {
		return fmt.Errorf("cannot prepare position statement: %w", err)
	}
	return nil
}

// Commit adds the batch's rows to the stored rows with the same key, and each to its hourly and
// daily roll-up, and saves the consumer's position, in one transaction.
func (s *Store) Commit(ctx context.Context, b store.Batch) error {
	t0 := time.Now()
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := s.writeRows(ctx, tx, s.collector, b.Rows); err != nil {
			return err
		}
		return s.finish(ctx, tx, b)
	})
	s.metrics.observe("commit", len(b.Rows), t0, err)
	if err != nil {
		return fmt.Errorf("cannot commit %d rows: %w", len(b.Rows), err)
	}
	return nil
}

// finish calls the fault hook and saves the batch's position.
func (s *Store) finish(ctx context.Context, tx *sql.Tx, b store.Batch) error {
	if s.fault != nil {
		if err := s.fault(b); err != nil {
			return err
		}
	}
	if b.Consumer == "" {
		return nil
	}
	_, err := tx.StmtContext(ctx, s.savePos).ExecContext(ctx, b.Consumer, int64(b.Position.Segment), b.Position.Offset)
	return err
}

// write runs fn in a write transaction, with the series index synced to the database; the
// series fn adds to the index (ids above s.maxSid) leave it again if the transaction fails.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.w == nil {
		return errors.New("store closed")
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := s.syncSeries(ctx, tx); err != nil {
		tx.Rollback()
		return err
	}
	s.newDims = nil
	err = fn(tx)
	if err == nil {
		err = tx.Commit()
	} else {
		tx.Rollback()
	}
	if err != nil { // a failed write forgets the series it added
		for id := s.maxSid + 1; id < int64(s.keys.len()); id++ {
			delete(s.sids, *s.keys.at(id))
		}
		s.keys.truncate(int(s.maxSid) + 1)
		return err
	}
	s.maxSid = int64(s.keys.len()) - 1
	return nil
}

// writeRows adds rows (merged within the batch first) to one delta pack per view, level and
// interval they touch, and compacts the intervals that are over or hold many packs.
func (s *Store) writeRows(ctx context.Context, tx *sql.Tx, collector string, rows []record.Row) error {
	clear(s.acc)
	s.points = slices.Grow(s.points[:0], len(rows))
	if err := s.seriesIDs(ctx, tx, collector, rows); err != nil {
		return err
	}
	var end int64
	for i := range rows {
		r := &rows[i]
		if r.Metrics.Zero() {
			continue
		}
		if r.View == "" {
			return errors.New("row without view")
		}
		level, err := levelOf(r.Resolution)
		if err != nil {
			return err
		}
		sid := s.rowSids[i]
		start := r.Start.Unix()
		res := int64(r.Resolution / time.Second)
		end = max(end, start+res)
		k := pointKey{level, start, sid}
		if j, ok := s.acc[k]; ok {
			s.points[j].m.Add(&r.Metrics)
			s.points[j].res = max(s.points[j].res, res)
			continue
		}
		s.acc[k] = len(s.points)
		s.points = append(s.points, point{k, res, r.Metrics})
	}
	s.rollUp()
	return s.writePoints(ctx, tx, end)
}

// rollUp turns s.points (the rows merged at their own level) into the points of every level
// in key order: each level's points are its own and those of the level below summed into its
// intervals.
func (s *Store) rollUp() {
	own := s.points
	if len(own) == 0 {
		return
	}
	if !slices.IsSortedFunc(own, cmpPoint) { // new series of one interval come in order
		sortPoints(own)
	}
	all := slices.Grow(s.spare[:0], (packLevels-own[0].level)*len(own))
	lo, hi := 0, 0 // the previous level's points in all
	i := 0
	for l := range packLevels {
		j := i
		for j < len(own) && own[j].level == l {
			j++
		}
		first := len(all)
		all = append(all, own[i:j]...)
		i = j
		if l > levelBase {
			for _, p := range all[lo:hi] {
				p.level, p.start = l, floorTo(p.start, packSeconds(l))
				all = append(all, p)
			}
			all = all[:first+len(mergePoints(all[first:]))]
		}
		lo, hi = first, len(all)
	}
	s.points, s.spare = all, own
}

// mergePoints sorts points (when they are not in order) and sums those of the same key, in
// place.
func mergePoints(ps []point) []point {
	if !slices.IsSortedFunc(ps, cmpPoint) {
		slices.SortFunc(ps, cmpPoint)
	}
	n := 0
	for i := range ps {
		if n > 0 && ps[n-1].pointKey == ps[i].pointKey {
			ps[n-1].m.Add(&ps[i].m)
			ps[n-1].res = max(ps[n-1].res, ps[i].res)
			continue
		}
		ps[n] = ps[i]
		n++
	}
	return ps[:n]
}

// sortPoints sorts points in key order: level, start, series id.
func sortPoints(ps []point) { slices.SortFunc(ps, cmpPoint) }

func cmpPoint(a, b point) int {
	if a.level != b.level {
		return a.level - b.level
	}
	if a.start != b.start {
		return cmpInt(a.start, b.start)
	}
	return cmpInt(a.sid, b.sid)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// syncSeries brings the in-memory series index up to date inside a write transaction: the
// series stored with ids above the highest known (all of them at the first write; afterwards
// only those another process added). Series are never deleted, and BEGIN IMMEDIATE holds the
// database's write lock, so the index is complete until the transaction ends.
func (s *Store) syncSeries(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT first, data FROM series_packs WHERE first > ? ORDER BY first`, s.maxSid)
	if err != nil {
		return fmt.Errorf("cannot read series: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var first int64
		var data []byte
		if err := rows.Scan(&first, &data); err != nil {
			return fmt.Errorf("cannot read series: %w", err)
		}
		keys, err := decodeSeries(data)
		if err != nil {
			return fmt.Errorf("series pack %d: %w", first, err)
		}
		if first != int64(s.keys.len()) {
			return fmt.Errorf("series pack %d: the index ends at %d", first, s.keys.len()-1)
		}
		for i, k := range keys {
			s.keys.add(k)
			s.sids[k] = first + int64(i)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read series: %w", err)
	}
	s.maxSid = int64(s.keys.len()) - 1
	return nil
}

// seriesIDs sets s.rowSids[i] to row i's series id, and gives the series not in the index the
// next free ids, adding them to the index and storing their keys in one series pack.
// The in-memory index (syncSeries) is the only guard of a key's uniqueness: the store is the
// database's one writer while it holds the write lock.
func (s *Store) seriesIDs(ctx context.Context, tx *sql.Tx, collector string, rows []record.Row) error {
	s.rowSids = slices.Grow(s.rowSids[:0], len(rows))[:len(rows)]
	clear(s.rowSids)
	if len(s.sids) == 0 { // the first series of a store: room for a batch of new ones
		s.sids = make(map[seriesKey]int64, len(rows))
	}
	first := int64(s.keys.len())
	for i := range rows {
		r := &rows[i]
		if r.Metrics.Zero() || r.View == "" {
			continue
		}
		k := seriesKey{r.View, collector, r.Dims}
		id, ok := s.sids[k]
		if !ok {
			id = int64(s.keys.len())
			s.sids[k] = id
			s.keys.add(k)
		}
		s.rowSids[i] = id
	}
	s.newFirst, s.newDims = first, nil
	if n := int64(s.keys.len()) - first; n > 0 {
		var pack []byte
		pack, s.newDims = encodeSeries(int(n), func(i int) *seriesKey { return s.keys.at(first + int64(i)) })
		if _, err := tx.ExecContext(ctx, `INSERT INTO series_packs (first, n, data) VALUES (?, ?, ?)`,
			first, n, pack); err != nil {
			return fmt.Errorf("cannot write series: %w", err)
		}
	}
	return nil
}

// Replace deletes this collector's rows with starts in [from, to) at every resolution — the
// base rows in the range, the roll-ups of whole hours and days inside it, and the base rows'
// share of the roll-ups of the partly covered hours and days — and writes b, in one
// transaction (netledger replay). Imported rows (collector "<collector>/import") stay.
func (s *Store) Replace(ctx context.Context, from, to time.Time, b store.Batch) error {
	t0 := time.Now()
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := s.deleteRange(ctx, tx, from.Unix(), to.Unix()); err != nil {
			return err
		}
		if err := s.writeRows(ctx, tx, s.collector, b.Rows); err != nil {
			return err
		}
		return s.finish(ctx, tx, b)
	})
	s.metrics.observe("replace", len(b.Rows), t0, err)
	if err != nil {
		return fmt.Errorf("cannot replace rows: %w", err)
	}
	return nil
}

// deleteRange deletes this collector's points in [from, to), level by level from the finest:
// first each point loses what the deleted finer points contributed to it, then the points of
// the intervals wholly inside the range are deleted, and what remains of them (rows written
// at that level directly) is subtracted from the coarser levels in turn.
func (s *Store) deleteRange(ctx context.Context, tx *sql.Tx, from, to int64) error {
	var sub [packLevels]map[pointKey]*[nMetrics]uint64
	for l := range packLevels {
		sub[l] = map[pointKey]*[nMetrics]uint64{}
	}
	for l := range packLevels {
		lo, wlo, whi := from, from, to // intervals touched; intervals wholly inside
		if l > levelBase {
			r := packSeconds(l)
			lo, wlo, whi = floorTo(from, r), ceilTo(from, r), floorTo(to, r)
		}
		ivs, err := packIntervals(ctx, tx, l, lo, to)
		if err != nil {
			return err
		}
		for _, iv := range ivs {
			whole := iv.start >= wlo && iv.start < whi
			err := s.rewrite(ctx, tx, l, iv.start, iv.view, func(sids []int64, sums [][nMetrics]uint64) {
				for k, sid := range sids {
					m := &sums[k]
					if d, ok := sub[l][pointKey{l, iv.start, sid}]; ok {
						for c := range m {
							m[c] -= d[c]
						}
					}
					if !whole || s.keys.at(sid).collector != s.collector {
						continue
					}
					for c := l + 1; c < packLevels; c++ {
						ck := pointKey{c, floorTo(iv.start, packSeconds(c)), sid}
						acc := sub[c][ck]
						if acc == nil {
							acc = &[nMetrics]uint64{}
							sub[c][ck] = acc
						}
						for i, v := range m {
							acc[i] += v
						}
					}
					*m = [nMetrics]uint64{}
				}
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// ImportCollector returns the collector name imported rows are stored under, so that a replay
// of this collector's spool (Replace) leaves them alone.
func (s *Store) ImportCollector() string { return s.collector + "/import" }

// Import adds rows (at their own resolution, rolled up as by Commit) and marks the file id
// imported, in one transaction; a file imported before is skipped, so importing twice changes
// nothing.
func (s *Store) Import(ctx context.Context, id string, rows []record.Row) error {
	t0 := time.Now()
	err := s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM imports WHERE id = ?`, id).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if err := s.writeRows(ctx, tx, s.ImportCollector(), rows); err != nil {
			return err
		}
		if err := s.finish(ctx, tx, store.Batch{Rows: rows}); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO imports (id, imported_at, rows) VALUES (?, ?, ?)`,
			id, time.Now().Unix(), len(rows))
		return err
	})
	s.metrics.observe("import", len(rows), t0, err)
	if err != nil {
		return fmt.Errorf("cannot import %s: %w", id, err)
	}
	return nil
}

// Expire deletes the packs older than each resolution's retention (by interval start; the
// weeks with the days).
func (s *Store) Expire(ctx context.Context, now time.Time) error {
	ret := [levels]time.Duration{s.cfg.Retention.Base, s.cfg.Retention.Hourly, s.cfg.Retention.Daily}
	t0 := time.Now()
	err := s.write(ctx, func(tx *sql.Tx) error {
		for l := range levels {
			if ret[l] <= 0 {
				continue
			}
			cut := now.Add(-ret[l]).Unix()
			lv := []int{l}
			if l == levelDay {
				lv = append(lv, levelWeek)
			}
			for _, l := range lv {
				res, err := tx.ExecContext(ctx, `DELETE FROM packs WHERE level = ? AND start < ?`, l, cut)
				if err != nil {
					return err
				}
				n, _ := res.RowsAffected()
				s.metrics.expired.WithLabelValues(levelName[l]).Add(float64(n))
				if _, err := tx.ExecContext(ctx, `DELETE FROM dirty WHERE level = ? AND start < ?`, l, cut); err != nil {
					return err
				}
			}
		}
		return dropBlobs(ctx, tx, nil) // those of the packs deleted
	})
	s.metrics.observe("expire", 0, t0, err)
	if err != nil {
		return fmt.Errorf("cannot expire rows: %w", err)
	}
	return nil
}
